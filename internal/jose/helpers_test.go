package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// testKeys holds one private key per family, generated per test binary.
type testKeys struct {
	rsa  *rsa.PrivateKey
	p256 *ecdsa.PrivateKey
	p384 *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
}

var cachedKeys *testKeys

func genKeys(t testing.TB) *testKeys {
	t.Helper()
	if cachedKeys != nil {
		return cachedKeys
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cachedKeys = &testKeys{rsa: rk, p256: p256, p384: p384, ed: ed}
	return cachedKeys
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func fixed(b []byte, size int) []byte {
	out := make([]byte, size)
	copy(out[size-len(b):], b)
	return out
}

func rsaJWK(kid, alg string, pub *rsa.PublicKey) map[string]string {
	m := map[string]string{"kty": "RSA", "use": "sig", "kid": kid,
		"n": enc(pub.N.Bytes()), "e": enc(big.NewInt(int64(pub.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]string {
	size := (pub.Curve.Params().BitSize + 7) / 8
	return map[string]string{"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": enc(fixed(pub.X.Bytes(), size)), "y": enc(fixed(pub.Y.Bytes(), size))}
}

func edJWK(kid string, pub ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": enc(pub)}
}

func jwks(t testing.TB, keys ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]interface{}{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// standardJWKS: kid "rsa" (no alg: RS* and PS*), "rsa-ps" (alg PS256),
// "p256", "p384", "ed".
func standardJWKS(t testing.TB, k *testKeys) []byte {
	t.Helper()
	return jwks(t,
		rsaJWK("rsa", "", &k.rsa.PublicKey),
		rsaJWK("rsa-ps", "PS256", &k.rsa.PublicKey),
		ecJWK("p256", &k.p256.PublicKey),
		ecJWK("p384", &k.p384.PublicKey),
		edJWK("ed", k.ed.Public().(ed25519.PublicKey)),
	)
}

func mustJSON(t testing.TB, v interface{}) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signWith signs header.claims with alg, whatever the key type says.
func signWith(t testing.TB, k *testKeys, header, claims map[string]interface{}) string {
	t.Helper()
	input := enc(mustJSON(t, header)) + "." + enc(mustJSON(t, claims))
	alg, _ := header["alg"].(string)
	var sig []byte
	var err error
	h256 := sha256.Sum256([]byte(input))
	switch alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, h256[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.rsa, crypto.SHA256, h256[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		sig = ecSign(t, k.p256, h256[:])
	case "ES384":
		d := digest(crypto.SHA384, []byte(input))
		sig = ecSign(t, k.p384, d)
	case "EdDSA":
		sig = ed25519.Sign(k.ed, []byte(input))
	case "none":
		sig = []byte{0}
	default:
		t.Fatalf("signWith: alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// signHS256 is the key-confusion attack: HMAC keyed with public key bytes.
func signHS256(t testing.TB, key []byte, claims map[string]interface{}) string {
	t.Helper()
	input := enc(mustJSON(t, map[string]interface{}{"alg": "HS256", "typ": "JWT", "kid": "rsa"})) + "." + enc(mustJSON(t, claims))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + enc(m.Sum(nil))
}

func ecSign(t testing.TB, priv *ecdsa.PrivateKey, d []byte) []byte {
	t.Helper()
	r, s, err := ecdsa.Sign(rand.Reader, priv, d)
	if err != nil {
		t.Fatal(err)
	}
	size := (priv.Curve.Params().BitSize + 7) / 8
	return append(fixed(r.Bytes(), size), fixed(s.Bytes(), size)...)
}

// noLeak fails when an error message contains the token or one of its parts.
func noLeak(t *testing.T, err error, token string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, p := range append(strings.Split(token, "."), token) {
		if len(p) >= 8 && strings.Contains(msg, p) {
			t.Errorf("error message contains the token: %s", msg)
		}
	}
}
