package tokenrevocation

import (
	"strings"
	"testing"
	"time"
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
