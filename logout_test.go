package tokenrevocation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/jwtpayload"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

const (
	testIssuer   = "https://op.example"
	testAudience = "edge-client"
	testLogout   = "/backchannel-logout"
)

// provider is an OpenID provider stand-in for the unit tests: it serves a
// JWKS (or 503 while down) and signs with an RS256 and an ES256 key.
type provider struct {
	t       *testing.T
	srv     *httptest.Server
	rsaKey  *rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
	rsaKID  string
	ecKID   string
	down    int32
	fetches int32
	mu      sync.Mutex
	seq     int
}

var (
	providerKeysOnce sync.Once
	providerRSA      *rsa.PrivateKey
	providerEC       *ecdsa.PrivateKey
)

func newProvider(t *testing.T) *provider {
	t.Helper()
	// One key pair for every test: RSA key generation is slow under Yaegi.
	providerKeysOnce.Do(func() {
		providerRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		providerEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	p := &provider{t: t, rsaKey: providerRSA, ecKey: providerEC, rsaKID: "rsa-1", ecKID: "ec-1"}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveJWKS))
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *provider) serveJWKS(rw http.ResponseWriter, _ *http.Request) {
	atomic.AddInt32(&p.fetches, 1)
	if atomic.LoadInt32(&p.down) == 1 {
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	enc := base64.RawURLEncoding
	pad := func(b []byte) string {
		out := make([]byte, 32)
		copy(out[32-len(b):], b)
		return enc.EncodeToString(out)
	}
	doc := map[string]interface{}{"keys": []map[string]string{
		{"kty": "RSA", "kid": p.rsaKID, "use": "sig", "alg": "RS256", "n": enc.EncodeToString(p.rsaKey.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(p.rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": p.ecKID, "use": "sig", "crv": "P-256", "x": pad(p.ecKey.X.Bytes()), "y": pad(p.ecKey.Y.Bytes())},
	}}
	_ = json.NewEncoder(rw).Encode(doc)
}

// rotate publishes new kids; tokens under the old ones are then refused.
func (p *provider) rotate() {
	p.mu.Lock()
	p.seq++
	p.rsaKID, p.ecKID = fmt.Sprintf("rsa-%d", p.seq+1), fmt.Sprintf("ec-%d", p.seq+1)
	p.mu.Unlock()
}

// sign signs claims with header, by alg: RS256, ES256, HS256 (with secret), or none.
func sign(t *testing.T, header, claims map[string]interface{}, rsaKey *rsa.PrivateKey, ecKey *ecdsa.PrivateKey, secret []byte) string {
	t.Helper()
	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	alg, _ := header["alg"].(string)
	switch alg {
	case "RS256":
		s, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, ecKey, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case "HS256":
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	}
	return input + "." + enc.EncodeToString(sig)
}

// logoutToken signs a logout token with the provider's current RS256 key
// (ES256 when ec), with edit applied to its claims.
func (p *provider) logoutToken(now time.Time, ec bool, edit func(h, c map[string]interface{})) string {
	p.mu.Lock()
	p.seq++
	jti := fmt.Sprintf("jti-%d-%d", time.Now().UnixNano(), p.seq)
	rsaKID, ecKID := p.rsaKID, p.ecKID
	p.mu.Unlock()
	h := map[string]interface{}{"alg": "RS256", "kid": rsaKID, "typ": "logout+jwt"}
	if ec {
		h["alg"], h["kid"] = "ES256", ecKID
	}
	c := map[string]interface{}{
		"iss": testIssuer, "aud": testAudience, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": jti,
		"events": map[string]interface{}{"http://schemas.openid.net/event/backchannel-logout": map[string]interface{}{}},
		"sid":    "session-1",
	}
	if edit != nil {
		edit(h, c)
	}
	return sign(p.t, h, c, p.rsaKey, p.ecKey, nil)
}

// accessJWT is an access token as the provider issues it (its signature is
// never checked by the edge).
func accessJWT(t *testing.T, claims map[string]interface{}) string {
	return sign(t, map[string]interface{}{"alg": "RS256", "typ": "at+jwt"}, claims, providerRSA, nil, nil)
}

// logoutMiddleware is a middleware with back-channel logout on, its keys
// from p, on clock.
func logoutMiddleware(t *testing.T, next http.Handler, p *provider, clock *fakeClock, edit func(*Config)) *middleware {
	t.Helper()
	m := newTestMiddleware(t, next, clock, func(c *Config) {
		c.BackchannelLogoutPath = testLogout
		c.Issuer = testIssuer
		c.JWKSURL = p.srv.URL + "/jwks.json"
		c.Audiences = []string{"other-client", testAudience}
		c.LogoutRuleTTL = "1h"
		if edit != nil {
			edit(c)
		}
	})
	m.keys = newKeySource(testIssuer, m.settings.logout.jwksURL, time.Hour)
	m.keys.minGap = 0
	m.list.keys = m.keys
	return m
}

// onList is m on another denylist, with m's keys.
func onList(m *middleware, d *denylist) *middleware {
	n := newMiddleware(m.next, m.settings, d)
	n.keys = m.keys
	return n
}

// postLogout sends a logout token to the receiver.
func postLogout(m http.Handler, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, testLogout, strings.NewReader("logout_token="+url.QueryEscape(token)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return serve(m, req)
}

func sessionJWT(t *testing.T, sid, sub string, iat time.Time) string {
	return accessJWT(t, map[string]interface{}{"iss": testIssuer, "sub": sub, "sid": sid, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()})
}

func TestLogoutRejectsTheSessionsTokens(t *testing.T) {
	for _, ec := range []bool{false, true} {
		t.Run(fmt.Sprintf("ES256=%t", ec), func(t *testing.T) {
			// given two sessions of one user, with JWT access tokens
			clock := newFakeClock()
			p := newProvider(t)
			up := &upstream{}
			m := logoutMiddleware(t, up, p, clock, nil)
			before := clock.now()
			mine, other := sessionJWT(t, "session-1", "alice", before), sessionJWT(t, "session-2", "alice", before)
			if status(m, mine) != 200 || status(m, other) != 200 {
				t.Fatal("tokens refused before any logout")
			}

			// when the provider logs session-1 out
			clock.advance(time.Second)
			rw := postLogout(m, p.logoutToken(clock.now(), ec, nil))

			// then the logout is acknowledged, by the edge alone
			if rw.Code != 200 || rw.Header().Get("Cache-Control") != "no-store" || rw.Body.Len() != 0 {
				t.Fatalf("logout: %d %q %q", rw.Code, rw.Header().Get("Cache-Control"), rw.Body.String())
			}
			if up.calls() != 2 {
				t.Fatalf("the logout reached the upstream: %d calls", up.calls())
			}
			// and session-1's token gets the revoked token's answer
			got := serve(m, apiRequest(mine))
			if got.Code != 401 || got.Header().Get("WWW-Authenticate") != revokedChallenge {
				t.Fatalf("session-1's token: %d %q", got.Code, got.Header().Get("WWW-Authenticate"))
			}
			// and another session, an opaque token and a token issued after pass
			clock.advance(time.Second)
			for name, token := range map[string]string{"other session": other, "opaque": "opaque-token", "issued after": sessionJWT(t, "session-1", "alice", clock.now())} {
				if status(m, token) != 200 {
					t.Errorf("%s refused", name)
				}
			}
			if st := m.list.stats(); st.Logouts != 1 || st.LogoutRules != 1 || st.JWKSKeys != 2 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestLogoutRefusesInvalidTokens(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, clock, nil)
	now := clock.now()
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := func(k string, v interface{}) func(h, c map[string]interface{}) {
		return func(h, c map[string]interface{}) { c[k] = v }
	}
	del := func(k string) func(h, c map[string]interface{}) {
		return func(h, c map[string]interface{}) { delete(c, k) }
	}
	replayed := p.logoutToken(now, false, func(h, c map[string]interface{}) { c["sid"] = "replay-session" })
	if rw := postLogout(m, replayed); rw.Code != 200 {
		t.Fatalf("first copy refused: %d %s", rw.Code, rw.Body)
	}
	pubDER := p.rsaKey.N.Bytes()
	tampered := p.logoutToken(now, false, nil)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	tests := []struct {
		desc  string
		token string
	}{
		{"bad signature", tampered},
		{"signed by a key not in the JWKS, same kid", sign(t, map[string]interface{}{"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}, claimsOf(t, p.logoutToken(now, false, nil)), otherRSA, nil, nil)},
		{"alg none", strings.TrimSuffix(sign(t, map[string]interface{}{"alg": "none", "typ": "JWT"}, claimsOf(t, p.logoutToken(now, false, nil)), nil, nil, nil), ".") + "."},
		{"HS256 with the public key as secret", sign(t, map[string]interface{}{"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, claimsOf(t, p.logoutToken(now, false, nil)), nil, nil, pubDER)},
		{"wrong iss", p.logoutToken(now, false, set("iss", "https://evil.example"))},
		{"wrong aud", p.logoutToken(now, false, set("aud", "someone-else"))},
		{"replayed jti", replayed},
		{"missing events", p.logoutToken(now, false, del("events"))},
		{"events without the logout member", p.logoutToken(now, false, set("events", map[string]interface{}{"x": map[string]interface{}{}}))},
		{"nonce present", p.logoutToken(now, false, set("nonce", "n-1"))},
		{"neither sid nor sub", p.logoutToken(now, false, del("sid"))},
		{"iat too old", p.logoutToken(now.Add(-10*time.Minute), false, nil)},
		{"iat missing", p.logoutToken(now, false, del("iat"))},
		{"typ of an access token", p.logoutToken(now, false, func(h, c map[string]interface{}) { h["typ"] = "at+jwt" })},
		{"expired key: signed by a key rotated out", func() string {
			q := &provider{t: t, rsaKey: p.rsaKey, ecKey: p.ecKey, rsaKID: "rsa-retired", ecKID: "ec-retired"}
			return q.logoutToken(now, true, nil)
		}()},
		{"not a JWT", "not-a-jwt"},
	}
	victim := sessionJWT(t, "session-1", "alice", now.Add(-time.Minute))
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rw := postLogout(m, tc.token)
			if rw.Code != 400 || !strings.Contains(rw.Body.String(), `"error":"invalid_request"`) || rw.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("got %d %s", rw.Code, rw.Body)
			}
			if strings.Contains(rw.Body.String(), tc.token) && len(tc.token) > 20 {
				t.Fatal("the error quotes the token")
			}
			if status(m, victim) != 200 {
				t.Fatal("a refused logout changed what is rejected")
			}
		})
	}
	if st := m.list.stats(); st.Logouts != 1 {
		t.Fatalf("only the first valid logout counts: %+v", st)
	}
}

func TestLogoutRequestShape(t *testing.T) {
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, nil, nil)
	for _, tc := range []struct {
		desc, contentType, body string
	}{
		{"JSON body", "application/json", `{"logout_token":"x"}`},
		{"no logout_token", "application/x-www-form-urlencoded", "token=x"},
		{"repeated logout_token", "application/x-www-form-urlencoded", "logout_token=a&logout_token=b"},
		{"bad encoding", "application/x-www-form-urlencoded", "logout_token=%zz"},
	} {
		req := httptest.NewRequest(http.MethodPost, testLogout, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		if rw := serve(m, req); rw.Code != 400 || !strings.Contains(rw.Body.String(), "invalid_request") {
			t.Errorf("%s: %d %s", tc.desc, rw.Code, rw.Body)
		}
	}
}

// claimsOf decodes a token's claims, to re-sign them another way.
func claimsOf(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	c, ok := jwtpayload.Claims(token)
	if !ok {
		t.Fatal("not a JWT")
	}
	return c
}

func TestLogoutSubject(t *testing.T) {
	tests := []struct {
		desc        string
		match       string
		sid         bool
		rejectsUser bool
	}{
		{"sub only: every session of the user", "sid", false, true},
		{"sid and sub, logoutMatch sid: the session only", "sid", true, false},
		{"sid and sub, logoutMatch sub: every session of the user", "sub", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			clock := newFakeClock()
			p := newProvider(t)
			m := logoutMiddleware(t, &upstream{}, p, clock, func(c *Config) { c.LogoutMatch = tc.match })
			before := clock.now()
			session, otherSession, otherUser := sessionJWT(t, "session-1", "alice", before), sessionJWT(t, "session-2", "alice", before), sessionJWT(t, "session-3", "bob", before)
			noSID := accessJWT(t, map[string]interface{}{"sub": "alice", "iat": before.Unix()})
			rw := postLogout(m, p.logoutToken(clock.now(), false, func(h, c map[string]interface{}) {
				c["sub"] = "alice"
				if !tc.sid {
					delete(c, "sid")
				}
			}))
			if rw.Code != 200 {
				t.Fatalf("logout: %d %s", rw.Code, rw.Body)
			}
			if tc.sid && status(m, session) != 401 {
				t.Error("the session's token passes")
			}
			if got := status(m, otherSession) == 401; got != tc.rejectsUser {
				t.Errorf("the user's other session rejected: %t", got)
			}
			if got := status(m, noSID) == 401; got != tc.rejectsUser {
				t.Errorf("the user's token without sid rejected: %t", got)
			}
			if status(m, otherUser) != 200 {
				t.Error("another user's token refused")
			}
		})
	}
}

func TestLogoutSessionClaimPath(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, clock, func(c *Config) { c.SessionClaim = "ext.sid" })
	nested := accessJWT(t, map[string]interface{}{"sub": "alice", "iat": clock.now().Unix(), "ext": map[string]interface{}{"sid": "session-1"}})
	top := accessJWT(t, map[string]interface{}{"sub": "alice", "iat": clock.now().Unix(), "sid": "session-1"})
	if rw := postLogout(m, p.logoutToken(clock.now(), false, nil)); rw.Code != 200 {
		t.Fatalf("logout: %d %s", rw.Code, rw.Body)
	}
	if status(m, nested) != 401 {
		t.Error("ext.sid not matched")
	}
	if status(m, top) != 200 {
		t.Error("a top-level sid matched though sessionClaim is ext.sid")
	}
}

func TestLogoutRuleEnds(t *testing.T) {
	// given a logout whose rule lives an hour
	clock := newFakeClock()
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, clock, nil)
	token := sessionJWT(t, "session-1", "alice", clock.now())
	postLogout(m, p.logoutToken(clock.now(), false, nil))
	if status(m, token) != 401 || atomic.LoadInt32(m.rules) != 1 {
		t.Fatal("rule not live")
	}
	// when the hour has passed, then the rule is gone and the hot path is
	// back, with no other call than requests
	clock.advance(time.Hour + time.Second)
	if status(m, token) != 200 {
		t.Fatal("an expired rule still rejects")
	}
	if atomic.LoadInt32(m.rules) != 0 {
		t.Fatal("the hot path still checks rules after the last one expired")
	}
	if st := m.list.stats(); st.LogoutRules != 0 {
		t.Fatalf("expired rule kept: %+v", st)
	}
}

func TestLogoutKeysRotateAndRecover(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, clock, nil)

	// given a provider whose JWKS is down when the edge starts
	atomic.StoreInt32(&p.down, 1)
	if rw := postLogout(m, p.logoutToken(clock.now(), false, nil)); rw.Code != 400 || !strings.Contains(rw.Body.String(), "keys") {
		t.Fatalf("logout without keys: %d %s", rw.Code, rw.Body)
	}
	// when it comes back, then logouts are verified
	atomic.StoreInt32(&p.down, 0)
	if rw := postLogout(m, p.logoutToken(clock.now(), true, nil)); rw.Code != 200 {
		t.Fatalf("logout once the keys are back: %d %s", rw.Code, rw.Body)
	}
	// and when it rotates its keys, then a token under a new kid is
	// verified after a refetch, and one under a retired kid is refused
	retired := p.logoutToken(clock.now(), false, func(h, c map[string]interface{}) { c["sid"] = "session-2" })
	p.rotate()
	fetches := atomic.LoadInt32(&p.fetches)
	if rw := postLogout(m, p.logoutToken(clock.now(), false, func(h, c map[string]interface{}) { c["sid"] = "session-3" })); rw.Code != 200 {
		t.Fatalf("logout under a rotated key: %d %s", rw.Code, rw.Body)
	}
	if atomic.LoadInt32(&p.fetches) != fetches+1 {
		t.Fatalf("want one refetch for the new kid, got %d", atomic.LoadInt32(&p.fetches)-fetches)
	}
	if rw := postLogout(m, retired); rw.Code != 400 {
		t.Fatalf("logout under a retired key: %d", rw.Code)
	}
}

func TestLogoutRefetchIsRateLimited(t *testing.T) {
	p := newProvider(t)
	m := logoutMiddleware(t, &upstream{}, p, nil, nil)
	m.keys.minGap = time.Hour
	now := time.Now()
	for i := 0; i < 5; i++ {
		postLogout(m, p.logoutToken(now, false, func(h, c map[string]interface{}) { h["kid"] = fmt.Sprintf("random-%d", i) }))
	}
	if got := atomic.LoadInt32(&p.fetches); got != 1 {
		t.Fatalf("unknown kids fetched the JWKS %d times, want 1", got)
	}
}

func TestLogoutDiscovery(t *testing.T) {
	p := newProvider(t)
	disco := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(rw, req)
			return
		}
		_ = json.NewEncoder(rw).Encode(map[string]string{"issuer": "http://" + req.Host, "jwks_uri": p.srv.URL + "/jwks.json"})
	}))
	t.Cleanup(func() { disco.Close() })
	k := newKeySource(disco.URL, "", time.Hour)
	if err := k.fetch(0); err != nil || k.current().Len() != 2 {
		t.Fatalf("discovery: %v", err)
	}
	wrong := newKeySource(disco.URL+"/", "", time.Hour)
	if err := wrong.fetch(0); err == nil {
		t.Fatal("a discovery document naming another issuer was accepted")
	}
}

// queueScoped queues a token response with a scope.
func (s *identityStub) queueScoped(access, refresh, idToken, scope string) {
	reply := map[string]interface{}{"access_token": access, "token_type": "bearer", "expires_in": 3600, "refresh_token": refresh, "id_token": idToken, "scope": scope}
	b, _ := json.Marshal(reply)
	s.mu.Lock()
	s.replies = append(s.replies, string(b))
	s.mu.Unlock()
}

func TestLogoutRevokesTrackedGrants(t *testing.T) {
	for _, includeOffline := range []bool{false, true} {
		t.Run(fmt.Sprintf("logoutOfflineAccess=%t", includeOffline), func(t *testing.T) {
			// given three tracked grants: two of session-1, one with
			// offline_access, and one of session-2
			p := newProvider(t)
			stub := &identityStub{}
			m := logoutMiddleware(t, stub, p, nil, func(c *Config) {
				c.TrackGrants = true
				c.LogoutOfflineAccess = includeOffline
			})
			stub.queueScoped("access-1", "refresh-1", idToken("session-1", "alice"), "openid offline")
			stub.queueScoped("access-2", "refresh-2", idToken("session-1", "alice"), "openid offline_access")
			stub.queueScoped("access-3", "refresh-3", idToken("session-2", "alice"), "openid offline")
			for i := 0; i < 3; i++ {
				tokenRequest(m, "grant_type=authorization_code&code=c")
			}

			// when session-1 is logged out
			if rw := postLogout(m, p.logoutToken(time.Now(), false, nil)); rw.Code != 200 {
				t.Fatalf("logout: %d %s", rw.Code, rw.Body)
			}

			// then its access tokens are rejected, the other session's not
			for token, want := range map[string]int{"access-1": 401, "access-2": 401, "access-3": 200} {
				if got := status(m, token); got != want {
					t.Errorf("%s: %d, want %d", token, got, want)
				}
			}
			// and its refresh tokens are refused, but offline_access's only
			// with logoutOfflineAccess
			offline := 200
			if includeOffline {
				offline = 400
			}
			stub.queue("access-x", "", "")
			for token, want := range map[string]int{"refresh-1": 400, "refresh-2": offline, "refresh-3": 200} {
				stub.queue("access-x", "", "")
				if got := tokenRequest(m, "grant_type=refresh_token&refresh_token="+token).Code; got != want {
					t.Errorf("refresh with %s: %d, want %d", token, got, want)
				}
			}
		})
	}
}

func TestLogoutPersistsAcrossRestart(t *testing.T) {
	// given a persisted denylist that received a logout
	clock := newFakeClock()
	path := t.TempDir() + "/denylist.bin"
	p := newProvider(t)
	first := restartFromFile(t, path, clock)
	m := logoutMiddleware(t, &upstream{}, p, clock, nil)
	m = onList(m, first)
	token := sessionJWT(t, "session-1", "alice", clock.now())
	logout := p.logoutToken(clock.now(), false, nil)
	if rw := postLogout(m, logout); rw.Code != 200 {
		t.Fatalf("logout: %d %s", rw.Code, rw.Body)
	}

	// when the process restarts, and compacts its file
	clock.advance(time.Minute)
	for _, d := range []*denylist{restartFromFile(t, path, clock), nil} {
		if d == nil {
			second := restartFromFile(t, path, clock)
			second.persist.Compact()
			d = restartFromFile(t, path, clock)
		}
		// then the rule still rejects, and the jti is still a replay
		r := onList(m, d)
		if status(r, token) != 401 {
			t.Fatal("the logout's rule was lost across a restart")
		}
		if rw := postLogout(r, logout); rw.Code != 400 {
			t.Fatalf("a replayed logout was accepted after a restart: %d", rw.Code)
		}
	}
}

func TestLogoutReplicates(t *testing.T) {
	// given two replicas
	srv := startRedis(t)
	a, b := newReplica(t, "logouts", srv.addr()), newReplica(t, "logouts", srv.addr())
	p := newProvider(t)
	base := logoutMiddleware(t, &upstream{}, p, nil, nil)
	onA, onB := onList(base, a), onList(base, b)
	token := sessionJWT(t, "session-1", "alice", time.Now().Add(-time.Second))
	logout := p.logoutToken(time.Now(), false, nil)

	// when A receives a logout, then B rejects the session's token
	if rw := postLogout(onA, logout); rw.Code != 200 {
		t.Fatalf("logout: %d %s", rw.Code, rw.Body)
	}
	if !waitFor(t, 5*time.Second, func() bool { return status(onB, token) == 401 }) {
		t.Fatal("B still accepts the logged-out session's token")
	}
	// and B refuses the same logout token as a replay
	if rw := postLogout(onB, logout); rw.Code != 400 {
		t.Fatalf("replay on B: %d", rw.Code)
	}
	// and each replica counts the logout once, A's own echo from the stream included
	time.Sleep(time.Second) // A reads its own record back
	if la, lb := a.stats().Logouts, b.stats().Logouts; la != 1 || lb != 1 {
		t.Fatalf("logouts counted: A %d, B %d; want 1 and 1", la, lb)
	}
}

func TestLogoutRecordEncoding(t *testing.T) {
	rec := &record.Logout{Flags: record.LogoutRuleSID | record.LogoutGrantsSID, At: 1, Expiry: 2}
	rec.SID[0], rec.JTI[31] = 7, 9
	got, err := record.DecodeLogout(rec.Encode())
	if err != nil || *got != *rec {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	unknownFlag := rec.Encode()
	unknownFlag[1] |= 0x80
	later := rec.Encode()
	later[0] = 2
	for name, buf := range map[string][]byte{"short": rec.Encode()[:10], "unknown flag": unknownFlag, "later version": later} {
		if _, err := record.DecodeLogout(buf); err == nil {
			t.Errorf("%s decoded", name)
		}
	}
	// A file holding a logout record reads, in a release that knows only
	// revocations, as one expired revocation per frame, which it skips.
	frames := append(record.EncodeRevocation(&record.Revocation{Expiry: 5}), record.EncodeExtension(record.LogoutType, record.LogoutVersion, rec.Encode())...)
	set := record.DecodeFrames(frames, 0)
	if len(set.Recs) != 1 || len(set.Records) != 1 || set.Records[0].Type != record.LogoutType {
		t.Fatalf("decodeFrames: %+v", set)
	}
	for off := record.FrameSize; off < len(frames); off += record.FrameSize {
		if expiry := int64(binaryBigEndian(frames[off+32 : off+40])); expiry > 0 {
			t.Fatal("an extension frame would read as a live revocation in the previous release")
		}
	}
}

func binaryBigEndian(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func TestLogoutSettings(t *testing.T) {
	valid := func(c *Config) {
		c.BackchannelLogoutPath = testLogout
		c.Issuer = testIssuer
		c.Audiences = []string{testAudience}
	}
	tests := []struct {
		desc  string
		edit  func(*Config)
		field string
	}{
		{"no issuer", func(c *Config) { valid(c); c.Issuer = "" }, "issuer"},
		{"issuer not a URL", func(c *Config) { valid(c); c.Issuer = "op" }, "issuer"},
		{"no audiences", func(c *Config) { valid(c); c.Audiences = []string{" "} }, "audiences"},
		{"jwksURL not http", func(c *Config) { valid(c); c.JWKSURL = "file:///etc/keys" }, "jwksURL"},
		{"path is the revoke path", func(c *Config) { valid(c); c.BackchannelLogoutPath = c.RevokePath }, "backchannelLogoutPath"},
		{"relative path", func(c *Config) { valid(c); c.BackchannelLogoutPath = "logout" }, "backchannelLogoutPath"},
		{"logoutMatch", func(c *Config) { valid(c); c.LogoutMatch = "email" }, "logoutMatch"},
		{"sessionClaim", func(c *Config) { valid(c); c.SessionClaim = "ext..sid" }, "sessionClaim"},
		{"logoutRuleTTL", func(c *Config) { valid(c); c.LogoutRuleTTL = "-1h" }, "logoutRuleTTL"},
		{"logoutMaxAge", func(c *Config) { valid(c); c.LogoutMaxAge = "0s" }, "logoutMaxAge"},
		{"logoutMaxAge over the replay memory", func(c *Config) { valid(c); c.LogoutMaxAge = "2h" }, "logoutMaxAge"},
		{"jwksRefresh", func(c *Config) { valid(c); c.JWKSRefresh = "soon" }, "jwksRefresh"},
	}
	for _, tc := range tests {
		cfg := CreateConfig()
		tc.edit(cfg)
		if _, err := cfg.validate("x"); err == nil || !strings.Contains(err.Error(), "invalid "+tc.field+":") {
			t.Errorf("%s: %v", tc.desc, err)
		}
	}
	cfg := CreateConfig()
	valid(cfg)
	s, err := cfg.validate("x")
	if err != nil || s.logout.ruleTTL != s.maxTTL || s.logout.matchSub || strings.Join(s.sessionClaim, ".") != "sid" {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	// With logout off the options are not required.
	if _, err := CreateConfig().validate("x"); err != nil {
		t.Fatal(err)
	}
}

func TestLogoutFromAnotherReplicaRevokesFamiliesKnownHere(t *testing.T) {
	// given a replica that tracks a grant of session-1, which the replica
	// that received the logout did not know yet
	stub := &identityStub{}
	m := grantMiddleware(t, stub, nil)
	stub.queueScoped("access-1", "refresh-1", idToken("session-1", "alice"), "openid")
	tokenRequest(m, "grant_type=authorization_code&code=c")

	// when that logout's record arrives through the stream
	rec := &record.Logout{Flags: record.LogoutRuleSID | record.LogoutGrantsSID, SID: sha256.Sum256([]byte("session-1")), At: time.Now().UnixNano()}
	rec.Expiry = rec.At + int64(time.Hour)
	m.list.applyExtension(&record.Extension{Type: record.LogoutType, Version: record.LogoutVersion, Payload: rec.Encode()})

	// then the grant's tokens are revoked here, as revocations of its own
	if status(m, "access-1") != 401 {
		t.Fatal("the grant's access token passes")
	}
	if st := m.list.stats(); st.Revokes != 2 || st.Logouts != 1 {
		t.Fatalf("want the access and refresh tokens recorded and one logout: %+v", st)
	}
}

func TestLogoutCatchesACodeRedeemedAfterIt(t *testing.T) {
	// given a logged-out session
	p := newProvider(t)
	stub := &identityStub{}
	m := logoutMiddleware(t, stub, p, nil, func(c *Config) { c.TrackGrants = true })
	if rw := postLogout(m, p.logoutToken(time.Now(), false, nil)); rw.Code != 200 {
		t.Fatalf("logout: %d %s", rw.Code, rw.Body)
	}
	// when a code of that session, issued before the logout, is redeemed
	// after it, and the provider still answers with the session's tokens
	stub.queueScoped("late-access", "late-refresh", idToken("session-1", "alice"), "openid offline")
	stub.queueScoped("other-access", "other-refresh", idToken("session-2", "alice"), "openid offline")
	tokenRequest(m, "grant_type=authorization_code&code=late")
	tokenRequest(m, "grant_type=authorization_code&code=other")
	// then the new grant's tokens are rejected, another session's are not
	if status(m, "late-access") != 401 || status(m, "other-access") != 200 {
		t.Fatalf("late grant: %d, other session: %d", status(m, "late-access"), status(m, "other-access"))
	}
	stub.queue("x", "", "")
	if got := tokenRequest(m, "grant_type=refresh_token&refresh_token=late-refresh").Code; got != 400 {
		t.Fatalf("the late grant's refresh token: %d, want 400", got)
	}
}
