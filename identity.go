package tokenrevocation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// A token's identity: what a revocation is recorded and checked by.
//
// An opaque token, a JWE (five segments) or anything else that is not a JWS
// is its exact string: the identity is SHA-256 of the token, as before.
//
// A JWS compact token (three segments whose first decodes to a JSON object
// with an "alg") has many strings that decoders accept as the same token:
// the signature's last character carries unused bits that golang-jwt,
// Python and Node ignore; PyJWT and jsonwebtoken accept '=' padding; Python's
// non-validating base64 skips characters outside the alphabet and Node's
// Buffer reads '+' and '/' for '-' and '_'; and an ECDSA signature (r, s)
// has a twin (r, n-s) that verifies wherever it does. None of these touch
// what was signed, the header and payload segments exactly as sent (the
// signing input of RFC 7515 §5.2), and without the key nobody can make
// another signing input verify. So a JWS is identified by
//
//	SHA-256("jws\n" + signing input + "\n" + signature prefix)
//
// where the signature prefix is the first sigPrefixLen base64url characters
// of the signature segment after dropping what decoders skip ('=' and other
// characters outside the alphabets) and reading '+' and '/' as '-' and '_'.
// Those characters are all data bits (the unused ones are in the last), and
// for ECDSA they encode r, which the twin shares: every accepted encoding
// has the same prefix. The prefix ties the identity to the signature the
// identity service issued, so a revoke of the header and payload with a
// made-up signature cannot reject the real token, and it is also the
// pre-check key (precheck.go), so the hot path's key and the identity agree.
const sigPrefixLen = keyLen

// b64url is the base64url alphabet.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// tokenDigest is the identity of token: the digest every revocation of it
// is recorded under.
func tokenDigest(token string) [sha256.Size]byte {
	if dot, ok := jwsSigningInputEnd(token); ok {
		return sha256.Sum256([]byte("jws\n" + token[:dot] + "\n" + sigPrefix(token[dot+1:])))
	}
	return sha256.Sum256([]byte(token))
}

// tokenDigests returns token's identity and, for a JWS, also the digest of
// its exact string, which records made before identities (the previous
// release's, and those already in Redis or persistPath) hold: they are
// enforced exactly as before. n is how many of the two are set.
func tokenDigests(token string) (sums [2][sha256.Size]byte, n int) {
	if dot, ok := jwsSigningInputEnd(token); ok {
		sums[0] = sha256.Sum256([]byte("jws\n" + token[:dot] + "\n" + sigPrefix(token[dot+1:])))
		sums[1] = sha256.Sum256([]byte(token))
		return sums, 2
	}
	sums[0] = sha256.Sum256([]byte(token))
	return sums, 1
}

// legacyDigest is, for a JWS, the digest of its exact string, which
// revocations recorded before identities hold; ok is false for any other
// token, whose identity is that digest already.
func legacyDigest(token string) (sum [sha256.Size]byte, ok bool) {
	if _, ok = jwsSigningInputEnd(token); ok {
		sum = sha256.Sum256([]byte(token))
	}
	return sum, ok
}

// jwsSigningInputEnd reports whether token is a JWS compact token: exactly
// three segments, the first a base64url JSON object with a string "alg"
// (padding tolerated, as lenient decoders do), and returns the index of the
// dot that ends the signing input. A JWE has five segments and is not one.
func jwsSigningInputEnd(token string) (int, bool) {
	first := strings.IndexByte(token, '.')
	if first <= 0 {
		return 0, false
	}
	last := strings.LastIndexByte(token, '.')
	if last == first || strings.IndexByte(token[first+1:last], '.') >= 0 {
		return 0, false
	}
	header, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token[:first], "="))
	if err != nil || len(header) == 0 || header[0] != '{' {
		return 0, false
	}
	// json.Valid and bytes.Contains, not Unmarshal into a struct, which
	// under Yaegi reflects over an interpreted type (about 200 µs). A
	// header that spells "alg" with escapes is decoded into compiled types.
	if !json.Valid(header) {
		return 0, false
	}
	if bytes.Contains(header, []byte(`"alg"`)) {
		return last, true
	}
	var h map[string]json.RawMessage
	if bytes.IndexByte(header, '\\') < 0 || json.Unmarshal(header, &h) != nil {
		return 0, false
	}
	_, ok := h["alg"]
	return last, ok
}

// sigPrefix is the canonical start of a signature segment: its first
// sigPrefixLen characters of the base64url alphabet, '+' and '/' read as
// '-' and '_', every other character skipped; "" when the segment has no
// more than sigPrefixLen of them (the last one may carry unused bits).
func sigPrefix(sig string) string {
	if len(sig) > sigPrefixLen && strings.Trim(sig[:sigPrefixLen+1], b64url) == "" {
		// Canonical already, the common case: one compiled call, not a
		// loop of interpreted statements.
		return sig[:sigPrefixLen]
	}
	var out [sigPrefixLen]byte
	n := 0
	for i := 0; i < len(sig); i++ {
		c := sig[i]
		switch {
		case c == '+':
			c = '-'
		case c == '/':
			c = '_'
		case strings.IndexByte(b64url, c) < 0:
			continue
		}
		if n == sigPrefixLen {
			return string(out[:])
		}
		out[n] = c
		n++
	}
	return ""
}
