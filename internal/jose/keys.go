package jose

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// Limits on JWKS documents and keys.
const (
	MaxJWKSBytes = 1 << 20
	maxKeys      = 100
	minRSABits   = 2048
	maxRSABits   = 8192
)

// Key is one public signing key from a JWKS.
type Key struct {
	KID string // "kid", may be empty
	Alg string // "alg", may be empty (any alg of the key's type)
	Kty string // "RSA", "EC" or "OKP"
	Crv string // "P-256", "P-384", "P-521" or "Ed25519"; empty for RSA

	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// KeySet is a parsed JWKS: the usable public signing keys, in document order.
type KeySet struct {
	Keys []*Key
}

// Len returns the number of usable keys.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.Keys)
}

type rawJWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	P   string `json:"p"`
	K   string `json:"k"`
}

type rawJWKS struct {
	Keys []json.RawMessage `json:"keys"`
}

// ParseJWKS parses a JWK Set (RFC 7517). Keys with a "use" other than "sig",
// and keys of types or curves this package does not verify with (oct, X25519,
// ...), are skipped; a key of a supported type that is malformed, weak (RSA
// under 2048 bits), not on its curve, carries private material, or names an
// "alg" that does not fit its type refuses the whole document. A document
// without any usable key is refused too.
func ParseJWKS(doc []byte) (*KeySet, error) {
	if len(doc) > MaxJWKSBytes {
		return nil, fmt.Errorf("%w: document larger than %d bytes", ErrInvalidJWKS, MaxJWKSBytes)
	}
	var set rawJWKS
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object with a \"keys\" array", ErrInvalidJWKS)
	}
	if len(set.Keys) > maxKeys {
		return nil, fmt.Errorf("%w: more than %d keys", ErrInvalidJWKS, maxKeys)
	}
	ks := &KeySet{}
	for i, raw := range set.Keys {
		var jk rawJWK
		if err := json.Unmarshal(raw, &jk); err != nil {
			return nil, fmt.Errorf("%w: key %d is not a JSON object with string members", ErrInvalidJWKS, i)
		}
		if jk.Use != "" && jk.Use != "sig" {
			continue
		}
		if jk.D != "" || jk.P != "" || jk.K != "" {
			return nil, fmt.Errorf("%w: key %d contains private or symmetric key material", ErrInvalidJWKS, i)
		}
		k, err := parseKey(&jk)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %s", ErrInvalidJWKS, i, err.Error())
		}
		if k == nil {
			continue
		}
		ks.Keys = append(ks.Keys, k)
	}
	if len(ks.Keys) == 0 {
		return nil, fmt.Errorf("%w: no usable signing key", ErrInvalidJWKS)
	}
	return ks, nil
}

// parseKey returns nil, nil for a key type or curve this package skips.
func parseKey(jk *rawJWK) (*Key, error) {
	k := &Key{KID: jk.Kid, Alg: jk.Alg, Kty: jk.Kty, Crv: jk.Crv}
	switch jk.Kty {
	case ktyRSA:
		if jk.Crv != "" {
			return nil, fmt.Errorf("RSA key with crv")
		}
		pub, err := parseRSA(jk.N, jk.E)
		if err != nil {
			return nil, err
		}
		k.rsa = pub
	case ktyEC:
		curve, c := ecCurve(jk.Crv)
		if curve == nil {
			return nil, nil
		}
		pub, err := parseEC(curve, c, jk.X, jk.Y)
		if err != nil {
			return nil, err
		}
		k.ec = pub
	case ktyOKP:
		if jk.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64(jk.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("bad Ed25519 x")
		}
		k.ed = ed25519.PublicKey(x)
	default:
		return nil, nil
	}
	if k.Alg != "" {
		a := algs[k.Alg]
		if a == nil || a.kty != k.Kty || (a.crv != "" && a.crv != k.Crv) {
			return nil, fmt.Errorf("alg %.20q does not fit the key", k.Alg)
		}
	}
	return k, nil
}

func parseRSA(n, e string) (*rsa.PublicKey, error) {
	nb, err := b64(n)
	if err != nil || len(nb) == 0 || nb[0] == 0 {
		return nil, fmt.Errorf("bad RSA modulus")
	}
	eb, err := b64(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 || eb[0] == 0 {
		return nil, fmt.Errorf("bad RSA exponent")
	}
	exp := 0
	for _, b := range eb {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return nil, fmt.Errorf("bad RSA exponent")
	}
	mod := new(big.Int).SetBytes(nb)
	if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	if mod.Bit(0) == 0 {
		return nil, fmt.Errorf("bad RSA modulus")
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

func ecCurve(crv string) (elliptic.Curve, ecdh.Curve) {
	switch crv {
	case "P-256":
		return elliptic.P256(), ecdh.P256()
	case "P-384":
		return elliptic.P384(), ecdh.P384()
	case "P-521":
		return elliptic.P521(), ecdh.P521()
	}
	return nil, nil
}

// parseEC checks the point with crypto/ecdh, which refuses points that are
// not on the curve, then builds the ecdsa key.
func parseEC(curve elliptic.Curve, c ecdh.Curve, xs, ys string) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	x, err := b64(xs)
	if err != nil || len(x) != size {
		return nil, fmt.Errorf("bad EC x")
	}
	y, err := b64(ys)
	if err != nil || len(y) != size {
		return nil, fmt.Errorf("bad EC y")
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4)
	point = append(point, x...)
	point = append(point, y...)
	if _, err := c.NewPublicKey(point); err != nil {
		return nil, fmt.Errorf("EC point not on curve")
	}
	return &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}, nil
}

// b64 decodes unpadded base64url strictly.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
