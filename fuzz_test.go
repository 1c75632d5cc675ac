package tokenrevocation

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

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
		var rec revocation
		next, _, status := parseStreamEntry(buf, 0, &rec, &extension{}, nil)
		if next != resp.Incomplete && next != resp.Malformed && (next < 0 || next > len(buf)) {
			t.Fatalf("next %d outside a %d-byte buffer", next, len(buf))
		}
		if status == entryRevocation && (next < 0 || rec.expiry <= 0) {
			t.Fatalf("a revocation with next %d, expiry %d", next, rec.expiry)
		}
	})
}

func FuzzDecodeFrames(f *testing.F) {
	rec := revocation{expiry: 4102444800000000000, at: 1767225600000000000}
	f.Add(append(encodeRevocation(&rec), 0xFF, 1, 2))
	tomb := tombstone{at: 1767225601000000000, held: rec.at, until: rec.expiry}
	f.Add(append(encodeRevocation(&rec), encodeExtension(tombstoneRecordType, tombstoneRecordVersion, encodeTombstone(&tomb))...))
	f.Fuzz(func(t *testing.T, buf []byte) {
		set := decodeFrames(buf, 0)
		if len(set.recs)*frameSize+len(set.extensions) > len(buf) {
			t.Fatalf("decoded more than %d bytes", len(buf))
		}
		for _, r := range set.recs {
			if r.expiry <= 0 || (set.minExpiry != 0 && r.expiry < set.minExpiry) {
				t.Fatalf("expiry %d, min %d", r.expiry, set.minExpiry)
			}
		}
		// Tombstones drop revocations, never add or change one.
		before := len(set.recs)
		dropCanceled(set, 0, time.Hour, time.Minute)
		if len(set.recs) > before {
			t.Fatalf("%d revocations after tombstones, %d before", len(set.recs), before)
		}
	})
}

func FuzzDecodeGrant(f *testing.F) {
	rec := grantRecord{tokens: []grantToken{{expiry: 1}, {expiry: 2, refresh: true}}}
	f.Add(rec.encode())
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := decodeGrant(buf)
		if err != nil {
			return
		}
		again, err := decodeGrant(got.encode())
		if err != nil || again.family != got.family || len(again.tokens) != len(got.tokens) {
			t.Fatalf("re-encoding changed the record: %v", err)
		}
	})
}

func FuzzDecodeLogout(f *testing.F) {
	rec := &logoutRecord{flags: logoutRuleSID | logoutGrantsSID, at: 1, expiry: 2}
	f.Add(rec.encode())
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := decodeLogout(buf)
		if err != nil {
			return
		}
		if again, err := decodeLogout(got.encode()); err != nil || *again != *got {
			t.Fatalf("decodeLogout(%x) does not round-trip", buf)
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
		rec := &logoutRecord{flags: logoutRuleSID | logoutRuleSub, sid: sha256.Sum256([]byte("session-1")), sub: sha256.Sum256([]byte("user-1")), at: at, expiry: 1 << 62}
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
