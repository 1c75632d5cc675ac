package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// OpenID Connect Back-Channel Logout against a real Ory Hydra. Ending a
// remembered login session by its sid on Hydra's admin API makes Hydra post
// a logout token to the back-channel logout URI of every client that session
// logged in to. Hydra itself leaves every token it issued active; the edge,
// which learned each grant's sid from the ID token crossing tokenPath
// (trackGrants), must reject that session's access tokens and refresh
// tokens, but no other session's, on every replica, and keep the refresh
// tokens of grants with offline_access (BCL 1.0 section 2.7).
//
// Each access token strategy has a Hydra of its own, whose scenarios run one
// after the other (its in-memory SQLite store fails concurrent writes, see
// TestHydraTraefik). The Delivery scenario has no edge: it pins down what
// Hydra sends (one logout token per client of the session, sid and no sub,
// no exp).

const (
	hydraLogoutPath = "/backchannel-logout"
	// backchannelLogoutEvent is the logout token's events member (BCL 2.4).
	backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
	// logoutWait bounds the wait for a logout's effect: Hydra posts logout
	// tokens from goroutines of their own after the revoke has answered.
	logoutWait = 10 * time.Second
	// hydraLogoutDelivered is what Hydra logs once a back-channel logout
	// URI answered 200 or 204, and hydraLogoutFailed what it logs otherwise.
	hydraLogoutDelivered = "msg=Back-Channel Logout Request "
	hydraLogoutFailed    = "Unable to execute OpenID Connect Back-Channel Logout Request"
)

func TestHydraLogout(t *testing.T) {
	for _, strategy := range []struct {
		name string
		jwt  bool
	}{{"opaque", false}, {"jwt", true}} {
		t.Run(strategy.name, func(t *testing.T) {
			t.Parallel() // a Hydra each
			h := harness.StartHydra(t, harness.HydraOptions{JWT: strategy.jwt})
			if !strategy.jwt {
				// What Hydra sends does not depend on its access tokens.
				t.Run("Delivery", func(t *testing.T) { testHydraLogoutDelivery(t, h) })
			}
			e := &hydraEdge{replicaEnv: newReplicaEnv(t), hydra: h}
			t.Run("Replicas", func(t *testing.T) { testEdgeLogout(t, e) })
			t.Run("LogoutOfflineAccess", func(t *testing.T) { testEdgeLogoutOfflineAccess(t, e) })
		})
	}
}

// login runs a remembered authorization code login of subject through
// browser (nil: a new one, hence a login session of its own) for scope
// (empty: c's), with the token request sent to baseURL (empty: Hydra
// itself), and checks that the ID token names the login session.
func login(t *testing.T, h *harness.Hydra, c harness.Client, baseURL, subject string, browser *harness.Browser, scope string) harness.TokenSet {
	t.Helper()
	ts := h.AuthCodeWith(t, c, baseURL, harness.AuthCodeOptions{
		Subject: subject, Remember: true, Browser: browser, Scope: scope,
	})
	claims, err := harness.JWTClaims(ts.IDToken)
	if err != nil {
		t.Fatalf("ID token: %v in %s", err, ts.Raw)
	}
	if ts.SessionID == "" || claims["sid"] != ts.SessionID || claims["sub"] != subject {
		t.Fatalf("ID token claims %v, want sub %s and sid %q (the login session)", claims, subject, ts.SessionID)
	}
	return ts
}

// logoutDelivery is one back-channel logout request a recorder received
// and, when it forwards them, the answer it got.
type logoutDelivery struct {
	path, contentType string
	token             string
	status            int    // the forwarded request's answer
	cacheControl      string // its Cache-Control
}

// logoutRecorder is a back-channel logout URI that records what it is sent
// and answers 200 itself, or passes the request on and records the answer.
type logoutRecorder struct {
	*httptest.Server
	mu         sync.Mutex
	deliveries []logoutDelivery
}

// startLogoutRecorder starts a recorder that answers itself (forward empty)
// or passes each request on to forward plus the request's path.
func startLogoutRecorder(t *testing.T, forward string) *logoutRecorder {
	t.Helper()
	r := &logoutRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.ParseForm() != nil {
			http.Error(w, "not a form post", http.StatusBadRequest)
			return
		}
		d := logoutDelivery{
			path:        req.URL.Path,
			contentType: req.Header.Get("Content-Type"),
			token:       req.PostForm.Get("logout_token"),
			status:      http.StatusOK,
		}
		var body []byte
		if forward != "" {
			resp, err := http.Post(forward+req.URL.Path, "application/x-www-form-urlencoded", strings.NewReader(req.PostForm.Encode()))
			if err != nil {
				d.status, body = http.StatusBadGateway, []byte(err.Error())
			} else {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				d.status, d.cacheControl = resp.StatusCode, resp.Header.Get("Cache-Control")
			}
		}
		r.mu.Lock()
		r.deliveries = append(r.deliveries, d)
		r.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(d.status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(r.Close)
	return r
}

// received returns what has arrived so far.
func (r *logoutRecorder) received() []logoutDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// wait returns the deliveries once there are at least n, failing t after
// timeout.
func (r *logoutRecorder) wait(t *testing.T, n int, timeout time.Duration) []logoutDelivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d back-channel logouts within %s, want %d: %+v", len(got), timeout, n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jwtHeader decodes a JWT's header without checking anything else.
func jwtHeader(token string) (map[string]any, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return nil, fmt.Errorf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, err
	}
	var header map[string]any
	return header, json.Unmarshal(raw, &header)
}

// hydraKeyIDs are the key IDs Hydra publishes at its jwks_uri.
func hydraKeyIDs(t *testing.T, h *harness.Hydra) []string {
	t.Helper()
	resp, err := http.Get(h.PublicURL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: %d %v", resp.StatusCode, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// What Hydra sends, with no edge in between: which login sessions the
// headless logins make, which logouts reach which client, and what a logout
// token holds. The edge scenarios build on these facts.
func testHydraLogoutDelivery(t *testing.T, h *harness.Hydra) {
	rec := startLogoutRecorder(t, "")
	newClient := func(path string) harness.Client {
		return h.CreateClient(t, harness.ClientOptions{
			GrantTypes:                       []string{"authorization_code", "refresh_token"},
			BackchannelLogoutURI:             rec.URL + path,
			BackchannelLogoutSessionRequired: true,
		})
	}
	web, mobile := newClient("/web"), newClient("/mobile")

	// Alice's laptop logs in to both clients: one login session. Her phone
	// has a session of its own, and so has Bob.
	laptop := harness.NewBrowser()
	laptopWeb := login(t, h, web, "", "alice", laptop, "")
	laptopMobile := login(t, h, mobile, "", "alice", laptop, "")
	phone := login(t, h, web, "", "alice", nil, "")
	bob := login(t, h, web, "", "bob", nil, "")
	if laptopMobile.SessionID != laptopWeb.SessionID {
		t.Fatalf("two logins through one browser: sessions %s and %s, want one", laptopWeb.SessionID, laptopMobile.SessionID)
	}
	if phone.SessionID == laptopWeb.SessionID || bob.SessionID == laptopWeb.SessionID || bob.SessionID == phone.SessionID {
		t.Fatalf("login sessions laptop %s, phone %s, bob %s: want three", laptopWeb.SessionID, phone.SessionID, bob.SessionID)
	}

	// Revoking by subject sends no logout; revoking by sid sends one per
	// client of that session, and none for the other sessions.
	h.RevokeSubjectSessions(t, "bob")
	h.RevokeLoginSession(t, laptopWeb.SessionID)
	rec.wait(t, 2, logoutWait)
	time.Sleep(300 * time.Millisecond) // room for a delivery that should not come
	got := rec.received()
	if len(got) != 2 {
		t.Fatalf("%d back-channel logouts, want 2 (web and mobile, the laptop's session): %+v", len(got), got)
	}

	kids := hydraKeyIDs(t, h)
	paths := map[string]string{"/web": web.ID, "/mobile": mobile.ID}
	for _, d := range got {
		clientID, ok := paths[d.path]
		if !ok {
			t.Fatalf("logout to %s, want /web and /mobile once each", d.path)
		}
		delete(paths, d.path)
		if d.contentType != "application/x-www-form-urlencoded" {
			t.Errorf("logout to %s: Content-Type %q", d.path, d.contentType)
		}
		header, err := jwtHeader(d.token)
		if err != nil {
			t.Fatalf("logout token to %s: header: %v", d.path, err)
		}
		claims, err := harness.JWTClaims(d.token)
		if err != nil {
			t.Fatalf("logout token to %s: %v", d.path, err)
		}
		t.Logf("logout token to %s: header %v claims %v", d.path, header, claims)
		kid, _ := header["kid"].(string)
		if header["alg"] != "RS256" || header["typ"] != "JWT" || !slices.Contains(kids, kid) {
			t.Errorf("logout token header %v, want RS256, typ JWT and a kid of %v", header, kids)
		}
		aud, _ := claims["aud"].([]any)
		events, _ := claims["events"].(map[string]any)
		if claims["iss"] != h.PublicURL || len(aud) != 1 || aud[0] != clientID || claims["sid"] != laptopWeb.SessionID ||
			claims["iat"] == nil || claims["jti"] == nil || events == nil {
			t.Errorf("logout token claims %v, want iss %s, aud [%s], sid %s, iat, jti and events", claims, h.PublicURL, clientID, laptopWeb.SessionID)
		}
		if _, ok := events[backchannelLogoutEvent]; !ok || len(events) != 1 {
			t.Errorf("logout token events %v, want only %s", events, backchannelLogoutEvent)
		}
		// No sub (Hydra names the session only) and no nonce (BCL 2.4).
		for _, name := range []string{"sub", "nonce"} {
			if _, ok := claims[name]; ok {
				t.Errorf("logout token has %s: %v", name, claims)
			}
		}
		// Hydra v2.3.0 sets no exp (executeBackChannelLogout: iss, aud,
		// iat, jti, events, sid): an edge that insisted on exp would
		// refuse every Hydra logout.
		if _, ok := claims["exp"]; ok {
			t.Errorf("logout token has exp %v: Hydra v2.3.0 sent none", claims["exp"])
		}
	}

	// Hydra revokes no token at a logout: stopping them is the clients'
	// (here: the edge's) job.
	for what, token := range map[string]string{
		"the logged-out session's access token":  laptopWeb.AccessToken,
		"the logged-out session's refresh token": laptopWeb.RefreshToken,
		"the other client's access token":        laptopMobile.AccessToken,
	} {
		assertActive(t, h, what, token, true)
	}
}

// logoutEdge is a pair of replicas A and B sharing a Redis, both taking
// logout tokens for the clients; the clients' back-channel logout URI is A.
type logoutEdge struct {
	*hydraEdge
	a, b      *harness.Traefik
	logoutURI string         // A's backchannelLogoutPath, or a recorder before it
	sessions  harness.Client // scope "openid offline_access"
	offline   harness.Client // scope "openid offline offline_access"
}

func testEdgeLogout(t *testing.T, e *hydraEdge) {
	newClient := func(scope string) harness.Client {
		return e.hydra.CreateClient(t, harness.ClientOptions{
			GrantTypes: []string{"authorization_code", "refresh_token"},
			Scope:      scope,
		})
	}
	le := &logoutEdge{hydraEdge: e, sessions: newClient(""), offline: newClient("openid offline offline_access")}
	rds := startRedis(t)
	data := hydraData{
		RedisAddress:          rds.Addr(),
		BackchannelLogoutPath: hydraLogoutPath,
		Issuer:                e.hydra.PublicURL,
		Audiences:             []string{le.sessions.ID, le.offline.ID},
	}
	le.a, le.b = e.startEdge(t, data), e.startEdge(t, data)
	// The edge's audiences are the client IDs Hydra picked, and the
	// logout URI is A's port: set once A is up.
	le.logoutURI = le.a.URL + hydraLogoutPath
	for _, c := range []harness.Client{le.sessions, le.offline} {
		e.hydra.SetBackchannelLogout(t, c, le.logoutURI, true)
	}
	t.Run("NotALogoutToken", le.testNotALogoutToken)
	t.Run("Sessions", le.testSessions)
	t.Run("OfflineAccess", le.testOfflineAccess)
}

// A logout token that does not validate gets the edge's 400, not a 502 from
// the service behind the path (nothing listens there).
func (le *logoutEdge) testNotALogoutToken(t *testing.T) {
	for _, form := range []url.Values{{}, {"logout_token": {"not.a.jwt"}}} {
		r := on(le.a).do(t, http.MethodPost, hydraLogoutPath, formHeader(false), form.Encode())
		if r.status != http.StatusBadRequest {
			t.Fatalf("logout %v: %d %s, want the edge's 400", form, r.status, r.body)
		}
		assertErrorBody(t, r, "invalid_request")
	}
}

// hydraLogoutsDelivered counts the logouts Hydra has delivered to A (the
// logout URI answered 200 or 204), and fails t if one failed.
func (le *logoutEdge) hydraLogoutsDelivered(t *testing.T) int {
	t.Helper()
	log := le.hydra.Log()
	if failed := logLines(log, hydraLogoutFailed); len(failed) > 0 {
		t.Fatalf("Hydra could not deliver a logout:\n%s\n%s", strings.Join(failed, "\n"), logTail(le.a))
	}
	n := 0
	for _, line := range logLines(log, hydraLogoutDelivered) {
		if strings.Contains(line, "backchannel_logout_url="+le.logoutURI+" ") {
			n++
		}
	}
	return n
}

// logLines are the lines of log that contain s.
func logLines(log, s string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// logout revokes the login session sid on Hydra and waits until Hydra has
// delivered n more logouts to the edge (A answered 200 or 204).
func (le *logoutEdge) logout(t *testing.T, sid string, n int) {
	t.Helper()
	before := le.hydraLogoutsDelivered(t)
	le.hydra.RevokeLoginSession(t, sid)
	deadline := time.Now().Add(logoutWait)
	for le.hydraLogoutsDelivered(t) < before+n {
		if time.Now().After(deadline) {
			t.Fatalf("Hydra delivered %d logouts to A within %s, want %d\n%s",
				le.hydraLogoutsDelivered(t)-before, logoutWait, n, logTail(le.a))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, tr := range []*harness.Traefik{le.a, le.b} {
		st := on(tr).stats(t)
		t.Logf("%s: logouts %v, logoutRules %v, jwksKeys %v, grants %v", tr.URL, st["logouts"], st["logoutRules"], st["jwksKeys"], st["grants"])
	}
}

// bothAccept checks that A and B let every token through.
func (le *logoutEdge) bothAccept(t *testing.T, tokens ...string) {
	t.Helper()
	assertAccepted(t, le.a, tokens)
	assertAccepted(t, le.b, tokens)
}

// bothReject polls A and B until they reject every token, then checks the
// exact 401.
func (le *logoutEdge) bothReject(t *testing.T, tokens ...string) {
	t.Helper()
	for _, tr := range []*harness.Traefik{le.a, le.b} {
		for _, token := range tokens {
			le.waitRejected(t, tr, token, logoutWait)
		}
		assertAllRevoked(t, tr, tokens)
	}
}

// refreshRefused checks that tr's token endpoint refuses a refresh with
// refreshToken: the edge's 400 invalid_grant.
func (le *logoutEdge) refreshRefused(t *testing.T, c harness.Client, tr *harness.Traefik, refreshToken string) {
	t.Helper()
	status, body, err := c.PostForm(tr.URL+"/oauth2/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
	})
	var e struct {
		Error string `json:"error"`
	}
	if err != nil || status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error != "invalid_grant" {
		t.Fatalf("%s: refresh with a logged-out refresh token: %d %s %v, want 400 invalid_grant\n%s",
			tr.URL, status, body, err, logTail(tr))
	}
}

// One user's two sessions and another user: the logout of one session
// rejects that session's tokens only, on both replicas.
func (le *logoutEdge) testSessions(t *testing.T) {
	c := le.sessions
	laptop := login(t, le.hydra, c, le.a.URL, "alice", nil, "")
	phone := login(t, le.hydra, c, le.a.URL, "alice", nil, "")
	bob := login(t, le.hydra, c, le.a.URL, "bob", nil, "")
	if laptop.SessionID == phone.SessionID {
		t.Fatalf("two browsers share the login session %s", laptop.SessionID)
	}
	le.bothAccept(t, laptop.AccessToken, phone.AccessToken, bob.AccessToken)

	le.logout(t, laptop.SessionID, 1)
	le.bothReject(t, laptop.AccessToken)
	le.bothAccept(t, phone.AccessToken, bob.AccessToken)
	// Hydra still takes them all: the edge did this.
	assertActive(t, le.hydra, "the logged-out session's access token", laptop.AccessToken, true)
}

// One session with a grant without offline_access ("offline" is Hydra's
// name for it, and gives a refresh token, but is not offline_access) and a
// grant with it; and another session of the same user. At the logout both
// grants' access tokens are rejected; the first grant's refresh token is
// refused at the token endpoint, the second's keeps working.
func (le *logoutEdge) testOfflineAccess(t *testing.T) {
	c := le.offline
	browser := harness.NewBrowser()
	online := login(t, le.hydra, c, le.a.URL, "carol", browser, "openid offline")
	offline := login(t, le.hydra, c, le.a.URL, "carol", browser, "openid offline_access")
	other := login(t, le.hydra, c, le.a.URL, "carol", nil, "openid offline")
	if online.SessionID != offline.SessionID || other.SessionID == online.SessionID {
		t.Fatalf("login sessions %s, %s (one browser) and %s (another)", online.SessionID, offline.SessionID, other.SessionID)
	}
	for _, ts := range []harness.TokenSet{online, offline, other} {
		if ts.RefreshToken == "" {
			t.Fatalf("no refresh token for scope %q: %s", ts.Scope, ts.Raw)
		}
	}
	le.bothAccept(t, online.AccessToken, offline.AccessToken, other.AccessToken)

	// One client in the session: one logout token.
	le.logout(t, online.SessionID, 1)
	le.bothReject(t, online.AccessToken, offline.AccessToken)
	le.bothAccept(t, other.AccessToken)

	// Without offline_access: refused by both replicas, and never reaching
	// Hydra, which would still have taken it.
	le.refreshRefused(t, c, le.b, online.RefreshToken)
	le.refreshRefused(t, c, le.a, online.RefreshToken)
	assertActive(t, le.hydra, "the refresh token the edge refused", online.RefreshToken, true)

	// With offline_access: it survives the logout, on both replicas, and
	// what it gets passes.
	next := le.hydra.Refresh(t, c, le.b.URL, offline.RefreshToken)
	last := le.hydra.Refresh(t, c, le.a.URL, next.RefreshToken)
	le.bothAccept(t, next.AccessToken, last.AccessToken)
	assertAllRevoked(t, le.a, []string{offline.AccessToken})

	// The other session is untouched.
	le.hydra.Refresh(t, c, le.a.URL, other.RefreshToken)
}

// With logoutOfflineAccess, a logout refuses the refresh tokens of grants
// with offline_access too. One Traefik is enough here, with a recorder
// between Hydra and it to see its answer to Hydra: 200 with Cache-Control:
// no-store (BCL 2.8). The same logout token again is a replay: 400.
func testEdgeLogoutOfflineAccess(t *testing.T, e *hydraEdge) {
	c := e.hydra.CreateClient(t, harness.ClientOptions{GrantTypes: []string{"authorization_code", "refresh_token"}})
	tr := e.startEdge(t, hydraData{
		BackchannelLogoutPath: hydraLogoutPath,
		Issuer:                e.hydra.PublicURL,
		Audiences:             []string{c.ID},
		LogoutOfflineAccess:   true,
	})
	rec := startLogoutRecorder(t, tr.URL)
	le := &logoutEdge{hydraEdge: e, a: tr, b: tr, logoutURI: rec.URL + hydraLogoutPath}
	e.hydra.SetBackchannelLogout(t, c, le.logoutURI, true)
	g := login(t, e.hydra, c, tr.URL, "erin", nil, "openid offline_access")
	other := login(t, e.hydra, c, tr.URL, "erin", nil, "openid offline_access")
	assertAccepted(t, tr, []string{g.AccessToken, other.AccessToken})

	le.logout(t, g.SessionID, 1)
	d := rec.wait(t, 1, logoutWait)[0]
	if d.status != http.StatusOK || d.cacheControl != "no-store" {
		t.Errorf("the edge answered Hydra's logout %d, Cache-Control %q; want 200, no-store", d.status, d.cacheControl)
	}
	e.waitRejected(t, tr, g.AccessToken, logoutWait)
	assertAllRevoked(t, tr, []string{g.AccessToken})
	le.refreshRefused(t, c, tr, g.RefreshToken)
	assertActive(t, e.hydra, "the refresh token the edge refused", g.RefreshToken, true)
	assertAccepted(t, tr, []string{other.AccessToken})
	e.hydra.Refresh(t, c, tr.URL, other.RefreshToken)

	r := on(tr).do(t, http.MethodPost, hydraLogoutPath, formHeader(false), url.Values{"logout_token": {d.token}}.Encode())
	if r.status != http.StatusBadRequest {
		t.Fatalf("the same logout token again: %d %s, want 400", r.status, r.body)
	}
	assertErrorBody(t, r, "invalid_request")
}
