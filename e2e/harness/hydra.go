package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Hydra is one Ory Hydra (scripts/build-hydra.sh pins the release) serving
// on two loopback ports with an in-memory store: a real OpenID provider for
// the end-to-end suite. Login and consent have no UI: AuthCode accepts both
// challenges through the admin API.
type Hydra struct {
	// PublicURL is the public API, http://127.0.0.1:port: /oauth2/auth,
	// /oauth2/token, /oauth2/revoke, /.well-known/...
	PublicURL string
	// AdminURL is the admin API, http://127.0.0.1:port: /admin/clients,
	// /admin/oauth2/introspect, the login and consent requests.
	AdminURL string
	// Dir is its working directory; hydra.log is its output.
	Dir string

	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// HydraOptions describe a Hydra to start.
type HydraOptions struct {
	// JWT makes access tokens signed JWTs (strategies.access_token=jwt);
	// the default is Hydra's opaque tokens.
	JWT bool
	// Issuer is the issuer URL (urls.self.issuer); empty means PublicURL.
	Issuer string
	// Env adds configuration as Hydra reads it from the environment, e.g.
	// "TTL_ACCESS_TOKEN=5m". It is applied last, so it overrides the above.
	Env []string
}

const (
	// HydraSubject is the subject AuthCode logs in when none is given.
	HydraSubject = "e2e-user"
	// hydraUnreachable is a loopback address nothing listens on: the login
	// and consent URLs point there (redirects to them are read, never
	// followed) and so does the proxy that keeps Hydra off the network.
	hydraUnreachable = "http://127.0.0.1:1"
)

var (
	hydraBinOnce sync.Once
	hydraBin     string
	hydraBinErr  error
)

// HydraBinary returns the pinned Hydra binary, building it on first use
// through scripts/build-hydra.sh. HYDRA_BIN overrides it. A failed build is
// an error: callers fail, they never skip.
func HydraBinary(root string) (string, error) {
	return scriptBinary(root, "HYDRA_BIN", "build-hydra.sh")
}

// scriptBinary returns $envVar when set, otherwise the path a build script
// under scripts/ prints (the script builds the binary when not cached).
func scriptBinary(root, envVar, script string) (string, error) {
	if bin := os.Getenv(envVar); bin != "" {
		return bin, nil
	}
	cmd := exec.Command(filepath.Join(root, "scripts", script))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("harness: scripts/%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartHydra starts Hydra with `serve all --dev` and returns once both its
// APIs report ready. The test's cleanup stops it and, when the test failed,
// logs the tail of its output. A missing or unbuildable binary fails t.
func StartHydra(t testing.TB, o HydraOptions) *Hydra {
	t.Helper()
	hydraBinOnce.Do(func() {
		var root string
		if root, hydraBinErr = RepoRoot(); hydraBinErr == nil {
			hydraBin, hydraBinErr = HydraBinary(root)
		}
	})
	if hydraBinErr != nil {
		t.Fatalf("Hydra is required: %v", hydraBinErr)
	}
	h, err := startHydra(hydraBin, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("hydra.log (tail):\n%s", tail(h.Log(), 40))
		}
	})
	return h
}

func startHydra(bin, dir string, o HydraOptions) (*Hydra, error) {
	publicPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	h := &Hydra{
		PublicURL: "http://127.0.0.1:" + strconv.Itoa(publicPort),
		AdminURL:  "http://127.0.0.1:" + strconv.Itoa(adminPort),
		Dir:       dir,
		logPath:   filepath.Join(dir, "hydra.log"),
		done:      make(chan struct{}),
	}
	issuer, strategy := o.Issuer, "opaque"
	if issuer == "" {
		issuer = h.PublicURL
	}
	if o.JWT {
		strategy = "jwt"
	}
	level := os.Getenv("HYDRA_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	env := append(withoutProxyEnv(os.Environ()),
		"DSN=memory",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(adminPort),
		"URLS_SELF_ISSUER="+issuer,
		"URLS_LOGIN="+hydraUnreachable+"/login",
		"URLS_CONSENT="+hydraUnreachable+"/consent",
		"SECRETS_SYSTEM="+randomString(32),
		"STRATEGIES_ACCESS_TOKEN="+strategy,
		"LOG_LEVEL="+level,
		// No telemetry; and should anything still try the network, it
		// goes to a proxy that is not there (loopback never uses a proxy).
		"SQA_OPT_OUT=true",
		"HTTP_PROXY="+hydraUnreachable, "HTTPS_PROXY="+hydraUnreachable,
	)
	env = append(env, o.Env...)
	logFile, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	h.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	h.cmd.Dir = dir
	h.cmd.Env = env
	h.cmd.Stdout = logFile
	h.cmd.Stderr = logFile
	// Its own process group, so Stop reaches every child; and killed with
	// its parent, so a harness that dies never leaves Hydra behind.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("harness: starting Hydra: %w", err)
	}
	go func() {
		_ = h.cmd.Wait()
		logFile.Close()
		close(h.done)
	}()
	const readyTimeout = 30 * time.Second
	deadline := time.Now().Add(readyTimeout)
	for _, u := range []string{h.AdminURL + "/health/ready", h.PublicURL + "/health/ready"} {
		for {
			select {
			case <-h.done:
				return nil, fmt.Errorf("harness: Hydra exited early\n%s", h.Log())
			default:
			}
			status, _, err := send(http.MethodGet, u, "", nil, nil)
			if err == nil && status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				h.Stop()
				return nil, fmt.Errorf("harness: Hydra not ready after %s\n%s", readyTimeout, h.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := h.createKeys(); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// createKeys has Hydra create its signing keys, which it does on first use.
// Its JWKS endpoint creates a missing key set without the lock the signers
// take: two first fetches at once (two replicas starting) can leave two key
// pairs in a set, and Hydra then signs JWT access tokens with one and
// verifies them with the other ("token_signature_mismatch" at
// introspection). One fetch creates every published set first. New RSA
// keys take seconds on a busy machine, hence a timeout of its own.
func (h *Hydra) createKeys() error {
	client := &http.Client{Timeout: 90 * time.Second}
	resp, err := client.Get(h.PublicURL + "/.well-known/jwks.json")
	if err != nil {
		return fmt.Errorf("harness: Hydra's JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("harness: Hydra's JWKS: %d %s", resp.StatusCode, body)
	}
	return nil
}

// withoutProxyEnv drops the proxy settings from env.
func withoutProxyEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Log returns what Hydra has logged so far.
func (h *Hydra) Log() string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}

// Stop ends Hydra: SIGTERM, then SIGKILL after five seconds. Stopping a
// stopped Hydra does nothing.
func (h *Hydra) Stop() {
	if h == nil {
		return
	}
	stopGroup(h.cmd, h.done)
}

// Token endpoint client authentication methods (token_endpoint_auth_method).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// ClientOptions describe an OAuth 2.0 client to create.
type ClientOptions struct {
	// GrantTypes defaults to client_credentials. With authorization_code,
	// response type "code" and a redirect URI are set as well.
	GrantTypes []string
	// Scope is the space-separated scopes the client may request;
	// empty means "openid offline_access".
	Scope string
	// RedirectURI is where the authorization code is sent; empty means a
	// loopback URL that is never fetched (AuthCode reads the code from the
	// redirect).
	RedirectURI string
	// AuthMethod is ClientSecretBasic (the default) or ClientSecretPost.
	AuthMethod string
	// BackchannelLogoutURI, when set, receives OpenID back-channel logout
	// tokens; BackchannelLogoutSessionRequired asks for their sid claim.
	BackchannelLogoutURI             string
	BackchannelLogoutSessionRequired bool
}

// Client is a client Hydra knows, with what its helpers need to use it.
type Client struct {
	ID, Secret  string
	AuthMethod  string
	Scope       string
	RedirectURI string
}

// CreateClient registers a client through the admin API (POST
// /admin/clients); Hydra picks its ID and secret.
func (h *Hydra) CreateClient(t testing.TB, o ClientOptions) Client {
	t.Helper()
	c := Client{AuthMethod: o.AuthMethod, Scope: o.Scope, RedirectURI: o.RedirectURI}
	if c.AuthMethod == "" {
		c.AuthMethod = ClientSecretBasic
	}
	if c.Scope == "" {
		c.Scope = "openid offline_access"
	}
	grants := o.GrantTypes
	if len(grants) == 0 {
		grants = []string{"client_credentials"}
	}
	req := map[string]any{
		"grant_types":                grants,
		"scope":                      c.Scope,
		"token_endpoint_auth_method": c.AuthMethod,
	}
	for _, g := range grants {
		if g == "authorization_code" {
			if c.RedirectURI == "" {
				c.RedirectURI = hydraUnreachable + "/callback"
			}
			req["response_types"] = []string{"code"}
		}
	}
	if c.RedirectURI != "" {
		req["redirect_uris"] = []string{c.RedirectURI}
	}
	if o.BackchannelLogoutURI != "" {
		req["backchannel_logout_uri"] = o.BackchannelLogoutURI
		req["backchannel_logout_session_required"] = o.BackchannelLogoutSessionRequired
	}
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	h.adminJSON(t, http.MethodPost, "/admin/clients", req, http.StatusCreated, &created)
	c.ID, c.Secret = created.ID, created.Secret
	return c
}

// SetBackchannelLogout points c's back-channel logout at uri through the
// admin API (a JSON Patch of the client; its secret is kept), for a client
// registered before the URI's server was up.
func (h *Hydra) SetBackchannelLogout(t testing.TB, c Client, uri string, sessionRequired bool) {
	t.Helper()
	patch := []map[string]any{
		{"op": "replace", "path": "/backchannel_logout_uri", "value": uri},
		{"op": "replace", "path": "/backchannel_logout_session_required", "value": sessionRequired},
	}
	h.adminJSON(t, http.MethodPatch, "/admin/clients/"+url.PathEscape(c.ID), patch, http.StatusOK, nil)
}

// TokenSet is a token endpoint's successful answer.
type TokenSet struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	// SessionID is the login session the grant belongs to (the ID token's
	// sid claim); AuthCode sets it, the other grants have none.
	SessionID string `json:"-"`
	// Raw is the response body as sent.
	Raw []byte `json:"-"`
}

// PostForm sends form to u with c's credentials, the way its
// token_endpoint_auth_method says: HTTP Basic or client_id and
// client_secret in the form. It returns the status and the body.
func (c Client) PostForm(u string, form url.Values) (status int, body []byte, err error) {
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if c.AuthMethod == ClientSecretPost {
		f.Set("client_id", c.ID)
		f.Set("client_secret", c.Secret)
	} else {
		// RFC 6749 2.3.1: both parts form-encoded before Basic encoding.
		cred := url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret)
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	return send(http.MethodPost, u, f.Encode(), header, nil)
}

// Token posts a token request to baseURL's /oauth2/token (empty baseURL:
// Hydra's PublicURL) and fails t unless it answers 200 with tokens.
func (h *Hydra) Token(t testing.TB, c Client, baseURL string, form url.Values) TokenSet {
	t.Helper()
	status, body, err := c.PostForm(h.base(baseURL)+"/oauth2/token", form)
	if err != nil {
		t.Fatalf("token request (%s): %v", form.Get("grant_type"), err)
	}
	if status != http.StatusOK {
		t.Fatalf("token request (%s): %d %s", form.Get("grant_type"), status, body)
	}
	ts := TokenSet{Raw: body}
	if err := json.Unmarshal(body, &ts); err != nil || ts.AccessToken == "" {
		t.Fatalf("token request (%s): no access token in %s (%v)", form.Get("grant_type"), body, err)
	}
	return ts
}

// ClientCredentials runs the client credentials grant against baseURL
// (empty: PublicURL), asking for scope (may be empty).
func (h *Hydra) ClientCredentials(t testing.TB, c Client, baseURL, scope string) TokenSet {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return h.Token(t, c, baseURL, form)
}

// Refresh redeems refreshToken at baseURL (empty: PublicURL).
func (h *Hydra) Refresh(t testing.TB, c Client, baseURL, refreshToken string) TokenSet {
	t.Helper()
	return h.Token(t, c, baseURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// Revoke revokes token (access or refresh) at baseURL's /oauth2/revoke
// (empty: PublicURL) and fails t unless it answers 200.
func (h *Hydra) Revoke(t testing.TB, c Client, baseURL, token string) {
	t.Helper()
	status, body, err := c.PostForm(h.base(baseURL)+"/oauth2/revoke", url.Values{"token": {token}})
	if err != nil || status != http.StatusOK {
		t.Fatalf("revoke: %d %s %v", status, body, err)
	}
}

// Introspect asks the admin API whether token is active.
func (h *Hydra) Introspect(t testing.TB, token string) bool {
	t.Helper()
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	var out struct {
		Active bool `json:"active"`
	}
	status, body, err := send(http.MethodPost, h.AdminURL+"/admin/oauth2/introspect",
		url.Values{"token": {token}}.Encode(), header, &out)
	if err != nil || status != http.StatusOK {
		t.Fatalf("introspect: %d %s %v", status, body, err)
	}
	return out.Active
}

// AuthCodeOptions adjust AuthCodeWith's login.
type AuthCodeOptions struct {
	// Subject is who logs in; empty means HydraSubject.
	Subject string
	// Remember keeps the login session in Hydra (remember: true on the
	// login and consent accepts), as a browser login would. Only a
	// remembered login session can be revoked by its sid
	// (RevokeLoginSession), and only that sends back-channel logouts.
	Remember bool
	// Browser is the user agent whose cookies carry the login session:
	// remembered logins through one Browser share one login session (Hydra
	// skips the later logins), while every Browser has a session of its
	// own. Nil means a new Browser.
	Browser *Browser
	// Scope is the space-separated scopes to ask for; empty means c.Scope.
	Scope string
}

// Browser is a headless user agent: a cookie jar, and redirects read, never
// followed.
type Browser struct {
	client *http.Client
}

// NewBrowser returns a Browser with no cookies.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{client: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// AuthCode runs the authorization code flow for HydraSubject, see
// AuthCodeWith.
func (h *Hydra) AuthCode(t testing.TB, c Client, baseURL string) TokenSet {
	t.Helper()
	return h.AuthCodeWith(t, c, baseURL, AuthCodeOptions{})
}

// AuthCodeWith runs the authorization code flow headless: it starts at
// Hydra's /oauth2/auth with o's (or c's) scope, follows Hydra's redirects
// with o's Browser, accepts the login and consent challenges through the
// admin API (granting every requested scope), stops at c's redirect URI to
// read the code, and redeems it at baseURL's /oauth2/token (empty:
// PublicURL).
func (h *Hydra) AuthCodeWith(t testing.TB, c Client, baseURL string, o AuthCodeOptions) TokenSet {
	t.Helper()
	if o.Subject == "" {
		o.Subject = HydraSubject
	}
	if o.Browser == nil {
		o.Browser = NewBrowser()
	}
	if o.Scope == "" {
		o.Scope = c.Scope
	}
	state := randomString(16)
	next := h.PublicURL + "/oauth2/auth?" + url.Values{
		"response_type": {"code"},
		"client_id":     {c.ID},
		"redirect_uri":  {c.RedirectURI},
		"scope":         {o.Scope},
		"state":         {state},
		"nonce":         {randomString(16)},
	}.Encode()
	var sessionID string
	for hop := 0; ; hop++ {
		if hop == 10 {
			t.Fatalf("auth code flow: more than 10 redirects, at %s", next)
		}
		switch {
		case strings.HasPrefix(next, c.RedirectURI):
			code := h.callbackCode(t, next, state)
			ts := h.Token(t, c, baseURL, url.Values{
				"grant_type":   {"authorization_code"},
				"code":         {code},
				"redirect_uri": {c.RedirectURI},
			})
			ts.SessionID = sessionID
			return ts
		case strings.HasPrefix(next, hydraUnreachable+"/login?"):
			next = h.acceptLogin(t, challenge(t, next, "login_challenge"), o)
			continue
		case strings.HasPrefix(next, hydraUnreachable+"/consent?"):
			next, sessionID = h.acceptConsent(t, challenge(t, next, "consent_challenge"), o)
			continue
		}
		req, err := http.NewRequest(http.MethodGet, next, nil)
		if err != nil {
			t.Fatalf("auth code flow: %v", err)
		}
		resp, err := o.Browser.client.Do(req)
		if err != nil {
			t.Fatalf("auth code flow: GET %s: %v", next, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("auth code flow: GET %s answered %d, no redirect: %s", next, resp.StatusCode, body)
		}
		next = loc.String()
	}
}

// callbackCode reads the code from a redirect to the client's redirect
// URI, checking state and failing t on an error redirect.
func (h *Hydra) callbackCode(t testing.TB, callback, state string) string {
	t.Helper()
	u, err := url.Parse(callback)
	if err != nil {
		t.Fatalf("auth code flow: redirect %q: %v", callback, err)
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		t.Fatalf("auth code flow: %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("auth code flow: bad redirect %s (want state %s and a code)", callback, state)
	}
	return q.Get("code")
}

// challenge is the named query parameter of a redirect to login or consent.
func challenge(t testing.TB, redirect, name string) string {
	t.Helper()
	u, err := url.Parse(redirect)
	if err != nil || u.Query().Get(name) == "" {
		t.Fatalf("auth code flow: no %s in %s", name, redirect)
	}
	return u.Query().Get(name)
}

// acceptLogin accepts a login challenge for o.Subject and returns where
// Hydra sends the browser next.
func (h *Hydra) acceptLogin(t testing.TB, loginChallenge string, o AuthCodeOptions) string {
	t.Helper()
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	h.adminJSON(t, http.MethodPut, "/admin/oauth2/auth/requests/login/accept?"+
		url.Values{"login_challenge": {loginChallenge}}.Encode(),
		map[string]any{"subject": o.Subject, "remember": o.Remember}, http.StatusOK, &out)
	return out.RedirectTo
}

// acceptConsent grants everything a consent challenge asks for and returns
// where Hydra sends the browser next and the login session's ID.
func (h *Hydra) acceptConsent(t testing.TB, consentChallenge string, o AuthCodeOptions) (redirectTo, sessionID string) {
	t.Helper()
	q := "?" + url.Values{"consent_challenge": {consentChallenge}}.Encode()
	var request struct {
		Scope          []string `json:"requested_scope"`
		Audience       []string `json:"requested_access_token_audience"`
		LoginSessionID string   `json:"login_session_id"`
	}
	h.adminJSON(t, http.MethodGet, "/admin/oauth2/auth/requests/consent"+q, nil, http.StatusOK, &request)
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	h.adminJSON(t, http.MethodPut, "/admin/oauth2/auth/requests/consent/accept"+q, map[string]any{
		"grant_scope":                 request.Scope,
		"grant_access_token_audience": request.Audience,
		"remember":                    o.Remember,
	}, http.StatusOK, &out)
	return out.RedirectTo, request.LoginSessionID
}

// RevokeLoginSession revokes the remembered login session sid through the
// admin API (DELETE /admin/oauth2/auth/sessions/login?sid=...), and fails t
// unless Hydra answers 204. Hydra then sends a logout token to the
// back-channel logout URI of every client the session logged in to, each in
// a goroutine of its own: the deliveries may still be on their way when
// this returns. Hydra's tokens stay active.
func (h *Hydra) RevokeLoginSession(t testing.TB, sid string) {
	t.Helper()
	if sid == "" {
		t.Fatal("RevokeLoginSession: no sid")
	}
	h.adminJSON(t, http.MethodDelete, "/admin/oauth2/auth/sessions/login?"+url.Values{"sid": {sid}}.Encode(),
		nil, http.StatusNoContent, nil)
}

// RevokeSubjectSessions revokes every login session of subject through the
// admin API (DELETE /admin/oauth2/auth/sessions/login?subject=...), and
// fails t unless Hydra answers 204. Hydra sends no back-channel logout for
// these.
func (h *Hydra) RevokeSubjectSessions(t testing.TB, subject string) {
	t.Helper()
	h.adminJSON(t, http.MethodDelete, "/admin/oauth2/auth/sessions/login?"+url.Values{"subject": {subject}}.Encode(),
		nil, http.StatusNoContent, nil)
}

// adminJSON sends in (nil: no body) as JSON to the admin API and decodes
// the answer into out, failing t unless the status is want.
func (h *Hydra) adminJSON(t testing.TB, method, path string, in any, want int, out any) {
	t.Helper()
	var body string
	header := http.Header{"Accept": {"application/json"}}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
		header.Set("Content-Type", "application/json")
	}
	status, raw, err := send(method, h.AdminURL+path, body, header, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

// base is baseURL, or PublicURL when it is empty.
func (h *Hydra) base(baseURL string) string {
	if baseURL == "" {
		return h.PublicURL
	}
	return strings.TrimSuffix(baseURL, "/")
}

// hydraHTTP is the client every helper but AuthCode's browser uses.
var hydraHTTP = &http.Client{Timeout: 10 * time.Second}

// send does one request and returns the status and body; when out is set
// and the status is 200, the body is decoded into it.
func send(method, u, body string, header http.Header, out any) (status int, raw []byte, err error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hydraHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if raw, err = io.ReadAll(resp.Body); err != nil {
		return resp.StatusCode, raw, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw, err
}

// JWTClaims decodes a JWT's claims without checking its signature, to look
// at what a provider put in a token.
func JWTClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("harness: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("harness: JWT payload: %w", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("harness: JWT claims: %w", err)
	}
	return claims, nil
}

// randomString is n random bytes, hex-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
