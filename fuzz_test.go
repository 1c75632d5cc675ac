package tokenrevocation

import (
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, as go test expects.

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc.DEF-_~+/==")
	f.Fuzz(func(t *testing.T, value string) {
		token := bearerToken(value)
		if token == "" {
			return
		}
		if !strings.Contains(value, token) || strings.Trim(token, " \t") != token {
			t.Fatalf("bearerToken(%q) = %q: not the value's credential, trimmed", value, token)
		}
		if !strings.EqualFold(value[:6], "bearer") {
			t.Fatalf("bearerToken(%q) accepted another scheme", value)
		}
	})
}

func FuzzParseForm(f *testing.F) {
	f.Add([]byte("token=abc&token_type_hint=access_token"))
	f.Fuzz(func(t *testing.T, body []byte) {
		form, err := parseForm(body)
		if err != nil {
			return
		}
		for key, values := range form {
			if len(values) != 1 {
				t.Fatalf("parameter %q kept %d values", key, len(values))
			}
		}
	})
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add(makeJWT(1767225600))
	f.Fuzz(func(t *testing.T, token string) {
		exp, ok := jwtExpiry(token)
		if !ok {
			return
		}
		if strings.Count(token, ".") != 2 {
			t.Fatalf("jwtExpiry(%q) accepted a token without three segments", token)
		}
		if exp.Before(time.Unix(0, 0)) || exp.After(time.Unix(1e12, 0)) {
			t.Fatalf("jwtExpiry(%q) = %v: out of range", token, exp)
		}
	})
}

func FuzzParseStreamEntry(f *testing.F) {
	f.Add([]byte(entryRESP("1-1", "d", strings.Repeat("ab", 32), "e", "4102444800000")))
	f.Fuzz(func(t *testing.T, buf []byte) {
		var rec record.Revocation
		next, _, status := parseStreamEntry(buf, 0, &rec, &record.Extension{}, nil)
		if next != resp.Incomplete && next != resp.Malformed && (next < 0 || next > len(buf)) {
			t.Fatalf("next %d outside a %d-byte buffer", next, len(buf))
		}
		if status == entryRevocation && (next < 0 || rec.Expiry <= 0) {
			t.Fatalf("a revocation with next %d, expiry %d", next, rec.Expiry)
		}
	})
}
