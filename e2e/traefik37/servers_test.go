package traefik37

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"github.com/traefik/traefik/v3/pkg/plugins"
)

const (
	revokePath = "/api/id/v1/auth/token/revoke"
	apiPath    = "/api/orders"
	statsPath  = "/api/_revocation/stats"
	// clientID and clientSecret are the one client the identity stand-in knows.
	clientID     = "edge-client"
	clientSecret = "edge-secret"
	// defaultTimeout bounds one HTTP exchange of a test.
	defaultTimeout = 10 * time.Second
	// eventually bounds the wait for something asynchronous (replication):
	// an upper bound past which the test fails, never a timing asserted.
	eventually = 60 * time.Second
)

// identity is the identity-service stand-in: an RFC 7009 revoke endpoint
// that knows one client. It answers 200 to a revoke with that client's
// HTTP Basic credentials and a token, 401 invalid_client to any other
// credentials, 400 invalid_request without a token and 400
// unsupported_token_type to a hint it does not know.
type identity struct {
	srv *httptest.Server
	// confirmed counts the revokes it answered 200; calls every request.
	confirmed, calls atomic.Int64
}

func startIdentity(t *testing.T) *identity {
	t.Helper()
	id := &identity{}
	id.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		id.calls.Add(1)
		if req.URL.Path != revokePath || req.Method != http.MethodPost {
			http.NotFound(rw, req)
			return
		}
		user, pass, ok := req.BasicAuth()
		if !ok || user != clientID || pass != clientSecret {
			rw.Header().Set("WWW-Authenticate", `Basic realm="identity"`)
			oauthError(rw, http.StatusUnauthorized, "invalid_client")
			return
		}
		if err := req.ParseForm(); err != nil || req.PostForm.Get("token") == "" {
			oauthError(rw, http.StatusBadRequest, "invalid_request")
			return
		}
		switch req.PostForm.Get("token_type_hint") {
		case "", "access_token", "refresh_token":
		default:
			oauthError(rw, http.StatusBadRequest, "unsupported_token_type")
			return
		}
		id.confirmed.Add(1)
		rw.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(id.srv.Close)
	return id
}

func oauthError(rw http.ResponseWriter, status int, code string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_, _ = fmt.Fprintf(rw, `{"error":%q}`, code)
}

// api is the upstream API: it counts the requests that reach it and keeps
// the last one's body.
type api struct {
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	body string
}

func startAPI(t *testing.T) *api {
	t.Helper()
	a := &api{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		a.mu.Lock()
		a.body = string(b)
		a.mu.Unlock()
		a.hits.Add(1)
		_, _ = io.WriteString(rw, "api ok")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *api) lastBody() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.body
}

// env is one in-process Traefik replica: the plugin built through the
// v3.7.13 loader in front of the identity stand-in and the API, served on
// a loopback port.
type env struct {
	builder *plugins.Builder
	id      *identity
	api     *api
	dynamic string
	edge    *httptest.Server
}

// newEnv loads the plugin with a new Builder (a Traefik start) and serves
// the dynamic configuration with the plugin options given.
func newEnv(t *testing.T, options string) *env {
	t.Helper()
	b, err := newBuilder(staticUnsafe)
	if err != nil {
		t.Fatalf("loading the plugin through Traefik v3.7.13's loader: %v", err)
	}
	e := &env{builder: b, id: startIdentity(t), api: startAPI(t)}
	e.dynamic = dynamicYAML(e.id.srv.URL, e.api.srv.URL, options)
	e.edge = serveEdge(t, b, e.dynamic)
	return e
}

// serveEdge builds the routers of dynamicYAML with b, the way Traefik
// builds them at start and on every reload, and serves them on a new
// loopback port, stopped when the test ends.
func serveEdge(t *testing.T, b *plugins.Builder, dynamicYAML string) *httptest.Server {
	t.Helper()
	h, err := buildEdge(context.Background(), b, dynamicYAML)
	if err != nil {
		t.Fatalf("building the routers: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

var client = &http.Client{Timeout: defaultTimeout}

// reply is a response, read and closed.
type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) String() string {
	return fmt.Sprintf("%d %q %v", r.status, r.body, r.header)
}

// do sends one request; header values are set in order.
func do(t *testing.T, method, url string, body io.Reader, header ...string) reply {
	t.Helper()
	r, err := send(method, url, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func send(method, url string, body io.Reader, header ...string) (reply, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return reply{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// revoke makes an RFC 7009 revoke call through the edge at base with the
// client's Basic credentials (secret) and the form fields given.
func revoke(t *testing.T, base, secret string, form string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+revokePath, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(clientID, secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("revoke through %s: %v", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// bearer is a GET of the API with token as an Authorization Bearer.
func bearer(t *testing.T, base, token string) reply {
	t.Helper()
	return do(t, http.MethodGet, base+apiPath, nil, "Authorization", "Bearer "+token)
}

// mustRevoke revokes token and fails unless the identity service's 200
// came back.
func mustRevoke(t *testing.T, base, token string) {
	t.Helper()
	if r := revoke(t, base, clientSecret, "token="+token+"&token_type_hint=access_token"); r.status != http.StatusOK {
		t.Fatalf("revoke of %s through %s: %s", token, base, r)
	}
}

// wantRejected fails unless r is the plugin's 401 for a revoked token.
func wantRejected(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("%s: got %s, want 401 with an invalid_token challenge", what, r)
	}
}

// wantPassed fails unless r is the API's answer.
func wantPassed(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != http.StatusOK || r.body != "api ok" {
		t.Fatalf("%s: got %s, want the API's 200", what, r)
	}
}

// stats reads the plugin's counters on statsPath.
type stats struct {
	Denylist string `json:"denylist"`
	Entries  int    `json:"entries"`
	Revokes  int64  `json:"revokes"`
	Loaded   int64  `json:"loaded"`
	Ready    bool   `json:"ready"`
	State    string `json:"state"`
	Redis    string `json:"redis"`
}

func readStats(t *testing.T, base string) stats {
	t.Helper()
	r := do(t, http.MethodGet, base+statsPath, nil)
	var s stats
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &s) != nil {
		t.Fatalf("stats at %s: %s", base, r)
	}
	return s
}

// waitFor polls until check reports true, for at most eventually.
func waitFor(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	last := ""
	for {
		ok, state := check()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, eventually, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRedis starts redis-server (harness.StartRedis) on a free loopback
// port, with its files in a folder of the test and no append-only file,
// and returns its address once it answers PING. It is stopped when the test
// ends. A port taken between the look-up and redis-server's bind is retried
// with another. A missing redis-server fails the test.
func startRedis(t *testing.T) string {
	t.Helper()
	var err error
	for range 3 {
		var r *harness.Redis
		// The later --appendonly overrides the harness's: this suite never
		// restarts Redis, so nothing needs to survive one.
		if r, err = harness.StartRedis(t.TempDir(), "--appendonly", "no"); err == nil {
			t.Cleanup(r.Stop)
			return r.Addr()
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redis-server did not start: %v", err)
	return ""
}

// replica is the helper process: a second replica with its own denylist.
type replica struct {
	url     string
	logPath string
}

func (r *replica) log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// startReplica runs the test binary again as a replica (runReplica) with
// the static and dynamic configurations given, and returns once it serves.
// It is stopped when the test ends: its standard input is closed, then it
// is killed if it has not exited after a while.
func startReplica(t *testing.T, staticYAML, dynamicYAML string) *replica {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "static.yml"), []byte(staticYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dynamic.yml"), []byte(dynamicYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &replica{logPath: filepath.Join(dir, "replica.log")}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), envReplica+"="+dir, envWork+"="+workDir)
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting the replica process: %v", err)
	}
	done := make(chan struct{})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, listenPrefix); ok {
				listening <- u
				continue
			}
			_, _ = fmt.Fprintln(logFile, line)
		}
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-done:
		case <-time.After(defaultTimeout):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	select {
	case r.url = <-listening:
	case <-done:
		t.Fatalf("the replica process exited before serving:\n%s", r.log())
	case <-time.After(eventually):
		t.Fatalf("the replica process did not serve within %s:\n%s", eventually, r.log())
	}
	return r
}
