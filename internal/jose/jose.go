// Package jose verifies JWS-signed JWTs against a JWKS and validates OpenID
// Connect Back-Channel Logout 1.0 logout tokens. It refuses by default: only
// the compact serialization, only the asymmetric algorithms RS256/384/512,
// PS256/384/512, ES256/384/512 and EdDSA (Ed25519), only keys whose type
// (and curve, and "alg" if the JWKS sets one) match the header's "alg", and
// no "crit" header parameters. Error messages never contain the token.
//
// Library choice: the standard library's crypto (crypto.go), not
// github.com/golang-jwt/jwt/v5. Measured under Yaegi v0.16.1 with v5.3.0
// (GOPATH layout, `yaegi test -unsafe -unrestricted`): RS256, PS256, ES256
// and EdDSA tokens verify, and tampered ones are refused, as long as the
// Keyfunc returns a variable of type interface{}; with the usual
// `func(*jwt.Token) (interface{}, error) { return &key.PublicKey, nil }`
// jwt.Parse panics inside ParseWithClaims for valid, expired and HS256 tokens
// alike ("reflect.Set: value of type *struct{Raw string; Method ...} is not
// assignable to type ecdsa.PublicKey"; ParseUnverified uses named results).
// A verifier that crashes on a natural call site is not one to put at the
// edge, and golang-jwt has neither JWKS nor kid selection, which we need
// anyway; the signature checks it would give us are four calls into the
// standard library.
//
// Written for Yaegi: pointer receivers, no named results, no interface
// values holding keys, no custom json.Unmarshaler (claims are decoded field
// by field from a map of json.RawMessage), and sentinel errors wrapped with
// %w so callers use errors.Is (errors.As on interpreted types panics).
package jose

import "errors"

// Sentinel errors; every refusal wraps exactly one of them.
var (
	// ErrMalformed: not a JWS compact serialization, bad base64url or JSON,
	// or a registered claim of the wrong JSON type.
	ErrMalformed = errors.New("jose: malformed token")
	// ErrUnsupportedAlg: header alg is none, HS*, or anything not allowed.
	ErrUnsupportedAlg = errors.New("jose: algorithm not allowed")
	// ErrUnknownKID: the header's kid is not in the key set. The caller may
	// refetch the JWKS (rate-limited) and retry.
	ErrUnknownKID = errors.New("jose: unknown key id")
	// ErrKeyMismatch: no key of the type, curve and alg the header's alg needs.
	ErrKeyMismatch = errors.New("jose: no key matches the algorithm")
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = errors.New("jose: signature does not verify")
	// ErrExpired: exp is past, or nbf is in the future.
	ErrExpired = errors.New("jose: token expired or not yet valid")
	// ErrInvalidJWKS: the JWKS document cannot be used.
	ErrInvalidJWKS = errors.New("jose: invalid JWKS")
	// ErrInvalidLogoutToken: the claims are not a valid logout token.
	ErrInvalidLogoutToken = errors.New("jose: invalid logout token")
)
