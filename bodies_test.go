package tokenrevocation

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const revokedToken = "revoked-opaque-token-0123456789"

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func deflated(s string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func multipartBody(fields map[string]string) (string, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for name, value := range fields {
		_ = w.WriteField(name, value)
	}
	_ = w.Close()
	return b.String(), w.FormDataContentType()
}

type bodyCase struct {
	desc     string
	body     string
	header   map[string]string
	noLength bool
}

func bodyCases(token string) []bodyCase {
	mp, mpType := multipartBody(map[string]string{"title": "x", "access_token": token})
	return []bodyCase{
		{desc: "form", body: "access_token=" + token, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{desc: "gzip form", body: gzipped("access_token=" + token), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}},
		{desc: "deflate form", body: deflated("access_token=" + token), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "deflate"}},
		{desc: "no Content-Type", body: "access_token=" + token},
		{desc: "malformed Content-Type", body: "access_token=" + token, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset"}},
		{desc: "multipart", body: mp, header: map[string]string{"Content-Type": mpType}},
		{desc: "chunked multipart", body: mp, header: map[string]string{"Content-Type": mpType}, noLength: true},
		{desc: "JSON", body: `{"a":[1,{"b":2}],"access_token":"` + token + `"}`, header: map[string]string{"Content-Type": "application/json"}},
		{desc: "JSON with an escape", body: `{"\u0061ccess_token":"` + token + `"}`, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
	}
}

func bodyRequest(c bodyCase) *http.Request {
	var r io.Reader = strings.NewReader(c.body)
	if c.noLength {
		r = io.MultiReader(r) // no length: sent chunked
	}
	req := httptest.NewRequest(http.MethodPost, "/api/things", r)
	if c.noLength {
		req.ContentLength = -1
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return req
}

func TestBodiesCarryingARevokedToken(t *testing.T) {
	up := &upstream{}
	given := newTestMiddleware(t, up, newFakeClock(), nil)
	revoke(t, given, revokedToken, "access_token")
	calls := up.calls()
	for _, c := range bodyCases(revokedToken) {
		if rw := serve(given, bodyRequest(c)); rw.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", c.desc, rw.Code)
		}
	}
	if up.calls() != calls {
		t.Errorf("the upstream was called %d times", up.calls()-calls)
	}
	for _, c := range bodyCases("good-token-0123456789") {
		rw := serve(given, bodyRequest(c))
		if rw.Code != http.StatusOK || up.body != c.body {
			t.Errorf("%s with a good token: status %d, body identical %v", c.desc, rw.Code, up.body == c.body)
		}
	}
}

func TestBodiesTheEdgeCannotRead(t *testing.T) {
	given := newTestMiddleware(t, &upstream{}, newFakeClock(), func(c *Config) { c.MaxBodyBytes = 1024 })
	big := strings.Repeat("a", 2048)
	tests := []struct {
		desc   string
		c      bodyCase
		status int
	}{
		{"brotli form", bodyCase{body: "x", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "br"}}, http.StatusUnsupportedMediaType},
		{"two encodings", bodyCase{body: "x", header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"}}, http.StatusUnsupportedMediaType},
		{"form over the limit", bodyCase{body: "a=" + big, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, http.StatusRequestEntityTooLarge},
		{"JSON over the limit", bodyCase{body: `{"a":"` + big + `"}`, header: map[string]string{"Content-Type": "application/json"}}, http.StatusRequestEntityTooLarge},
		{"gzip bomb", bodyCase{body: gzipped(big), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}}, http.StatusRequestEntityTooLarge},
		{"image over the limit", bodyCase{body: big, header: map[string]string{"Content-Type": "image/png"}}, http.StatusOK},
	}
	for _, test := range tests {
		if rw := serve(given, bodyRequest(test.c)); rw.Code != test.status {
			t.Errorf("%s: status %d, want %d", test.desc, rw.Code, test.status)
		}
	}
}

func TestLargeMultipartStreams(t *testing.T) {
	up := &upstream{}
	given := newTestMiddleware(t, up, newFakeClock(), func(c *Config) { c.MaxBodyBytes = 1024 })
	revoke(t, given, revokedToken, "access_token")
	file := strings.Repeat("0123456789", 20000) // 200 KB
	for _, tail := range []bool{false, true} {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		if !tail {
			_ = w.WriteField("access_token", revokedToken)
		}
		fw, _ := w.CreateFormFile("upload", "f.bin")
		_, _ = fw.Write([]byte(file))
		if tail {
			_ = w.WriteField("access_token", revokedToken)
		}
		_ = w.Close()
		req := httptest.NewRequest(http.MethodPost, "/upload", bytes.NewReader(b.Bytes()))
		req.Header.Set("Content-Type", w.FormDataContentType())
		proxy := &readingUpstream{}
		m := newMiddleware(proxy, given.settings, given.list)
		rw := serve(m, req)
		if rw.Code != http.StatusUnauthorized || proxy.complete {
			t.Errorf("token at the end %v: status %d, upstream had the whole body %v", tail, rw.Code, proxy.complete)
		}
	}
	// A large upload with no token passes intact.
	body, ctype := multipartBody(map[string]string{"upload": file})
	req := httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if rw := serve(given, req); rw.Code != http.StatusOK || up.body != body {
		t.Errorf("clean upload: status %d, intact %v", rw.Code, up.body == body)
	}
}

// readingUpstream reads the body as a proxy would, and answers 502 when the
// read fails.
type readingUpstream struct{ complete bool }

func (u *readingUpstream) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	n, err := io.Copy(io.Discard, req.Body)
	if err != nil {
		rw.WriteHeader(http.StatusBadGateway)
		return
	}
	u.complete = n > 0
	rw.WriteHeader(http.StatusOK)
}

func TestEveryAuthorizationForm(t *testing.T) {
	up := &upstream{}
	given := newTestMiddleware(t, up, newFakeClock(), nil)
	revoke(t, given, revokedToken, "access_token")
	for _, value := range [][]string{
		{"Bearer " + revokedToken + " extra"},
		{"Token " + revokedToken},
		{"JWT " + revokedToken},
		{revokedToken},
		{"bearer  " + revokedToken},
		{"Bearer " + revokedToken + ",Basic eA=="},
		{"Bearer good-token-0123456789", "Bearer " + revokedToken},
		{"Basic " + basic("user", revokedToken)},
	} {
		req := apiRequest("")
		req.Header["Authorization"] = value
		if rw := serve(given, req); rw.Code != http.StatusUnauthorized {
			t.Errorf("%q: status %d, want 401", value, rw.Code)
		}
	}
	req := apiRequest("")
	req.SetBasicAuth("client", "secret")
	if rw := serve(given, req); rw.Code != http.StatusOK {
		t.Errorf("a good Basic credential: status %d", rw.Code)
	}
}

func basic(user, password string) string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestEndpointPathVariants(t *testing.T) {
	up := &upstream{}
	given := newTestMiddleware(t, up, newFakeClock(), func(c *Config) { c.TrackGrants = true })
	for _, path := range []string{
		"/api/id/v1/auth/token/revoke/", "/api/id/v1/auth/token/Revoke", "/api/id/v1/auth/token/revoke;jsessionid=1",
		"/api/id/v1/auth/token//revoke", "/api/id/v1/auth/token/./revoke", "/API/id/v1/auth/token/revoke",
		"/api/id/v1/auth/token/", "/api/id/v1/auth/TOKEN", "/api/id/v1/auth/token;x=1",
	} {
		req := revokeRequest("token=" + revokedToken)
		req.URL.Path = path
		if rw := serve(given, req); rw.Code != http.StatusBadRequest || up.calls() != 0 {
			t.Errorf("%s: status %d, upstream calls %d", path, rw.Code, up.calls())
		}
	}
	req := revokeRequest("token=" + revokedToken)
	req.Method = "post"
	if rw := serve(given, req); rw.Code != http.StatusBadRequest {
		t.Errorf("method post: status %d", rw.Code)
	}
	// The exact path, percent-encoded, is the endpoint itself.
	req = revokeRequest("token=" + revokedToken)
	req.URL.RawPath = "/api/id/v1/auth/token/%72evoke"
	if rw := serve(given, req); rw.Code != http.StatusOK || !given.list.contains(revokedToken) {
		t.Errorf("encoded exact path: status %d, recorded %v", rw.Code, given.list.contains(revokedToken))
	}
}

// TestServeBodyDecidesAsTheExactPath pins serveBody's inline checks (case
// (f)): whatever it settles itself, it settles as serveSlow would, and a
// request it passes reaches the next handler with its body intact.
func TestServeBodyDecidesAsTheExactPath(t *testing.T) {
	up := &upstream{}
	m := newTestMiddleware(t, up, newFakeClock(), nil)
	revoked := makeJWT(time.Now().Add(time.Hour).Unix())
	revoke(t, m, revoked, "access_token")
	unknown := makeJWT(time.Now().Add(2 * time.Hour).Unix())
	// A token that shares the revoked one's pre-check key, not revoked.
	lookalike := unknown[:strings.LastIndexByte(unknown, '.')+1] + revoked[strings.LastIndexByte(revoked, '.')+1:] + "x"
	const plain = `{"order":{"id":12345,"note":"hello"}}`
	cases := []struct {
		desc, bearer, contentType, body string
		want                            int
	}{
		{"unknown bearer, JSON", unknown, "application/json", plain, 200},
		{"unknown bearer, JSON with a charset", unknown, "application/json; charset=utf-8", plain, 200},
		{"unknown bearer, form", unknown, "application/x-www-form-urlencoded", "a=1&b=2", 200},
		{"unknown bearer, other type", unknown, "application/octet-stream", plain, 200},
		{"revoked bearer", revoked, "application/json", plain, 401},
		{"revoked token in the JSON body", unknown, "application/json", `{"access_token":"` + revoked + `"}`, 401},
		{"revoked token in the JSON body, escaped", unknown, "application/json", `{"access\u005ftoken":"` + revoked + `"}`, 401},
		{"revoked token in the form body", unknown, "application/x-www-form-urlencoded", "access_token=" + revoked, 401},
		{"a bearer sharing a revoked key", lookalike, "application/json", plain, 200},
		{"a short bearer", "abc", "application/json", plain, 200},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodPost, "/api/x", strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.contentType)
		req.Header.Set("Authorization", "Bearer "+c.bearer)
		calls := up.calls()
		rw := serve(m, req)
		if rw.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.desc, rw.Code, c.want)
			continue
		}
		if c.want == 200 && (up.calls() != calls+1 || up.body != c.body) {
			t.Errorf("%s: the next handler got body %q", c.desc, up.body)
		}
		if c.want != 200 && up.calls() != calls {
			t.Errorf("%s: a rejected request reached the next handler", c.desc)
		}
	}
}
