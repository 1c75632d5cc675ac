// Command demo starts a real Traefik with the tokenrevocation plugin, the
// identity-service stand-in and an API behind it, all on loopback, and walks
// through get a token, call the API, revoke, call again and be rejected. Each
// step is printed as the equivalent curl command and its result.
//
// It stays up until Ctrl-C so the printed commands can be tried by hand. With
// -once it runs the walk-through, stops everything and exits non-zero on any
// unexpected result; CI uses that.
//
//	cd e2e && go run ./cmd/demo [-once]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

const (
	clientID     = "demo-client"
	clientSecret = "demo-secret"
	apiPath      = "/api/orders"
)

func main() {
	os.Exit(run())
}

func run() int {
	once := flag.Bool("once", false, "run the walk-through once, stop everything and exit non-zero on any unexpected result")
	flag.Parse()

	// Signals stay caught until everything is stopped: Traefik runs in a
	// process group of its own, so a second Ctrl-C that killed the demo
	// would leave it behind.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	env, err := start(ctx)
	if env != nil {
		defer env.stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if ctx.Err() != nil {
		return 1
	}

	d := &demo{ctx: ctx, base: env.traefik.URL, client: &http.Client{Timeout: 10 * time.Second}}
	fresh, revoked := d.walkThrough()
	if ctx.Err() != nil {
		fmt.Println("\ninterrupted")
		return 1
	}

	if *once {
		return d.report()
	}
	d.report()
	env.printTryIt(fresh, revoked)
	<-ctx.Done()
	fmt.Println("\nstopping...")
	return 0
}

// env is everything the demo started.
type env struct {
	traefik  *harness.Traefik
	dir      string
	identity *fixtures.Identity
	api      *fixtures.API
}

// dynamicData fills e2e/testdata/dynamic.yml.tmpl.
type dynamicData struct {
	IdentityURL, APIURL, DeadURL, Marker string
}

// start builds Traefik if needed and starts the identity stand-in, the API
// and Traefik. The env it returns, even with an error, must be stopped.
func start(ctx context.Context) (*env, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	testdata := filepath.Join(root, "e2e", "testdata")
	fmt.Println("building Traefik (first time about 5 minutes)...")
	bin, err := harness.TraefikBinary(root)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	e := &env{}
	if e.identity, err = fixtures.StartIdentity("127.0.0.1:0", map[string]string{clientID: clientSecret}, time.Hour); err != nil {
		return e, err
	}
	if e.api, err = fixtures.StartAPI("127.0.0.1:0"); err != nil {
		return e, err
	}
	deadPort, err := harness.FreePort()
	if err != nil {
		return e, err
	}
	dynamic, err := harness.Render(filepath.Join(testdata, "dynamic.yml.tmpl"), dynamicData{
		IdentityURL: e.identity.URL,
		APIURL:      e.api.URL,
		DeadURL:     fmt.Sprintf("http://127.0.0.1:%d", deadPort),
	})
	if err != nil {
		return e, err
	}
	if e.dir, err = os.MkdirTemp("", "tokenrevocation-demo-"); err != nil {
		return e, err
	}
	fmt.Println("starting Traefik with the plugin from", root, "...")
	e.traefik, err = harness.Start(harness.Options{
		Binary:         bin,
		Root:           root,
		Dir:            e.dir,
		StaticTemplate: filepath.Join(testdata, "traefik.yml.tmpl"),
		Dynamic:        dynamic,
	})
	if err != nil {
		return e, err
	}
	// The routers exist once the plugin has loaded and the file provider
	// has been read.
	if err := harness.WaitStatus(e.traefik.URL+"/api/ready", nil, http.StatusOK, 60*time.Second); err != nil {
		return e, fmt.Errorf("%w\n%s", err, e.traefik.Log())
	}
	fmt.Printf("Traefik %s  identity stand-in %s  API %s\n", e.traefik.URL, e.identity.URL, e.api.URL)
	return e, nil
}

// stop ends Traefik, removes its working directory and closes the stand-ins.
func (e *env) stop() {
	if e.traefik != nil {
		e.traefik.Stop()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	if e.identity != nil {
		_ = e.identity.Close()
	}
	if e.api != nil {
		_ = e.api.Close()
	}
	fmt.Println("stopped Traefik, the identity stand-in and the API")
}

// printTryIt prints commands to paste while the demo stays up.
func (e *env) printTryIt(fresh, revoked string) {
	base := e.traefik.URL
	fmt.Printf("\nTraefik is listening on %s. Try it yourself:\n\n", base)
	fmt.Println("  # get a token")
	fmt.Println("  " + curlLine(http.MethodPost, base+fixtures.TokenPath, true, "", false, [][2]string{{"grant_type", "client_credentials"}}))
	if fresh != "" {
		fmt.Println("  # call the API with a token that still works (200)")
		fmt.Println("  " + curlLine(http.MethodGet, base+apiPath, false, fresh, false, nil))
		fmt.Println("  # revoke it")
		fmt.Println("  " + curlLine(http.MethodPost, base+fixtures.RevokePath, true, "", false, [][2]string{{"token", fresh}, {"token_type_hint", "access_token"}}))
	}
	if revoked != "" {
		fmt.Println("  # call the API with the revoked token (401)")
		fmt.Println("  " + curlLine(http.MethodGet, base+apiPath, false, revoked, true, nil))
	}
	fmt.Println("  # the plugin's denylist statistics")
	fmt.Println("  curl -s " + base + "/api/_revocation/stats")
	fmt.Println("\nPress Ctrl-C to stop.")
}

// demo runs the walk-through's requests against Traefik and records what
// did not go as expected.
type demo struct {
	ctx    context.Context
	base   string
	client *http.Client
	failed []string
}

// call is one request of the walk-through.
type call struct {
	method  string
	path    string
	basic   bool        // client credentials by HTTP Basic (curl -u)
	bearer  string      // Authorization: Bearer
	form    [][2]string // form fields, in order (curl -d)
	headers bool        // print response headers (curl -i)
	want    int
	// check, if set, looks at a response with the wanted status and
	// returns what is wrong with it.
	check func(r *result) error
}

// result is a finished exchange.
type result struct {
	status int
	header http.Header
	body   []byte
}

// heading starts a numbered step.
func (d *demo) heading(n int, title string) {
	fmt.Printf("\n== %d. %s\n", n, title)
}

// step makes the request, prints the equivalent curl command and the
// result, and records a failure when it is not what c expects. It returns
// nil when the request could not be made.
func (d *demo) step(c call) *result {
	target := d.base + c.path
	fmt.Println("$ " + curlLine(c.method, target, c.basic, c.bearer, c.headers, c.form))

	r, err := d.do(c, target)
	if err != nil {
		d.fail(fmt.Sprintf("%s %s: %v", c.method, c.path, err))
		return nil
	}
	fmt.Printf("HTTP %d %s\n", r.status, http.StatusText(r.status))
	if c.headers {
		for _, name := range []string{"Content-Type", "WWW-Authenticate"} {
			if v := r.header.Get(name); v != "" {
				fmt.Printf("%s: %s\n", name, v)
			}
		}
	}
	fmt.Println(pretty(r.body))

	var problem error
	if r.status != c.want {
		problem = fmt.Errorf("got %d", r.status)
	} else if c.check != nil {
		problem = c.check(r)
	}
	if problem != nil {
		d.fail(fmt.Sprintf("%s %s: expected %d: %v", c.method, c.path, c.want, problem))
	} else {
		fmt.Printf("expected %d: ok\n", c.want)
	}
	return r
}

func (d *demo) do(c call, target string) (*result, error) {
	var body io.Reader
	if c.form != nil {
		form := make([]string, 0, len(c.form))
		for _, kv := range c.form {
			form = append(form, url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1]))
		}
		body = strings.NewReader(strings.Join(form, "&"))
	}
	req, err := http.NewRequestWithContext(d.ctx, c.method, target, body)
	if err != nil {
		return nil, err
	}
	if c.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.basic {
		req.SetBasicAuth(clientID, clientSecret)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return &result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (d *demo) fail(msg string) {
	fmt.Println("UNEXPECTED: " + msg)
	d.failed = append(d.failed, msg)
}

// report prints the outcome and returns the exit code for -once.
func (d *demo) report() int {
	fmt.Println()
	if len(d.failed) == 0 {
		fmt.Println("every step gave the expected result")
		return 0
	}
	fmt.Printf("%d step(s) FAILED:\n", len(d.failed))
	for _, f := range d.failed {
		fmt.Println("  - " + f)
	}
	return 1
}

// walkThrough runs the steps. It returns an access token that still works
// and one that was revoked, for the commands printed afterwards.
func (d *demo) walkThrough() (fresh, revoked string) {
	d.heading(1, "Get a token (client credentials)")
	first, ok := d.getToken()
	if !ok {
		d.fail("no token issued: the remaining steps need one")
		return "", ""
	}

	d.heading(2, "Call the API with the access token")
	d.callAPI(first.AccessToken)

	d.heading(3, "Revoke the access token (RFC 7009)")
	d.step(call{
		method: http.MethodPost, path: fixtures.RevokePath, basic: true,
		form: [][2]string{{"token", first.AccessToken}, {"token_type_hint", "access_token"}},
		want: http.StatusOK,
	})

	d.heading(4, "Call the API again with the same token: rejected at the edge")
	d.step(call{
		method: http.MethodGet, path: apiPath, bearer: first.AccessToken, headers: true,
		want:  http.StatusUnauthorized,
		check: func(r *result) error { return errorCode(r, "invalid_token") },
	})

	d.heading(5, "Revoke the refresh token, then try to use it")
	d.step(call{
		method: http.MethodPost, path: fixtures.RevokePath, basic: true,
		form: [][2]string{{"token", first.RefreshToken}, {"token_type_hint", "refresh_token"}},
		want: http.StatusOK,
	})
	d.step(call{
		method: http.MethodPost, path: fixtures.TokenPath, basic: true,
		form:  [][2]string{{"grant_type", "refresh_token"}, {"refresh_token", first.RefreshToken}},
		want:  http.StatusBadRequest,
		check: func(r *result) error { return errorCode(r, "invalid_grant") },
	})

	d.heading(6, "A fresh token still works")
	second, ok := d.getToken()
	if !ok {
		return "", first.AccessToken
	}
	d.callAPI(second.AccessToken)
	return second.AccessToken, first.AccessToken
}

// getToken asks the token endpoint for a client-credentials token.
func (d *demo) getToken() (fixtures.TokenResponse, bool) {
	var tr fixtures.TokenResponse
	r := d.step(call{
		method: http.MethodPost, path: fixtures.TokenPath, basic: true,
		form: [][2]string{{"grant_type", "client_credentials"}},
		want: http.StatusOK,
		check: func(r *result) error {
			if err := json.Unmarshal(r.body, &tr); err != nil {
				return fmt.Errorf("body is not a token response: %w", err)
			}
			if tr.AccessToken == "" || tr.RefreshToken == "" {
				return errors.New("access_token or refresh_token missing")
			}
			return nil
		},
	})
	return tr, r != nil && r.status == http.StatusOK && tr.AccessToken != "" && tr.RefreshToken != ""
}

// callAPI calls the API through Traefik and expects it to have seen token.
func (d *demo) callAPI(token string) {
	d.step(call{
		method: http.MethodGet, path: apiPath, bearer: token,
		want: http.StatusOK,
		check: func(r *result) error {
			var got fixtures.APIResponse
			if err := json.Unmarshal(r.body, &got); err != nil {
				return fmt.Errorf("body is not the API's answer: %w", err)
			}
			if got.Token != token {
				return errors.New("the API did not see the token")
			}
			return nil
		},
	})
}

// errorCode checks a JSON error body's "error".
func errorCode(r *result, want string) error {
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		return fmt.Errorf("body is not a JSON error: %w", err)
	}
	if body["error"] != want {
		return fmt.Errorf("error is %v, want %q", body["error"], want)
	}
	return nil
}

// curlLine is the curl command equivalent to a request, runnable as printed:
// tokens appear in full.
func curlLine(method, target string, basic bool, bearer string, headers bool, form [][2]string) string {
	parts := []string{"curl", "-s"}
	if headers {
		parts = append(parts, "-i")
	}
	if method != http.MethodGet {
		parts = append(parts, "-X", method)
	}
	parts = append(parts, target)
	if basic {
		parts = append(parts, "-u", shellQuote(clientID+":"+clientSecret))
	}
	if bearer != "" {
		parts = append(parts, "-H", shellQuote("Authorization: Bearer "+bearer))
	}
	for _, kv := range form {
		parts = append(parts, "-d", shellQuote(url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1])))
	}
	return strings.Join(parts, " ")
}

// shellQuote single-quotes s unless it is made only of characters a POSIX
// shell leaves alone.
func shellQuote(s string) string {
	const plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=+%@"
	if s != "" && strings.Trim(s, plain) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pretty formats a response body for reading: indented JSON with tokens cut
// short, or the text itself.
func pretty(body []byte) string {
	if len(strings.TrimSpace(string(body))) == 0 {
		return "(empty body)"
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return shorten(strings.TrimSpace(string(body)), 300)
	}
	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			if s, ok := val.(string); ok && strings.HasSuffix(k, "token") {
				m[k] = shorten(s, 20)
			}
		}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(body)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// shorten keeps the first n characters of s.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
