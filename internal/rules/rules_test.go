package rules

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/jwtpayload"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, as go test expects.

// jtiExpiry keeps a logout's jti an hour past its iat, as the root's
// logout.go does (logoutMaxAge's bound plus the allowed skew, about).
func jtiExpiry(rec *record.Logout) int64 {
	return rec.At + int64(time.Hour)
}

// makeJWT returns an unsigned token shaped like a JWT with the given exp.
func makeJWT(exp int64) string {
	return jwtOf(fmt.Sprintf(`{"sub":"user-1","exp":%d}`, exp))
}

// jwtOf returns an unsigned token shaped like a JWT with the given payload.
func jwtOf(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("signature"))
}

func TestRejects(t *testing.T) {
	// given a sid rule for session-1 and a sub rule for user-2, cut at
	// 1000 (seconds), and a store that tells whether rules are live
	clock := fakeclock.New()
	live := false
	r := New(clock.Now, jtiExpiry, func(l bool) { live = l })
	if atomic.LoadInt32(r.Live()) != 0 || live {
		t.Fatal("an empty store has live rules")
	}
	at := int64(1000 * time.Second)
	expiry := clock.Now().Add(time.Hour).UnixNano()
	r.Add(&record.Logout{Flags: record.LogoutRuleSID, SID: sha256.Sum256([]byte("session-1")), JTI: sha256.Sum256([]byte("j1")), At: at, Expiry: expiry}, true)
	if atomic.LoadInt32(r.Live()) != 1 || !live {
		t.Fatal("a rule is not live")
	}
	padded := jwtOf(`{"sid":"session-1","iat":999}`)
	dot := len(padded) - len("signature") - 2
	tests := []struct {
		desc   string
		token  string
		path   []string
		reject bool
	}{
		{desc: "the session, issued before", token: jwtOf(`{"sid":"session-1","iat":999}`), path: []string{"sid"}, reject: true},
		{desc: "the session, issued at the logout", token: jwtOf(`{"sid":"session-1","iat":1000}`), path: []string{"sid"}, reject: true},
		{desc: "the session, issued after", token: jwtOf(`{"sid":"session-1","iat":1001}`), path: []string{"sid"}},
		{desc: "the session, no iat", token: jwtOf(`{"sid" : "session-1"}`), path: []string{"sid"}, reject: true},
		{desc: "another session", token: jwtOf(`{"sid":"session-2","iat":1}`), path: []string{"sid"}},
		{desc: "sid as a value", token: jwtOf(`{"x":"sid","iat":1}`), path: []string{"sid"}},
		{desc: "an escaped payload", token: jwtOf(`{"sid":"session\u002d1","iat":1}`), path: []string{"sid"}, reject: true},
		{desc: "a nested claim", token: jwtOf(`{"ext":{"sid":"session-1"},"iat":1}`), path: []string{"ext", "sid"}, reject: true},
		{desc: "a padded payload", token: padded[:dot] + "==" + padded[dot:], path: []string{"sid"}, reject: true},
		{desc: "opaque", token: "ory_at_session-1", path: []string{"sid"}},
		{desc: "not base64url", token: "a.!!!.b", path: []string{"sid"}},
	}
	for _, tc := range tests {
		if got := r.Rejects(tc.token, tc.path); got != tc.reject {
			t.Errorf("%s: rejects %v", tc.desc, got)
		}
	}

	// when a sub rule is added, then the subject's tokens are rejected too
	r.Add(&record.Logout{Flags: record.LogoutRuleSub, Sub: sha256.Sum256([]byte("user-2")), JTI: sha256.Sum256([]byte("j2")), At: at, Expiry: expiry}, true)
	if !r.Rejects(jwtOf(`{"sub":"user-2","iat":5}`), []string{"sid"}) || r.Rejects(jwtOf(`{"sub":"user-3","iat":5}`), []string{"sid"}) {
		t.Fatal("the sub rule")
	}
	if n, logouts := r.Counts(); n != 2 || logouts != 2 || len(r.List()) != 2 {
		t.Fatalf("counts %d, %d; list %v", n, logouts, r.List())
	}
	none := [sha256.Size]byte{}
	if !r.Covers(&none, digestOf("user-2")) || r.Covers(digestOf("session-2"), &none) {
		t.Fatal("covers")
	}

	// and once the rules expire, nothing is rejected and nothing is live
	clock.Advance(2 * time.Hour)
	if r.Rejects(jwtOf(`{"sid":"session-1","iat":1}`), []string{"sid"}) || atomic.LoadInt32(r.Live()) != 0 || live {
		t.Fatal("an expired rule still rejects")
	}
}

// digestOf is the SHA-256 digest of value.
func digestOf(value string) *[sha256.Size]byte {
	sum := sha256.Sum256([]byte(value))
	return &sum
}

func TestRuleStoreBounds(t *testing.T) {
	// given a replay set at its bound, every jti live
	clock := fakeclock.New()
	r := New(clock.Now, jtiExpiry, nil)
	until := clock.Now().Add(time.Minute).UnixNano()
	for i := 0; i < MaxJTIs; i++ {
		r.jtis[fmt.Sprint(i)] = until
	}

	// when a logout arrives, then it is refused and counted
	jti := sha256.Sum256([]byte("new"))
	if !r.Full() || r.ClaimJTI(&jti, until) {
		t.Fatal("a full replay set took a jti")
	}
	if jtis, rules := r.Refusals(); jtis != 2 || rules != 0 {
		t.Fatalf("refusals %d, %d", jtis, rules)
	}

	// and once they expire, there is room again
	clock.Advance(2 * time.Minute)
	if r.Full() || !r.ClaimJTI(&jti, clock.Now().Add(time.Minute).UnixNano()) {
		t.Fatal("no room after the jtis expired")
	}
}

// FuzzRuleRejects: whatever a bearer token holds, the rule check never
// panics, and it rejects only a token whose session claim or subject has a
// rule and whose iat (if any) is not after the logout.
func FuzzRuleRejects(f *testing.F) {
	f.Add(makeJWT(1767225600), int64(1767225600))
	f.Fuzz(func(t *testing.T, token string, at int64) {
		r := New(func() time.Time { return time.Unix(0, 0) }, jtiExpiry, nil)
		rec := &record.Logout{Flags: record.LogoutRuleSID | record.LogoutRuleSub, SID: sha256.Sum256([]byte("session-1")), Sub: sha256.Sum256([]byte("user-1")), At: at, Expiry: 1 << 62}
		r.Add(rec, true)
		if !r.Rejects(token, []string{"sid"}) {
			return
		}
		claims, ok := jwtpayload.Claims(token)
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
