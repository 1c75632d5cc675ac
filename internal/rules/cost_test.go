package rules

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// TestRuleCheckCost logs what one rule check costs, compiled and under
// Yaegi (`make yaegi_test`), with 10,000 live rules: the figure behind
// bench case (d). It asserts nothing about time.
func TestRuleCheckCost(t *testing.T) {
	r := New(time.Now, jtiExpiry, nil)
	now := time.Now()
	for i := 0; i < 10000; i++ {
		r.Add(&record.Logout{Flags: record.LogoutRuleSID, SID: sha256.Sum256([]byte("s-" + strconv.Itoa(i))),
			JTI: sha256.Sum256([]byte("j-" + strconv.Itoa(i))), At: now.UnixNano(), Expiry: now.Add(time.Hour).UnixNano()}, true)
	}
	enc := base64.RawURLEncoding
	token := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." +
		enc.EncodeToString([]byte(`{"iss":"https://op.example","sub":"user-1","sid":"unknown-session","iat":`+strconv.FormatInt(now.Unix(), 10)+`,"exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`,"jti":"12345"}`)) +
		"." + enc.EncodeToString(make([]byte, 256))
	path := []string{"sid"}
	const n = 2000
	start := time.Now()
	for i := 0; i < n; i++ {
		if r.Rejects(token, path) {
			t.Fatal("rejected")
		}
	}
	t.Logf("rule check, 10,000 rules: %v per JWT bearer", time.Since(start)/n)
}
