package tokenrevocation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

func TestServeRevoke(t *testing.T) {
	tests := []struct {
		desc        string
		edit        func(*Config)
		contentType string
		basic       bool
		body        string
		method      string
		expStatus   int
		expError    string
		expCalled   bool
		expRecorded bool
		expBasic    bool
	}{
		{desc: "valid revoke is forwarded and recorded", basic: true, body: "token=tok-1&token_type_hint=access_token", expStatus: 200, expCalled: true, expRecorded: true},
		{desc: "client_id in the body is client auth", body: "token=tok-1&client_id=app", expStatus: 200, expCalled: true, expRecorded: true},
		{desc: "charset parameter is allowed", contentType: "application/x-www-form-urlencoded; charset=UTF-8", basic: true, body: "token=tok-1", expStatus: 200, expCalled: true, expRecorded: true},
		{desc: "wrong content type", contentType: "application/json", basic: true, body: `{"token":"tok-1"}`, expStatus: 400, expError: "invalid_request"},
		{desc: "missing content type", contentType: "-", basic: true, body: "token=tok-1", expStatus: 400, expError: "invalid_request"},
		{desc: "body too large", edit: func(c *Config) { c.MaxBodyBytes = 16 }, basic: true, body: "token=" + strings.Repeat("a", 32), expStatus: 413, expError: "invalid_request"},
		{desc: "body at the limit", edit: func(c *Config) { c.MaxBodyBytes = 16 }, basic: true, body: "token=" + strings.Repeat("a", 10), expStatus: 200, expCalled: true, expRecorded: true},
		{desc: "token missing", basic: true, body: "token_type_hint=access_token", expStatus: 400, expError: "invalid_request"},
		{desc: "token empty", basic: true, body: "token=", expStatus: 400, expError: "invalid_request"},
		{desc: "empty body", basic: true, body: "", expStatus: 400, expError: "invalid_request"},
		{desc: "token repeated", basic: true, body: "token=tok-1&token=tok-2", expStatus: 400, expError: "invalid_request"},
		{desc: "malformed form", basic: true, body: "token=%zz", expStatus: 400, expError: "invalid_request"},
		{desc: "unsupported hint", basic: true, body: "token=tok-1&token_type_hint=id_token", expStatus: 400, expError: "unsupported_token_type"},
		{desc: "empty hint", basic: true, body: "token=tok-1&token_type_hint=", expStatus: 400, expError: "unsupported_token_type"},
		{desc: "no client credentials", body: "token=tok-1", expStatus: 401, expError: "invalid_client", expBasic: true},
		{desc: "bearer is not client auth", contentType: "", body: "token=tok-1", expStatus: 401, expError: "invalid_client", expBasic: true},
		{desc: "client auth not required", edit: func(c *Config) { c.RequireClientAuth = false }, body: "token=tok-1", expStatus: 200, expCalled: true, expRecorded: true},
		{desc: "GET passes through untouched", method: http.MethodGet, body: "", expStatus: 200, expCalled: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			next := &upstream{}
			m := newTestMiddleware(t, next, nil, test.edit)
			method := test.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/api/id/v1/auth/token/revoke", strings.NewReader(test.body))
			switch test.contentType {
			case "":
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				req.Header.Set("Content-Type", test.contentType)
			}
			if test.basic {
				req.SetBasicAuth("client", "secret")
			} else if test.desc == "bearer is not client auth" {
				req.Header.Set("Authorization", "Bearer some-token")
			}

			rw := serve(m, req)

			if rw.Code != test.expStatus {
				t.Fatalf("status: got %d, want %d (%s)", rw.Code, test.expStatus, rw.Body.String())
			}
			if called := next.calls() == 1; called != test.expCalled {
				t.Errorf("upstream called: got %v, want %v", called, test.expCalled)
			}
			if test.expError != "" {
				assertJSONError(t, rw, test.expError, "")
				if strings.Contains(rw.Body.String(), "tok-1") || strings.Contains(rw.Body.String(), "aaaa") {
					t.Errorf("error body echoes the token: %s", rw.Body.String())
				}
			}
			if got := rw.Header().Get("WWW-Authenticate"); test.expBasic != (got == `Basic realm="tokenrevocation"`) {
				t.Errorf("WWW-Authenticate: got %q", got)
			}
			recorded := serve(m, apiRequest("tok-1")).Code == http.StatusUnauthorized ||
				serve(m, apiRequest(strings.Repeat("a", 10))).Code == http.StatusUnauthorized
			if recorded != test.expRecorded {
				t.Errorf("recorded: got %v, want %v", recorded, test.expRecorded)
			}
		})
	}
}

func TestServeRevokeReplaysRequestAndResponse(t *testing.T) {
	next := &upstream{status: http.StatusOK, reply: `{"revoked":true}`, headers: map[string]string{"X-Upstream": "id-service"}}
	m := newTestMiddleware(t, next, nil, nil)
	body := "token=tok%2B1&token_type_hint=refresh_token&client_id=app&extra=%E2%9C%93"
	req := revokeRequest(body)
	req.Header.Set("X-Request-Id", "r-1")
	want := req.Header.Clone()

	rw := serve(m, req)

	if next.body != body {
		t.Errorf("upstream body: got %q, want %q", next.body, body)
	}
	for k, v := range want {
		if got := next.header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
			t.Errorf("upstream header %s: got %q, want %q", k, got, v)
		}
	}
	if rw.Code != 200 || rw.Body.String() != `{"revoked":true}` || rw.Header().Get("X-Upstream") != "id-service" {
		t.Errorf("client response: %d %q %v", rw.Code, rw.Body.String(), rw.Header())
	}
	if serve(m, apiRequest("tok+1")).Code != http.StatusUnauthorized {
		t.Errorf("token not recorded")
	}
}

func TestServeRevokeUpstreamFailure(t *testing.T) {
	tests := []struct {
		desc      string
		status    int
		reply     string
		expStatus int
	}{
		{desc: "bad client credentials", status: 401, reply: `{"error":"invalid_client","errorDescription":"bad secret"}`, expStatus: 401},
		{desc: "upstream rejects", status: 400, reply: `{"error":"invalid_request","errorDescription":"no"}`, expStatus: 400},
		{desc: "upstream error", status: 500, reply: `{"error":"server_error","errorDescription":"boom"}`, expStatus: 500},
		{desc: "upstream unreachable (proxy answers 502)", status: 502, reply: "Bad Gateway", expStatus: 502},
		{desc: "redirect is not success", status: 302, expStatus: 302},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			next := &upstream{status: test.status, reply: test.reply}
			m := newTestMiddleware(t, next, nil, nil)

			rw := serve(m, revokeRequest("token=tok-1"))

			if rw.Code != test.expStatus || rw.Body.String() != test.reply {
				t.Errorf("client response: got %d %q, want %d %q", rw.Code, rw.Body.String(), test.expStatus, test.reply)
			}
			if m.list.contains("tok-1") {
				t.Errorf("a failed revoke was recorded")
			}
		})
	}
}

func TestServeRevokeRecordsBeforeResponseIsWritten(t *testing.T) {
	var m *middleware
	var seenDuringResponse int
	next := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		// The status is out: a client could already act on it.
		seenDuringResponse = serve(m, apiRequest("tok-early")).Code
	})
	m = newTestMiddleware(t, next, nil, nil)

	serve(m, revokeRequest("token=tok-early"))

	if seenDuringResponse != http.StatusUnauthorized {
		t.Fatalf("token not yet enforced once the 200 was written: got %d", seenDuringResponse)
	}
}

func TestServeRevokeStreamedBodyTooLarge(t *testing.T) {
	next := &upstream{}
	m := newTestMiddleware(t, next, nil, func(c *Config) { c.MaxBodyBytes = 64 })
	req := revokeRequest("")
	req.Body = http.NoBody
	req.Body = readCloser{bytes.NewReader([]byte("token=" + strings.Repeat("x", 100)))}
	req.ContentLength = -1

	rw := serve(m, req)

	if rw.Code != http.StatusRequestEntityTooLarge || next.calls() != 0 {
		t.Fatalf("got %d with %d upstream calls, want 413 and none", rw.Code, next.calls())
	}
	assertJSONError(t, rw, "invalid_request", "The request body exceeds 64 bytes")
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestServeToken(t *testing.T) {
	tests := []struct {
		desc      string
		body      string
		ctype     string
		expStatus int
		expError  string
		expCalled bool
	}{
		{desc: "revoked refresh token refused", body: "grant_type=refresh_token&refresh_token=rt-revoked", expStatus: 400, expError: "invalid_grant"},
		{desc: "good refresh token passes", body: "grant_type=refresh_token&refresh_token=rt-good", expStatus: 200, expCalled: true},
		{desc: "other grant passes", body: "grant_type=client_credentials&refresh_token=rt-revoked", expStatus: 200, expCalled: true},
		{desc: "non-form body passes", ctype: "application/json", body: `{"grant_type":"refresh_token"}`, expStatus: 200, expCalled: true},
		{desc: "repeated refresh_token refused", body: "grant_type=refresh_token&refresh_token=rt-good&refresh_token=rt-revoked", expStatus: 400, expError: "invalid_request"},
		{desc: "oversized body refused", body: "grant_type=refresh_token&refresh_token=" + strings.Repeat("r", 70000), expStatus: 413, expError: "invalid_request"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			next := &upstream{}
			m := newTestMiddleware(t, next, nil, nil)
			revoke(t, m, "rt-revoked", "refresh_token")
			before := next.calls()
			req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token", strings.NewReader(test.body))
			ctype := test.ctype
			if ctype == "" {
				ctype = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ctype)

			rw := serve(m, req)

			if rw.Code != test.expStatus {
				t.Fatalf("status: got %d, want %d", rw.Code, test.expStatus)
			}
			if called := next.calls() > before; called != test.expCalled {
				t.Fatalf("upstream called: got %v, want %v", called, test.expCalled)
			}
			if test.expCalled && next.body != test.body {
				t.Errorf("upstream body: got %q, want %q", next.body, test.body)
			}
			if test.expError != "" {
				assertJSONError(t, rw, test.expError, "")
			}
		})
	}
}

func TestExpiryFor(t *testing.T) {
	clock := newFakeClock()
	m := newTestMiddleware(t, &upstream{}, clock, func(c *Config) {
		c.AccessTokenTTL = "1h"
		c.RefreshTokenTTL = "48h"
		c.MaxTTL = "24h"
		c.Leeway = "60s"
	})
	now := clock.now()
	tests := []struct {
		desc  string
		token string
		hint  string
		exp   time.Duration
	}{
		{desc: "opaque access token", token: "opaque", hint: "access_token", exp: time.Hour},
		{desc: "opaque refresh token capped by maxTTL", token: "opaque", hint: "refresh_token", exp: 24 * time.Hour},
		{desc: "opaque without hint takes the longer TTL, capped", token: "opaque", exp: 24 * time.Hour},
		{desc: "JWT lives until exp plus leeway", token: makeJWT(now.Add(10 * time.Minute).Unix()), hint: "refresh_token", exp: 11 * time.Minute},
		{desc: "JWT beyond maxTTL lives until exp plus leeway", token: makeJWT(now.Add(100 * time.Hour).Unix()), exp: 100*time.Hour + time.Minute},
		{desc: "expired JWT", token: makeJWT(now.Add(-time.Hour).Unix()), exp: -59 * time.Minute},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := m.expiryFor(test.token, test.hint).Sub(now); got != test.exp {
				t.Errorf("lifetime: got %s, want %s", got, test.exp)
			}
		})
	}
}

// garbageRevoke revokes a fresh garbage string as client, with the refresh
// hint, and returns the response.
func garbageRevoke(m http.Handler, client string, i int) *httptest.ResponseRecorder {
	req := revokeRequest(fmt.Sprintf("token=garbage-%s-%d&token_type_hint=refresh_token", client, i))
	req.SetBasicAuth(client, "secret")
	return serve(m, req)
}

func TestServeRevokeFlood(t *testing.T) {
	// given a 1 MiB denylist with real revocations, and no rate limit so the
	// share of capacity is what stops the flood
	next := &upstream{}
	m := newTestMiddleware(t, next, nil, func(c *Config) { c.MaxTTL = "1h"; c.ClientRate = 0 })
	for i := 0; i < 50; i++ {
		revoke(t, m, fmt.Sprint("real-", i), "refresh_token")
	}

	// when one client sends more than the capacity in garbage revocations
	// (the real-Traefik suite sends ten times)
	capacity := m.list.store.Capacity()
	calls := capacity + capacity/5
	codes := map[int]int{}
	for i := 0; i < calls; i++ {
		rw := garbageRevoke(m, "flooder", i)
		codes[rw.Code]++
		if rw.Code == http.StatusTooManyRequests && codes[rw.Code] == 1 {
			assertJSONError(t, rw, "too_many_requests", "")
			if rw.Header().Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}

	// then it got about half the capacity, the rest was refused before the
	// upstream, every real revocation is still enforced, another client can
	// still revoke, and the refusals are counted
	if codes[200] > capacity/2+1 || codes[200] < capacity/3 || codes[200]+codes[429]+codes[503] != calls {
		t.Fatalf("codes %v for capacity %d", codes, capacity)
	}
	if next.calls() != 50+codes[200] {
		t.Fatalf("upstream calls %d, want %d", next.calls(), 50+codes[200])
	}
	for i := 0; i < 50; i++ {
		if serve(m, apiRequest(fmt.Sprint("real-", i))).Code != 401 {
			t.Fatalf("real-%d no longer enforced", i)
		}
	}
	for i := 0; i < 100; i++ {
		if rw := garbageRevoke(m, "other", i); rw.Code != 200 {
			t.Fatalf("another client's revoke %d: %d", i, rw.Code)
		}
	}
	s := m.list.stats()
	if s.Refused.ClientLimit != int64(codes[429]) || s.Refused.Capacity != int64(codes[503]) || s.Evictions != 0 || s.Overflow != 0 {
		t.Fatalf("stats %+v, codes %v", s, codes)
	}
}

func TestServeRevokeFullDenylistAnswers503(t *testing.T) {
	// given a 1 MiB denylist with no client limits
	next := &upstream{}
	m := newTestMiddleware(t, next, nil, func(c *Config) { c.MaxTTL = "1h"; c.ClientRate = 0; c.ClientSharePercent = 100 })
	revoke(t, m, "real", "refresh_token")

	// when it is flooded past its capacity
	capacity := m.list.store.Capacity()
	var refused *httptest.ResponseRecorder
	for i := 0; i < 2*capacity && refused == nil; i++ {
		if rw := garbageRevoke(m, "flooder", i); rw.Code == http.StatusServiceUnavailable {
			refused = rw
		}
	}

	// then the call that would drop a live revocation gets 503 with
	// Retry-After before reaching the upstream, and nothing was evicted
	if refused == nil {
		t.Fatal("never refused")
	}
	assertJSONError(t, refused, "temporarily_unavailable", "")
	before := next.calls()
	if rw := garbageRevoke(m, "flooder", 0); rw.Code != 200 || next.calls() != before+1 {
		t.Fatalf("a token already revoked needs no slot: %d", rw.Code)
	}
	if refused.Header().Get("Retry-After") == "" || !m.list.contains("real") || m.list.stats().Evictions != 0 {
		t.Fatalf("Retry-After %q, stats %+v", refused.Header().Get("Retry-After"), m.list.stats())
	}
}

func TestServeRevokeClientRate(t *testing.T) {
	// given a rate of 5 per second with a burst of 5, on a clock that
	// stands still (under Yaegi, six calls can take long enough to refill one)
	next := &upstream{}
	m := newTestMiddleware(t, next, newFakeClock(), func(c *Config) { c.ClientRate = 5; c.ClientBurst = 5 })

	// when a client revokes 6 times at once, then the 6th gets 429, before
	// the upstream, and another client is unaffected
	for i := 0; i < 5; i++ {
		if rw := garbageRevoke(m, "busy", i); rw.Code != 200 {
			t.Fatalf("call %d: %d", i, rw.Code)
		}
	}
	rw := garbageRevoke(m, "busy", 5)
	if rw.Code != http.StatusTooManyRequests || rw.Header().Get("Retry-After") != "1" || next.calls() != 5 {
		t.Fatalf("status %d, Retry-After %q, calls %d", rw.Code, rw.Header().Get("Retry-After"), next.calls())
	}
	if rw := garbageRevoke(m, "calm", 0); rw.Code != 200 {
		t.Fatalf("another client: %d", rw.Code)
	}
	// a client named only by client_id is limited too
	for i := 0; i < 6; i++ {
		req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token/revoke", strings.NewReader(fmt.Sprintf("token=p-%d&client_id=public", i)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rw = serve(m, req)
	}
	if rw.Code != http.StatusTooManyRequests {
		t.Fatalf("client_id client: %d", rw.Code)
	}
}

func TestServeRevokeUnconfirmedFreesItsSlot(t *testing.T) {
	// given an upstream that refuses every revocation
	next := &upstream{status: http.StatusUnauthorized}
	m := newTestMiddleware(t, next, nil, func(c *Config) { c.MaxTTL = "1h"; c.ClientRate = 0 })

	// when many calls are made
	for i := 0; i < 2000; i++ {
		if rw := garbageRevoke(m, "c", i); rw.Code != http.StatusUnauthorized {
			t.Fatalf("call %d: %d", i, rw.Code)
		}
	}

	// then no slot stays taken
	for i := range m.list.store.LaneWindows() {
		for shard := 0; shard < store.Shards; shard++ {
			if n := atomic.LoadInt32(m.list.store.Slots(i, shard)); n != 0 {
				t.Fatalf("shard %d holds %d", shard, n)
			}
		}
	}
}

// checkingUpstream is an identity service that accepts Basic "victim:right"
// and the public client "pub" (client_id alone), and answers any other
// credentials 401 invalid_client.
type checkingUpstream struct{ calls int64 }

func (u *checkingUpstream) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	atomic.AddInt64(&u.calls, 1)
	user, pass, ok := req.BasicAuth()
	_ = req.ParseForm()
	if ok && user == "victim" && pass == "right" || !ok && req.PostForm.Get("client_id") == "pub" {
		rw.WriteHeader(http.StatusOK)
		return
	}
	rw.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(rw, `{"error":"invalid_client"}`)
}

func TestServeRevokeWrongSecretFloodSpendsNothingOfTheClient(t *testing.T) {
	// given a client with a rate of 5 and a burst of 5
	next := &checkingUpstream{}
	m := newTestMiddleware(t, next, newFakeClock(), func(c *Config) { c.ClientRate = 5; c.ClientBurst = 5 })

	// when 2,000 calls with its id and a wrong secret arrive from its own
	// address, 8 at a time
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				req := revokeRequest(fmt.Sprintf("token=flood-%d-%d", g, i))
				req.SetBasicAuth("victim", "wrong")
				if rw := serve(m, req); rw.Code != http.StatusUnauthorized {
					t.Errorf("flood call: %d", rw.Code)
					return
				}
			}
		}(g)
	}
	wg.Wait()

	// then the client's own five revocations all pass and are enforced,
	// and the failures are counted
	for i := 0; i < 5; i++ {
		req := revokeRequest(fmt.Sprintf("token=real-%d", i))
		req.SetBasicAuth("victim", "right")
		if rw := serve(m, req); rw.Code != http.StatusOK {
			t.Fatalf("real revoke %d: %d", i, rw.Code)
		}
		if serve(m, apiRequest(fmt.Sprintf("real-%d", i))).Code != http.StatusUnauthorized {
			t.Fatalf("real-%d not enforced", i)
		}
	}
	if got := atomic.LoadInt64(&m.list.count.authFailures); got != 2000 {
		t.Fatalf("authFailures %d, want 2000", got)
	}
}

func TestServeRevokePublicClientFloodFromAnotherAddress(t *testing.T) {
	// given a public client with a rate of 5 and a burst of 5
	next := &checkingUpstream{}
	m := newTestMiddleware(t, next, newFakeClock(), func(c *Config) { c.ClientRate = 5; c.ClientBurst = 5 })
	public := func(token, addr string) int {
		req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token/revoke", strings.NewReader("client_id=pub&token="+token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = addr
		return serve(m, req).Code
	}

	// when one address revokes 500 garbage tokens with its id
	codes := map[int]int{}
	for i := 0; i < 500; i++ {
		codes[public(fmt.Sprint("garbage-", i), "198.51.100.7:4000")]++
	}

	// then that address is limited, and a user at another address revokes
	if codes[http.StatusOK] != 5 || codes[http.StatusTooManyRequests] != 495 {
		t.Fatalf("flood codes %v", codes)
	}
	for i := 0; i < 5; i++ {
		if code := public(fmt.Sprint("user-", i), "192.0.2.1:5000"); code != http.StatusOK {
			t.Fatalf("user's revoke %d: %d", i, code)
		}
	}
}

func TestClientAuthIsReadByOneBasicParser(t *testing.T) {
	// given the edge requiring client authentication on revoke calls
	for _, c := range []struct {
		authorization string
		reaches       bool
	}{
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("client:secret")), true},
		{"basic\t" + base64.StdEncoding.EncodeToString([]byte("client:secret")), true},
		{"Basic !!not-base64!!", false},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), false},
		{"Basic ", false},
	} {
		up := &upstream{}
		m := newTestMiddleware(t, up, nil, nil)
		req := revokeRequest("token=abc-token")
		req.Header.Set("Authorization", c.authorization)
		// when a revoke call carries this Authorization and no client_id
		rw := serve(m, req)
		// then what the client limits read as Basic is what counts as
		// credentials: anything else gets 401 before the identity service
		if got := up.calls() == 1; got != c.reaches {
			t.Errorf("%q: reached the identity service %t (answer %d), want %t", c.authorization, got, rw.Code, c.reaches)
		}
		if !c.reaches && rw.Code != http.StatusUnauthorized {
			t.Errorf("%q: %d, want 401", c.authorization, rw.Code)
		}
	}
}

func TestShareCountsRevocationsFromOtherReplicas(t *testing.T) {
	// given a share of 1% (172 entries of a 1 MiB lane), and 172 revocations
	// of one client received from other replicas
	m := newTestMiddleware(t, &upstream{}, nil, func(c *Config) { c.ClientRate = 0; c.ClientSharePercent = 1 })
	d := m.list
	most := d.limiter.ShareLimit(d.store.Capacity())
	recs := make([]record.Revocation, most)
	tag := limit.KeyOf("client", true, "")
	for i := range recs {
		recs[i] = record.Revocation{Digest: sha256.Sum256([]byte(fmt.Sprint("elsewhere-", i))), Expiry: time.Now().Add(time.Hour).UnixNano(), Client: tag}
	}
	d.loadDirect(recs, sourceRedis)

	// when the client revokes here, into the same lane (an hour), then its
	// share is already spent
	rw := serve(m, revokeRequest("token=here&token_type_hint=access_token"))
	if rw.Code != http.StatusTooManyRequests {
		t.Fatalf("revoke past the share held on other replicas: %d", rw.Code)
	}
	// and another client is unaffected
	req := revokeRequest("token=other")
	req.SetBasicAuth("other", "secret")
	if rw := serve(m, req); rw.Code != http.StatusOK {
		t.Fatalf("another client: %d", rw.Code)
	}
}

func TestReRevokeOfAHeldTokenSpendsTheRate(t *testing.T) {
	// given a client allowed 1 revoke call a second, burst 2, and one token it revoked
	clock := newFakeClock()
	up := &upstream{}
	m := newTestMiddleware(t, up, clock, func(c *Config) { c.ClientRate = 1; c.ClientBurst = 2 })
	revoke(t, m, "held-token", "")
	// when it revokes the held token again and again, faster than its rate
	codes := []int{}
	for i := 0; i < 6; i++ {
		clock.advance(time.Millisecond)
		codes = append(codes, serve(m, revokeRequest("token=held-token")).Code)
	}
	// then the calls past its rate and burst get 429 before the identity
	// service, so they write nothing to the file or the stream
	refused := 0
	for _, c := range codes {
		if c == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 || up.calls() != 1+len(codes)-refused {
		t.Fatalf("answers %v, %d upstream calls", codes, up.calls())
	}
	if got := m.list.stats().Refused.ClientLimit; got != int64(refused) {
		t.Fatalf("refused.clientLimit %d, want %d", got, refused)
	}
	// and the token stays revoked
	if rw := serve(m, apiRequest("held-token")); rw.Code != http.StatusUnauthorized {
		t.Fatalf("held token: %d", rw.Code)
	}
}
