package tokenrevocation

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
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

// FuzzRuleRejects: whatever a bearer token holds, the rule check never
// panics, and it rejects only a token whose session claim or subject has a
// rule and whose iat (if any) is not after the logout.
func FuzzRuleRejects(f *testing.F) {
	f.Add(makeJWT(1767225600), int64(1767225600))
	f.Fuzz(func(t *testing.T, token string, at int64) {
		r := newRuleStore(func() time.Time { return time.Unix(0, 0) })
		rec := &record.Logout{Flags: record.LogoutRuleSID | record.LogoutRuleSub, SID: sha256.Sum256([]byte("session-1")), Sub: sha256.Sum256([]byte("user-1")), At: at, Expiry: 1 << 62}
		r.add(rec, true)
		if !r.rejects(token, []string{"sid"}) {
			return
		}
		claims, ok := jwtClaims(token)
		if !ok {
			t.Fatalf("rejects(%q) without a JWT payload", token)
		}
		if claims["sid"] != "session-1" && claims["sub"] != "user-1" {
			t.Fatalf("rejects(%q): neither the session nor the subject of the rule", token)
		}
		if iat, ok := claims["iat"].(float64); ok && iat < 1e11 && int64(iat*1e9) > at {
			t.Fatalf("rejects(%q): issued after the logout", token)
		}
	})
}
