package tokenrevocation

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
)

const testAdminToken = "admin-secret-0123456789"

func adminMiddleware(t *testing.T, next http.Handler, edit func(*Config)) *middleware {
	t.Helper()
	return newTestMiddleware(t, next, nil, func(c *Config) {
		c.AdminPath = "/_admin"
		c.AdminToken = testAdminToken
		c.MetricsPath = "/_metrics"
		if edit != nil {
			edit(c)
		}
	})
}

// admin calls an admin operation with the admin secret (auth "" for none).
func admin(m http.Handler, method, op, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/_admin/"+op, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	return serve(m, req)
}

func decode(t *testing.T, rw *httptest.ResponseRecorder) map[string]interface{} {
	t.Helper()
	var out map[string]interface{}
	if err := json.Unmarshal(rw.Body.Bytes(), &out); err != nil {
		t.Fatalf("body %q: %v", rw.Body.String(), err)
	}
	return out
}

func TestAdminNeedsTheSecret(t *testing.T) {
	up := &upstream{}
	m := adminMiddleware(t, up, nil)
	for _, op := range []string{"revoke", "lookup", "unrevoke", "export", "import", "rules", "nothing"} {
		for name, auth := range map[string]string{"none": "", "wrong": "wrong-secret-0123456789", "other scheme": ""} {
			req := httptest.NewRequest(http.MethodPost, "/_admin/"+op, strings.NewReader(`{"token":"t"}`))
			if auth != "" {
				req.Header.Set("Authorization", "Bearer "+auth)
			}
			if name == "other scheme" {
				req.SetBasicAuth("admin", testAdminToken)
			}
			if rw := serve(m, req); rw.Code != 401 || !strings.Contains(rw.Body.String(), "invalid_token") {
				t.Errorf("%s with %s secret: %d %s", op, name, rw.Code, rw.Body)
			}
		}
	}
	if rw := admin(m, http.MethodPost, "nothing", testAdminToken, "{}"); rw.Code != 404 {
		t.Errorf("unknown operation: %d", rw.Code)
	}
	// The admin path itself, with a trailing slash, on the hot path's GET.
	for _, path := range []string{"/_admin/", "/_admin"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		if rw := serve(m, req); rw.Code != 404 {
			t.Errorf("GET %s: %d", path, rw.Code)
		}
	}
	if up.calls() != 0 {
		t.Fatalf("admin requests reached the upstream %d times", up.calls())
	}
	if strings.Contains(m.list.stats().Denylist, testAdminToken) {
		t.Fatal("secret leaked")
	}
}

func TestAdminRevokeLookupUnrevoke(t *testing.T) {
	// given an edge with the admin API
	up := &upstream{}
	m := adminMiddleware(t, up, nil)

	// when an operator revokes a leaked token
	rw := admin(m, http.MethodPost, "revoke", testAdminToken, `{"token":"leaked-token","ttl":"2h"}`)
	if rw.Code != 200 || decode(t, rw)["recorded"] != true {
		t.Fatalf("revoke: %d %s", rw.Code, rw.Body)
	}
	// then it is rejected, and the lookup says so and by whom
	if status(m, "leaked-token") != 401 {
		t.Fatal("an admin revocation is not enforced")
	}
	got := decode(t, admin(m, http.MethodPost, "lookup", testAdminToken, `{"token":"leaked-token"}`))
	if got["revoked"] != true || got["source"] != "admin" || got["expiresAt"] == nil {
		t.Fatalf("lookup: %v", got)
	}
	// and by digest too
	sum := sha256.Sum256([]byte("leaked-token"))
	got = decode(t, admin(m, http.MethodPost, "lookup", testAdminToken, `{"digest":"`+hex.EncodeToString(sum[:])+`"}`))
	if got["revoked"] != true {
		t.Fatalf("lookup by digest: %v", got)
	}
	// when it is un-revoked, then it passes again, and the lookup says so
	rw = admin(m, http.MethodPost, "unrevoke", testAdminToken, `{"token":"leaked-token"}`)
	if rw.Code != 200 || decode(t, rw)["unrevoked"] != true {
		t.Fatalf("unrevoke: %d %s", rw.Code, rw.Body)
	}
	if status(m, "leaked-token") != 200 {
		t.Fatal("an un-revoked token is still rejected")
	}
	if got := decode(t, admin(m, http.MethodPost, "lookup", testAdminToken, `{"token":"leaked-token"}`)); got["revoked"] != false {
		t.Fatalf("lookup after unrevoke: %v", got)
	}
	// and revoking it again through the revoke endpoint works
	revoke(t, m, "leaked-token", "")
	if status(m, "leaked-token") != 401 {
		t.Fatal("a re-revocation is not enforced")
	}
}

func TestAdminBadRequests(t *testing.T) {
	m := adminMiddleware(t, &upstream{}, nil)
	for _, tc := range []struct{ method, op, body string }{
		{http.MethodPost, "revoke", `not json`},
		{http.MethodPost, "revoke", `{}`},
		{http.MethodPost, "revoke", `{"token":"a","digest":"` + strings.Repeat("ab", 32) + `"}`},
		{http.MethodPost, "revoke", `{"digest":"xyz"}`},
		{http.MethodPost, "revoke", `{"token":"a","ttl":"-1h"}`},
		{http.MethodPost, "revoke", `{"token":"a","expiresAt":"2001-01-01T00:00:00Z"}`},
		{http.MethodGet, "revoke", ``},
		{http.MethodPost, "import", `{"digest":"nope"}`},
		{http.MethodPost, "rules", `{"sid":"a","sub":"b"}`},
	} {
		if rw := admin(m, tc.method, tc.op, testAdminToken, tc.body); rw.Code < 400 || rw.Code >= 500 || !strings.Contains(rw.Body.String(), "invalid_request") {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.op, tc.body, rw.Code, rw.Body)
		}
	}
}

func TestAdminExportImport(t *testing.T) {
	// given a denylist with revocations
	from := adminMiddleware(t, &upstream{}, nil)
	for _, tok := range []string{"one", "two", "three"} {
		revoke(t, from, tok, "")
	}
	// when it is exported and imported into another
	rw := admin(from, http.MethodGet, "export", testAdminToken, "")
	if rw.Code != 200 || rw.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %q", rw.Code, rw.Header().Get("Content-Type"))
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(rw.Body.String()))
	for sc.Scan() {
		var rec map[string]string
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || len(rec["digest"]) != 64 || rec["expiresAt"] == "" {
			t.Fatalf("export line %q", sc.Text())
		}
		lines++
	}
	if lines != 3 || strings.Contains(rw.Body.String(), "three") {
		t.Fatalf("export: %d lines, or a raw token: %s", lines, rw.Body)
	}
	to := adminMiddleware(t, &upstream{}, nil)
	imp := admin(to, http.MethodPost, "import", testAdminToken, rw.Body.String())
	if imp.Code != 200 || decode(t, imp)["imported"] != float64(3) {
		t.Fatalf("import: %d %s", imp.Code, imp.Body)
	}
	// then the other enforces them
	for _, tok := range []string{"one", "two", "three"} {
		if status(to, tok) != 401 {
			t.Errorf("%s not enforced after import", tok)
		}
	}
}

func TestAdminRules(t *testing.T) {
	newProvider(t) // the signing keys of accessJWT
	m := adminMiddleware(t, &upstream{}, nil)
	session := accessJWT(t, map[string]interface{}{"sub": "alice", "sid": "s-1", "iat": time.Now().Add(-time.Minute).Unix()})
	rw := admin(m, http.MethodPost, "rules", testAdminToken, `{"sid":"s-1"}`)
	if rw.Code != 200 || decode(t, rw)["claim"] != "sid" || status(m, session) != 401 {
		t.Fatalf("sid rule: %d %s, token %d", rw.Code, rw.Body, status(m, session))
	}
	token := accessJWT(t, map[string]interface{}{"sub": "mallory", "sid": "s-9", "iat": time.Now().Add(-time.Minute).Unix()})
	if rw := admin(m, http.MethodPost, "rules", testAdminToken, `{"sub":"mallory"}`); rw.Code != 200 {
		t.Fatalf("add rule: %d %s", rw.Code, rw.Body)
	}
	if status(m, token) != 401 {
		t.Fatal("a subject rule from the admin API is not enforced")
	}
	list := decode(t, admin(m, http.MethodGet, "rules", testAdminToken, ""))
	rules, _ := list["rules"].([]interface{})
	if len(rules) != 2 {
		t.Fatalf("rules: %v", list)
	}
	if rw := admin(m, http.MethodDelete, "rules", testAdminToken, `{"sub":"mallory"}`); rw.Code != 200 {
		t.Fatalf("delete rule: %d %s", rw.Code, rw.Body)
	}
	if status(m, token) != 200 {
		t.Fatal("a deleted rule still rejects")
	}
}

func TestUnrevokeSurvivesRestartInOrder(t *testing.T) {
	// given a persisted denylist: revoke, un-revoke, and for another token
	// revoke, un-revoke, revoke again
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	first := restartFromFile(t, path, clock)
	expiry := clock.now().Add(time.Hour)
	undone, again := digestOf("undone"), digestOf("again")
	for _, step := range []func(){
		func() { _ = first.add(undone, expiry, sourceAdmin) },
		func() { _, _ = first.unrevoke(undone) },
		func() { _ = first.add(again, expiry, sourceAdmin) },
		func() { _, _ = first.unrevoke(again) },
		func() { _ = first.add(again, expiry, sourceRevoke) },
	} {
		step()
	}
	// when it restarts, and again after a compaction
	second := restartFromFile(t, path, clock)
	check := func(d *denylist, when string) {
		if d.store.Has(undone) {
			t.Errorf("%s: an un-revoked token is revoked again", when)
		}
		if !d.store.Has(again) {
			t.Errorf("%s: a token revoked after its un-revocation passes", when)
		}
	}
	check(second, "after a restart")
	second.persist.Compact()
	check(restartFromFile(t, path, clock), "after a compaction")
}

func TestUnrevokeReplicates(t *testing.T) {
	srv := startRedis(t)
	a, b := newReplica(t, "unrevoke", srv.addr()), newReplica(t, "unrevoke", srv.addr())
	tok := digestOf("mistake")
	if err := a.add(tok, time.Now().Add(time.Hour), sourceAdmin); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return b.store.Has(tok) }) {
		t.Fatal("B never got the revocation")
	}
	if _, err := a.unrevoke(tok); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return !b.store.Has(tok) }) {
		t.Fatal("B still enforces an un-revoked token")
	}
	// A late replica replays the stream in order: revoked, then undone.
	c := newReplica(t, "unrevoke", srv.addr())
	if !waitFor(t, 5*time.Second, c.isLoaded) || c.store.Has(tok) {
		t.Fatal("a late replica enforces an un-revoked token")
	}
}

func TestAuditTrail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	m := adminMiddleware(t, &upstream{}, func(c *Config) { c.AuditLog = path })
	m.list.audit.Store(obs.SharedAuditor(path))
	revoke(t, m, "audited-token", "access_token")
	admin(m, http.MethodPost, "revoke", testAdminToken, `{"token":"admin-token"}`)
	admin(m, http.MethodPost, "unrevoke", "wrong-secret-0123456789", `{"token":"admin-token"}`)
	var lines []map[string]interface{}
	waitFor(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		lines = nil
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ev map[string]interface{}
			if json.Unmarshal([]byte(l), &ev) == nil {
				lines = append(lines, ev)
			}
		}
		return len(lines) >= 4
	})
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "audited-token") || strings.Contains(string(b), "admin-token") || strings.Contains(string(b), testAdminToken) {
		t.Fatal("the audit trail holds a raw token or the admin secret")
	}
	want := []string{"revocation/revoke_endpoint", "revocation/admin", "admin/ok", "admin/unauthorized"}
	got := map[string]bool{}
	for _, ev := range lines {
		key := ev["event"].(string) + "/"
		if s, ok := ev["source"].(string); ok {
			key += s
		} else if o, ok := ev["outcome"].(string); ok {
			key += o
		}
		got[key] = true
		if ev["event"] == "revocation" && ev["source"] == "revoke_endpoint" && (ev["client"] != "client" || ev["hint"] != "access_token" || len(ev["digest"].(string)) != 8) {
			t.Errorf("revocation line lacks client, hint or digest prefix: %v", ev)
		}
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no %s line in %v", w, lines)
		}
	}
}

func TestAuditNeverBlocks(t *testing.T) {
	// given an auditor whose sink never drains
	d := newTestDenylist(t, denylistOptions{})
	a := obs.NewAuditor("stuck", 2)
	d.audit.Store(a)
	// when more lines come than it holds, then emit returns and counts the drops
	for i := 0; i < 10; i++ {
		d.emit(&obs.AuditEvent{Event: "revocation"})
	}
	if d.count.auditDropped != 8 {
		t.Fatalf("dropped %d, want 8", d.count.auditDropped)
	}
}
