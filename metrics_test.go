package tokenrevocation

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// scrape returns the metrics exposition of m.
func scrape(t *testing.T, m http.Handler) string {
	t.Helper()
	rw := serve(m, httptest.NewRequest(http.MethodGet, "/_metrics", nil))
	if rw.Code != 200 || !strings.HasPrefix(rw.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("scrape: %d %q", rw.Code, rw.Header().Get("Content-Type"))
	}
	return rw.Body.String()
}

// sample returns the value of the series line that starts with prefix.
func sample(t *testing.T, text, prefix string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			return strings.TrimPrefix(line, prefix+" ")
		}
	}
	t.Fatalf("no series %s in:\n%s", prefix, text)
	return ""
}

func TestMetricsCountWhatHappens(t *testing.T) {
	// given an edge with metrics on
	stub := &identityStub{}
	m := adminMiddleware(t, stub, nil)
	name := m.list.name
	series := func(metric, label string) string {
		return metric + `{denylist="` + name + `"` + label + `}`
	}

	// when a token is revoked, then used, and an admin revokes another
	revoke(t, m, "metric-token", "")
	status(m, "metric-token")
	admin(m, http.MethodPost, "revoke", testAdminToken, `{"token":"other"}`)
	admin(m, http.MethodPost, "lookup", "wrong-secret-0123456789", `{"token":"other"}`)
	stub.queue("a", "", "")
	tokenRequest(m, "grant_type=refresh_token&refresh_token=metric-token")
	text := scrape(t, m)

	// then the counters show it
	for _, c := range []struct{ series, want string }{
		{series("tokenrevocation_revocations_total", `,source="revoke_endpoint"`), "1"},
		{series("tokenrevocation_revocations_total", `,source="admin"`), "1"},
		{series("tokenrevocation_revocations_total", `,source="redis"`), "0"},
		{series("tokenrevocation_rejected_requests_total", `,reason="revoked_token"`), "1"},
		{series("tokenrevocation_rejected_requests_total", `,reason="refresh_grant"`), "1"},
		{series("tokenrevocation_admin_requests_total", `,operation="revoke",outcome="ok"`), "1"},
		{series("tokenrevocation_admin_requests_total", `,operation="lookup",outcome="unauthorized"`), "1"},
		{series("tokenrevocation_entries", ""), "2"},
		{series("tokenrevocation_ready", ""), "1"},
		{series("tokenrevocation_grants_untracked_total", ""), "0"},
		{series("tokenrevocation_overflow_entries", ""), "0"},
		{series("tokenrevocation_refused_revocations_total", `,reason="lifetime"`), "0"},
		{series("tokenrevocation_bound_refusals_total", `,bound="tombstones"`), "0"},
		{series("tokenrevocation_bound_refusals_total", `,bound="segment"`), "0"},
	} {
		if got := sample(t, text, c.series); got != c.want {
			t.Errorf("%s = %s, want %s", c.series, got, c.want)
		}
	}
	// and every family is announced once, with HELP and TYPE
	for _, f := range metricFamilies {
		if strings.Count(text, "# TYPE "+f.name+" ") != 1 || strings.Count(text, "# HELP "+f.name+" ") != 1 {
			t.Errorf("%s: HELP/TYPE not exactly once", f.name)
		}
		if (f.typ == "counter") != strings.HasSuffix(f.name, "_total") {
			t.Errorf("%s: counters and only counters end in _total", f.name)
		}
	}
	// and the metrics path never reaches the upstream, with or without a token
	req := httptest.NewRequest(http.MethodGet, "/_metrics", nil)
	req.Header.Set("Authorization", "Bearer whatever")
	if rw := serve(m, req); rw.Code != 200 || !strings.Contains(rw.Body.String(), "# TYPE") {
		t.Fatalf("metrics with a bearer token: %d", rw.Code)
	}
}

func TestMetricsSurviveAReload(t *testing.T) {
	// given a middleware of a shared denylist that counted a revocation
	cfg := CreateConfig()
	cfg.CacheSizeMB = 1
	cfg.MetricsPath = "/_metrics"
	name := uniqueName(t)
	first, err := New(context.Background(), &upstream{}, cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	unregister(t, name, first.(*middleware).list)
	revoke(t, first, "reload-token", "")
	// when Traefik reloads its configuration (New again, same name)
	second, err := New(context.Background(), &upstream{}, cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	// then the new instance reports the same counters
	text := scrape(t, second)
	if got := sample(t, text, `tokenrevocation_revocations_total{denylist="`+name+`",source="revoke_endpoint"}`); got != "1" {
		t.Fatalf("after a reload the counter reads %s", got)
	}
}

func TestMetricsShowTheBlindSpots(t *testing.T) {
	// given a denylist with a live revocation in its overflow map, an
	// untracked grant, and signing keys held for back-channel logout
	m := adminMiddleware(t, &identityStub{}, func(c *Config) { c.MaxGrants = 1 })
	d := m.list
	// (longer than its longest lane holds: kept whole in the overflow map)
	d.store.Put(&record.Revocation{Digest: *digestOf("aside"), Expiry: d.opts.now().Add(d.opts.maxLifetime + time.Hour).UnixNano(), At: d.opts.now().UnixNano()})
	// room for one family: the three after it go untracked
	for _, f := range []string{"f0", "f1", "f2", "f3"} {
		d.grants.Add(&record.Grant{Family: *digestOf(f)}, false)
	}
	d.mu.Lock()
	d.keys = &keySource{issuer: "https://op.example"}
	d.mu.Unlock()
	text := scrape(t, m)
	// then the metrics show them, not only the stats JSON
	name := d.name
	for series, want := range map[string]string{
		`tokenrevocation_overflow_entries{denylist="` + name + `"}`:                      "1",
		`tokenrevocation_grants_untracked_total{denylist="` + name + `"}`:                "3",
		`tokenrevocation_jwks_keys{denylist="` + name + `",issuer="https://op.example"}`: "0",
	} {
		if got := sample(t, text, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
}
