package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
)

// Issue 16: a revoked token never passes in any form an app accepts.

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// signJWT signs claims with key, RS256 or ES256, as an identity service would.
func signJWT(t *testing.T, key crypto.Signer, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	alg := "RS256"
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		alg = "ES256"
	}
	input := enc.EncodeToString([]byte(`{"alg":"`+alg+`","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		s, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	return input + "." + enc.EncodeToString(sig)
}

// twinOf builds the (r, n-s) twin of an ES256 JWT and checks that it verifies.
func twinOf(t *testing.T, key *ecdsa.PrivateKey, token string) string {
	t.Helper()
	dot := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	s := new(big.Int).Sub(elliptic.P256().Params().N, new(big.Int).SetBytes(sig[32:]))
	sum := sha256.Sum256([]byte(token[:dot]))
	if !ecdsa.Verify(&key.PublicKey, sum[:], new(big.Int).SetBytes(sig[:32]), s) {
		t.Fatal("twin does not verify")
	}
	return token[:dot+1] + base64.RawURLEncoding.EncodeToString(append(sig[:32:32], s.FillBytes(make([]byte, 32))...))
}

// neighborOf moves the last character to the neighbor that differs only
// in unused bits, and checks that a non-strict decoder reads the same bytes.
func neighborOf(t *testing.T, token string) string {
	t.Helper()
	c := strings.IndexByte(b64url, token[len(token)-1])
	other := token[:len(token)-1] + string(b64url[c^1])
	dot := strings.LastIndexByte(token, '.')
	a, _ := base64.RawURLEncoding.DecodeString(token[dot+1:])
	b, err := base64.RawURLEncoding.DecodeString(other[dot+1:])
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("neighbor decodes differently: %v", err)
	}
	return other
}

// inEveryLocation asserts status for token in the header, the query and a form body.
func (s *suite) inEveryLocation(t *testing.T, name, token string, revoked bool) {
	t.Helper()
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, c := range []struct {
		where, method, path string
		header              http.Header
		body                string
	}{
		{"header", http.MethodGet, "/api/orders", bearer(token), ""},
		{"query", http.MethodGet, "/api/orders?access_token=" + url.QueryEscape(token), nil, ""},
		{"form", http.MethodPost, "/api/orders", form, "access_token=" + url.QueryEscape(token)},
	} {
		calls := s.api.Calls.Load()
		r := s.do(t, c.method, c.path, c.header, c.body)
		switch {
		case revoked && (r.status != http.StatusUnauthorized || s.api.Calls.Load() != calls):
			t.Errorf("%s in the %s: %d (API calls +%d), want 401 before the API", name, c.where, r.status, s.api.Calls.Load()-calls)
		case !revoked && r.status != http.StatusOK:
			t.Errorf("%s in the %s: %d, want 200", name, c.where, r.status)
		}
	}
}

func TestTraefikJWTReencodings(t *testing.T) {
	s := traefikSuite(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(sub string) string {
		return fmt.Sprintf(`{"sub":%q,"jti":"%d","exp":%d}`, sub, time.Now().UnixNano(), time.Now().Add(time.Hour).Unix())
	}
	for _, key := range []crypto.Signer{rsaKey, ecKey} {
		name := fmt.Sprintf("%T", key)
		revoked := signJWT(t, key, claims("alice"))
		if r := s.revoke(t, fixtures.RevokePath, revoked, "access_token"); r.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		s.inEveryLocation(t, name+" as revoked", revoked, true)
		s.inEveryLocation(t, name+" with a neighboring last character", neighborOf(t, revoked), true)
		s.inEveryLocation(t, name+" with == padding", revoked+"==", true)
		if ec, ok := key.(*ecdsa.PrivateKey); ok {
			s.inEveryLocation(t, "the ES256 twin", twinOf(t, ec, revoked), true)
		}
		// The same header and signature edges, another payload: another token.
		other := signJWT(t, key, claims("bob"))
		dot := strings.LastIndexByte(revoked, '.')
		odot := strings.LastIndexByte(other, '.')
		s.inEveryLocation(t, name+" with another payload", other[:odot]+revoked[dot:], false)
	}
}

func TestTraefikEveryAuthorizationForm(t *testing.T) {
	s := traefikSuite(t)
	bad, good := s.issue(t).AccessToken, s.issue(t).AccessToken
	if r := s.revoke(t, fixtures.RevokePath, bad, ""); r.status != http.StatusOK {
		t.Fatalf("revoke: %d", r.status)
	}
	for _, values := range [][]string{
		{"Bearer " + bad + " extra"},
		{"Token " + bad},
		{"JWT " + bad},
		{bad},
		{"Bearer " + good, "Bearer " + bad},
	} {
		calls := s.api.Calls.Load()
		r := s.do(t, http.MethodGet, "/api/orders", http.Header{"Authorization": values}, "")
		if r.status != http.StatusUnauthorized || s.api.Calls.Load() != calls {
			t.Errorf("Authorization %d value(s), revoked token in a %q form: %d", len(values), strings.Fields(values[len(values)-1])[0][:3], r.status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("someone", "password")
	if r := s.do(t, http.MethodGet, "/api/orders", req.Header, ""); r.status != http.StatusOK {
		t.Errorf("a good Basic credential: %d", r.status)
	}
}

func gzipOf(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func TestTraefikEveryBody(t *testing.T) {
	s := traefikSuite(t)
	bad, good := s.issue(t).AccessToken, s.issue(t).AccessToken
	if r := s.revoke(t, fixtures.RevokePath, bad, ""); r.status != http.StatusOK {
		t.Fatalf("revoke: %d", r.status)
	}
	bodies := func(token string) []struct {
		name   string
		header http.Header
		body   string
	} {
		var mp bytes.Buffer
		w := multipart.NewWriter(&mp)
		_ = w.WriteField("note", "hello")
		_ = w.WriteField("access_token", token)
		_ = w.Close()
		form := "item=1&access_token=" + url.QueryEscape(token)
		return []struct {
			name   string
			header http.Header
			body   string
		}{
			{"gzip form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Content-Encoding": {"gzip"}}, gzipOf(form)},
			{"no Content-Type", http.Header{}, form},
			{"malformed Content-Type", http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset"}}, form},
			{"multipart", http.Header{"Content-Type": {w.FormDataContentType()}}, mp.String()},
			{"JSON", http.Header{"Content-Type": {"application/json"}}, `{"item":1,"access_token":"` + token + `"}`},
		}
	}
	for _, c := range bodies(bad) {
		calls := s.api.Calls.Load()
		r := s.do(t, http.MethodPost, "/api/orders", c.header, c.body)
		if r.status != http.StatusUnauthorized || s.api.Calls.Load() != calls {
			t.Errorf("%s with a revoked token: %d (API calls +%d), want 401 before the API", c.name, r.status, s.api.Calls.Load()-calls)
		}
	}
	for _, c := range bodies(good) {
		r := s.do(t, http.MethodPost, "/api/orders", c.header, c.body)
		var got fixtures.APIResponse
		// The API echoes the body in JSON, which replaces invalid UTF-8
		// (the gzip body) the same way each time.
		var want string
		b, _ := json.Marshal(c.body)
		_ = json.Unmarshal(b, &want)
		if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.Body != want {
			t.Errorf("%s with a good token: %d, body intact %v", c.name, r.status, got.Body == want)
		}
	}
	r := s.do(t, http.MethodPost, "/api/orders", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Content-Encoding": {"br"}}, "x")
	if r.status != http.StatusUnsupportedMediaType {
		t.Errorf("an unknown Content-Encoding: %d, want 415", r.status)
	}
	assertErrorBody(t, r, "invalid_request")
}

// procRSS is a process's resident set, in bytes.
func procRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestTraefikLargeMultipartUpload(t *testing.T) {
	s := traefikSuite(t)
	good := s.issue(t).AccessToken
	const size = 50 << 20
	var head bytes.Buffer
	w := multipart.NewWriter(&head)
	_ = w.WriteField("note", "upload")
	_, _ = w.CreateFormFile("file", "big.bin")
	tail := "\r\n--" + w.Boundary() + "--\r\n"
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	body := func() io.Reader {
		parts := []io.Reader{bytes.NewReader(head.Bytes())}
		for n := 0; n < size; n += len(chunk) {
			parts = append(parts, bytes.NewReader(chunk))
		}
		return io.MultiReader(append(parts, strings.NewReader(tail))...)
	}
	total := int64(head.Len() + size + len(tail))
	before := procRSS(t, s.traefik.Pid())
	req, err := http.NewRequest(http.MethodPost, s.traefik.URL+"/api/orders", body())
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = total
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+good)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got fixtures.APIResponse
	err = json.NewDecoder(resp.Body).Decode(&got)
	_ = resp.Body.Close()
	after := procRSS(t, s.traefik.Pid())
	if resp.StatusCode != http.StatusOK || err != nil || int64(len(got.Body)) != total {
		t.Fatalf("upload: %d, %v, %d of %d bytes reached the API", resp.StatusCode, err, len(got.Body), total)
	}
	want, _ := io.ReadAll(body())
	if got.Body != string(want) {
		t.Fatal("the upload reached the API changed")
	}
	// The edge holds a chunk at a time, not the upload.
	if grew := after - before; grew > size/2 {
		t.Fatalf("Traefik's RSS grew by %d MB for a %d MB upload", grew>>20, size>>20)
	}
	t.Logf("RSS %d MB -> %d MB", before>>20, after>>20)
}

func TestTraefikEndpointPathVariants(t *testing.T) {
	s := traefikSuite(t)
	for _, path := range []string{
		fixtures.RevokePath + "/",
		strings.TrimSuffix(fixtures.RevokePath, "revoke") + "Revoke",
		fixtures.RevokePath + ";jsessionid=1",
		fixtures.TokenPath + "/",
		fixtures.TokenPath + ";x=1",
	} {
		token := s.issue(t).AccessToken
		revokes := s.identity.Revokes.Load()
		r := s.revoke(t, path, token, "")
		if r.status != http.StatusBadRequest || s.identity.Revokes.Load() != revokes {
			t.Errorf("POST %s: %d (identity revokes +%d), want 400 before the identity service", path, r.status, s.identity.Revokes.Load()-revokes)
		}
		assertErrorBody(t, r, "invalid_request")
		if _, revoked := s.identity.Issued(token); revoked {
			t.Errorf("POST %s revoked the token unseen", path)
		}
	}
	// The exact path, percent-encoded, is the endpoint, and records.
	token := s.issue(t).AccessToken
	if r := s.revoke(t, strings.TrimSuffix(fixtures.RevokePath, "revoke")+"%72evoke", token, ""); r.status != http.StatusOK {
		t.Fatalf("encoded exact path: %d", r.status)
	}
	assertRevoked(t, s.do(t, http.MethodGet, "/api/orders", bearer(token), ""))
}
