package jose

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Unix(1764000000, 0).UTC()

func logoutClaims() map[string]interface{} {
	return map[string]interface{}{
		"iss":    "https://op.example",
		"aud":    []string{"rp-1", "rp-2"},
		"iat":    testNow.Unix() - 10,
		"exp":    testNow.Unix() + 110,
		"jti":    "jti-1",
		"sid":    "sid-1",
		"sub":    "user-1",
		"events": map[string]interface{}{BackChannelLogoutEvent: map[string]interface{}{}},
	}
}

func hdr(alg, kid, typ string) map[string]interface{} {
	h := map[string]interface{}{"alg": alg}
	if kid != "" {
		h["kid"] = kid
	}
	if typ != "" {
		h["typ"] = typ
	}
	return h
}

func keySet(t *testing.T, k *testKeys) *KeySet {
	t.Helper()
	ks, err := ParseJWKS(standardJWKS(t, k))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestVerifyValid(t *testing.T) {
	k := genKeys(t)
	ks := keySet(t, k)
	cases := []struct{ alg, kid string }{
		{"RS256", "rsa"}, {"RS256", ""}, {"PS256", "rsa"}, {"PS256", "rsa-ps"}, {"PS256", ""},
		{"ES256", "p256"}, {"ES256", ""}, {"ES384", "p384"}, {"ES384", ""},
		{"EdDSA", "ed"}, {"EdDSA", ""},
	}
	for _, tc := range cases {
		tok := signWith(t, k, hdr(tc.alg, tc.kid, "logout+jwt"), logoutClaims())
		c, err := Verify(tok, ks, testNow, VerifyOptions{})
		if err != nil {
			t.Errorf("%s kid %q: %v", tc.alg, tc.kid, err)
			continue
		}
		if c.Issuer != "https://op.example" || c.Subject != "user-1" || c.SID != "sid-1" || c.JTI != "jti-1" ||
			len(c.Audience) != 2 || c.Audience[1] != "rp-2" || c.IssuedAt.Unix() != testNow.Unix()-10 ||
			c.Header.Alg != tc.alg || c.Header.Typ != "logout+jwt" || c.Events == nil || c.Raw["iss"] == nil {
			t.Errorf("%s: claims %+v header %+v", tc.alg, c, c.Header)
		}
		if err := ValidateLogoutToken(c, c.Header, &LogoutOptions{Issuer: "https://op.example", Audiences: []string{"rp-2"}, Now: testNow}); err != nil {
			t.Errorf("%s: logout: %v", tc.alg, err)
		}
	}
}

func TestVerifyRefused(t *testing.T) {
	k := genKeys(t)
	ks := keySet(t, k)
	good := signWith(t, k, hdr("ES256", "p256", "JWT"), logoutClaims())
	parts := strings.Split(good, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	expired := logoutClaims()
	expired["exp"] = testNow.Unix() - 1
	notYet := logoutClaims()
	notYet["nbf"] = testNow.Unix() + 60
	badIss := logoutClaims()
	badIss["iss"] = 42
	badAud := logoutClaims()
	badAud["aud"] = []int{1}
	badIat := logoutClaims()
	badIat["iat"] = "yesterday"
	nullExp := logoutClaims()
	nullExp["exp"] = nil
	nullIss := logoutClaims()
	nullIss["iss"] = nil
	badEvents := logoutClaims()
	badEvents["events"] = []string{BackChannelLogoutEvent}
	flipped := []byte(parts[2])
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	otherEd := ed25519.NewKeyFromSeed(make([]byte, 32))
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"bad signature", parts[0] + "." + parts[1] + "." + string(flipped), ErrBadSignature},
		{"payload swapped", parts[0] + "." + enc([]byte(`{"iss":"x"}`)) + "." + parts[2], ErrBadSignature},
		{"alg none", signWith(t, k, hdr("none", "", "JWT"), logoutClaims()), ErrUnsupportedAlg},
		{"alg none no sig", parts[0][:0] + enc([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", ErrMalformed},
		{"alg None", enc([]byte(`{"alg":"None","kid":"p256"}`)) + "." + parts[1] + "." + parts[2], ErrUnsupportedAlg},
		{"HS256 with RSA public key PEM", signHS256(t, pubPEM, logoutClaims()), ErrUnsupportedAlg},
		{"HS256 with RSA modulus", signHS256(t, k.rsa.N.Bytes(), logoutClaims()), ErrUnsupportedAlg},
		{"ES256 header, RSA kid", signWith(t, k, hdr("ES256", "rsa", "JWT"), logoutClaims()), ErrKeyMismatch},
		{"ES384 header, P-256 kid", signWith(t, k, hdr("ES384", "p256", "JWT"), logoutClaims()), ErrKeyMismatch},
		{"RS256 header, key alg PS256", signWith(t, k, hdr("RS256", "rsa-ps", "JWT"), logoutClaims()), ErrKeyMismatch},
		{"EdDSA header, EC kid", signWith(t, k, hdr("EdDSA", "p256", "JWT"), logoutClaims()), ErrKeyMismatch},
		{"unknown kid", signWith(t, k, hdr("ES256", "rotated", "JWT"), logoutClaims()), ErrUnknownKID},
		{"signed by another key", signWith(t, &testKeys{ed: otherEd}, hdr("EdDSA", "ed", "JWT"), logoutClaims()), ErrBadSignature},
		{"expired", signWith(t, k, hdr("ES256", "p256", "JWT"), expired), ErrExpired},
		{"not yet valid", signWith(t, k, hdr("ES256", "p256", "JWT"), notYet), ErrExpired},
		{"iss not a string", signWith(t, k, hdr("ES256", "p256", "JWT"), badIss), ErrMalformed},
		{"aud not strings", signWith(t, k, hdr("ES256", "p256", "JWT"), badAud), ErrMalformed},
		{"exp null", signWith(t, k, hdr("ES256", "p256", "JWT"), nullExp), ErrMalformed},
		{"iss null", signWith(t, k, hdr("ES256", "p256", "JWT"), nullIss), ErrMalformed},
		{"iat not a number", signWith(t, k, hdr("ES256", "p256", "JWT"), badIat), ErrMalformed},
		{"events not an object", signWith(t, k, hdr("ES256", "p256", "JWT"), badEvents), ErrMalformed},
		{"crit", enc([]byte(`{"alg":"ES256","kid":"p256","crit":["b64"],"b64":false}`)) + "." + parts[1] + "." + parts[2], ErrUnsupportedAlg},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", good + ".x", ErrMalformed},
		{"JWE-like five parts", "a.b.c.d.e", ErrMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", enc([]byte("nope")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header array", enc([]byte(`["ES256"]`)) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"alg not a string", enc([]byte(`{"alg":1}`)) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"empty", "", ErrMalformed},
		{"too long", good + strings.Repeat("A", DefaultMaxTokenBytes), ErrMalformed},
	}
	for _, tc := range cases {
		c, err := Verify(tc.token, ks, testNow, VerifyOptions{})
		if err == nil || c != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		noLeak(t, err, tc.token)
	}
	// The caller's narrower allowlist.
	if _, err := Verify(good, ks, testNow, VerifyOptions{Algorithms: []string{"RS256"}}); !errors.Is(err, ErrUnsupportedAlg) {
		t.Errorf("Algorithms allowlist: %v", err)
	}
	// Leeway lets a just-expired token pass.
	if _, err := Verify(signWith(t, k, hdr("ES256", "p256", "JWT"), expired), ks, testNow, VerifyOptions{Leeway: 5 * time.Second}); err != nil {
		t.Errorf("leeway: %v", err)
	}
	// nil and empty key sets.
	if _, err := Verify(good, nil, testNow, VerifyOptions{}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("nil key set: %v", err)
	}
}

func TestValidateLogoutToken(t *testing.T) {
	k := genKeys(t)
	ks := keySet(t, k)
	opts := func() *LogoutOptions {
		return &LogoutOptions{Issuer: "https://op.example", Audiences: []string{"other", "rp-1"}, Now: testNow}
	}
	with := func(name string, v interface{}) map[string]interface{} {
		c := logoutClaims()
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
		return c
	}
	type tc struct {
		name   string
		typ    string
		claims map[string]interface{}
		opts   func(*LogoutOptions)
		ok     bool
	}
	noSidSub := with("sid", nil)
	delete(noSidSub, "sub")
	cases := []tc{
		{name: "valid", typ: "logout+jwt", claims: logoutClaims(), ok: true},
		{name: "typ JWT (Hydra)", typ: "JWT", claims: logoutClaims(), ok: true},
		{name: "typ application/logout+jwt", typ: "application/logout+jwt", claims: logoutClaims(), ok: true},
		{name: "aud as a string", typ: "JWT", claims: with("aud", "rp-1"), ok: true},
		{name: "sid only", typ: "JWT", claims: with("sub", nil), ok: true},
		{name: "sub only", typ: "JWT", claims: with("sid", nil), ok: true},
		{name: "no exp", typ: "JWT", claims: with("exp", nil), ok: true},
		{name: "no typ, allowed", claims: logoutClaims(), opts: func(o *LogoutOptions) { o.AllowMissingTyp = true }, ok: true},
		{name: "iat at the future edge", typ: "JWT", claims: with("iat", testNow.Unix()+30), ok: true},
		{name: "no typ", claims: logoutClaims()},
		{name: "typ at+jwt", typ: "at+jwt", claims: logoutClaims()},
		{name: "typ secevent+jwt", typ: "secevent+jwt", claims: logoutClaims()},
		{name: "wrong iss", typ: "JWT", claims: with("iss", "https://evil.example")},
		{name: "missing iss", typ: "JWT", claims: with("iss", nil)},
		{name: "no issuer configured", typ: "JWT", claims: logoutClaims(), opts: func(o *LogoutOptions) { o.Issuer = "" }},
		{name: "wrong aud", typ: "JWT", claims: with("aud", "rp-3")},
		{name: "missing aud", typ: "JWT", claims: with("aud", nil)},
		{name: "no audience configured", typ: "JWT", claims: logoutClaims(), opts: func(o *LogoutOptions) { o.Audiences = nil }},
		{name: "iat too old", typ: "JWT", claims: with("iat", testNow.Unix()-121)},
		{name: "iat too old, narrower window", typ: "JWT", claims: logoutClaims(), opts: func(o *LogoutOptions) { o.MaxAge = 5 * time.Second }},
		{name: "iat in the future", typ: "JWT", claims: with("iat", testNow.Unix()+31)},
		{name: "missing iat", typ: "JWT", claims: with("iat", nil)},
		{name: "missing jti", typ: "JWT", claims: with("jti", nil)},
		{name: "empty jti", typ: "JWT", claims: with("jti", "")},
		{name: "missing events", typ: "JWT", claims: with("events", nil)},
		{name: "events without the member", typ: "JWT", claims: with("events", map[string]interface{}{"http://schemas.openid.net/event/other": map[string]interface{}{}})},
		{name: "member not an object", typ: "JWT", claims: with("events", map[string]interface{}{BackChannelLogoutEvent: true})},
		{name: "member null", typ: "JWT", claims: with("events", map[string]interface{}{BackChannelLogoutEvent: nil})},
		{name: "nonce present", typ: "JWT", claims: with("nonce", "n-1")},
		{name: "nonce empty", typ: "JWT", claims: with("nonce", "")},
		{name: "nonce null", typ: "JWT", claims: map[string]interface{}{"nonce": nil, "iss": "https://op.example", "aud": "rp-1", "iat": testNow.Unix(), "jti": "j", "sid": "s", "events": map[string]interface{}{BackChannelLogoutEvent: map[string]interface{}{}}}},
		{name: "neither sid nor sub", typ: "JWT", claims: noSidSub},
		{name: "replayed jti", typ: "JWT", claims: logoutClaims(), opts: func(o *LogoutOptions) { o.SeenJTI = func(iss, jti string) bool { return jti == "jti-1" } }},
	}
	for _, c := range cases {
		// exp past is checked by ValidateLogoutToken too: tested below.
		tok := signWith(t, k, hdr("ES256", "p256", c.typ), c.claims)
		claims, err := Verify(tok, ks, testNow, VerifyOptions{})
		if err != nil {
			t.Errorf("%s: verify: %v", c.name, err)
			continue
		}
		o := opts()
		if c.opts != nil {
			c.opts(o)
		}
		err = ValidateLogoutToken(claims, claims.Header, o)
		if c.ok != (err == nil) {
			t.Errorf("%s: ok=%v, err=%v", c.name, c.ok, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidLogoutToken) {
			t.Errorf("%s: %v does not wrap ErrInvalidLogoutToken", c.name, err)
		}
		noLeak(t, err, tok)
	}
	// exp past, on claims Verify would not have returned.
	c := &Claims{Issuer: "https://op.example", Audience: []string{"rp-1"}, IssuedAt: testNow, Expiry: testNow.Add(-time.Second),
		JTI: "j", SID: "s", Events: map[string]json.RawMessage{BackChannelLogoutEvent: json.RawMessage(`{}`)}}
	if err := ValidateLogoutToken(c, &Header{Alg: "ES256", Typ: "JWT"}, opts()); err == nil {
		t.Error("expired logout token accepted")
	}
	c.Expiry = time.Time{}
	if err := ValidateLogoutToken(c, &Header{Alg: "ES256", Typ: "JWT"}, opts()); err != nil {
		t.Errorf("control: %v", err)
	}
	if err := ValidateLogoutToken(nil, nil, nil); err == nil {
		t.Error("nil accepted")
	}
}

func TestParseJWKS(t *testing.T) {
	k := genKeys(t)
	ks, err := ParseJWKS(standardJWKS(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 5 || ks.Keys[1].Alg != "PS256" || ks.Keys[2].Crv != "P-256" || ks.Keys[4].Kty != "OKP" {
		t.Errorf("keys: %+v", ks.Keys)
	}
	pub := &k.rsa.PublicKey
	rsaK := rsaJWK("r", "", pub)
	enck := rsaJWK("enc", "", pub)
	enck["use"] = "enc"
	x25519 := map[string]string{"kty": "OKP", "crv": "X25519", "x": enc(make([]byte, 32))}
	// Skipped keys leave the usable ones.
	ks, err = ParseJWKS(jwks(t, enck, x25519, rsaK, map[string]string{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}))
	if err != nil || ks.Len() != 1 || ks.Keys[0].KID != "r" {
		t.Errorf("skips: %v %+v", err, ks)
	}
	small := rsaJWK("s", "", pub)
	small["n"] = enc(pub.N.Bytes()[:128])
	evenE := rsaJWK("e", "", pub)
	evenE["e"] = enc([]byte{1, 0, 0})
	offCurve := ecJWK("p", &k.p256.PublicKey)
	y := k.p256.Y.Bytes()
	y[len(y)-1] ^= 1
	offCurve["y"] = enc(fixed(y, 32))
	shortX := ecJWK("p", &k.p256.PublicKey)
	shortX["x"] = enc(k.p256.X.Bytes()[:31])
	edShort := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(make([]byte, 31))}
	withD := ecJWK("p", &k.p256.PublicKey)
	withD["d"] = enc(k.p256.D.Bytes())
	oct := map[string]string{"kty": "oct", "k": enc([]byte("secret"))}
	algMismatch := rsaJWK("m", "ES256", pub)
	curveMismatch := ecJWK("c", &k.p384.PublicKey)
	curveMismatch["alg"] = "ES256"
	hsAlg := rsaJWK("h", "HS256", pub)
	padded := rsaJWK("pd", "", pub)
	padded["e"] = "AQAB="
	cases := []struct {
		name string
		doc  []byte
	}{
		{"not JSON", []byte("{")},
		{"array", []byte(`[{"kty":"RSA"}]`)},
		{"no keys", []byte(`{}`)},
		{"keys not an array", []byte(`{"keys":{}}`)},
		{"key not an object", []byte(`{"keys":[1]}`)},
		{"kid a number", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":1,"x":"` + enc(make([]byte, 32)) + `"}]}`)},
		{"only enc keys", jwks(t, enck)},
		{"RSA 1024 bits", jwks(t, small)},
		{"RSA even exponent", jwks(t, evenE)},
		{"RSA padded base64", jwks(t, padded)},
		{"EC off the curve", jwks(t, offCurve)},
		{"EC short x", jwks(t, shortX)},
		{"Ed25519 short x", jwks(t, edShort)},
		{"private d", jwks(t, rsaK, withD)},
		{"symmetric oct", jwks(t, rsaK, oct)},
		{"alg of another type", jwks(t, algMismatch)},
		{"alg of another curve", jwks(t, curveMismatch)},
		{"alg HS256 on RSA", jwks(t, hsAlg)},
		{"too large", append(jwks(t, rsaK), make([]byte, MaxJWKSBytes)...)},
	}
	for _, tc := range cases {
		ks, err := ParseJWKS(tc.doc)
		if err == nil || ks != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrInvalidJWKS) {
			t.Errorf("%s: %v does not wrap ErrInvalidJWKS", tc.name, err)
		}
	}
}

// TestVerifyCost logs the cost of one verification (compiled or under Yaegi).
func TestVerifyCost(t *testing.T) {
	k := genKeys(t)
	ks := keySet(t, k)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		kid := map[string]string{"RS256": "rsa", "ES256": "p256", "EdDSA": "ed"}[alg]
		tok := signWith(t, k, hdr(alg, kid, "JWT"), logoutClaims())
		o := &LogoutOptions{Issuer: "https://op.example", Audiences: []string{"rp-1"}, Now: testNow}
		const n = 200
		var c *Claims
		var err error
		start := time.Now()
		for i := 0; i < n; i++ {
			c, err = Verify(tok, ks, testNow, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		verify := time.Since(start) / n
		start = time.Now()
		for i := 0; i < n; i++ {
			if err := ValidateLogoutToken(c, c.Header, o); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: Verify %v, ValidateLogoutToken %v per token", alg, verify, time.Since(start)/n)
	}
}
