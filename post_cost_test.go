package tokenrevocation

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestJSONPostCost logs what the plugin's steps cost for bench case (f), a
// POST with a 200-byte JSON body and an unknown bearer token, compiled and
// under Yaegi (`make yaegi_test`). It asserts nothing about time.
func TestJSONPostCost(t *testing.T) {
	m := newTestMiddleware(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil, nil)
	body := `{"order":{"id":12345,"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"` + strings.Repeat("x", 114) + `"}}`
	token := "Bearer " + makeJWT(time.Now().Add(time.Hour).Unix())
	steps := map[string]func(rw http.ResponseWriter, req *http.Request){
		"ServeHTTP":     m.ServeHTTP,
		"requestTokens": func(rw http.ResponseWriter, req *http.Request) { m.requestTokens(rw, req) },
		"bodyTokens":    func(rw http.ResponseWriter, req *http.Request) { m.bodyTokens(rw, req, nil) },
		"readBody":      func(rw http.ResponseWriter, req *http.Request) { m.readBody(rw, req) },
		"words":         func(rw http.ResponseWriter, req *http.Request) { appendCredentialWords(nil, token) },
		"variant":       func(rw http.ResponseWriter, req *http.Request) { m.endpointVariant(req) },
		"contains":      func(rw http.ResponseWriter, req *http.Request) { m.list.contains(token[7:]) },
		"neverRevoked":  func(rw http.ResponseWriter, req *http.Request) { m.neverRevoked(token[7:]) },
		"keyOf":         func(rw http.ResponseWriter, req *http.Request) { keyOf(token[7:]) },
		"bodyKind":      func(rw http.ResponseWriter, req *http.Request) { bodyKind(req.Header.Get("Content-Type")) },
		"serveSlow":     m.serveSlow,
		"json":          func(rw http.ResponseWriter, req *http.Request) { appendJSONTokens(nil, []byte(body)) },
	}
	const n = 500
	best := map[string]time.Duration{}
	for round := 0; round < 3; round++ {
		for name, step := range steps {
			reqs := make([]*http.Request, n)
			for i := range reqs {
				reqs[i] = httptest.NewRequest(http.MethodPost, "/api/x", strings.NewReader(body))
				reqs[i].Header.Set("Content-Type", "application/json")
				reqs[i].Header.Set("Authorization", token)
			}
			rw := httptest.NewRecorder()
			start := time.Now()
			for i := 0; i < n; i++ {
				step(rw, reqs[i])
			}
			if took := time.Since(start) / n; best[name] == 0 || took < best[name] {
				best[name] = took
			}
		}
	}
	// The best of three rounds each: the noise of a shared machine only adds.
	for name, took := range best {
		t.Logf("%-14s %v", name, took)
	}
}
