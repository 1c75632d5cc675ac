package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// The operations scenarios (metricsPath, auditLog, adminPath) against real
// Traefik processes: testdata/ops-dynamic.yml.tmpl puts the API behind the
// plugin and an internal router /_revocation/ behind a second instance of
// it, with the same denylist, that serves the metrics and the admin API.
// The internal router's service is the API itself, which counts its calls:
// every admin request must be answered by the edge.

const (
	opsDenylist    = "ops"
	opsMetricsPath = "/_revocation/metrics"
	opsAdminPath   = "/_revocation/admin"
)

// opsData fills testdata/ops-dynamic.yml.tmpl.
type opsData struct {
	IdentityURL, APIURL, RedisAddress, PersistPath, AuditLog, AdminToken string
	// Options are further options of both middlewares, as YAML values.
	Options map[string]string
}

// opsEnv is replicaEnv (identity stand-in, counting API, Traefik binary)
// with the admin secret the test's Traefiks are given.
type opsEnv struct {
	*replicaEnv
	secret string
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	return &opsEnv{replicaEnv: newReplicaEnv(t), secret: "ops-admin-" + opsRandHex(16)}
}

func opsRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// start starts a Traefik with the ops configuration in dir, stopped when
// the test ends, and returns once its denylist is ready.
func (e *opsEnv) start(t *testing.T, dir string, data opsData) *harness.Traefik {
	t.Helper()
	return e.startTemplate(t, dir, "ops-dynamic.yml.tmpl", data)
}

// startTemplate is start with another dynamic configuration template of the
// same layout.
func (e *opsEnv) startTemplate(t *testing.T, dir, template string, data opsData) *harness.Traefik {
	t.Helper()
	data.IdentityURL, data.APIURL, data.AdminToken = e.identity.URL, e.api.URL, e.secret
	tr := e.startFrom(t, dir, template, data, opsMetricsPath)
	e.waitReady(t, tr, 30*time.Second)
	return tr
}

// Credentials an admin request is sent with.
const (
	credNone = iota
	credWrong
	credRight
)

var credNames = [...]string{"no secret", "a wrong secret", "the secret"}

// admin sends one admin request and checks that the upstream API never saw
// it. Not for goroutines: the check counts the API's calls around it.
func (e *opsEnv) admin(t *testing.T, tr *harness.Traefik, cred int, method, op, body string) response {
	t.Helper()
	header := http.Header{}
	switch cred {
	case credWrong:
		header.Set("Authorization", "Bearer ops-admin-"+opsRandHex(16))
	case credRight:
		header.Set("Authorization", "Bearer "+e.secret)
	}
	if body != "" {
		header.Set("Content-Type", "application/json")
	}
	before := e.api.Calls.Load()
	r := on(tr).do(t, method, opsAdminPath+op, header, body)
	if calls := e.api.Calls.Load() - before; calls != 0 {
		t.Errorf("%s %s%s with %s reached the upstream API (%d calls); answer %d %s", method, opsAdminPath, op, credNames[cred], calls, r.status, r.body)
	}
	return r
}

// adminOK sends an admin request with the secret, wants 200 and returns the
// JSON object answered.
func (e *opsEnv) adminOK(t *testing.T, tr *harness.Traefik, method, op, body string) map[string]any {
	t.Helper()
	r := e.admin(t, tr, credRight, method, op, body)
	if r.status != http.StatusOK {
		t.Fatalf("%s %s%s %s: got %d %s, want 200\n%s", method, opsAdminPath, op, body, r.status, r.body, logTail(tr))
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("%s %s%s: body %q: %v", method, opsAdminPath, op, r.body, err)
	}
	return out
}

// assertAdminRefused sends the request with no secret and with a wrong one
// and wants the edge's 401 invalid_token to both.
func (e *opsEnv) assertAdminRefused(t *testing.T, tr *harness.Traefik, method, op, body string) {
	t.Helper()
	for _, cred := range []int{credNone, credWrong} {
		r := e.admin(t, tr, cred, method, op, body)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s %s%s with %s: got %d %s, want 401\n%s", method, opsAdminPath, op, credNames[cred], r.status, r.body, logTail(tr))
			continue
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s %s%s with %s: WWW-Authenticate %q, want a Bearer challenge", method, opsAdminPath, op, credNames[cred], r.header.Get("WWW-Authenticate"))
		}
		assertErrorBody(t, r, "invalid_token")
	}
}

// status sends token to the API through tr and returns the status.
func (e *opsEnv) status(t *testing.T, tr *harness.Traefik, token string) int {
	t.Helper()
	status, _, err := e.call(tr, token)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// waitAccepted polls tr until it lets token through again.
func (e *opsEnv) waitAccepted(t *testing.T, tr *harness.Traefik, token string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status := e.status(t, tr, token)
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the token still answered %d %s later, want 200\n%s", tr.URL, status, timeout, logTail(tr))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jwtWith returns an unsigned-looking JWT with claims as its payload.
func jwtWith(claims map[string]any) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte(opsRandHex(16)))
}

// shortDigest is the audit trail's and the admin API's short digest of token.
func shortDigest(token string) string { return digestHex(token)[:8] }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// wantFields checks got[key] == value for each pair of a JSON object.
func wantFields(t *testing.T, what string, got map[string]any, pairs ...any) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		key := pairs[i].(string)
		if got[key] != pairs[i+1] {
			t.Errorf("%s: %s is %#v, want %#v (whole answer %v)", what, key, got[key], pairs[i+1], got)
		}
	}
}

func TestOpsAdminAPI(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	tr := e.start(t, t.TempDir(), opsData{})
	exp := time.Now().Add(time.Hour)
	tok, byDigest, imported := fixtures.NewJWT(exp), fixtures.NewJWT(exp), fixtures.NewJWT(exp)
	sid := "session-" + opsRandHex(6)
	sessionTok := jwtWith(map[string]any{"sub": "user-" + opsRandHex(4), "sid": sid, "iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix()})
	subject := "user-" + opsRandHex(4)
	subjectTok := jwtWith(map[string]any{"sub": subject, "iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix()})
	for _, token := range []string{tok, byDigest, imported, sessionTok, subjectTok} {
		if s := e.status(t, tr, token); s != http.StatusOK {
			t.Fatalf("a fresh token got %d", s)
		}
	}

	t.Run("revoke", func(t *testing.T) {
		body := fmt.Sprintf(`{"token":%q}`, tok)
		e.assertAdminRefused(t, tr, http.MethodPost, "/revoke", body)
		if s := e.status(t, tr, tok); s != http.StatusOK {
			t.Fatalf("after refused admin revokes the token got %d, want 200", s)
		}
		got := e.adminOK(t, tr, http.MethodPost, "/revoke", body)
		wantFields(t, "revoke by token", got, "digest", shortDigest(tok), "recorded", true, "expiresAt", rfc3339(exp))
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
		got = e.adminOK(t, tr, http.MethodPost, "/revoke", body)
		wantFields(t, "revoke again", got, "recorded", false)

		got = e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"digest":%q,"ttl":"10m"}`, digestHex(byDigest)))
		wantFields(t, "revoke by digest", got, "digest", shortDigest(byDigest), "recorded", true)
		if at, err := time.Parse(time.RFC3339, fmt.Sprint(got["expiresAt"])); err != nil || at.Sub(time.Now().Add(10*time.Minute)).Abs() > 5*time.Second {
			t.Errorf("revoke by digest with ttl 10m: expiresAt %v (%v)", got["expiresAt"], err)
		}
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(byDigest), ""))
	})

	t.Run("lookup", func(t *testing.T) {
		body := fmt.Sprintf(`{"token":%q}`, tok)
		e.assertAdminRefused(t, tr, http.MethodPost, "/lookup", body)
		got := e.adminOK(t, tr, http.MethodPost, "/lookup", body)
		wantFields(t, "lookup of a revoked token", got, "revoked", true, "source", "admin", "expiresAt", rfc3339(exp))
		got = e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"digest":%q}`, digestHex(imported)))
		wantFields(t, "lookup of a token never revoked", got, "revoked", false)
	})

	t.Run("export", func(t *testing.T) {
		e.assertAdminRefused(t, tr, http.MethodGet, "/export", "")
		r := e.admin(t, tr, credRight, http.MethodGet, "/export", "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/x-ndjson") {
			t.Fatalf("export: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		lines := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
			var l struct{ Digest, ExpiresAt string }
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("export line %q: %v", line, err)
			}
			lines[l.Digest] = l.ExpiresAt
		}
		if len(lines) != 2 || lines[digestHex(tok)] == "" || lines[digestHex(byDigest)] == "" {
			t.Fatalf("export: got %v, want the 2 revocations %s and %s", lines, digestHex(tok), digestHex(byDigest))
		}
		if at, err := time.Parse(time.RFC3339Nano, lines[digestHex(tok)]); err != nil || !at.Equal(exp.Truncate(time.Second)) {
			t.Errorf("export: expiresAt %q (%v), want %s", lines[digestHex(tok)], err, rfc3339(exp))
		}
	})

	t.Run("import", func(t *testing.T) {
		body := fmt.Sprintf(`{"digest":%q,"expiresAt":%q}`+"\n"+`{"digest":%q,"expiresAt":%q}`+"\n",
			digestHex(imported), rfc3339(exp), digestHex(tok), rfc3339(exp))
		e.assertAdminRefused(t, tr, http.MethodPost, "/import", body)
		if s := e.status(t, tr, imported); s != http.StatusOK {
			t.Fatalf("after refused imports the token got %d, want 200", s)
		}
		got := e.adminOK(t, tr, http.MethodPost, "/import", body)
		wantFields(t, "import", got, "imported", float64(1), "skipped", float64(1))
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(imported), ""))
	})

	t.Run("unrevoke", func(t *testing.T) {
		body := fmt.Sprintf(`{"token":%q}`, tok)
		e.assertAdminRefused(t, tr, http.MethodPost, "/unrevoke", body)
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
		got := e.adminOK(t, tr, http.MethodPost, "/unrevoke", body)
		wantFields(t, "unrevoke", got, "unrevoked", true)
		if s := e.status(t, tr, tok); s != http.StatusOK {
			t.Fatalf("an un-revoked token got %d, want 200\n%s", s, logTail(tr))
		}
		got = e.adminOK(t, tr, http.MethodPost, "/unrevoke", body)
		wantFields(t, "unrevoke again", got, "unrevoked", false)
		got = e.adminOK(t, tr, http.MethodPost, "/unrevoke", fmt.Sprintf(`{"digest":%q}`, digestHex(byDigest)))
		wantFields(t, "unrevoke by digest", got, "unrevoked", true)
		e.waitAccepted(t, tr, byDigest, time.Second)
		got = e.adminOK(t, tr, http.MethodPost, "/lookup", body)
		wantFields(t, "lookup of an un-revoked token", got, "revoked", false)
	})

	t.Run("rules", func(t *testing.T) {
		rule := fmt.Sprintf(`{"sid":%q}`, sid)
		e.assertAdminRefused(t, tr, http.MethodGet, "/rules", "")
		e.assertAdminRefused(t, tr, http.MethodPost, "/rules", rule)
		if s := e.status(t, tr, sessionTok); s != http.StatusOK {
			t.Fatalf("after refused rule posts the session's token got %d, want 200", s)
		}
		sidDigest := sha256.Sum256([]byte(sid))
		got := e.adminOK(t, tr, http.MethodPost, "/rules", rule)
		wantFields(t, "POST /rules "+rule, got, "claim", "sid", "digest", hex.EncodeToString(sidDigest[:]), "deleted", false)
		list := e.adminOK(t, tr, http.MethodGet, "/rules", "")
		rules, _ := list["rules"].([]any)
		if len(rules) != 1 {
			t.Errorf("GET /rules: got %v, want the one sid rule", list)
		} else {
			wantFields(t, "GET /rules", rules[0].(map[string]any), "claim", "sid", "digest", hex.EncodeToString(sidDigest[:]))
		}
		if s := e.status(t, tr, sessionTok); s != http.StatusUnauthorized {
			t.Errorf("a token of the session (sid %q, iat a minute before the rule) got %d under the sid rule, want 401\n%s", sid, s, logTail(tr))
		}
		if s := e.status(t, tr, tok); s != http.StatusOK {
			t.Errorf("a token of another session got %d under the sid rule", s)
		}

		e.assertAdminRefused(t, tr, http.MethodDelete, "/rules", rule)
		if rules, _ := e.adminOK(t, tr, http.MethodGet, "/rules", "")["rules"].([]any); len(rules) != 1 {
			t.Errorf("refused deletes changed the rules: %v", rules)
		}
		got = e.adminOK(t, tr, http.MethodDelete, "/rules", rule)
		wantFields(t, "DELETE /rules "+rule, got, "claim", "sid", "deleted", true)
		e.waitAccepted(t, tr, sessionTok, time.Second)
		list = e.adminOK(t, tr, http.MethodGet, "/rules", "")
		if rules, _ := list["rules"].([]any); len(rules) != 0 {
			t.Errorf("rules after the delete: %v, want none", list)
		}

		subRule := fmt.Sprintf(`{"sub":%q}`, subject)
		subDigest := sha256.Sum256([]byte(subject))
		got = e.adminOK(t, tr, http.MethodPost, "/rules", subRule)
		wantFields(t, "POST /rules "+subRule, got, "claim", "sub", "digest", hex.EncodeToString(subDigest[:]), "deleted", false)
		if s := e.status(t, tr, subjectTok); s != http.StatusUnauthorized {
			t.Errorf("a token of the subject (iat a minute before the rule) got %d under the sub rule, want 401", s)
		}
		got = e.adminOK(t, tr, http.MethodDelete, "/rules", subRule)
		wantFields(t, "DELETE /rules "+subRule, got, "claim", "sub", "deleted", true)
		e.waitAccepted(t, tr, subjectTok, time.Second)
	})

	for _, op := range []string{"", "/", "/nope", "/revoke/"} {
		t.Run(fmt.Sprintf("unknown operation %q", op), func(t *testing.T) {
			e.assertAdminRefused(t, tr, http.MethodGet, op, "")
			if r := e.admin(t, tr, credRight, http.MethodGet, op, ""); r.status != http.StatusNotFound {
				t.Errorf("GET %s%s with the secret: got %d %s, want the edge's 404", opsAdminPath, op, r.status, r.body)
			}
		})
	}
}

func TestOpsReplicas(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	rds := startRedis(t)
	a := e.start(t, t.TempDir(), opsData{RedisAddress: rds.Addr()})
	b := e.start(t, t.TempDir(), opsData{RedisAddress: rds.Addr()})
	exp := time.Now().Add(time.Hour)
	tok, other := fixtures.NewJWT(exp), fixtures.NewJWT(exp)
	assertAccepted(t, b, []string{tok, other})

	// An admin revocation on A is enforced on B through Redis.
	got := e.adminOK(t, a, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "revoke on A", got, "recorded", true)
	assertRevoked(t, on(a).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
	took := e.waitRejected(t, b, tok, 5*time.Second)
	t.Logf("B rejected A's admin revocation after %s", took.Round(time.Millisecond))
	got = e.adminOK(t, b, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "lookup on B", got, "revoked", true, "source", "redis")

	// An un-revoke on B is honored on both.
	got = e.adminOK(t, b, http.MethodPost, "/unrevoke", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "unrevoke on B", got, "unrevoked", true)
	if s := e.status(t, b, tok); s != http.StatusOK {
		t.Fatalf("B after its own un-revoke: %d, want 200\n%s", s, logTail(b))
	}
	e.waitAccepted(t, a, tok, 5*time.Second)
	got = e.adminOK(t, a, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "lookup on A after B's un-revoke", got, "revoked", false)

	mA, mB := scrapeOps(t, a).series, scrapeOps(t, b).series
	for _, c := range []struct {
		replica     string
		m           map[string]float64
		name, label string
		value       float64
	}{
		{"A", mA, "tokenrevocation_revocations_total", "admin", 1},
		{"A", mA, "tokenrevocation_unrevocations_total", "redis", 1},
		{"B", mB, "tokenrevocation_revocations_total", "redis", 1},
		{"B", mB, "tokenrevocation_unrevocations_total", "admin", 1},
	} {
		if got := c.m[opsSeries(c.name, "source", c.label)]; got != c.value {
			t.Errorf("%s{source=%q} on %s: %v, want %v", c.name, c.label, c.replica, got, c.value)
		}
	}
	for name, m := range map[string]map[string]float64{"A": mA, "B": mB} {
		if m[opsSeries("tokenrevocation_redis_connected")] != 1 {
			t.Errorf("%s: tokenrevocation_redis_connected is not 1", name)
		}
	}

	// The stream's order decides: revoked again after the tombstone, tok
	// stays revoked; other, revoked on B and un-revoked on A by digest,
	// stays un-revoked, for the replicas and for one that starts late.
	e.adminOK(t, a, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q}`, tok))
	e.waitRejected(t, b, tok, 5*time.Second)
	e.adminOK(t, b, http.MethodPost, "/revoke", fmt.Sprintf(`{"digest":%q,"ttl":"30m"}`, digestHex(other)))
	e.waitRejected(t, a, other, 5*time.Second)
	got = e.adminOK(t, a, http.MethodPost, "/unrevoke", fmt.Sprintf(`{"digest":%q}`, digestHex(other)))
	wantFields(t, "unrevoke on A by digest", got, "unrevoked", true)
	e.waitAccepted(t, b, other, 5*time.Second)
	for _, tr := range []*harness.Traefik{a, b} {
		e.waitStats(t, tr, "queue flushed", 10*time.Second, func(st replicaStats) bool { return st.Queued == 0 })
	}
	c := e.start(t, t.TempDir(), opsData{RedisAddress: rds.Addr()})
	assertRevoked(t, on(c).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
	assertAccepted(t, c, []string{other})
}

func TestOpsUnrevokePersisted(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	persist := filepath.Join(t.TempDir(), "revocations.bin")
	first := e.start(t, t.TempDir(), opsData{PersistPath: persist})
	exp := time.Now().Add(time.Hour)
	undone, kept := fixtures.NewJWT(exp), fixtures.NewJWT(exp)
	for _, token := range []string{undone, kept} {
		e.adminOK(t, first, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q}`, token))
	}
	wantFields(t, "unrevoke", e.adminOK(t, first, http.MethodPost, "/unrevoke", fmt.Sprintf(`{"token":%q}`, undone)), "unrevoked", true)
	assertAccepted(t, first, []string{undone})
	first.Stop()

	second := e.start(t, t.TempDir(), opsData{PersistPath: persist})
	assertAccepted(t, second, []string{undone})
	assertRevoked(t, on(second).do(t, http.MethodGet, replicaAPIPath, bearer(kept), ""))
	wantFields(t, "lookup after the restart", e.adminOK(t, second, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, kept)), "revoked", true, "source", "file")
	wantFields(t, "lookup of the un-revoked token after the restart", e.adminOK(t, second, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, undone)), "revoked", false)
}

// A metricsScrape is one answer of the metrics path: its body and its
// series, keyed by name and labels as written.
type metricsScrape struct {
	body   string
	series map[string]float64
}

// scrapeOps reads tr's metrics path.
func scrapeOps(t *testing.T, tr *harness.Traefik) metricsScrape {
	t.Helper()
	r := on(tr).do(t, http.MethodGet, opsMetricsPath, nil, "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %d %q %s", opsMetricsPath, r.status, r.header.Get("Content-Type"), r.body)
	}
	s := metricsScrape{body: r.body, series: map[string]float64{}}
	for _, line := range strings.Split(r.body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s.series[line[:i]] = v
	}
	return s
}

// opsSeries is the key of the ops denylist's series of name with labels
// (name, value pairs), in the order the plugin writes them.
func opsSeries(name string, labels ...string) string {
	key := name + `{denylist="` + opsDenylist + `"`
	for i := 0; i+1 < len(labels); i += 2 {
		key += "," + labels[i] + `="` + labels[i+1] + `"`
	}
	return key + "}"
}

// promtoolCheckMetrics pipes body to `promtool check metrics`, which must exit 0.
func promtoolCheckMetrics(t *testing.T, body string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is required (Debian's prometheus package, scripts/deps.sh): %v", err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out, body)
	}
	t.Logf("promtool check metrics: ok %s", bytes.TrimSpace(out))
}

func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	tr := e.start(t, t.TempDir(), opsData{Options: map[string]string{"clientRate": "1", "clientBurst": "3"}})
	before := scrapeOps(t, tr)
	for _, family := range []string{"tokenrevocation_revocations_total", "tokenrevocation_unrevocations_total",
		"tokenrevocation_rejected_requests_total", "tokenrevocation_refused_revocations_total", "tokenrevocation_evictions_total",
		"tokenrevocation_entries", "tokenrevocation_capacity_entries", "tokenrevocation_ready", "tokenrevocation_load_duration_seconds",
		"tokenrevocation_logouts_total", "tokenrevocation_logout_rules", "tokenrevocation_grants", "tokenrevocation_audit_dropped_total",
		"tokenrevocation_admin_requests_total"} {
		if !strings.Contains(before.body, "# TYPE "+family+" ") {
			t.Errorf("the scrape has no family %s", family)
		}
	}
	if strings.Contains(before.body, "tokenrevocation_redis_connected{") {
		t.Errorf("a denylist without Redis has Redis series:\n%s", before.body)
	}

	exp := time.Now().Add(time.Hour)
	revoked := fixtures.NewJWT(exp)
	if status, err := e.revokeAs(tr, clientID, clientSecret, revoked); err != nil || status != http.StatusOK {
		t.Fatalf("revoke: %d %v", status, err)
	}
	assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(revoked), ""))
	assertAccepted(t, tr, []string{fixtures.NewJWT(exp)})

	// A burst from one client: the bucket (3, 1/s) lets a few through and
	// refuses the rest with 429.
	accepted, limited := 0, 0
	for range 10 {
		status, err := e.revokeAs(tr, clientID, clientSecret, fixtures.NewJWT(exp))
		switch {
		case err != nil:
			t.Fatal(err)
		case status == http.StatusOK:
			accepted++
		case status == http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("a revoke call of the burst got %d", status)
		}
	}
	if limited == 0 {
		t.Fatalf("10 revoke calls at once with clientRate 1, clientBurst 3: none got 429\n%s", logTail(tr))
	}
	e.assertAdminRefused(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, revoked))
	e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, revoked))

	after := scrapeOps(t, tr)
	for _, c := range []struct {
		key   string
		delta float64
	}{
		{opsSeries("tokenrevocation_revocations_total", "source", "revoke_endpoint"), float64(1 + accepted)},
		{opsSeries("tokenrevocation_revocations_total", "source", "admin"), 0},
		{opsSeries("tokenrevocation_rejected_requests_total", "reason", "revoked_token"), 1},
		{opsSeries("tokenrevocation_rejected_requests_total", "reason", "logout_rule"), 0},
		{opsSeries("tokenrevocation_refused_revocations_total", "reason", "client_limit"), float64(limited)},
		{opsSeries("tokenrevocation_refused_revocations_total", "reason", "capacity"), 0},
		{opsSeries("tokenrevocation_entries"), float64(1 + accepted)},
		{opsSeries("tokenrevocation_admin_requests_total", "operation", "lookup", "outcome", "unauthorized"), 2},
		{opsSeries("tokenrevocation_admin_requests_total", "operation", "lookup", "outcome", "ok"), 1},
	} {
		b, okB := before.series[c.key]
		a, okA := after.series[c.key]
		if !okB || !okA || a-b != c.delta {
			t.Errorf("%s: %v (present %t) before, %v (present %t) after: delta %v, want %v", c.key, b, okB, a, okA, a-b, c.delta)
		}
	}
	t.Logf("burst: %d accepted, %d refused with 429", accepted, limited)
	if after.series[opsSeries("tokenrevocation_ready")] != 1 {
		t.Errorf("tokenrevocation_ready is not 1")
	}
	promtoolCheckMetrics(t, after.body)
	if t.Failed() {
		t.Logf("scrape after:\n%s", after.body)
	}
}

// auditLine is one line of the audit trail; the decoder refuses any other
// field.
type auditLine struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	Denylist  string `json:"denylist"`
	Source    string `json:"source"`
	Client    string `json:"client"`
	Hint      string `json:"hint"`
	Digest    string `json:"digest"`
	ExpiresAt string `json:"expiresAt"`
	Reason    string `json:"reason"`
	Operation string `json:"operation"`
	Outcome   string `json:"outcome"`
	Count     int    `json:"count"`
}

// readAudit waits until the audit file holds n lines (the writer is
// asynchronous), then a little more for any extra line, and returns them.
func readAudit(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var lines []string
	for {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			lines = nil
		}
		if len(lines) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(lines) == n {
		time.Sleep(300 * time.Millisecond)
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return lines
}

func TestOpsAudit(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	tr := e.start(t, t.TempDir(), opsData{AuditLog: auditPath, Options: map[string]string{"clientRate": "1", "clientBurst": "1"}})
	exp := time.Now().Add(time.Hour)
	var expected []auditLine
	var raw []string // every secret that must never be written
	revocation := func(source, client, hint, token string) auditLine {
		return auditLine{Event: "revocation", Source: source, Client: client, Hint: hint, Digest: shortDigest(token), ExpiresAt: rfc3339(exp)}
	}
	adminCall := func(op, outcome, digest string) auditLine {
		return auditLine{Event: "admin", Operation: op, Outcome: outcome, Digest: digest}
	}

	// Revoke calls from one client until its bucket (1, 1/s) refuses one.
	for i := 0; ; i++ {
		token := fixtures.NewJWT(exp)
		raw = append(raw, token)
		status, err := e.revokeAs(tr, clientID, clientSecret, token)
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusTooManyRequests {
			expected = append(expected, auditLine{Event: "refusal", Reason: "client_limit", Client: clientID, Digest: shortDigest(token)})
			break
		}
		if status != http.StatusOK || i == 10 {
			t.Fatalf("revoke call %d: %d (clientRate 1, clientBurst 1: want 200 then 429)", i, status)
		}
		expected = append(expected, revocation("revoke_endpoint", clientID, "refresh_token", token))
	}

	adminTok, refusedTok, importedTok := fixtures.NewJWT(exp), fixtures.NewJWT(exp), fixtures.NewJWT(exp)
	sid := "session-" + opsRandHex(6)
	sidSum := sha256.Sum256([]byte(sid))
	raw = append(raw, adminTok, refusedTok, importedTok, sid, e.secret, clientSecret)
	e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q}`, adminTok))
	expected = append(expected, revocation("admin", "", "", adminTok), adminCall("revoke", "ok", shortDigest(adminTok)))
	if r := e.admin(t, tr, credWrong, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q}`, refusedTok)); r.status != http.StatusUnauthorized {
		t.Fatalf("revoke with a wrong secret: %d %s", r.status, r.body)
	}
	expected = append(expected, adminCall("revoke", "unauthorized", ""))
	if r := e.admin(t, tr, credNone, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, adminTok)); r.status != http.StatusUnauthorized {
		t.Fatalf("lookup with no secret: %d %s", r.status, r.body)
	}
	expected = append(expected, adminCall("lookup", "unauthorized", ""))
	e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, adminTok))
	expected = append(expected, adminCall("lookup", "ok", shortDigest(adminTok)))
	e.adminOK(t, tr, http.MethodPost, "/unrevoke", fmt.Sprintf(`{"token":%q}`, adminTok))
	expected = append(expected, auditLine{Event: "unrevocation", Source: "admin", Digest: shortDigest(adminTok)}, adminCall("unrevoke", "ok", shortDigest(adminTok)))
	if r := e.admin(t, tr, credRight, http.MethodGet, "/export", ""); r.status != http.StatusOK {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	expected = append(expected, adminCall("export", "ok", ""))
	e.adminOK(t, tr, http.MethodPost, "/import", fmt.Sprintf(`{"digest":%q,"expiresAt":%q}`+"\n", digestHex(importedTok), rfc3339(exp)))
	expected = append(expected, revocation("admin", "", "", importedTok), adminCall("import", "ok", ""))
	// A rule change is a state change of its own (event logout, or
	// rule_deleted), then the admin call; its expiry is checked apart.
	e.adminOK(t, tr, http.MethodPost, "/rules", fmt.Sprintf(`{"sid":%q}`, sid))
	expected = append(expected, auditLine{Event: "logout", Reason: "sid", Digest: hex.EncodeToString(sidSum[:4]), ExpiresAt: "*"},
		adminCall("rules", "ok", hex.EncodeToString(sidSum[:4])))
	e.adminOK(t, tr, http.MethodDelete, "/rules", fmt.Sprintf(`{"sid":%q}`, sid))
	expected = append(expected, auditLine{Event: "rule_deleted", Reason: "sid", Digest: hex.EncodeToString(sidSum[:4]), ExpiresAt: "*"},
		adminCall("rules", "ok", hex.EncodeToString(sidSum[:4])))
	subject := "user-" + opsRandHex(4)
	subSum := sha256.Sum256([]byte(subject))
	raw = append(raw, subject)
	e.adminOK(t, tr, http.MethodPost, "/rules", fmt.Sprintf(`{"sub":%q}`, subject))
	expected = append(expected, auditLine{Event: "logout", Reason: "sub", Digest: hex.EncodeToString(subSum[:4]), ExpiresAt: "*"},
		adminCall("rules", "ok", hex.EncodeToString(subSum[:4])))
	e.adminOK(t, tr, http.MethodGet, "/rules", "")
	expected = append(expected, adminCall("rules", "ok", ""))
	scrapeOps(t, tr) // a scrape changes nothing: no line

	lines := readAudit(t, auditPath, len(expected))
	if len(lines) != len(expected) {
		t.Errorf("the audit file holds %d lines, want %d (one per action):\n%s", len(lines), len(expected), strings.Join(lines, "\n"))
	}
	last := time.Time{}
	for i, line := range lines {
		var got auditLine
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Errorf("audit line %d %q: %v", i+1, line, err)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, got.Time)
		if err != nil || at.Before(last) || time.Since(at) > time.Minute {
			t.Errorf("audit line %d: time %q (%v), not after the previous line's or not recent", i+1, got.Time, err)
		}
		last = at
		if got.Denylist != opsDenylist {
			t.Errorf("audit line %d: denylist %q, want %q", i+1, got.Denylist, opsDenylist)
		}
		got.Time, got.Denylist = "", ""
		if i < len(expected) && expected[i].ExpiresAt == "*" {
			if at, err := time.Parse(time.RFC3339, got.ExpiresAt); err != nil || !at.After(time.Now()) {
				t.Errorf("audit line %d: expiresAt %q (%v), want a future RFC 3339 time", i+1, got.ExpiresAt, err)
			}
			got.ExpiresAt = "*"
		}
		if i < len(expected) && got != expected[i] {
			t.Errorf("audit line %d:\n got  %s\n want %+v", i+1, line, expected[i])
		}
	}

	content, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range raw {
		if bytes.Contains(content, []byte(secret)) {
			t.Errorf("the audit file holds a raw secret or token %q", secret)
		}
	}
	for _, token := range raw {
		if bytes.Contains(content, []byte(digestHex(token))) {
			t.Errorf("the audit file holds the whole digest of %q", token)
		}
	}
	// Every line is JSON on its own line: nothing else was written.
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("audit line not JSON: %q", sc.Text())
		}
	}
}
