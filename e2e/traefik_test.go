package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

const (
	clientID     = "edge-client"
	clientSecret = "edge-secret"
	revokedWWW   = `Bearer error="invalid_token", error_description="The access token has been revoked"`
)

// suite is one real Traefik with the plugin, the identity stand-in and the
// API behind it, started once for every Traefik test and stopped in TestMain.
type suite struct {
	traefik  *harness.Traefik
	identity *fixtures.Identity
	api      *fixtures.API
	dynamic  dynamicData
	dir      string
}

type dynamicData struct {
	IdentityURL, APIURL, DeadURL, Marker string
}

var (
	suiteOnce sync.Once
	shared    *suite
	suiteErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// traefikSuite starts the suite on first use. A Traefik that cannot be built
// or started fails the test: the suite never skips.
func traefikSuite(t *testing.T) *suite {
	t.Helper()
	suiteOnce.Do(func() { shared, suiteErr = startSuite() })
	if suiteErr != nil {
		t.Fatalf("starting Traefik suite: %v", suiteErr)
	}
	return shared
}

func startSuite() (*suite, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := harness.TraefikBinary(root)
	if err != nil {
		return nil, err
	}
	s := &suite{}
	if s.identity, err = fixtures.StartIdentity("127.0.0.1:0", map[string]string{clientID: clientSecret}, time.Hour); err != nil {
		return nil, err
	}
	if s.api, err = fixtures.StartAPI("127.0.0.1:0"); err != nil {
		s.stop()
		return nil, err
	}
	deadPort, err := harness.FreePort()
	if err != nil {
		s.stop()
		return nil, err
	}
	s.dynamic = dynamicData{IdentityURL: s.identity.URL, APIURL: s.api.URL, DeadURL: fmt.Sprintf("http://127.0.0.1:%d", deadPort)}
	dynamic, err := harness.Render(filepath.Join("testdata", "dynamic.yml.tmpl"), s.dynamic)
	if err != nil {
		s.stop()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tokenrevocation-e2e-")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.dir = dir
	s.traefik, err = harness.Start(harness.Options{
		Binary:         bin,
		Root:           root,
		Dir:            dir,
		StaticTemplate: filepath.Join("testdata", "traefik.yml.tmpl"),
		Dynamic:        dynamic,
	})
	if err != nil {
		s.stop()
		return nil, err
	}
	// The routers exist once the plugin has loaded and the file provider
	// has been read.
	if err := harness.WaitStatus(s.traefik.URL+"/api/ready", nil, http.StatusOK, 60*time.Second); err != nil {
		log := s.traefik.Log()
		s.stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return s, nil
}

func (s *suite) stop() {
	s.traefik.Stop()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	if s.identity != nil {
		_ = s.identity.Close()
	}
	if s.api != nil {
		_ = s.api.Close()
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   string
}

func (s *suite) do(t *testing.T, method, path string, header http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.traefik.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func formHeader(basic bool) http.Header {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if basic {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(clientID, clientSecret)
		h["Authorization"] = req.Header["Authorization"]
	}
	return h
}

// issue gets fresh tokens from the identity stand-in through Traefik.
func (s *suite) issue(t *testing.T) fixtures.TokenResponse {
	t.Helper()
	r := s.do(t, http.MethodPost, fixtures.TokenPath, formHeader(true), "grant_type=client_credentials")
	if r.status != http.StatusOK {
		t.Fatalf("token endpoint: %d %s", r.status, r.body)
	}
	var tr fixtures.TokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (s *suite) revoke(t *testing.T, path, token, hint string) response {
	t.Helper()
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	return s.do(t, http.MethodPost, path, formHeader(true), form.Encode())
}

// assertRevoked checks the exact 401 a revoked token gets.
func assertRevoked(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status: got %d %s, want 401", r.status, r.body)
	}
	if got := r.header.Get("WWW-Authenticate"); got != revokedWWW {
		t.Errorf("WWW-Authenticate: got %q", got)
	}
	assertErrorBody(t, r, "invalid_token")
}

func assertErrorBody(t *testing.T, r response, code string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if body["error"] != code || body["errorDescription"] == "" || len(body) != 2 {
		t.Errorf("body: got %v, want error %q and an errorDescription", body, code)
	}
}

func (s *suite) stats(t *testing.T) map[string]any {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/_revocation/stats", nil, "")
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil || r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	return m
}

func TestTraefikRevokedTokenRejected(t *testing.T) {
	s := traefikSuite(t)
	victim, bystander := s.issue(t), s.issue(t)
	if r := s.do(t, http.MethodGet, "/api/orders", bearer(victim.AccessToken), ""); r.status != 200 || !strings.Contains(r.body, victim.AccessToken) {
		t.Fatalf("before revoke: %d %s", r.status, r.body)
	}

	if r := s.revoke(t, fixtures.RevokePath, victim.AccessToken, "access_token"); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}

	calls := s.api.Calls.Load()
	r := s.do(t, http.MethodGet, "/api/orders", bearer(victim.AccessToken), "")
	assertRevoked(t, r)
	if strings.Contains(r.body, victim.AccessToken) {
		t.Errorf("the 401 echoes the token")
	}
	if s.api.Calls.Load() != calls {
		t.Errorf("a rejected request reached the API")
	}
	lower := http.Header{"Authorization": {"bearer " + victim.AccessToken}}
	assertRevoked(t, s.do(t, http.MethodGet, "/api/orders", lower, ""))
	if r := s.do(t, http.MethodGet, "/api/orders", bearer(bystander.AccessToken), ""); r.status != 200 {
		t.Errorf("other token: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/api/orders", nil, ""); r.status != 200 {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	if log := s.traefik.Log(); strings.Contains(log, victim.AccessToken) {
		t.Errorf("Traefik's log holds the raw token")
	}
}

func TestTraefikFailedRevokeRecordsNothing(t *testing.T) {
	s := traefikSuite(t)
	tok := s.issue(t)

	badCreds := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	r := s.do(t, http.MethodPost, fixtures.RevokePath, badCreds, "token="+url.QueryEscape(tok.AccessToken)+"&client_id="+clientID+"&client_secret=wrong")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "client authentication failed") {
		t.Fatalf("revoke with bad credentials: %d %s (want the identity service's own 401)", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/api/orders", bearer(tok.AccessToken), ""); r.status != 200 {
		t.Fatalf("after a revoke with bad credentials: %d", r.status)
	}

	r = s.revoke(t, "/down/revoke", tok.AccessToken, "")
	if r.status != http.StatusBadGateway {
		t.Fatalf("revoke to a dead upstream: %d %s, want 502", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/api/orders", bearer(tok.AccessToken), ""); r.status != 200 {
		t.Fatalf("after a revoke the upstream never confirmed: %d", r.status)
	}
}

func TestTraefikRevokeSpecErrors(t *testing.T) {
	s := traefikSuite(t)
	tests := []struct {
		desc      string
		header    http.Header
		body      string
		expStatus int
		expError  string
	}{
		{desc: "JSON body", header: http.Header{"Content-Type": {"application/json"}, "Authorization": formHeader(true)["Authorization"]}, body: `{"token":"x"}`, expStatus: 400, expError: "invalid_request"},
		{desc: "token missing", header: formHeader(true), body: "token_type_hint=access_token", expStatus: 400, expError: "invalid_request"},
		{desc: "unsupported hint", header: formHeader(true), body: "token=x&token_type_hint=id_token", expStatus: 400, expError: "unsupported_token_type"},
		{desc: "no client credentials", header: formHeader(false), body: "token=x", expStatus: 401, expError: "invalid_client"},
		{desc: "body over maxBodyBytes", header: formHeader(true), body: "token=" + strings.Repeat("x", 2000), expStatus: 413, expError: "invalid_request"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			before := s.identity.Revokes.Load()
			r := s.do(t, http.MethodPost, fixtures.RevokePath, test.header, test.body)
			if r.status != test.expStatus {
				t.Fatalf("status: got %d %s, want %d", r.status, r.body, test.expStatus)
			}
			assertErrorBody(t, r, test.expError)
			if test.expStatus == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="tokenrevocation"` {
				t.Errorf("WWW-Authenticate: got %q", r.header.Get("WWW-Authenticate"))
			}
			if s.identity.Revokes.Load() != before {
				t.Errorf("the identity service was called")
			}
		})
	}
}

func TestTraefikSharedAcrossRouters(t *testing.T) {
	s := traefikSuite(t)
	tok := s.issue(t)
	if r := s.revoke(t, fixtures.RevokePath, tok.AccessToken, ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	assertRevoked(t, s.do(t, http.MethodGet, "/v2/orders", bearer(tok.AccessToken), ""))
	if r := s.do(t, http.MethodGet, "/other/orders", bearer(tok.AccessToken), ""); r.status != 200 {
		t.Errorf("a middleware with another denylist rejected it: %d", r.status)
	}
}

func TestTraefikReloadKeepsRevocations(t *testing.T) {
	s := traefikSuite(t)
	tok := s.issue(t)
	if r := s.revoke(t, fixtures.RevokePath, tok.AccessToken, ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}

	marker := fmt.Sprintf("reloaded-%d", time.Now().UnixNano())
	data := s.dynamic
	data.Marker = marker
	dynamic, err := harness.Render(filepath.Join("testdata", "dynamic.yml.tmpl"), data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.traefik.WriteDynamic(dynamic); err != nil {
		t.Fatal(err)
	}
	// The marker route exists only once the new configuration is live.
	if err := harness.WaitStatus(s.traefik.URL+"/"+marker, nil, http.StatusOK, 30*time.Second); err != nil {
		t.Fatalf("reload not applied: %v", err)
	}

	for _, path := range []string{"/api/orders", "/v2/orders"} {
		assertRevoked(t, s.do(t, http.MethodGet, path, bearer(tok.AccessToken), ""))
	}
}

func TestTraefikRevokedRefreshTokenRefused(t *testing.T) {
	s := traefikSuite(t)
	revoked, good := s.issue(t), s.issue(t)
	if r := s.revoke(t, fixtures.RevokePath, revoked.RefreshToken, "refresh_token"); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}

	r := s.do(t, http.MethodPost, fixtures.TokenPath, formHeader(true), "grant_type=refresh_token&refresh_token="+revoked.RefreshToken)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "The refresh token has been revoked") {
		t.Fatalf("revoked refresh grant: %d %s, want the plugin's 400 invalid_grant", r.status, r.body)
	}
	assertErrorBody(t, r, "invalid_grant")

	r = s.do(t, http.MethodPost, fixtures.TokenPath, formHeader(true), "grant_type=refresh_token&refresh_token="+good.RefreshToken)
	if r.status != http.StatusOK {
		t.Fatalf("good refresh grant: %d %s", r.status, r.body)
	}
}

func TestTraefikExpiredEntryLeavesDenylist(t *testing.T) {
	s := traefikSuite(t)
	token := fixtures.NewJWT(time.Now().Add(2 * time.Second))
	before := s.stats(t)["entries"].(float64)
	if r := s.revoke(t, fixtures.RevokePath, token, "access_token"); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	if got := s.stats(t)["entries"].(float64); got != before+1 {
		t.Fatalf("entries after revoke: got %v, want %v", got, before+1)
	}
	assertRevoked(t, s.do(t, http.MethodGet, "/api/orders", bearer(token), ""))

	time.Sleep(2500 * time.Millisecond)
	if r := s.do(t, http.MethodGet, "/api/orders", bearer(token), ""); r.status != 200 {
		t.Fatalf("expired entry still rejects: %d", r.status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.stats(t)["entries"].(float64) > before && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if got := s.stats(t)["entries"].(float64); got != before {
		t.Fatalf("entries 30s after expiry: got %v, want %v", got, before)
	}
}

func TestTraefikMisspeltOptionRefused(t *testing.T) {
	// given routers whose middleware has a misspelled option, top level and in redis
	s := traefikSuite(t)
	for path, want := range map[string][]string{
		"/typo/orders":       {`revokePth`, `did you mean`, `revokePath`},
		"/typo-redis/orders": {`redis.adress`, `did you mean`, `redis.address`},
	} {
		// then Traefik reports New's error, with the nearest valid name
		found := false
		for _, line := range strings.Split(s.traefik.Log(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			found = found || all
		}
		if !found {
			t.Errorf("%s: no log line names %v\n%s", path, want, s.traefik.Log())
		}
		// and the router never serves: the API sees nothing
		if r := s.do(t, http.MethodGet, path, bearer("any-token"), ""); r.status < 400 {
			t.Errorf("%s: %d %s, want the router refused", path, r.status, r.body)
		}
	}
}

func TestTraefikQueryTokenSource(t *testing.T) {
	s := traefikSuite(t)
	tok, other := s.issue(t), s.issue(t)
	if r := s.revoke(t, fixtures.RevokePath, tok.AccessToken, ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	assertRevoked(t, s.do(t, http.MethodGet, "/api/orders?access_token="+url.QueryEscape(tok.AccessToken), nil, ""))
	if r := s.do(t, http.MethodGet, "/api/orders?access_token="+url.QueryEscape(other.AccessToken), nil, ""); r.status != 200 {
		t.Fatalf("good query token: %d", r.status)
	}
}

func TestTraefikConcurrentLoadWithRevocations(t *testing.T) {
	s := traefikSuite(t)
	const tokens, toRevoke, workers = 120, 40, 8
	pool := make([]string, tokens)
	for i := range pool {
		pool[i] = fixtures.NewJWT(time.Now().Add(time.Hour))
	}
	// revokedAt[i] is when the revoke response for pool[i] came back.
	revokedAt := make([]atomic.Int64, tokens)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var requests, lateAccepts, goodRejects atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				idx := i % tokens
				sentAt := time.Now().UnixNano()
				req, _ := http.NewRequest(http.MethodGet, s.traefik.URL+"/api/load", nil)
				req.Header.Set("Authorization", "Bearer "+pool[idx])
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				requests.Add(1)
				at := revokedAt[idx].Load()
				switch {
				case idx >= toRevoke && resp.StatusCode != http.StatusOK:
					goodRejects.Add(1)
				case at != 0 && at < sentAt && resp.StatusCode != http.StatusUnauthorized:
					lateAccepts.Add(1)
				}
			}
		}(w)
	}
	for i := 0; i < toRevoke; i++ {
		time.Sleep(50 * time.Millisecond)
		r := s.revoke(t, fixtures.RevokePath, pool[i], "")
		if r.status != 200 {
			t.Errorf("revoke %d: %d", i, r.status)
		}
		revokedAt[i].Store(time.Now().UnixNano())
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests, %d revocations", requests.Load(), toRevoke)
	if lateAccepts.Load() != 0 || goodRejects.Load() != 0 {
		t.Fatalf("revoked tokens accepted after their revoke returned: %d; good tokens rejected: %d", lateAccepts.Load(), goodRejects.Load())
	}
	for i := 0; i < toRevoke; i++ {
		assertRevoked(t, s.do(t, http.MethodGet, "/api/load", bearer(pool[i]), ""))
	}
}
