package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
)

// Key types (JWK "kty").
const (
	ktyRSA = "RSA"
	ktyEC  = "EC"
	ktyOKP = "OKP"
)

// algInfo describes one allowed JWS algorithm.
type algInfo struct {
	kty  string
	hash crypto.Hash
	pss  bool
	crv  string // EC curve name for ES*, "Ed25519" for EdDSA
}

// algs is the allowlist; everything else, including "none" and HS*, is refused.
var algs = map[string]*algInfo{
	"RS256": {kty: ktyRSA, hash: crypto.SHA256},
	"RS384": {kty: ktyRSA, hash: crypto.SHA384},
	"RS512": {kty: ktyRSA, hash: crypto.SHA512},
	"PS256": {kty: ktyRSA, hash: crypto.SHA256, pss: true},
	"PS384": {kty: ktyRSA, hash: crypto.SHA384, pss: true},
	"PS512": {kty: ktyRSA, hash: crypto.SHA512, pss: true},
	"ES256": {kty: ktyEC, hash: crypto.SHA256, crv: "P-256"},
	"ES384": {kty: ktyEC, hash: crypto.SHA384, crv: "P-384"},
	"ES512": {kty: ktyEC, hash: crypto.SHA512, crv: "P-521"},
	"EdDSA": {kty: ktyOKP, crv: "Ed25519"},
}

// digest hashes the signing input without the crypto.Hash registry.
func digest(h crypto.Hash, msg []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(msg)
		return d[:]
	}
	return nil
}

// verifySignature checks sig over signingInput with key k for algorithm a.
// The caller has already checked that k's type and curve match a.
func verifySignature(a *algInfo, k *Key, signingInput, sig []byte) bool {
	switch a.kty {
	case ktyRSA:
		if k.rsa == nil || len(sig) != k.rsa.Size() {
			return false
		}
		d := digest(a.hash, signingInput)
		if a.pss {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash}
			return rsa.VerifyPSS(k.rsa, a.hash, d, sig, opts) == nil
		}
		return rsa.VerifyPKCS1v15(k.rsa, a.hash, d, sig) == nil
	case ktyEC:
		if k.ec == nil {
			return false
		}
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k.ec, digest(a.hash, signingInput), r, s)
	case ktyOKP:
		if len(k.ed) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
			return false
		}
		return ed25519.Verify(k.ed, signingInput, sig)
	}
	return false
}
