package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// The Hydra smoke test: a real Ory Hydra straight, no Traefik, with opaque
// and with JWT access tokens. It pins down the provider behavior the plugin
// tests build on. A Hydra that cannot be built or started fails the test.

func TestHydra(t *testing.T) {
	for _, strategy := range []struct {
		name string
		jwt  bool
	}{{"opaque", false}, {"jwt", true}} {
		t.Run(strategy.name, func(t *testing.T) {
			h := harness.StartHydra(t, harness.HydraOptions{JWT: strategy.jwt})
			t.Run("ClientCredentials", func(t *testing.T) { testHydraClientCredentials(t, h, strategy.jwt) })
			t.Run("AuthCode", func(t *testing.T) { testHydraAuthCode(t, h) })
			t.Run("RevokeRefreshToken", func(t *testing.T) { testHydraRevokeRefresh(t, h) })
			t.Run("RevokeAccessToken", func(t *testing.T) { testHydraRevokeAccess(t, h) })
			t.Run("Refresh", func(t *testing.T) { testHydraRefresh(t, h) })
			t.Run("RevokeErrors", func(t *testing.T) { testHydraRevokeErrors(t, h) })
		})
	}
}

// authCodeClient registers a client for the authorization code and refresh
// token grants that authenticates with method.
func authCodeClient(t *testing.T, h *harness.Hydra, method string) harness.Client {
	t.Helper()
	return h.CreateClient(t, harness.ClientOptions{
		GrantTypes: []string{"authorization_code", "refresh_token"},
		AuthMethod: method,
	})
}

func assertActive(t *testing.T, h *harness.Hydra, what, token string, want bool) {
	t.Helper()
	if got := h.Introspect(t, token); got != want {
		t.Errorf("%s: active %v, want %v", what, got, want)
	}
}

func testHydraClientCredentials(t *testing.T, h *harness.Hydra, jwt bool) {
	for _, method := range []string{harness.ClientSecretBasic, harness.ClientSecretPost} {
		c := h.CreateClient(t, harness.ClientOptions{AuthMethod: method})
		ts := h.ClientCredentials(t, c, "", "")
		if ts.RefreshToken != "" || ts.IDToken != "" {
			t.Errorf("%s: client credentials gave more than an access token: %s", method, ts.Raw)
		}
		claims, err := harness.JWTClaims(ts.AccessToken)
		if jwt != (err == nil) {
			t.Errorf("%s: access token %q: JWT %v, want %v", method, ts.AccessToken, err == nil, jwt)
		}
		if jwt && (claims["client_id"] != c.ID || claims["jti"] == nil) {
			t.Errorf("%s: JWT claims %v, want client_id %s and a jti", method, claims, c.ID)
		}
		assertActive(t, h, method+" access token", ts.AccessToken, true)
	}
}

func testHydraAuthCode(t *testing.T, h *harness.Hydra) {
	for _, method := range []string{harness.ClientSecretBasic, harness.ClientSecretPost} {
		c := authCodeClient(t, h, method)
		ts := h.AuthCode(t, c, "")
		if ts.AccessToken == "" || ts.RefreshToken == "" || ts.IDToken == "" {
			t.Fatalf("%s: want access, refresh and ID tokens, got %s", method, ts.Raw)
		}
		claims, err := harness.JWTClaims(ts.IDToken)
		if err != nil {
			t.Fatalf("%s: ID token: %v", method, err)
		}
		if claims["sub"] != harness.HydraSubject || claims["aud"] == nil {
			t.Errorf("%s: ID token claims %v", method, claims)
		}
		if ts.SessionID == "" || claims["sid"] != ts.SessionID {
			t.Errorf("%s: ID token sid %v, login session %q", method, claims["sid"], ts.SessionID)
		}
		assertActive(t, h, method+" access token", ts.AccessToken, true)
		assertActive(t, h, method+" refresh token", ts.RefreshToken, true)
	}

	// A remembered login, for a client that takes back-channel logouts.
	c := h.CreateClient(t, harness.ClientOptions{
		GrantTypes:                       []string{"authorization_code", "refresh_token"},
		BackchannelLogoutURI:             "http://127.0.0.1:1/backchannel-logout",
		BackchannelLogoutSessionRequired: true,
	})
	ts := h.AuthCodeWith(t, c, "", harness.AuthCodeOptions{Subject: "remembered-user", Remember: true})
	claims, err := harness.JWTClaims(ts.IDToken)
	if err != nil || claims["sub"] != "remembered-user" || ts.SessionID == "" || claims["sid"] != ts.SessionID {
		t.Errorf("remembered login: ID token claims %v (%v), login session %q", claims, err, ts.SessionID)
	}
}

// Revoking a grant's refresh token revokes its access token too.
func testHydraRevokeRefresh(t *testing.T, h *harness.Hydra) {
	c := authCodeClient(t, h, harness.ClientSecretBasic)
	ts := h.AuthCode(t, c, "")
	h.Revoke(t, c, "", ts.RefreshToken)
	assertActive(t, h, "refresh token", ts.RefreshToken, false)
	assertActive(t, h, "access token of the revoked grant", ts.AccessToken, false)
}

// Revoking a grant's access token revokes its refresh token too: Hydra
// revokes by grant, whichever of its tokens it is given.
func testHydraRevokeAccess(t *testing.T, h *harness.Hydra) {
	c := authCodeClient(t, h, harness.ClientSecretPost)
	ts := h.AuthCode(t, c, "")
	other := h.AuthCode(t, c, "")
	h.Revoke(t, c, "", ts.AccessToken)
	assertActive(t, h, "access token", ts.AccessToken, false)
	assertActive(t, h, "refresh token of the revoked grant", ts.RefreshToken, false)
	assertActive(t, h, "another grant's access token", other.AccessToken, true)
}

// A refresh rotates the refresh token, and the tokens it replaces, the old
// access token included, are no longer active. Reusing a replaced refresh
// token revokes the whole grant.
func testHydraRefresh(t *testing.T, h *harness.Hydra) {
	c := authCodeClient(t, h, harness.ClientSecretBasic)
	first := h.AuthCode(t, c, "")
	second := h.Refresh(t, c, "", first.RefreshToken)
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh did not rotate the refresh token: %s", second.Raw)
	}
	if second.AccessToken == first.AccessToken || second.IDToken == "" {
		t.Errorf("refresh answer %s", second.Raw)
	}
	assertActive(t, h, "new access token", second.AccessToken, true)
	assertActive(t, h, "new refresh token", second.RefreshToken, true)
	assertActive(t, h, "old refresh token", first.RefreshToken, false)
	assertActive(t, h, "old access token", first.AccessToken, false)

	// Reusing the old refresh token is refused.
	status, body, err := c.PostForm(h.PublicURL+"/oauth2/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken},
	})
	if err != nil || status != http.StatusBadRequest && status != http.StatusUnauthorized {
		t.Errorf("reusing the old refresh token: %d %s %v", status, body, err)
	}
	// ... and taken as a replay: the whole grant is revoked.
	assertActive(t, h, "new access token after the old refresh token's reuse", second.AccessToken, false)
	assertActive(t, h, "new refresh token after the old refresh token's reuse", second.RefreshToken, false)
}

// The revoke endpoint's answers to requests that revoke nothing. Hydra
// answers 200 with an empty body for a missing, unknown or other client's
// token (RFC 7009 2.2), so a 200 alone does not mean a token was revoked.
func testHydraRevokeErrors(t *testing.T, h *harness.Hydra) {
	basic := h.CreateClient(t, harness.ClientOptions{})
	post := h.CreateClient(t, harness.ClientOptions{AuthMethod: harness.ClientSecretPost})
	ts := h.ClientCredentials(t, basic, "", "")
	revokeURL := h.PublicURL + "/oauth2/revoke"
	wrong := basic
	wrong.Secret = "wrong"
	for _, tc := range []struct {
		what   string
		client *harness.Client
		form   url.Values
		status int
		error  string // the JSON body's error; "" for an empty body
	}{
		{"no client credentials", nil, url.Values{"token": {ts.AccessToken}}, http.StatusBadRequest, "invalid_request"},
		{"a wrong client secret", &wrong, url.Values{"token": {ts.AccessToken}}, http.StatusUnauthorized, "invalid_client"},
		// 200, and yet the token stays active (checked below).
		{"another client's token", &post, url.Values{"token": {ts.AccessToken}}, http.StatusOK, ""},
		{"Basic credentials and an empty body", &basic, url.Values{}, http.StatusBadRequest, "invalid_request"},
		{"credentials in the body and no token", &post, url.Values{"token_type_hint": {"access_token"}}, http.StatusOK, ""},
		{"an unknown token", &basic, url.Values{"token": {"ory_at_unknown"}}, http.StatusOK, ""},
	} {
		var status int
		var body []byte
		var err error
		if tc.client == nil {
			var resp *http.Response
			if resp, err = http.PostForm(revokeURL, tc.form); err == nil {
				status = resp.StatusCode
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		} else {
			status, body, err = tc.client.PostForm(revokeURL, tc.form)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("revoke with %s: %d %s", tc.what, status, body)
		var e struct {
			Error string `json:"error"`
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &e); err != nil {
				t.Errorf("revoke with %s: %v in %s", tc.what, err, body)
			}
		}
		if status != tc.status || e.Error != tc.error {
			t.Errorf("revoke with %s: %d %s, want %d %q", tc.what, status, body, tc.status, tc.error)
		}
	}
	assertActive(t, h, "access token after revokes that revoke nothing", ts.AccessToken, true)
}
