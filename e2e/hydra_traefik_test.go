package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// Grant tracking through a real Traefik against a real Ory Hydra: Hydra's
// public endpoints and the API sit behind the plugin (trackGrants on), so
// the edge sees every token answer and every revoke. Revoking a grant's
// refresh token must reject the grant's access tokens at the edge, opaque or
// JWT, on every replica and after a restart. One Hydra per access token
// strategy serves every scenario; each scenario starts Traefiks of its own.

const hydraRevokePath = "/oauth2/revoke"

// hydraData fills testdata/hydra-dynamic.yml.tmpl.
type hydraData struct {
	HydraURL, APIURL, RedisAddress, PersistPath string
	RevokeOnRefresh                             bool
	// BackchannelLogoutPath turns back-channel logout on, for logout
	// tokens from Issuer to one of Audiences (hydra_logout_test.go).
	BackchannelLogoutPath, Issuer string
	Audiences                     []string
	LogoutOfflineAccess           bool
}

// hydraEdge is what one strategy's scenarios share: a Hydra, and the
// replica environment's Traefik binary, API and client (its identity
// stand-in goes unused: Hydra is the identity service here).
type hydraEdge struct {
	*replicaEnv
	hydra *harness.Hydra
}

func TestHydraTraefik(t *testing.T) {
	for _, jwt := range []bool{false, true} {
		strategy := "opaque"
		if jwt {
			strategy = "jwt"
		}
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			e := &hydraEdge{replicaEnv: newReplicaEnv(t), hydra: harness.StartHydra(t, harness.HydraOptions{JWT: jwt})}
			for _, scenario := range []struct {
				name string
				run  func(*testing.T, *hydraEdge)
			}{
				{"ClientCredentials", testEdgeClientCredentials},
				{"RevokeRefreshRevokesGrant", testEdgeRevokeGrant},
				{"Replicas", testEdgeGrantReplicas},
				{"PersistRestart", testEdgeGrantPersist},
				{"RevokeOnRefresh", testEdgeRevokeOnRefresh},
			} {
				// One after the other: Hydra's in-memory SQLite store fails
				// concurrent writes ("Unable to serialize access due to a
				// concurrent update", or a 500 on the token endpoint).
				t.Run(scenario.name, func(t *testing.T) { scenario.run(t, e) })
			}
		})
	}
}

// startEdge starts a Traefik in front of Hydra and the API, stopped when
// the test ends, and returns once its denylist is ready.
func (e *hydraEdge) startEdge(t *testing.T, data hydraData) *harness.Traefik {
	t.Helper()
	data.HydraURL, data.APIURL = e.hydra.PublicURL, e.api.URL
	tr := e.startFrom(t, t.TempDir(), "hydra-dynamic.yml.tmpl", data, replicaStatsPath)
	e.waitReady(t, tr, 60*time.Second)
	return tr
}

// grant runs the authorization code flow with the token request through tr,
// so the edge sees the answer.
func (e *hydraEdge) grant(t *testing.T, c harness.Client, tr *harness.Traefik) harness.TokenSet {
	t.Helper()
	ts := e.hydra.AuthCode(t, c, tr.URL)
	if ts.RefreshToken == "" || ts.IDToken == "" {
		t.Fatalf("want refresh and ID tokens, got %s", ts.Raw)
	}
	return ts
}

// waitAllRejected polls every Traefik until it rejects token, then checks
// the exact 401.
func (e *hydraEdge) waitAllRejected(t *testing.T, token string, replicas ...*harness.Traefik) {
	t.Helper()
	for _, tr := range replicas {
		e.waitRejected(t, tr, token, 5*time.Second)
		assertAllRevoked(t, tr, []string{token})
	}
}

// logGrants logs the stats' grants count, which is informative only.
func logGrants(t *testing.T, tr *harness.Traefik) {
	t.Helper()
	t.Logf("%s: grants %v", tr.URL, on(tr).stats(t)["grants"])
}

// basicHeader is a form request's header with c's HTTP Basic credentials.
func basicHeader(c harness.Client) http.Header {
	h := formHeader(false)
	(&http.Request{Header: h}).SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	return h
}

func testEdgeClientCredentials(t *testing.T, e *hydraEdge) {
	tr := e.startEdge(t, hydraData{})
	c := e.hydra.CreateClient(t, harness.ClientOptions{})
	revoked, kept := e.hydra.ClientCredentials(t, c, tr.URL, ""), e.hydra.ClientCredentials(t, c, tr.URL, "")
	assertAccepted(t, tr, []string{revoked.AccessToken, kept.AccessToken})

	// A wrong secret: Hydra's own 401 passes through, and nothing is recorded.
	wrong := c
	wrong.Secret = "wrong"
	status, body, err := wrong.PostForm(tr.URL+hydraRevokePath, url.Values{"token": {kept.AccessToken}})
	var hydraErr struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err != nil || status != http.StatusUnauthorized || json.Unmarshal(body, &hydraErr) != nil ||
		hydraErr.Error != "invalid_client" || hydraErr.Description == "" {
		t.Fatalf("revoke with a wrong secret: %d %s %v, want Hydra's 401 invalid_client", status, body, err)
	}
	// No client credentials: the edge's 401, Hydra never asked.
	r := on(tr).do(t, http.MethodPost, hydraRevokePath, formHeader(false), url.Values{"token": {kept.AccessToken}}.Encode())
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="tokenrevocation"` {
		t.Fatalf("revoke with no client credentials: %d %v %s, want the edge's 401", r.status, r.header, r.body)
	}
	assertErrorBody(t, r, "invalid_client")
	// No token parameter: the edge's 400.
	r = on(tr).do(t, http.MethodPost, hydraRevokePath, basicHeader(c), url.Values{"token_type_hint": {"access_token"}}.Encode())
	if r.status != http.StatusBadRequest {
		t.Fatalf("revoke with no token: %d %s, want the edge's 400", r.status, r.body)
	}
	assertErrorBody(t, r, "invalid_request")
	assertAccepted(t, tr, []string{kept.AccessToken})
	assertActive(t, e.hydra, "access token after revokes that revoke nothing", kept.AccessToken, true)

	e.hydra.Revoke(t, c, tr.URL, revoked.AccessToken)
	assertAllRevoked(t, tr, []string{revoked.AccessToken})
	assertAccepted(t, tr, []string{kept.AccessToken})
}

func testEdgeRevokeGrant(t *testing.T, e *hydraEdge) {
	tr := e.startEdge(t, hydraData{})
	c := authCodeClient(t, e.hydra, harness.ClientSecretBasic)
	a, b := e.grant(t, c, tr), e.grant(t, c, tr)
	assertAccepted(t, tr, []string{a.AccessToken, b.AccessToken})

	e.hydra.Revoke(t, c, tr.URL, a.RefreshToken)
	assertAllRevoked(t, tr, []string{a.AccessToken})
	assertActive(t, e.hydra, "access token of the revoked grant", a.AccessToken, false)
	assertAccepted(t, tr, []string{b.AccessToken})
	logGrants(t, tr)
}

func testEdgeGrantReplicas(t *testing.T, e *hydraEdge) {
	rds := startRedis(t)
	a := e.startEdge(t, hydraData{RedisAddress: rds.Addr()})
	b := e.startEdge(t, hydraData{RedisAddress: rds.Addr()})
	// Credentials in the form this time: the edge reads them there too.
	c := authCodeClient(t, e.hydra, harness.ClientSecretPost)

	// Obtained and revoked through A: B learns of it through Redis.
	first := e.grant(t, c, a)
	assertAccepted(t, b, []string{first.AccessToken})
	e.hydra.Revoke(t, c, a.URL, first.RefreshToken)
	e.waitAllRejected(t, first.AccessToken, a, b)

	// Obtained through A, revoked through B: B must know the family A
	// recorded. A flushed queue means A has written it to the stream.
	second := e.grant(t, c, a)
	e.waitStats(t, a, "A's queue flushed", 10*time.Second, func(st replicaStats) bool { return st.Queued == 0 })
	e.hydra.Revoke(t, c, b.URL, second.RefreshToken)
	e.waitAllRejected(t, second.AccessToken, b, a)
	logGrants(t, a)
	logGrants(t, b)
}

func testEdgeGrantPersist(t *testing.T, e *hydraEdge) {
	data := hydraData{PersistPath: filepath.Join(t.TempDir(), "revocations.bin")}
	first := e.startEdge(t, data)
	c := authCodeClient(t, e.hydra, harness.ClientSecretBasic)
	g := e.grant(t, c, first)
	first.Stop()

	second := e.startEdge(t, data)
	assertAccepted(t, second, []string{g.AccessToken})
	e.hydra.Revoke(t, c, second.URL, g.RefreshToken)
	assertAllRevoked(t, second, []string{g.AccessToken})
}

// Hydra deactivates a grant's previous access token when it is refreshed,
// but the edge does not ask Hydra about tokens: with trackGrants alone, the
// old access token keeps passing the edge until it expires or its family is
// revoked (an app that trusts a JWT's signature and exp takes it).
// revokeOnRefresh is what rejects it at the edge at the refresh.
func testEdgeRevokeOnRefresh(t *testing.T, e *hydraEdge) {
	for _, revokeOnRefresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("revokeOnRefresh=%v", revokeOnRefresh), func(t *testing.T) {
			tr := e.startEdge(t, hydraData{RevokeOnRefresh: revokeOnRefresh})
			c := authCodeClient(t, e.hydra, harness.ClientSecretBasic)
			old := e.grant(t, c, tr)
			next := e.hydra.Refresh(t, c, tr.URL, old.RefreshToken)
			assertAccepted(t, tr, []string{next.AccessToken})
			assertActive(t, e.hydra, "access token replaced by a refresh", old.AccessToken, false)
			if revokeOnRefresh {
				assertAllRevoked(t, tr, []string{old.AccessToken})
			} else {
				assertAccepted(t, tr, []string{old.AccessToken})
			}

			// The refresh joined the new tokens to the grant's family:
			// revoking the new refresh token rejects both access tokens.
			e.hydra.Revoke(t, c, tr.URL, next.RefreshToken)
			assertAllRevoked(t, tr, []string{next.AccessToken, old.AccessToken})
		})
	}
}
