package tokenrevocation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// signedJWT signs header.payload with key (RS256 or ES256), as an identity
// service would.
func signedJWT(t testing.TB, key crypto.Signer, claims string) string {
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

// ecdsaTwin returns the (r, n-s) twin of an ES256 JWT, which verifies
// wherever the original does.
func ecdsaTwin(t testing.TB, key *ecdsa.PrivateKey, token string) string {
	t.Helper()
	dot := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	twin := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	sum := sha256.Sum256([]byte(token[:dot]))
	if !ecdsa.Verify(&key.PublicKey, sum[:], new(big.Int).SetBytes(twin[:32]), s) {
		t.Fatal("the twin does not verify")
	}
	return token[:dot+1] + base64.RawURLEncoding.EncodeToString(twin)
}

// neighbor changes the unused bits of the last character of token, which
// a non-strict base64url decoder ignores.
func neighbor(t testing.TB, token string) string {
	t.Helper()
	last := strings.IndexByte(b64url, token[len(token)-1])
	other := token[:len(token)-1] + string(b64url[last^1])
	dot := strings.LastIndexByte(token, '.')
	a, err1 := base64.RawURLEncoding.DecodeString(token[dot+1:])
	b, err2 := base64.RawURLEncoding.DecodeString(other[dot+1:])
	if err1 != nil || err2 != nil || string(a) != string(b) {
		t.Fatalf("%q and its neighbor decode differently", token[len(token)-1:])
	}
	return other
}

// encodings are the strings decoders accept for the same JWS.
func encodings(t testing.TB, token string) map[string]string {
	dot := strings.LastIndexByte(token, '.')
	sig := token[dot+1:]
	return map[string]string{
		"exact":       token,
		"neighbor":    neighbor(t, token),
		"padding":     token + "==",
		"std-base64":  token[:dot+1] + strings.NewReplacer("-", "+", "_", "/").Replace(sig),
		"junk inside": token[:dot+1] + sig[:3] + "!" + sig[3:],
	}
}

func TestJWSIdentity(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
	claims := func(sub string) string { return fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, exp) }
	for _, key := range []crypto.Signer{rsaKey, ecKey} {
		revoked := signedJWT(t, key, claims("alice"))
		forms := encodings(t, revoked)
		if ec, ok := key.(*ecdsa.PrivateKey); ok {
			forms["ecdsa twin"] = ecdsaTwin(t, ec, revoked)
			forms["twin, neighbor"] = neighbor(t, forms["ecdsa twin"])
		}
		// Another payload, the same header and the signature's edges.
		other := signedJWT(t, key, claims("bob"))
		dot, odot := strings.LastIndexByte(revoked, '.'), strings.LastIndexByte(other, '.')
		sameEdges := other[:odot+1] + revoked[dot+1:]
		for name, form := range forms {
			if tokenDigest(form) != tokenDigest(revoked) || keyOf(form) != keyOf(revoked) {
				t.Errorf("%T %s: another identity or key", key, name)
			}
		}
		if tokenDigest(sameEdges) == tokenDigest(revoked) || tokenDigest(other) == tokenDigest(revoked) {
			t.Errorf("%T: another payload has the same identity", key)
		}

		given := newTestMiddleware(t, &upstream{}, newFakeClock(), nil)
		revoke(t, given, url.QueryEscape(revoked), "access_token")
		for name, form := range forms {
			for _, req := range locations(form) {
				if rw := serve(given, req.req); rw.Code != http.StatusUnauthorized {
					t.Errorf("%T %s in the %s: status %d, want 401", key, name, req.where, rw.Code)
				}
			}
		}
		for _, good := range []string{other, sameEdges} {
			for _, req := range locations(good) {
				if rw := serve(given, req.req); rw.Code != http.StatusOK {
					t.Errorf("%T another payload in the %s: status %d, want 200", key, req.where, rw.Code)
				}
			}
		}
	}
}

type located struct {
	where string
	req   *http.Request
}

// locations puts token in the header, the query and a form body.
func locations(token string) []located {
	form := httptest.NewRequest(http.MethodPost, "/api/things", strings.NewReader("access_token="+url.QueryEscape(token)))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return []located{
		{"header", apiRequest(token)},
		{"query", httptest.NewRequest(http.MethodGet, "/api/things?access_token="+url.QueryEscape(token), nil)},
		{"form", form},
	}
}

func TestIdentityKeepsOpaqueAndJWE(t *testing.T) {
	for _, token := range []string{
		"opaque-token-value-1234567890",
		"ory_at_abcdefghijklmnop.qrstuvwxyz0123456789",
		"a.b.c.d.e",
		"eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJlc2lnbmF0dXJl.x.y", // five segments: JWE-shaped
		"bm90LWpzb24.e30.c2lnbmF0dXJlc2lnbmF0dXJl",              // header not JSON
	} {
		if tokenDigest(token) != sha256.Sum256([]byte(token)) {
			t.Errorf("%q: want the exact string's digest", token)
		}
	}
}

func TestLegacyJWTDigestStillEnforced(t *testing.T) {
	given := newTestMiddleware(t, &upstream{}, newFakeClock(), nil)
	token := makeJWT(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix())
	legacy := sha256.Sum256([]byte(token))
	// when a record of the previous release, by the exact string, is held
	if err := given.list.add(&legacy, given.list.opts.now().Add(time.Hour), sourceFile); err != nil {
		t.Fatal(err)
	}
	// then the exact token is refused, and a re-encoding is not: the old
	// record cannot know its other strings
	if rw := serve(given, apiRequest(token)); rw.Code != http.StatusUnauthorized {
		t.Fatalf("exact legacy token: status %d", rw.Code)
	}
}

func TestPrecheckKeys(t *testing.T) {
	tests := []struct{ token, key string }{
		{"abc", keyNone},
		{"opaque-token-value", "en-value"},
		{"ory_at_abc.0123456789abc", "01234567"},
		{"a.b.c+d/efghijk", "c-d_efgh"},
		{"a.b.12345678", keyNone}, // 8 characters: the last may carry unused bits
		{"a.b.", keyNone},
	}
	for _, test := range tests {
		if got := keyOf(test.token); got != test.key {
			t.Errorf("keyOf(%q) = %q, want %q", test.token, got, test.key)
		}
	}
}

func TestShortTokenKeepsPrecheckClosed(t *testing.T) {
	given := newTestMiddleware(t, &upstream{}, newFakeClock(), nil)
	// when token=abc is revoked with no hint
	revoke(t, given, "abc", "")
	// then the pre-check still settles other tokens, and abc is refused
	if p := given.pre.Load().(*store.PrecheckSet); p.Open {
		t.Fatal("a short token held the pre-check open")
	}
	if rw := serve(given, apiRequest("abc")); rw.Code != http.StatusUnauthorized {
		t.Fatalf("abc: status %d", rw.Code)
	}
}

func TestNeverRevokedNeverClearsARevokedToken(t *testing.T) {
	// given revoked tokens of every shape the key rule knows
	given := newTestMiddleware(t, &upstream{}, newFakeClock(), nil)
	revoked := []string{"abc", "opaque-token-value", makeJWT(time.Now().Add(time.Hour).Unix()), "a.b.c+d/efghijk"}
	for _, token := range revoked {
		revoke(t, given, url.QueryEscape(token), "access_token")
	}
	// then none of them, nor a re-encoding, is cleared by the pre-check
	for _, token := range append(revoked, revoked[2]+"==", "Bearer") {
		if given.list.contains(token) && given.neverRevoked(token) {
			t.Errorf("%q: revoked, yet cleared", token)
		}
	}
	// and a token never revoked is
	if !given.neverRevoked("another-opaque-token") {
		t.Error("a token never revoked was not cleared")
	}
}
