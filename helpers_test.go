package tokenrevocation

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream stands in for the identity service and the apps behind the
// middleware. It records whether it was called and what it received.
type upstream struct {
	mu      sync.Mutex
	called  int
	body    string
	header  http.Header
	status  int
	reply   string
	headers map[string]string
}

func (u *upstream) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
	}
	u.mu.Lock()
	u.called++
	u.body = string(b)
	u.header = req.Header.Clone()
	status, reply := u.status, u.reply
	for k, v := range u.headers {
		rw.Header().Set(k, v)
	}
	u.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	rw.WriteHeader(status)
	_, _ = io.WriteString(rw, reply)
}

func (u *upstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.called
}

// fakeClock is an injectable clock for the denylist.
type fakeClock struct{ ns int64 }

func newFakeClock() *fakeClock {
	return &fakeClock{ns: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, atomic.LoadInt64(&c.ns)) }
func (c *fakeClock) advance(d time.Duration) { atomic.AddInt64(&c.ns, int64(d)) }

var testSeq int64

// uniqueName returns a denylist name no other test uses.
func uniqueName(t testing.TB) string {
	return fmt.Sprintf("%s-%d", t.Name(), atomic.AddInt64(&testSeq, 1))
}

// newTestMiddleware builds the middleware around next with a private
// denylist driven by clock (nil: real time).
func newTestMiddleware(t testing.TB, next http.Handler, clock *fakeClock, edit func(*Config)) *middleware {
	t.Helper()
	cfg := CreateConfig()
	cfg.CacheSizeMB = 1
	if edit != nil {
		edit(cfg)
	}
	s, err := cfg.validate(uniqueName(t))
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	opts := s.denylistOptions()
	opts.persistPath = ""
	opts.redis = nil
	if clock != nil {
		opts.now = clock.now
	}
	list, err := newDenylist(s.denylist, opts)
	if err != nil {
		t.Fatalf("newDenylist: %v", err)
	}
	t.Cleanup(list.close)
	return newMiddleware(next, s, list)
}

// revokeRequest builds a revoke call with client credentials.
func revokeRequest(body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token/revoke", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("client", "secret")
	return req
}

// apiRequest builds an API call that carries token as a bearer token.
func apiRequest(token string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/api/things", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// serve runs req through h and returns the recorded response.
func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	return rw
}

// revoke revokes token through m and fails the test unless it was recorded.
func revoke(t testing.TB, m http.Handler, token, hint string) {
	t.Helper()
	body := "token=" + token
	if hint != "" {
		body += "&token_type_hint=" + hint
	}
	if rw := serve(m, revokeRequest(body)); rw.Code != http.StatusOK {
		t.Fatalf("revoke: status %d, body %s", rw.Code, rw.Body.String())
	}
}

// makeJWT returns an unsigned token shaped like a JWT with the given exp.
func makeJWT(exp int64) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"user-1","exp":%d}`, exp)))
	return header + "." + payload + "." + enc.EncodeToString([]byte("signature"))
}

// unregister drops the shared denylist name from the registry and closes
// d, when the test ends.
func unregister(t testing.TB, name string, d *denylist) {
	t.Cleanup(func() {
		denylists.Delete(name)
		d.close()
	})
}
