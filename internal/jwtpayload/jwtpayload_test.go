package jwtpayload

import (
	"encoding/base64"
	"testing"
)

func TestClaims(t *testing.T) {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256"}`))
	payload := enc.EncodeToString([]byte(`{"sub":"user-1","exp":1767225600}`))
	sig := enc.EncodeToString([]byte("signature"))
	tests := []struct {
		desc  string
		token string
		sub   string // "" when not ok
	}{
		{desc: "a JWS", token: header + "." + payload + "." + sig, sub: "user-1"},
		{desc: "a padded payload", token: header + "." + payload + "==." + sig, sub: "user-1"},
		{desc: "opaque", token: "ory_at_abcdef"},
		{desc: "two segments", token: header + "." + payload},
		{desc: "an empty signature", token: header + "." + payload + "."},
		{desc: "an empty header", token: "." + payload + "." + sig},
		{desc: "an empty payload", token: header + ".." + sig},
		{desc: "four segments", token: header + "." + payload + "." + sig + ".x"},
		{desc: "not base64url", token: header + ".!!!." + sig},
		{desc: "not an object", token: header + "." + enc.EncodeToString([]byte(`[1]`)) + "." + sig},
		{desc: "null", token: header + "." + enc.EncodeToString([]byte(`null`)) + "." + sig},
	}
	for _, tc := range tests {
		claims, ok := Claims(tc.token)
		if ok != (tc.sub != "") {
			t.Errorf("%s: ok %v", tc.desc, ok)
			continue
		}
		if ok && claims["sub"] != tc.sub {
			t.Errorf("%s: sub %v", tc.desc, claims["sub"])
		}
	}
}
