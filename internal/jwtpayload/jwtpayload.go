// Package jwtpayload reads the claims of a token shaped like a JWT without
// verifying it: the one unverified JWT payload reader of the plugin. Its
// callers use the claims only where a forged token can harm nobody but
// itself (how long a revocation is kept, which session an identity
// service's own answer names).
//
// The logout rules' check (internal/rules, Store.Rejects) decodes the
// payload inline instead: it runs on the hot path, where under Yaegi each
// interpreted call costs about 5 µs.
package jwtpayload

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Claims returns the claims of a token shaped like a JWT (three base64url
// segments, the last one not empty, whose middle one is a JSON object),
// unverified; padding is tolerated, as lenient decoders do. ok is false
// for any other token.
func Claims(token string) (map[string]interface{}, bool) {
	first := strings.IndexByte(token, '.')
	if first <= 0 {
		return nil, false
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || second == len(rest)-1 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return nil, false
	}
	var claims map[string]interface{}
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, false
	}
	return claims, true
}
