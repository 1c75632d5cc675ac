package jose

import (
	"crypto/ed25519"
	"os"
	"strconv"
	"strings"
	"testing"
)

// fuzzEdSeed is the seed of the fixed Ed25519 key "fixed-ed" that signed the
// valid tokens in testdata/fuzz/FuzzVerify.
var fuzzEdSeed = []byte("tokenrevocation-jose-fuzz-seed!!")

func fuzzKeySet(f *testing.F) (*KeySet, *testKeys) {
	k := genKeys(f)
	fixedEd := ed25519.NewKeyFromSeed(fuzzEdSeed)
	doc := jwks(f,
		rsaJWK("rsa", "", &k.rsa.PublicKey),
		ecJWK("p256", &k.p256.PublicKey),
		edJWK("ed", k.ed.Public().(ed25519.PublicKey)),
		edJWK("fixed-ed", fixedEd.Public().(ed25519.PublicKey)),
	)
	ks, err := ParseJWKS(doc)
	if err != nil {
		f.Fatal(err)
	}
	return ks, k
}

func FuzzVerify(f *testing.F) {
	ks, k := fuzzKeySet(f)
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		f.Add(signWith(f, k, hdr(alg, "", "logout+jwt"), logoutClaims()))
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := Verify(token, ks, testNow, VerifyOptions{})
		if (c == nil) == (err == nil) {
			t.Fatalf("claims %v with error %v", c, err)
		}
		if err != nil {
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error contains the token: %v", err)
			}
			return
		}
		if algs[c.Header.Alg] == nil || c.Raw == nil {
			t.Fatalf("accepted alg %q", c.Header.Alg)
		}
		// Whatever verified must validate or be refused without panicking.
		_ = ValidateLogoutToken(c, c.Header, &LogoutOptions{Issuer: "https://op.example", Audiences: []string{"rp-1"}, Now: testNow})
	})
}

func FuzzParseJWKS(f *testing.F) {
	k := genKeys(f)
	f.Add(standardJWKS(f, k))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ks, err := ParseJWKS(doc)
		if (ks == nil) == (err == nil) {
			t.Fatalf("key set %v with error %v", ks, err)
		}
		if err != nil {
			return
		}
		for _, key := range ks.Keys {
			switch key.Kty {
			case ktyRSA:
				if key.rsa == nil || key.rsa.N.BitLen() < minRSABits {
					t.Fatal("bad RSA key accepted")
				}
			case ktyEC:
				if key.ec == nil {
					t.Fatal("EC key without point")
				}
			case ktyOKP:
				if len(key.ed) != ed25519.PublicKeySize {
					t.Fatal("bad Ed25519 key accepted")
				}
			default:
				t.Fatalf("kty %q accepted", key.Kty)
			}
		}
	})
}

// TestFuzzSeedVerifies keeps the signed seed of FuzzVerify valid: it must
// pass Verify and ValidateLogoutToken with the fixed key.
func TestFuzzSeedVerifies(t *testing.T) {
	var b []byte
	var err error
	// `go test` runs in the package directory; `yaegi test` in the module root.
	for _, dir := range []string{"testdata", "internal/jose/testdata"} {
		if b, err = os.ReadFile(dir + "/fuzz/FuzzVerify/valid_eddsa"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
		t.Fatalf("corpus file: %q", b)
	}
	token, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(fuzzEdSeed).Public().(ed25519.PublicKey)
	ks, err := ParseJWKS(jwks(t, edJWK("fixed-ed", pub)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(token, ks, testNow, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateLogoutToken(c, c.Header, &LogoutOptions{Issuer: "https://op.example", Audiences: []string{"rp-1"}, Now: testNow}); err != nil {
		t.Fatal(err)
	}
}
