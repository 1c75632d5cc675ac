package tokenrevocation

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzJWSIdentity: every string the common decoders accept for the same
// JWS (unused bits, padding, the standard alphabet, skipped characters)
// has one identity and one pre-check key, and another header or payload
// never shares it.
func FuzzJWSIdentity(f *testing.F) {
	f.Add([]byte(`{"alg":"RS256"}`), []byte(`{"sub":"a"}`), []byte("signature-bytes-of-some-length"), uint8(0), []byte(`{"sub":"b"}`))
	f.Add([]byte(`{"alg":"ES256","typ":"JWT"}`), []byte(`{}`), []byte{0xfb, 0xff, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(3), []byte(`{ }`))
	f.Fuzz(func(t *testing.T, header, payload, sig []byte, variant uint8, other []byte) {
		enc := base64.RawURLEncoding
		input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
		s := enc.EncodeToString(sig)
		token := input + "." + s
		if _, ok := jwsSigningInputEnd(token); !ok || len(s) == 0 {
			return
		}
		var form string
		switch variant % 4 {
		case 0: // unused bits of the last character
			c := strings.IndexByte(b64url, s[len(s)-1])
			flipped := s[:len(s)-1] + string(b64url[c^1])
			if a, err := enc.DecodeString(flipped); err != nil || string(a) != string(sig) {
				return
			}
			form = input + "." + flipped
		case 1:
			form = token + "=="
		case 2:
			form = input + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s)
		default:
			form = input + "." + s[:len(s)/2] + "!" + s[len(s)/2:]
		}
		if tokenDigest(form) != tokenDigest(token) || keyOf(form) != keyOf(token) {
			t.Fatalf("%q and %q: two identities", token, form)
		}
		if string(other) != string(payload) {
			another := enc.EncodeToString(header) + "." + enc.EncodeToString(other) + "." + s
			if tokenDigest(another) == tokenDigest(token) {
				t.Fatalf("another payload shares the identity of %q", token)
			}
		}
	})
}

// FuzzBodyScanners: the JSON and multipart scanners never panic, and a
// token put into a well-formed body is found.
func FuzzBodyScanners(f *testing.F) {
	f.Add([]byte(`{"access_token":"x"}`), "tok-123")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\nv\r\n--b--\r\n"), "tok")
	f.Fuzz(func(t *testing.T, body []byte, token string) {
		_ = appendJSONTokens(nil, body)
		_ = appendMultipartTokens(nil, strings.NewReader(string(body)), "b", 1024)
		_, _ = bodyKind(string(body))
		if token == "" || strings.ContainsAny(token, "\"\\\r\n") || !isPrintable(token) {
			return
		}
		found := appendJSONTokens(nil, []byte(`{"a":1,"access_token":"`+token+`"}`))
		if len(found) != 1 || found[0] != token {
			t.Fatalf("JSON: found %q, want %q", found, token)
		}
		mp, ctype := multipartBody(map[string]string{"access_token": token})
		_, boundary := bodyKind(ctype)
		if found := appendMultipartTokens(nil, strings.NewReader(mp), boundary, 1024); len(found) == 0 || found[0] != token {
			t.Fatalf("multipart: found %q, want %q", found, token)
		}
	})
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
