package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"github.com/edgerevoke/tokenrevocation/internal/jose"
)

// OpenID Connect Back-Channel Logout through real Traefik: an OpenID
// provider stand-in (harness.OIDC) publishes its keys and signs logout
// tokens and JWT access tokens; the plugin answers the logout path itself,
// and rejects the logged-out session's (or user's) access tokens issued up
// to the logout on every replica, across restarts. Each test starts servers
// of its own and stops them when it ends.

const (
	logoutPath = "/backchannel-logout"
	// logoutAudience is the client id the edge accepts logout tokens for.
	logoutAudience = "edge-rp"
)

// logoutData fills testdata/logout-dynamic.yml.tmpl.
type logoutData struct {
	APIURL, LogoutPath, Issuer, JWKSURL, RedisAddress, PersistPath, LogoutMatch string
	Audiences                                                                   []string
	// Options are further middleware options, as YAML values.
	Options map[string]string
}

// logoutEnv is one test's provider stand-in, with the replica
// environment's Traefik binary, API and client.
type logoutEnv struct {
	*replicaEnv
	op *harness.OIDC
}

func newLogoutEnv(t *testing.T) *logoutEnv {
	t.Helper()
	return &logoutEnv{replicaEnv: newReplicaEnv(t), op: harness.StartOIDC(t)}
}

// config is the default configuration: the stand-in as issuer, its JWKS
// URL, our audience (and another client's), Redis and persistPath as given.
func (e *logoutEnv) config(redisAddress, persistPath string) logoutData {
	return logoutData{
		LogoutPath: logoutPath, Issuer: e.op.URL, JWKSURL: e.op.JWKSURL,
		Audiences:    []string{"another-client", logoutAudience},
		RedisAddress: redisAddress, PersistPath: persistPath,
	}
}

// startEdge starts a Traefik with data in dir, stopped when the test ends,
// and returns once its routers are live (not once keys are cached).
func (e *logoutEnv) startEdge(t *testing.T, dir string, data logoutData) *harness.Traefik {
	t.Helper()
	data.APIURL = e.api.URL
	return e.startFrom(t, dir, "logout-dynamic.yml.tmpl", data, replicaStatsPath)
}

// startUsable is startEdge, then waits until the denylist is ready and
// both of the provider's keys are cached.
func (e *logoutEnv) startUsable(t *testing.T, dir string, data logoutData) *harness.Traefik {
	t.Helper()
	tr := e.startEdge(t, dir, data)
	e.waitStats(t, tr, "denylist ready and both keys cached", 30*time.Second, func(st replicaStats) bool {
		return st.Ready && st.JWKSKeys == 2
	})
	return tr
}

// startSingle starts the test's provider and one usable Traefik without
// Redis or persistPath, its default configuration changed by change (nil:
// unchanged).
func startSingle(t *testing.T, change func(*logoutData)) (*logoutEnv, *harness.Traefik) {
	t.Helper()
	e := newLogoutEnv(t)
	data := e.config("", "")
	if change != nil {
		change(&data)
	}
	return e, e.startUsable(t, t.TempDir(), data)
}

// startPair starts a Redis and two usable replicas A and B sharing it.
func (e *logoutEnv) startPair(t *testing.T) (a, b *harness.Traefik) {
	t.Helper()
	rds := startRedis(t)
	return e.startUsable(t, t.TempDir(), e.config(rds.Addr(), "")), e.startUsable(t, t.TempDir(), e.config(rds.Addr(), ""))
}

// postLogout sends token to tr's back-channel logout path as the OpenID
// provider does: a form POST with logout_token.
func (e *logoutEnv) postLogout(t *testing.T, tr *harness.Traefik, token string) response {
	t.Helper()
	form := url.Values{"logout_token": {token}}
	req, err := http.NewRequest(http.MethodPost, tr.URL+logoutPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", logoutPath, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// mustLogout posts token and wants the success answer: 200, no-store, an
// empty body, and nothing forwarded to the API.
func (e *logoutEnv) mustLogout(t *testing.T, tr *harness.Traefik, token string) {
	t.Helper()
	calls := e.api.Calls.Load()
	r := e.postLogout(t, tr, token)
	if r.status != http.StatusOK || r.body != "" {
		t.Fatalf("%s: logout answered %d %q, want 200 and an empty body\n%s", tr.URL, r.status, r.body, logTail(tr))
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("logout success: Cache-Control %q, want no-store", cc)
	}
	if n := e.api.Calls.Load() - calls; n != 0 {
		t.Errorf("the logout reached the API (%d calls): the edge must answer it itself", n)
	}
}

// mustRefuse posts token and wants the refusal: 400, no-store, and a JSON
// error invalid_request with a description. It returns the description.
// The description's member name is TestLogoutRefusalBody's business: here
// error_description (OAuth 2.0) and the plugin's errorDescription both do.
func (e *logoutEnv) mustRefuse(t *testing.T, tr *harness.Traefik, token string) string {
	t.Helper()
	r := e.postLogout(t, tr, token)
	if r.status != http.StatusBadRequest {
		t.Fatalf("%s: logout answered %d %q, want 400\n%s", tr.URL, r.status, r.body, logTail(tr))
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("logout refusal: Cache-Control %q, want no-store", cc)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("logout refusal: Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("logout refusal body %q: %v", r.body, err)
	}
	desc, _ := body["error_description"].(string)
	if desc == "" {
		desc, _ = body["errorDescription"].(string)
	}
	if body["error"] != "invalid_request" || desc == "" {
		t.Errorf("logout refusal body %s: want error invalid_request and a description", r.body)
	}
	return desc
}

// sleepPastSecond sleeps until the Unix second after iat has begun, so a
// token issued next has a later iat.
func sleepPastSecond(iat int64) {
	time.Sleep(time.Until(time.Unix(iat+1, 0).Add(20 * time.Millisecond)))
}

// iatOf is the iat claim of claims made by the stand-in.
func iatOf(c harness.Claims) int64 { return c["iat"].(int64) }

func TestLogoutSessionOnReplicas(t *testing.T) {
	t.Parallel()
	e := newLogoutEnv(t)
	a, b := e.startPair(t)

	// One logout per key, the first posted to A, the second to B: each
	// rejects its session's tokens on both replicas and nothing else.
	for _, tc := range []struct {
		alg      string
		from, to *harness.Traefik
	}{{harness.RS256, a, b}, {harness.ES256, b, a}} {
		t.Run(tc.alg, func(t *testing.T) {
			sid := "session-" + tc.alg
			loggedOut := []string{
				e.op.AccessToken(harness.RS256, "alice", sid),
				e.op.AccessToken(harness.ES256, "alice", sid),
			}
			others := []string{
				e.op.AccessToken(harness.RS256, "alice", sid+"-other"), // the same user's other session
				e.op.AccessToken(harness.RS256, "alice", ""),           // the same user, no session
				e.op.AccessToken(harness.ES256, "bob", "bob-"+sid),
			}
			for _, tr := range []*harness.Traefik{a, b} {
				assertAccepted(t, tr, append(loggedOut, others...))
			}

			e.mustLogout(t, tc.from, e.op.Logout(tc.alg, logoutAudience, sid, "alice"))
			// The replica that answered 200 has applied it; the other one
			// learns it through Redis.
			assertAllRevoked(t, tc.from, loggedOut)
			for _, token := range loggedOut {
				e.waitRejected(t, tc.to, token, 5*time.Second)
			}
			assertAllRevoked(t, tc.to, loggedOut)
			for _, tr := range []*harness.Traefik{a, b} {
				assertAccepted(t, tr, others)
			}
		})
	}
	for _, tr := range []*harness.Traefik{a, b} {
		st := e.waitStats(t, tr, "two session rules", 5*time.Second, func(st replicaStats) bool { return st.LogoutRules == 2 })
		// Two logouts, each applied once on each replica: one received
		// there, one replicated from the other.
		if st.Logouts != 2 {
			t.Errorf("%s: stats say logouts %d after two logouts: %s", tr.URL, st.Logouts, st.Raw)
		}
	}
}

func TestLogoutTokenIssuedAfterPasses(t *testing.T) {
	t.Parallel()
	e, tr := startSingle(t, nil)

	// Issued before the logout: made first, so its iat is at most the logout's.
	before := e.op.AccessToken(harness.RS256, "alice", "session-1")
	claims := e.op.LogoutClaims(logoutAudience, "session-1", "alice")
	iat := iatOf(claims)
	// Issued in the very second of the logout: "at or before" rejects it.
	same := e.op.AccessClaims("alice", "session-1")
	same["iat"] = iat
	sameSecond := e.op.Key(harness.ES256).Sign("JWT", same)

	e.mustLogout(t, tr, e.op.Key(harness.RS256).Sign("logout+jwt", claims))
	assertAllRevoked(t, tr, []string{before, sameSecond})

	sleepPastSecond(iat)
	after := []string{
		e.op.AccessToken(harness.RS256, "alice", "session-1"),
		e.op.AccessToken(harness.ES256, "alice", "session-1"),
	}
	assertAccepted(t, tr, after)
	assertAllRevoked(t, tr, []string{before, sameSecond})
}

func TestLogoutForgedTokensRefused(t *testing.T) {
	t.Parallel()
	e, tr := startSingle(t, nil)

	// Every forgery names the victim's session and user, so a logout that
	// slipped through would reject the victim's tokens whatever it matched.
	const victim, victimSID = "victim", "victim-session"
	victimTokens := []string{
		e.op.AccessToken(harness.RS256, victim, victimSID),
		e.op.AccessToken(harness.ES256, victim, ""),
	}
	assertAccepted(t, tr, victimTokens)
	valid := func() harness.Claims { return e.op.LogoutClaims(logoutAudience, victimSID, victim) }
	with := func(change func(harness.Claims)) harness.Claims {
		c := valid()
		change(c)
		return c
	}
	rs := e.op.Key(harness.RS256)
	unpublished, err := harness.NewSigningKey(harness.RS256, "not-in-the-jwks")
	if err != nil {
		t.Fatal(err)
	}
	mustForge := func(token string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	now := time.Now()
	cases := []struct {
		name, token string
	}{
		{"UnknownKey", unpublished.Sign("logout+jwt", valid())},
		{"ForgedRS256SameKID", mustForge(e.op.Forge(harness.RS256, "logout+jwt", valid()))},
		{"ForgedES256SameKID", mustForge(e.op.Forge(harness.ES256, "logout+jwt", valid()))},
		{"BadSignature", tamperSignature(rs.Sign("logout+jwt", valid()))},
		{"PayloadSwapped", swapPayload(e.op.Logout(harness.RS256, logoutAudience, "harmless", "nobody"), e.op.Unsigned("logout+jwt", valid()))},
		{"HS256WithPublicKey", mustForge(e.op.SignHS256WithPublicKey("logout+jwt", valid()))},
		{"AlgNone", e.op.Unsigned("logout+jwt", valid())},
		{"WrongIssuer", rs.Sign("logout+jwt", with(func(c harness.Claims) { c["iss"] = e.op.URL + "/other" }))},
		{"WrongAudience", rs.Sign("logout+jwt", with(func(c harness.Claims) { c["aud"] = "someone-else" }))},
		{"MissingEvents", rs.Sign("logout+jwt", with(func(c harness.Claims) { delete(c, "events") }))},
		{"OtherEvent", rs.Sign("logout+jwt", with(func(c harness.Claims) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
		}))},
		{"NoncePresent", rs.Sign("logout+jwt", with(func(c harness.Claims) { c["nonce"] = "n-0S6_WzA2Mj" }))},
		{"MissingJTI", rs.Sign("logout+jwt", with(func(c harness.Claims) { delete(c, "jti") }))},
		{"NeitherSidNorSub", rs.Sign("logout+jwt", with(func(c harness.Claims) { delete(c, "sid"); delete(c, "sub") }))},
		{"IatTooOld", rs.Sign("logout+jwt", with(func(c harness.Claims) { c["iat"] = now.Add(-10 * time.Minute).Unix() }))},
		{"IatInTheFuture", rs.Sign("logout+jwt", with(func(c harness.Claims) {
			c["iat"], c["exp"] = now.Add(10*time.Minute).Unix(), now.Add(12*time.Minute).Unix()
		}))},
		{"Expired", rs.Sign("logout+jwt", with(func(c harness.Claims) {
			c["iat"], c["exp"] = now.Add(-time.Minute).Unix(), now.Add(-30*time.Second).Unix()
		}))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("refused: %s", e.mustRefuse(t, tr, tc.token))
			assertAccepted(t, tr, victimTokens)
		})
	}

	t.Run("ReplayedJTI", func(t *testing.T) {
		// A real logout of another session is applied once; sent again,
		// or its jti reused for the victim's session, it is refused.
		first := e.op.LogoutClaims(logoutAudience, "other-session", "other-user")
		token := rs.Sign("logout+jwt", first)
		otherTokens := []string{e.op.AccessToken(harness.RS256, "other-user", "other-session")}
		e.mustLogout(t, tr, token)
		assertAllRevoked(t, tr, otherTokens)
		t.Logf("replay refused: %s", e.mustRefuse(t, tr, token))
		t.Logf("reused jti refused: %s", e.mustRefuse(t, tr, rs.Sign("logout+jwt", with(func(c harness.Claims) { c["jti"] = first["jti"] }))))
		assertAccepted(t, tr, victimTokens)
	})

	st, err := e.stats(tr)
	if err != nil || st.Logouts != 1 || st.LogoutRules != 1 {
		t.Errorf("stats after %d refused logouts and one applied: %s (%v), want logouts 1, logoutRules 1", len(cases)+2, st.Raw, err)
	}
}

// TestLogoutRefusalBody checks the refusal's body: the issue asks for the
// seed's (the revoke endpoint contract's) error shape, error and
// errorDescription, and nothing else. (OAuth 2.0 §5.2, which Back-Channel
// Logout 1.0 §2.8 allows, names the second member error_description; the
// edge keeps one error shape for every answer it writes.)
func TestLogoutRefusalBody(t *testing.T) {
	t.Parallel()
	e, tr := startSingle(t, nil)
	claims := e.op.LogoutClaims(logoutAudience, "s1", "u1")
	claims["nonce"] = "n-0S6_WzA2Mj"
	e.mustRefuse(t, tr, e.op.Key(harness.RS256).Sign("logout+jwt", claims))
	r := e.postLogout(t, tr, "not-a-jwt")
	var body map[string]any
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("logout refusal body %q: %v", r.body, err)
	}
	if desc, _ := body["errorDescription"].(string); r.status != http.StatusBadRequest || body["error"] != "invalid_request" || desc == "" || len(body) != 2 {
		t.Errorf("logout refusal: %d %s, want 400 {\"error\":\"invalid_request\",\"errorDescription\":...}", r.status, r.body)
	}
}

// tamperSignature changes one character in the middle of the signature.
func tamperSignature(token string) string {
	i := strings.LastIndexByte(token, '.') + 20
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

// swapPayload puts other's payload in place of signed's, keeping signed's
// header and signature.
func swapPayload(signed, other string) string {
	s, o := strings.Split(signed, "."), strings.Split(other, ".")
	return s[0] + "." + o[1] + "." + s[2]
}

func TestLogoutSubjectOnReplicas(t *testing.T) {
	t.Parallel()
	e := newLogoutEnv(t)
	a, b := e.startPair(t)

	carol := []string{
		e.op.AccessToken(harness.RS256, "carol", "carol-1"),
		e.op.AccessToken(harness.ES256, "carol", "carol-2"),
		e.op.AccessToken(harness.RS256, "carol", ""),
	}
	dave := []string{
		e.op.AccessToken(harness.RS256, "dave", "dave-1"),
		e.op.AccessToken(harness.ES256, "dave", ""),
	}
	assertAccepted(t, a, append(carol, dave...))
	assertAccepted(t, b, append(carol, dave...))

	// sub only: every token of carol's issued up to the logout, any session.
	claims := e.op.LogoutClaims(logoutAudience, "", "carol")
	e.mustLogout(t, b, e.op.Key(harness.ES256).Sign("logout+jwt", claims))
	assertAllRevoked(t, b, carol)
	for _, token := range carol {
		e.waitRejected(t, a, token, 5*time.Second)
	}
	assertAllRevoked(t, a, carol)
	assertAccepted(t, a, dave)
	assertAccepted(t, b, dave)

	sleepPastSecond(iatOf(claims))
	fresh := []string{e.op.AccessToken(harness.RS256, "carol", "carol-1"), e.op.AccessToken(harness.ES256, "carol", "")}
	assertAccepted(t, a, fresh)
	assertAccepted(t, b, fresh)
}

func TestLogoutMatchSubject(t *testing.T) {
	t.Parallel()
	e, tr := startSingle(t, func(d *logoutData) { d.LogoutMatch = "sub" })

	// With logoutMatch: sub, a logout that names a session too logs the
	// whole user out.
	erin := []string{
		e.op.AccessToken(harness.RS256, "erin", "erin-1"),
		e.op.AccessToken(harness.ES256, "erin", "erin-2"),
		e.op.AccessToken(harness.RS256, "erin", ""),
	}
	frank := []string{e.op.AccessToken(harness.RS256, "frank", "frank-1"), e.op.AccessToken(harness.ES256, "frank", "")}
	assertAccepted(t, tr, append(erin, frank...))
	e.mustLogout(t, tr, e.op.Logout(harness.RS256, logoutAudience, "erin-1", "erin"))
	assertAllRevoked(t, tr, erin)
	assertAccepted(t, tr, frank)
}

func TestLogoutNestedSessionClaim(t *testing.T) {
	t.Parallel()
	e, tr := startSingle(t, func(d *logoutData) { d.Options = map[string]string{"sessionClaim": "ext.sid"} })

	// Hydra-style access tokens carry the session under ext.sid.
	nested := func(sub, sid string) string {
		c := e.op.AccessClaims(sub, "")
		c["ext"] = map[string]any{"sid": sid}
		return e.op.Key(harness.RS256).Sign("JWT", c)
	}
	loggedOut := []string{nested("nina", "nina-1")}
	otherSession := nested("nina", "nina-2")
	// The session claim is ext.sid: a top-level sid is not compared.
	topLevel := e.op.AccessToken(harness.RS256, "nina", "nina-1")
	assertAccepted(t, tr, append(loggedOut, otherSession, topLevel))
	e.mustLogout(t, tr, e.op.Logout(harness.ES256, logoutAudience, "nina-1", "nina"))
	assertAllRevoked(t, tr, loggedOut)
	assertAccepted(t, tr, []string{otherSession})
	if status, _, err := e.call(tr, topLevel); err != nil || status != http.StatusOK {
		t.Errorf("sessionClaim ext.sid: a token without ext whose top-level sid is the logged-out session got %d %v, want 200", status, err)
	}
}

func TestLogoutRulesSurviveRestart(t *testing.T) {
	t.Parallel()
	t.Run("NewReplicaFromRedis", func(t *testing.T) {
		t.Parallel()
		e := newLogoutEnv(t)
		rds := startRedis(t)
		a := e.startUsable(t, t.TempDir(), e.config(rds.Addr(), ""))
		loggedOut, kept, iat := logOutSessionAndUser(t, e, a)
		// Every rule has left A for Redis; then A goes, so only Redis can
		// tell the new replica.
		e.waitStats(t, a, "A's queue flushed", 20*time.Second, func(st replicaStats) bool { return st.Queued == 0 })
		a.Stop()

		b := e.startEdge(t, t.TempDir(), e.config(rds.Addr(), ""))
		e.waitStats(t, b, "new replica ready", 30*time.Second, func(st replicaStats) bool { return st.Ready })
		checkRestored(t, e, b, loggedOut, kept, iat)
	})
	t.Run("PersistPathWithoutRedis", func(t *testing.T) {
		t.Parallel()
		e := newLogoutEnv(t)
		persist := filepath.Join(t.TempDir(), "revocations.bin")
		first := e.startUsable(t, t.TempDir(), e.config("", persist))
		loggedOut, kept, iat := logOutSessionAndUser(t, e, first)
		first.Stop()

		second := e.startEdge(t, t.TempDir(), e.config("", persist))
		checkRestored(t, e, second, loggedOut, kept, iat)
		if st, _ := e.stats(second); st.Redis != "off" {
			t.Errorf("stats after restart: %s, want redis off", st.Raw)
		}
	})
}

// logOutSessionAndUser applies a session logout and a user logout through
// tr and returns the tokens they reject, tokens they leave alone, and the
// later logout's iat.
func logOutSessionAndUser(t *testing.T, e *logoutEnv, tr *harness.Traefik) (loggedOut, kept []string, iat int64) {
	t.Helper()
	loggedOut = []string{
		e.op.AccessToken(harness.RS256, "gina", "gina-1"),
		e.op.AccessToken(harness.ES256, "hank", "hank-1"),
		e.op.AccessToken(harness.RS256, "hank", ""),
	}
	kept = []string{
		e.op.AccessToken(harness.RS256, "gina", "gina-2"),
		e.op.AccessToken(harness.ES256, "ivan", "ivan-1"),
	}
	assertAccepted(t, tr, append(loggedOut, kept...))
	e.mustLogout(t, tr, e.op.Logout(harness.RS256, logoutAudience, "gina-1", "gina"))
	claims := e.op.LogoutClaims(logoutAudience, "", "hank")
	e.mustLogout(t, tr, e.op.Key(harness.ES256).Sign("logout+jwt", claims))
	assertAllRevoked(t, tr, loggedOut)
	assertAccepted(t, tr, kept)
	return loggedOut, kept, iatOf(claims)
}

// checkRestored wants a restarted or new Traefik to reject loggedOut from
// its first request on, and to pass kept and tokens issued after the
// logouts. A rule that only arrives later is reported, with how long it took.
func checkRestored(t *testing.T, e *logoutEnv, tr *harness.Traefik, loggedOut, kept []string, iat int64) {
	t.Helper()
	for _, token := range loggedOut {
		if status, challenge, err := e.call(tr, token); err != nil || status != http.StatusUnauthorized || challenge != revokedWWW {
			st, _ := e.stats(tr)
			t.Errorf("%s: a logged-out token got %d %q %v at the first request; stats %s", tr.URL, status, challenge, err, st.Raw)
			t.Logf("rejected %s later", e.waitRejected(t, tr, token, 10*time.Second))
		}
	}
	assertAllRevoked(t, tr, loggedOut)
	assertAccepted(t, tr, kept)
	if st, _ := e.stats(tr); st.LogoutRules != 2 || st.Logouts != 2 {
		t.Errorf("%s: stats %s, want the two logouts loaded: logoutRules 2, logouts 2", tr.URL, st.Raw)
	}
	sleepPastSecond(iat)
	assertAccepted(t, tr, []string{
		e.op.AccessToken(harness.RS256, "gina", "gina-1"),
		e.op.AccessToken(harness.ES256, "hank", ""),
	})
}

func TestLogoutKeyRotation(t *testing.T) {
	t.Parallel()
	// No jwksURL: the JWKS comes from the issuer's discovery document.
	e, tr := startSingle(t, func(d *logoutData) { d.JWKSURL = "" })

	oldKey := e.op.Key(harness.RS256)
	e.mustLogout(t, tr, e.op.Logout(harness.RS256, logoutAudience, "jill-1", "jill"))
	if err := e.op.Rotate(); err != nil {
		t.Fatal(err)
	}
	// The plugin refetches on an unknown kid at most once every 5 s: from
	// 5 s after the last fetch, the first logout under a new kid must pass.
	_, last := e.op.JWKSFetches()
	time.Sleep(time.Until(last.Add(5*time.Second + 200*time.Millisecond)))
	before, _ := e.op.JWKSFetches()

	tokens := []string{e.op.AccessToken(harness.RS256, "kate", "kate-1"), e.op.AccessToken(harness.ES256, "kate", "kate-1")}
	assertAccepted(t, tr, tokens)
	newToken := e.op.Logout(harness.RS256, logoutAudience, "kate-1", "kate")
	if r := e.postLogout(t, tr, newToken); r.status != http.StatusOK {
		t.Errorf("the first logout under the new kid %s got %d %q, want 200 (refetch on an unknown kid)", e.op.Key(harness.RS256).KID, r.status, r.body)
		retryLogout(t, e, tr, newToken, 15*time.Second)
	}
	if after, _ := e.op.JWKSFetches(); after <= before {
		t.Errorf("JWKS fetches %d before and %d after the logout under a new kid: no refetch", before, after)
	}
	assertAllRevoked(t, tr, tokens)
	// The new EC key came with the same document; the old RSA key is gone.
	e.mustLogout(t, tr, e.op.Logout(harness.ES256, logoutAudience, "kate-2", "kate"))
	t.Logf("old key refused: %s", e.mustRefuse(t, tr, oldKey.Sign("logout+jwt", e.op.LogoutClaims(logoutAudience, "kate-3", "kate"))))
	if st, _ := e.stats(tr); st.JWKSKeys != 2 || st.Logouts != 3 {
		t.Errorf("stats: %s, want jwksKeys 2 and logouts 3", st.Raw)
	}
}

// retryLogout posts token every 250 ms until it is accepted, and fails the
// test after timeout. It returns how long that took.
func retryLogout(t *testing.T, e *logoutEnv, tr *harness.Traefik, token string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := e.postLogout(t, tr, token)
		if r.status == http.StatusOK {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			st, _ := e.stats(tr)
			t.Fatalf("%s: logout still %d %q after %s of retries; stats %s\n%s", tr.URL, r.status, r.body, timeout, st.Raw, logTail(tr))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestLogoutProviderDownAtStart(t *testing.T) {
	t.Parallel()
	for _, discovery := range []bool{false, true} {
		name := "JWKSURL"
		if discovery {
			name = "Discovery"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newLogoutEnv(t)
			data := e.config("", "")
			if discovery {
				data.JWKSURL = ""
			}
			// Connection refused while Traefik starts.
			e.op.Stop()
			tr := e.startEdge(t, t.TempDir(), data)
			e.waitStats(t, tr, "denylist ready", 30*time.Second, func(st replicaStats) bool { return st.Ready })

			tokens := []string{e.op.AccessToken(harness.RS256, "lena", "lena-1"), e.op.AccessToken(harness.ES256, "lena", "")}
			token := e.op.Logout(harness.RS256, logoutAudience, "lena-1", "lena")
			t.Logf("while refused: %s", e.mustRefuse(t, tr, token))
			// Back on its port, but answering 503.
			e.op.SetDown(true)
			if err := e.op.Restart(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			t.Logf("while 503: %s", e.mustRefuse(t, tr, token))
			assertAccepted(t, tr, tokens)
			if st, _ := e.stats(tr); st.JWKSKeys != 0 || st.Logouts != 0 {
				t.Errorf("stats while the provider is down: %s, want jwksKeys 0 and logouts 0", st.Raw)
			}

			// Up: the provider retries the same logout, which must pass soon.
			e.op.SetDown(false)
			took := retryLogout(t, e, tr, token, 15*time.Second)
			t.Logf("logout accepted %s after the provider came back", took.Round(time.Millisecond))
			assertAllRevoked(t, tr, tokens[:1])
			assertAccepted(t, tr, tokens[1:])
			e.waitStats(t, tr, "both keys cached", 5*time.Second, func(st replicaStats) bool { return st.JWKSKeys == 2 && st.Logouts == 1 })
		})
	}
}

// TestOIDCStandIn checks the provider stand-in without Traefik: its
// discovery and JWKS parse, its tokens verify with the plugin's own
// verifier and pass as logout tokens, its forgeries do not, and rotation,
// 503 and a closed listener behave as the Traefik tests assume.
func TestOIDCStandIn(t *testing.T) {
	t.Parallel()
	op := harness.StartOIDC(t)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(u string) (int, []byte, error) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	fetchKeys := func() *jose.KeySet {
		t.Helper()
		status, body, err := get(op.URL + "/.well-known/openid-configuration")
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &disc) != nil || disc.Issuer != op.URL || disc.JWKSURI != op.JWKSURL {
			t.Fatalf("discovery: %d %s %v", status, body, err)
		}
		status, body, err = get(disc.JWKSURI)
		if err != nil || status != http.StatusOK {
			t.Fatalf("JWKS: %d %s %v", status, body, err)
		}
		keys, err := jose.ParseJWKS(body)
		if err != nil || keys.Len() != 2 {
			t.Fatalf("JWKS %s: %v", body, err)
		}
		return keys
	}
	opts := func() *jose.LogoutOptions {
		return &jose.LogoutOptions{Issuer: op.URL, Audiences: []string{logoutAudience}}
	}
	verifyLogout := func(keys *jose.KeySet, token string) error {
		c, err := jose.Verify(token, keys, time.Time{}, jose.VerifyOptions{})
		if err != nil {
			return err
		}
		return jose.ValidateLogoutToken(c, c.Header, opts())
	}

	keys := fetchKeys()
	for _, alg := range []string{harness.RS256, harness.ES256} {
		token := op.Logout(alg, logoutAudience, "s1", "u1")
		if err := verifyLogout(keys, token); err != nil {
			t.Errorf("%s logout token: %v", alg, err)
		}
		c, err := jose.Verify(op.AccessToken(alg, "u1", "s1"), keys, time.Time{}, jose.VerifyOptions{})
		if err != nil || c.Subject != "u1" || c.SID != "s1" || c.IssuedAt.IsZero() || c.Expiry.IsZero() || c.Header.Typ != "JWT" {
			t.Errorf("%s access token: %+v %v", alg, c, err)
		}
		forged, err := op.Forge(alg, "logout+jwt", op.LogoutClaims(logoutAudience, "s1", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyLogout(keys, forged); err == nil {
			t.Errorf("%s forged token verified", alg)
		}
	}
	valid := op.LogoutClaims(logoutAudience, "s1", "u1")
	hs, err := op.SignHS256WithPublicKey("logout+jwt", valid)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{
		"HS256":     hs,
		"none":      op.Unsigned("logout+jwt", valid),
		"tampered":  tamperSignature(op.Key(harness.RS256).Sign("logout+jwt", valid)),
		"swapped":   swapPayload(op.Logout(harness.RS256, logoutAudience, "s2", "u2"), op.Unsigned("logout+jwt", valid)),
		"wrong aud": op.Logout(harness.RS256, "someone-else", "s1", "u1"),
	} {
		if err := verifyLogout(keys, token); err == nil {
			t.Errorf("%s token verified", name)
		}
	}

	oldKID := op.Key(harness.RS256).KID
	oldToken := op.Logout(harness.RS256, logoutAudience, "s1", "u1")
	if err := op.Rotate(); err != nil {
		t.Fatal(err)
	}
	rotated := fetchKeys()
	if op.Key(harness.RS256).KID == oldKID {
		t.Errorf("rotation kept kid %s", oldKID)
	}
	if err := verifyLogout(rotated, oldToken); err == nil {
		t.Error("a token under a rotated-out key verified against the new JWKS")
	}
	if err := verifyLogout(rotated, op.Logout(harness.ES256, logoutAudience, "s1", "u1")); err != nil {
		t.Errorf("new ES256 key: %v", err)
	}

	op.SetDown(true)
	for _, u := range []string{op.URL + "/.well-known/openid-configuration", op.JWKSURL} {
		if status, _, err := get(u); err != nil || status != http.StatusServiceUnavailable {
			t.Errorf("down: %s answered %d %v, want 503", u, status, err)
		}
	}
	op.SetDown(false)
	op.Stop()
	if _, _, err := get(op.JWKSURL); err == nil {
		t.Error("stopped: the JWKS still answers")
	}
	if err := op.Restart(); err != nil {
		t.Fatal(err)
	}
	fetchKeys()
	if n, last := op.JWKSFetches(); n != 3 || time.Since(last) > 5*time.Second {
		t.Errorf("JWKS fetches: %d, last %s; want 3, just now", n, last)
	}
}
