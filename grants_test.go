package tokenrevocation

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/grants"
	"github.com/edgerevoke/tokenrevocation/internal/persist"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// identityStub answers the token endpoint with the next queued token
// response, and 200 to everything else. It records the token request bodies.
type identityStub struct {
	mu       sync.Mutex
	replies  []string
	status   int
	gzip     bool
	received []string
}

func (s *identityStub) queue(access, refresh, idToken string) {
	reply := map[string]interface{}{"access_token": access, "token_type": "bearer", "expires_in": 3600}
	if refresh != "" {
		reply["refresh_token"] = refresh
	}
	if idToken != "" {
		reply["id_token"] = idToken
	}
	b, _ := json.Marshal(reply)
	s.mu.Lock()
	s.replies = append(s.replies, string(b))
	s.mu.Unlock()
}

func (s *identityStub) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if req.URL.Path != "/api/id/v1/auth/token" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, string(body))
	reply := "{}"
	if len(s.replies) > 0 {
		reply, s.replies = s.replies[0], s.replies[1:]
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("X-Upstream", "identity")
	if s.gzip {
		rw.Header().Set("Content-Encoding", "gzip")
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte(reply))
		_ = zw.Close()
		reply = buf.String()
	}
	if s.status != 0 {
		rw.WriteHeader(s.status)
	}
	_, _ = io.WriteString(rw, reply)
}

// tokenRequest posts a form to the token endpoint through m.
func tokenRequest(m http.Handler, form string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("client", "secret")
	return serve(m, req)
}

// idToken is an unsigned ID token with sid and sub.
func idToken(sid, sub string) string {
	enc := base64.RawURLEncoding
	payload := fmt.Sprintf(`{"sub":%q,"sid":%q,"exp":%d}`, sub, sid, time.Now().Add(time.Hour).Unix())
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("sig"))
}

func grantMiddleware(t *testing.T, stub *identityStub, edit func(*Config)) *middleware {
	t.Helper()
	return newTestMiddleware(t, stub, nil, func(c *Config) {
		c.TrackGrants = true
		if edit != nil {
			edit(c)
		}
	})
}

// grantSettings are the settings of a middleware with trackGrants on.
func grantSettings(t *testing.T) *settings {
	t.Helper()
	cfg := CreateConfig()
	cfg.TrackGrants = true
	s, err := cfg.validate("grants")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func status(m http.Handler, token string) int {
	return serve(m, apiRequest(token)).Code
}

func TestGrantRevokedWithItsRefreshToken(t *testing.T) {
	// given two grants learned from token responses, one with an ID token
	stub := &identityStub{}
	m := grantMiddleware(t, stub, nil)
	stub.queue("access-A", "refresh-A", idToken("session-1", "alice"))
	stub.queue("access-B", "refresh-B", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")
	tokenRequest(m, "grant_type=authorization_code&code=b")

	// when grant A's refresh token is revoked
	revoke(t, m, "refresh-A", "refresh_token")

	// then A's access token is rejected, B's tokens pass
	if status(m, "access-A") != 401 || status(m, "access-B") != 200 || status(m, "refresh-B") != 200 {
		t.Fatalf("A %d, B %d", status(m, "access-A"), status(m, "access-B"))
	}
	if got := m.list.stats().Grants; got != 1 {
		t.Fatalf("families left: %d", got)
	}
}

func TestGrantRevokingAnAccessTokenRevokesOnlyIt(t *testing.T) {
	stub := &identityStub{}
	m := grantMiddleware(t, stub, nil)
	stub.queue("access-A", "refresh-A", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")
	revoke(t, m, "access-A", "access_token")
	if status(m, "access-A") != 401 || status(m, "refresh-A") != 200 {
		t.Fatal("an access token's revocation reached its refresh token")
	}
}

func TestGrantRefreshJoinsTheFamily(t *testing.T) {
	for _, revokeOnRefresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("revokeOnRefresh=%v", revokeOnRefresh), func(t *testing.T) {
			// given a grant refreshed once, with rotation
			stub := &identityStub{}
			m := grantMiddleware(t, stub, func(c *Config) { c.RevokeOnRefresh = revokeOnRefresh })
			stub.queue("access-1", "refresh-1", "")
			stub.queue("access-2", "refresh-2", "")
			tokenRequest(m, "grant_type=authorization_code&code=a")
			tokenRequest(m, "grant_type=refresh_token&refresh_token=refresh-1")

			// then with revokeOnRefresh the old access token is rejected and
			// the new one passes; without it both pass
			wantOld := 200
			if revokeOnRefresh {
				wantOld = 401
			}
			if status(m, "access-1") != wantOld || status(m, "access-2") != 200 {
				t.Fatalf("old %d, new %d", status(m, "access-1"), status(m, "access-2"))
			}

			// and revoking the first refresh token, rotated away, revokes the
			// whole family
			revoke(t, m, "refresh-1", "refresh_token")
			for _, token := range []string{"access-1", "access-2", "refresh-2"} {
				if status(m, token) != 401 {
					t.Fatalf("%s passes after its family was revoked", token)
				}
			}
		})
	}
}

func TestGrantResponseAndRequestUnchanged(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", compressed), func(t *testing.T) {
			stub := &identityStub{gzip: compressed}
			m := grantMiddleware(t, stub, nil)
			stub.queue("access-A", "refresh-A", "")
			const form = "grant_type=authorization_code&code=a%2Bb&redirect_uri=https%3A%2F%2Fapp"
			rw := tokenRequest(m, form)
			body := rw.Body.String()
			if compressed {
				zr, err := gzip.NewReader(rw.Body)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(zr)
				body = string(raw)
			}
			if rw.Code != 200 || rw.Header().Get("X-Upstream") != "identity" || !strings.Contains(body, `"access_token":"access-A"`) {
				t.Fatalf("response changed: %d %v %q", rw.Code, rw.Header(), body)
			}
			if stub.received[0] != form {
				t.Fatalf("request body changed: %q", stub.received[0])
			}
			revoke(t, m, "refresh-A", "refresh_token")
			if status(m, "access-A") != 401 {
				t.Fatal("grant not learned")
			}
		})
	}
}

func TestGrantNotLearnedFromAFailedResponse(t *testing.T) {
	stub := &identityStub{status: http.StatusBadRequest}
	m := grantMiddleware(t, stub, nil)
	stub.queue("access-A", "refresh-A", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")
	if m.list.stats().Grants != 0 {
		t.Fatal("a 400 token response was learned")
	}
}

func TestGrantCap(t *testing.T) {
	// given room for two families
	stub := &identityStub{}
	m := grantMiddleware(t, stub, func(c *Config) { c.MaxGrants = 2 })
	for i := 0; i < 3; i++ {
		stub.queue(fmt.Sprint("access-", i), fmt.Sprint("refresh-", i), "")
		tokenRequest(m, "grant_type=authorization_code&code=x")
	}

	// then the third is not tracked, and counted; the others still are
	s := m.list.stats()
	if s.Grants != 2 || s.GrantsUntracked != 1 {
		t.Fatalf("stats %+v", s)
	}
	revoke(t, m, "refresh-2", "refresh_token")
	revoke(t, m, "refresh-0", "refresh_token")
	if status(m, "access-2") != 200 || status(m, "access-0") != 401 || status(m, "refresh-2") != 401 {
		t.Fatal("wrong tokens revoked")
	}
}

func TestGrantPersistsAcrossRestart(t *testing.T) {
	// given a persisted denylist that learned a grant
	clock := newFakeClock()
	path := t.TempDir() + "/denylist.bin"
	first := restartFromFile(t, path, clock)
	stub := &identityStub{}
	s := grantSettings(t)
	m := newMiddleware(stub, s, first)
	stub.queue("access-A", "refresh-A", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")

	// when the process restarts (and compacts its file)
	clock.advance(persist.CompactEvery)
	second := restartFromFile(t, path, clock)
	second.persist.CompactIfDue()
	third := restartFromFile(t, path, clock)

	// then revoking the refresh token revokes the grant
	m = newMiddleware(stub, s, third)
	revoke(t, m, "refresh-A", "refresh_token")
	if status(m, "access-A") != 401 {
		t.Fatal("grant lost across restarts")
	}
}

func TestGrantReplicates(t *testing.T) {
	// given two replicas, a grant learned on A
	srv := startRedis(t)
	a, b := newReplica(t, "grants", srv.addr()), newReplica(t, "grants", srv.addr())
	stub := &identityStub{}
	s := grantSettings(t)
	onA, onB := newMiddleware(stub, s, a), newMiddleware(stub, s, b)
	stub.queue("access-A", "refresh-A", "")
	tokenRequest(onA, "grant_type=authorization_code&code=a")
	if !waitFor(t, 5*time.Second, func() bool { return b.stats().Grants == 1 }) {
		t.Fatalf("B never learned the grant: %+v", b.stats())
	}

	// when its refresh token is revoked on B, then A rejects the access token
	revoke(t, onB, "refresh-A", "refresh_token")
	if !waitFor(t, 5*time.Second, func() bool { return status(onA, "access-A") == 401 }) {
		t.Fatal("A still accepts the grant's access token")
	}
}

// BenchmarkLearnGrant is the cost of one token response with grant
// tracking on: parsing the answer and the ID token, and recording the
// family. Run it under Yaegi too (BENCHMARKS.md).
func BenchmarkLearnGrant(b *testing.B) {
	m := newTestMiddleware(b, &identityStub{}, nil, func(c *Config) { c.TrackGrants = true; c.MaxGrants = 100_000_000 })
	body, _ := json.Marshal(map[string]interface{}{
		"access_token": makeJWT(time.Now().Add(time.Hour).Unix()), "refresh_token": "ory_rt_" + strings.Repeat("x", 80),
		"id_token": idToken("a-session-id", "a-subject"), "expires_in": 3600, "token_type": "bearer",
	})
	form := map[string][]string{"grant_type": {"authorization_code"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A new family each time: vary the tokens' digests.
		resp := bytes.Replace(body, []byte("ory_rt_"), []byte(fmt.Sprintf("%07d", i)), 1)
		m.learnGrant(form, resp)
	}
}

func TestGrantArrivingAfterItsRevocation(t *testing.T) {
	// given a refresh token revoked before its grant record arrived (from
	// another replica, or a refresh answered while the revocation went by)
	d := newTestDenylist(t, denylistOptions{})
	if err := d.add(digestOf("refresh-A"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	rec := &record.Grant{Family: *digestOf("refresh-A"), Tokens: []record.GrantToken{
		{Digest: *digestOf("access-A"), Expiry: time.Now().Add(time.Hour).UnixNano()},
		{Digest: *digestOf("refresh-A"), Expiry: time.Now().Add(time.Hour).UnixNano(), Refresh: true},
	}}

	// when the record arrives, then the family is revoked at once
	d.applyExtension(&record.Extension{Type: record.GrantType, Version: record.GrantVersion, Payload: rec.Encode()})
	if !d.contains("access-A") {
		t.Fatal("the grant's access token passes though its refresh token was revoked first")
	}
}

func TestGrantTokenRequestMustBeAForm(t *testing.T) {
	stub := &identityStub{}
	m := grantMiddleware(t, stub, nil)
	req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	rw := serve(m, req)
	if rw.Code != http.StatusBadRequest || len(stub.received) != 0 {
		t.Fatalf("status %d, upstream calls %d", rw.Code, len(stub.received))
	}
	assertJSONError(t, rw, "invalid_request", "")
}

func TestGrantRefreshStormKeepsOneBoundedFamily(t *testing.T) {
	// given a grant refreshed 300 times, with rotation
	stub := &identityStub{}
	m := grantMiddleware(t, stub, nil)
	stub.queue("access-0", "refresh-0", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")
	for i := 1; i <= 300; i++ {
		stub.queue(fmt.Sprint("access-", i), fmt.Sprint("refresh-", i), "")
		tokenRequest(m, fmt.Sprint("grant_type=refresh_token&refresh_token=refresh-", i-1))
	}

	// then one family holds at most grants.MaxFamilyTokens, and revoking its
	// newest refresh token revokes its newest access token and its recent
	// refresh tokens
	st := m.list.stats()
	if st.Grants != 1 || st.GrantTokens > grants.MaxFamilyTokens {
		t.Fatalf("grants %d, tokens %d", st.Grants, st.GrantTokens)
	}
	revoke(t, m, "refresh-300", "refresh_token")
	if status(m, "access-300") != 401 || status(m, "refresh-280") != 401 {
		t.Fatal("the family's tokens pass after its revocation")
	}
}

func TestGrantFamilyAdmittedBeforeTheIdentityService(t *testing.T) {
	// given a grant refreshed five times, and a denylist with room for the
	// refresh token itself but not for its family
	stub := &identityStub{}
	m := grantMiddleware(t, stub, func(c *Config) { c.ClientRate = 0; c.ClientSharePercent = 100 })
	stub.queue("access-0", "refresh-0", "")
	tokenRequest(m, "grant_type=authorization_code&code=a")
	for i := 1; i <= 5; i++ {
		stub.queue(fmt.Sprint("access-", i), fmt.Sprint("refresh-", i), "")
		tokenRequest(m, fmt.Sprint("grant_type=refresh_token&refresh_token=refresh-", i-1))
	}
	d := m.list
	refresh := sha256.Sum256([]byte("refresh-5"))
	lanes, limit := len(d.store.LaneWindows()), d.store.ShardLimit()
	saved := make([][store.Shards]int32, lanes)
	for i := 0; i < lanes; i++ {
		for s := 0; s < store.Shards; s++ {
			saved[i][s] = atomic.LoadInt32(d.store.Slots(i, s))
			atomic.StoreInt32(d.store.Slots(i, s), limit)
		}
		atomic.StoreInt32(d.store.Slots(i, store.ShardOf(&refresh)), limit-1)
	}

	// when its refresh token is revoked, then the call gets 503 and the
	// identity service never sees it; nothing is revoked
	rw := serve(m, revokeRequest("token=refresh-5&token_type_hint=refresh_token"))
	if rw.Code != http.StatusServiceUnavailable {
		t.Fatalf("revoke of a family that does not fit: %d", rw.Code)
	}
	if status(m, "refresh-5") != 200 || status(m, "access-5") != 200 {
		t.Fatal("a refused revocation was recorded")
	}

	// and once there is room, the same call revokes the family
	for i := 0; i < lanes; i++ {
		for s := 0; s < store.Shards; s++ {
			atomic.StoreInt32(d.store.Slots(i, s), saved[i][s])
		}
	}
	revoke(t, m, "refresh-5", "refresh_token")
	for _, token := range []string{"refresh-5", "access-5", "access-1", "refresh-0"} {
		if status(m, token) != 401 {
			t.Fatalf("%s passes after its family was revoked", token)
		}
	}
}
