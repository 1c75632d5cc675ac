package tokenrevocation

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		desc   string
		edit   func(*Config)
		expErr string
	}{
		{desc: "defaults", edit: func(*Config) {}},
		{desc: "query and header sources", edit: func(c *Config) { c.TokenSources = []string{"header", "query"} }},
		{desc: "token path off", edit: func(c *Config) { c.TokenPath = "" }},
		{desc: "zero leeway", edit: func(c *Config) { c.Leeway = "0s" }},
		{desc: "nil config", expErr: "no configuration"},
		{desc: "relative revoke path", edit: func(c *Config) { c.RevokePath = "revoke" }, expErr: "invalid revokePath"},
		{desc: "relative token path", edit: func(c *Config) { c.TokenPath = "token" }, expErr: "invalid tokenPath"},
		{desc: "token path equals revoke path", edit: func(c *Config) { c.TokenPath = c.RevokePath }, expErr: "invalid tokenPath"},
		{desc: "stats path equals revoke path", edit: func(c *Config) { c.StatsPath = c.RevokePath }, expErr: "invalid statsPath"},
		{desc: "bad access TTL", edit: func(c *Config) { c.AccessTokenTTL = "soon" }, expErr: "invalid accessTokenTTL"},
		{desc: "zero refresh TTL", edit: func(c *Config) { c.RefreshTokenTTL = "0s" }, expErr: "invalid refreshTokenTTL"},
		{desc: "negative max TTL", edit: func(c *Config) { c.MaxTTL = "-1h" }, expErr: "invalid maxTTL"},
		{desc: "empty max TTL", edit: func(c *Config) { c.MaxTTL = "" }, expErr: "invalid maxTTL"},
		{desc: "negative leeway", edit: func(c *Config) { c.Leeway = "-1s" }, expErr: "invalid leeway"},
		{desc: "zero cache size", edit: func(c *Config) { c.CacheSizeMB = 0 }, expErr: "invalid cacheSizeMB"},
		{desc: "negative body limit", edit: func(c *Config) { c.MaxBodyBytes = -1 }, expErr: "invalid maxBodyBytes"},
		{desc: "no token sources", edit: func(c *Config) { c.TokenSources = nil }, expErr: "invalid tokenSources"},
		{desc: "unknown token source", edit: func(c *Config) { c.TokenSources = []string{"cookie"} }, expErr: "invalid tokenSources"},
		{desc: "quote in realm", edit: func(c *Config) { c.Realm = `a"b` }, expErr: "invalid realm"},
		{desc: "custom header and cookie sources", edit: func(c *Config) { c.TokenSources = []string{"Header:X-Access-Token", "cookie:at", "FORM"} }},
		{desc: "cookie without a name", edit: func(c *Config) { c.TokenSources = []string{"cookie:"} }, expErr: "invalid tokenSources"},
		{desc: "header name with a space", edit: func(c *Config) { c.TokenSources = []string{"header:X Token"} }, expErr: "invalid tokenSources"},
		{desc: "query with a name", edit: func(c *Config) { c.TokenSources = []string{"query:x"} }, expErr: "invalid tokenSources"},
		{desc: "bad load wait", edit: func(c *Config) { c.LoadWait = "0s" }, expErr: "invalid loadWait"},
		{desc: "client rate off", edit: func(c *Config) { c.ClientRate = 0; c.ClientBurst = 0 }},
		{desc: "negative client rate", edit: func(c *Config) { c.ClientRate = -1 }, expErr: "invalid clientRate"},
		{desc: "zero client burst", edit: func(c *Config) { c.ClientBurst = 0 }, expErr: "invalid clientBurst"},
		{desc: "zero client share", edit: func(c *Config) { c.ClientSharePercent = 0 }, expErr: "invalid clientSharePercent"},
		{desc: "client share over 100", edit: func(c *Config) { c.ClientSharePercent = 101 }, expErr: "invalid clientSharePercent"},
		{desc: "grants without a token path", edit: func(c *Config) { c.TrackGrants = true; c.TokenPath = "" }, expErr: "invalid trackGrants"},
		{desc: "zero max grants", edit: func(c *Config) { c.MaxGrants = 0 }, expErr: "invalid maxGrants"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			var cfg *Config
			if test.edit != nil {
				cfg = CreateConfig()
				test.edit(cfg)
			}
			h, err := New(context.Background(), &upstream{}, cfg, uniqueName(t))
			if test.expErr == "" {
				if err != nil || h == nil {
					t.Fatalf("New: unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), test.expErr) {
				t.Fatalf("New: got error %v, want one containing %q", err, test.expErr)
			}
		})
	}
}

func TestServeHTTP(t *testing.T) {
	const revoked = "revoked-token.abc_DEF~+/=="
	tests := []struct {
		desc       string
		sources    []string
		build      func() *http.Request
		expStatus  int
		expCalled  bool
		expAuthHdr string
	}{
		{desc: "no token passes", build: func() *http.Request { return apiRequest("") }, expStatus: 200, expCalled: true},
		{desc: "unknown token passes", build: func() *http.Request { return apiRequest("good-token") }, expStatus: 200, expCalled: true},
		{desc: "revoked token rejected", build: func() *http.Request { return apiRequest(revoked) }, expStatus: 401, expAuthHdr: revokedChallenge},
		{
			desc:      "scheme is case-insensitive",
			build:     withAuthorization("bEaReR " + revoked),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "extra spaces after the scheme",
			build:     withAuthorization("Bearer    " + revoked),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "revoked token in a second Authorization header",
			build: func() *http.Request {
				req := apiRequest("good-token")
				req.Header.Add("Authorization", "Bearer "+revoked)
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "basic credentials pass",
			build:     withAuthorization("Basic dXNlcjpwYXNz"),
			expStatus: 200, expCalled: true,
		},
		{
			desc:      "unknown non-b64token credential passes",
			build:     withAuthorization("Bearer a,b"),
			expStatus: 200, expCalled: true,
		},
		{
			desc:      "tab after the scheme",
			build:     withAuthorization("Bearer\t" + revoked),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "space and tab before the token",
			build:     withAuthorization("Bearer \t " + revoked),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "query token rejected by default",
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?access_token=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "query token with an escaped name",
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?a=1&access%5Ftoken=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "query token named in another case (ASP.NET reads it)",
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?Access_Token=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "query pairs split on a semicolon (Rack reads it)",
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?x=1;access_token=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "form token named access.token (PHP reads it)",
			build:     formRequest(http.MethodPost, "access.token=revoked-token.abc_DEF~%2B%2F%3D%3D"),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "trailing blank after the token (HTTP/2 keeps it)",
			build:     withAuthorization("Bearer " + revoked + " "),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "leading blank before the scheme",
			build:     withAuthorization(" Bearer " + revoked),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "query without a token passes",
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?page=2&q=100%", nil)
			},
			expStatus: 200, expCalled: true,
		},
		{
			desc:      "form body token rejected by default (POST)",
			build:     formRequest(http.MethodPost, "a=1&access_token=revoked-token.abc_DEF~%2B%2F%3D%3D"),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "form body token rejected by default (PUT, charset)",
			build:     formRequest(http.MethodPut, "access_token=revoked-token.abc_DEF~%2B%2F%3D%3D"),
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "form body of another type is not read",
			build: func() *http.Request {
				req := formRequest(http.MethodPost, "access_token=revoked-token.abc_DEF~%2B%2F%3D%3D")()
				req.Header.Set("Content-Type", "text/plain")
				return req
			},
			expStatus: 200, expCalled: true,
		},
		{
			desc:      "form body ignored when form is not a source",
			sources:   []string{"header", "query"},
			build:     formRequest(http.MethodPost, "access_token=revoked-token.abc_DEF~%2B%2F%3D%3D"),
			expStatus: 200, expCalled: true,
		},
		{
			desc: "good header, revoked query token",
			build: func() *http.Request {
				req := httptest.NewRequest(http.MethodGet, "/api/things?access_token=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
				req.Header.Set("Authorization", "Bearer good-token")
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "revoked header, good form token",
			build: func() *http.Request {
				req := formRequest(http.MethodPost, "access_token=good-token")()
				req.Header.Set("Authorization", "Bearer "+revoked)
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc: "good query, revoked form token",
			build: func() *http.Request {
				req := formRequest(http.MethodPost, "access_token=revoked-token.abc_DEF~%2B%2F%3D%3D")()
				req.URL.RawQuery = "access_token=good-token"
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:    "custom header carries a raw token",
			sources: []string{"header", "header:X-Access-Token"},
			build: func() *http.Request {
				req := apiRequest("good-token")
				req.Header.Set("X-Access-Token", revoked)
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:    "custom header with a Bearer value",
			sources: []string{"header:x-access-token"},
			build: func() *http.Request {
				req := apiRequest("")
				req.Header.Set("X-Access-Token", "Bearer "+revoked)
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:    "custom header not configured is ignored",
			sources: []string{"header"},
			build: func() *http.Request {
				req := apiRequest("")
				req.Header.Set("X-Access-Token", revoked)
				return req
			},
			expStatus: 200, expCalled: true,
		},
		{
			desc:    "cookie carries a token",
			sources: []string{"header", "cookie:session_at"},
			build: func() *http.Request {
				req := apiRequest("good-token")
				req.AddCookie(&http.Cookie{Name: "other", Value: "x"})
				req.AddCookie(&http.Cookie{Name: "session_at", Value: revoked})
				return req
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:    "good cookie passes",
			sources: []string{"header", "cookie:session_at"},
			build: func() *http.Request {
				req := apiRequest("")
				req.AddCookie(&http.Cookie{Name: "session_at", Value: "good-token"})
				return req
			},
			expStatus: 200, expCalled: true,
		},
		{
			desc:    "query token rejected when configured",
			sources: []string{"header", "query"},
			build: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/things?access_token=revoked-token.abc_DEF~%2B%2F%3D%3D", nil)
			},
			expStatus: 401, expAuthHdr: revokedChallenge,
		},
		{
			desc:      "header ignored when only query is configured",
			sources:   []string{"query"},
			build:     func() *http.Request { return apiRequest(revoked) },
			expStatus: 200, expCalled: true,
		},
		{
			desc: "revoked token on the revoke path is not enforced",
			build: func() *http.Request {
				req := revokeRequest("token=other&client_id=c")
				req.Header.Set("Authorization", "Bearer "+revoked)
				return req
			},
			expStatus: 200, expCalled: true,
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			next := &upstream{}
			m := newTestMiddleware(t, next, nil, func(c *Config) {
				if test.sources != nil {
					c.TokenSources = test.sources
				}
			})
			revoke(t, m, strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(revoked), "access_token")
			before := next.calls()

			rw := serve(m, test.build())

			if rw.Code != test.expStatus {
				t.Errorf("status: got %d, want %d", rw.Code, test.expStatus)
			}
			if called := next.calls() > before; called != test.expCalled {
				t.Errorf("next called: got %v, want %v", called, test.expCalled)
			}
			if got := rw.Header().Get("WWW-Authenticate"); got != test.expAuthHdr {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, test.expAuthHdr)
			}
			if test.expStatus == http.StatusUnauthorized {
				assertJSONError(t, rw, "invalid_token", "The access token has been revoked")
				if strings.Contains(rw.Body.String(), "revoked-token") {
					t.Errorf("body echoes the token: %s", rw.Body.String())
				}
			}
		})
	}
}

func TestServeHTTPSharedAcrossRoutersAndReloads(t *testing.T) {
	cfg := CreateConfig()
	cfg.CacheSizeMB = 1
	name := uniqueName(t)
	routerA, err := New(context.Background(), &upstream{}, cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	nextB := &upstream{}
	routerB, err := New(context.Background(), nextB, cfg, name)
	if err != nil {
		t.Fatal(err)
	}

	revoke(t, routerA, "shared-token", "")

	if rw := serve(routerB, apiRequest("shared-token")); rw.Code != http.StatusUnauthorized || nextB.calls() != 0 {
		t.Fatalf("router B: status %d, upstream calls %d; want 401 and none", rw.Code, nextB.calls())
	}
	// A reload builds fresh instances, possibly with other settings.
	reloaded := CreateConfig()
	reloaded.CacheSizeMB = 1
	reloaded.AccessTokenTTL = "2h"
	routerC, err := New(context.Background(), &upstream{}, reloaded, name)
	if err != nil {
		t.Fatal(err)
	}
	if rw := serve(routerC, apiRequest("shared-token")); rw.Code != http.StatusUnauthorized {
		t.Fatalf("after reload: status %d, want 401", rw.Code)
	}
	// A differently named denylist never sees it.
	other := CreateConfig()
	other.CacheSizeMB = 1
	other.Denylist = name + "-other"
	routerD, err := New(context.Background(), &upstream{}, other, name)
	if err != nil {
		t.Fatal(err)
	}
	if rw := serve(routerD, apiRequest("shared-token")); rw.Code != http.StatusOK {
		t.Fatalf("other denylist: status %d, want 200", rw.Code)
	}
}

func TestServeHTTPStats(t *testing.T) {
	m := newTestMiddleware(t, &upstream{}, nil, func(c *Config) { c.StatsPath = "/_revocation/stats" })
	revoke(t, m, "token-1", "")
	serve(m, apiRequest("token-1"))

	rw := serve(m, httptest.NewRequest(http.MethodGet, "/_revocation/stats", nil))

	var got denylistStats
	if err := json.Unmarshal(rw.Body.Bytes(), &got); err != nil || rw.Code != 200 {
		t.Fatalf("stats: %d %s (%v)", rw.Code, rw.Body.String(), err)
	}
	if got.Entries != 1 || got.Hits != 1 || got.Revokes != 1 || got.Evictions != 0 {
		t.Fatalf("stats: got %+v", got)
	}
}

// formRequest builds an API call with an application/x-www-form-urlencoded body.
func formRequest(method, body string) func() *http.Request {
	return func() *http.Request {
		req := httptest.NewRequest(method, "/api/things", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		return req
	}
}

// withAuthorization builds an API call with the given Authorization value.
func withAuthorization(value string) func() *http.Request {
	return func() *http.Request {
		req := apiRequest("")
		req.Header.Set("Authorization", value)
		return req
	}
}

// assertJSONError checks the identity service's error shape.
func assertJSONError(t *testing.T, rw *httptest.ResponseRecorder, expCode, expDescription string) {
	t.Helper()
	if ct := rw.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(rw.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rw.Body.String(), err)
	}
	if body["error"] != expCode {
		t.Errorf("error: got %q, want %q", body["error"], expCode)
	}
	if expDescription != "" && body["errorDescription"] != expDescription {
		t.Errorf("errorDescription: got %q, want %q", body["errorDescription"], expDescription)
	}
	if body["errorDescription"] == "" || len(body) != 2 {
		t.Errorf("body: got %v, want exactly error and errorDescription", body)
	}
}

// nopWriter is a ResponseWriter that discards everything, so the benchmark
// measures the middleware rather than httptest's recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkServeHTTP(b *testing.B) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	m := newTestMiddleware(b, next, nil, func(c *Config) { c.CacheSizeMB = 64 })
	for i := 0; i < 100000; i++ {
		sum := sha256.Sum256([]byte("revoked-" + strconv.Itoa(i)))
		if err := m.list.add(&sum, time.Now().Add(time.Hour), sourceRevoke); err != nil {
			b.Fatal(err)
		}
	}
	cases := []struct {
		desc string
		auth string
	}{
		{desc: "no token"},
		{desc: "unknown token", auth: "Bearer eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJl"},
		{desc: "revoked token", auth: "Bearer revoked-42"},
	}
	for _, c := range cases {
		b.Run(c.desc, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/things", nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rw := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.ServeHTTP(rw, req)
			}
		})
	}
}

func TestWarnsOfANamespacedDefaultDenylist(t *testing.T) {
	var logs strings.Builder
	log.SetOutput(&logs)
	defer log.SetOutput(os.Stderr)
	name := "ns-a-revocation-" + uniqueName(t) + "@kubernetescrd"
	other := "edge-" + uniqueName(t)
	t.Cleanup(func() {
		for _, n := range []string{name, other} {
			// No comma-ok assertion in a loop: Yaegi keeps the old value on failure.
			if v := denylists.Delete(n); v != nil {
				v.(*denylist).close()
			}
		}
	})
	// when a Kubernetes middleware has no denylist option, on two routers
	for i := 0; i < 2; i++ {
		if _, err := New(context.Background(), &upstream{}, CreateConfig(), name); err != nil {
			t.Fatal(err)
		}
	}
	// then one warning says so; with the option set there is none
	if got := strings.Count(logs.String(), "has no denylist option"); got != 1 {
		t.Fatalf("warnings: %d\n%s", got, logs.String())
	}
	cfg := CreateConfig()
	cfg.Denylist = other
	if _, err := New(context.Background(), &upstream{}, cfg, "ns-b-revocation@kubernetescrd"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(logs.String(), "has no denylist option"); got != 1 {
		t.Fatalf("a configured denylist was warned about:\n%s", logs.String())
	}
}
