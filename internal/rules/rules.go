// Package rules holds the session and subject rules of OpenID Connect
// back-channel logouts, and the replay store of logout token jtis. A rule
// rejects a JWT bearer token whose session claim (sid rule) or sub (sub
// rule) hashes to the rule's digest and whose iat is at or before the
// logout; a token with no iat is rejected too, as it cannot show it was
// issued after. The payload is read without verifying the signature: a
// forged token can only get itself rejected.
//
// The root package verifies logout tokens, persists and replicates their
// records, and asks Store.Rejects about bearer tokens; this package only
// holds what the records say. It avoids generics, which Yaegi, the
// interpreter Traefik runs plugins with, supports poorly.
package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// A Store holds the live rules and the seen jtis of one denylist. Its
// methods are safe for concurrent use.
//
// The hot path tests Live once per request with one atomic load; while no
// rule is live, that is all a request pays. Opaque tokens (no two dots)
// skip the rules.
type Store struct {
	now       func() time.Time
	jtiExpiry func(*record.Logout) int64

	// live counts the rules held, expired ones not yet swept included.
	live int32

	mu         sync.RWMutex
	sid, sub   map[string]rule  // by digest of the claim value
	jtis       map[string]int64 // seen logout jtis (jtiDigest) until their expiry
	nextExpiry int64            // the earliest expiry held; a sweep is due then
	logouts    int64
	onLive     func(bool) // told whether any rule is live (the pre-check)
	// Refusals of the bounds (MaxRules, MaxJTIs), for the stats.
	refusedRules, refusedJTIs int64
}

// Bounds on the store. Logout tokens are signed by the provider, so only
// it can add entries; the bounds still hold memory to about 10 MB whatever
// it sends. A logout received past a bound is refused (Full: the root
// answers 503); one replicated from another replica is applied all the
// same (it was enforced there) and counted (Refusals).
const (
	// MaxRules bounds the sid and sub rules held together.
	MaxRules = 100000
	// MaxJTIs bounds the logout jtis held for replay detection.
	MaxJTIs = 100000
)

// setLive publishes the count of rules, to the hot path and the pre-check
// (onLive).
// The caller holds mu.
func (r *Store) setLive(n int32) {
	atomic.StoreInt32(&r.live, n)
	if r.onLive != nil {
		r.onLive(n > 0)
	}
}

// A rule is one logout's cut-off: tokens issued at or before at are
// rejected until expiry.
type rule struct {
	at, expiry int64 // Unix nanoseconds
}

// New returns an empty store reading the time from now. jtiExpiry says
// when a logout record's jti may be forgotten; onLive, when not nil, is
// told whether any rule is live each time the count changes.
func New(now func() time.Time, jtiExpiry func(*record.Logout) int64, onLive func(bool)) *Store {
	return &Store{now: now, jtiExpiry: jtiExpiry, onLive: onLive, sid: map[string]rule{}, sub: map[string]rule{}, jtis: map[string]int64{}}
}

// Live returns the count of rules held, expired ones not yet swept
// included, to be read with atomic.LoadInt32. The hot path keeps the
// pointer (taken once) and tests it before calling Rejects.
func (r *Store) Live() *int32 {
	return &r.live
}

// ClaimJTI records a jti until expiry and reports whether it was new.
func (r *Store) ClaimJTI(jti *[sha256.Size]byte, expiry int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if until, ok := r.jtis[string(jti[:])]; ok && until > r.now().UnixNano() {
		return false
	}
	if len(r.jtis) >= MaxJTIs {
		// Over the bound (full checks it first): counted as held, not new.
		r.refusedJTIs++
		return false
	}
	r.jtis[string(jti[:])] = expiry
	r.due(expiry)
	return true
}

// ForgetJTI drops a jti ClaimJTI took for a logout that was then refused
// before it applied, so that the provider's retry is not a replay.
func (r *Store) ForgetJTI(jti *[sha256.Size]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jtis, string(jti[:]))
}

// Full reports whether a logout received now would pass a bound, after a
// sweep of what expired; it counts the refusal.
func (r *Store) Full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.jtis) < MaxJTIs && len(r.sid)+len(r.sub) < MaxRules-1 {
		return false
	}
	r.sweep(r.now().UnixNano())
	if len(r.jtis) >= MaxJTIs {
		r.refusedJTIs++
		return true
	}
	if len(r.sid)+len(r.sub) >= MaxRules-1 {
		r.refusedRules++
		return true
	}
	return false
}

// Refusals reports what the bounds refused: jtis, then rules.
func (r *Store) Refusals() (int64, int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.refusedJTIs, r.refusedRules
}

// Seen reports whether a logout's jti is held.
func (r *Store) Seen(jti *[sha256.Size]byte) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.jtis[string(jti[:])]
	return ok
}

// Add records a logout's rules and jti; counted says whether it counts as
// a logout applied, which a replica reading its own back from the stream,
// or a logout already loaded, does not. Applying one twice changes nothing.
func (r *Store) Add(rec *record.Logout, counted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Flags&record.LogoutDelete != 0 {
		if rec.Flags&record.LogoutRuleSID != 0 {
			delete(r.sid, string(rec.SID[:]))
		}
		if rec.Flags&record.LogoutRuleSub != 0 {
			delete(r.sub, string(rec.Sub[:]))
		}
		r.setLive(int32(len(r.sid) + len(r.sub)))
		return
	}
	now := r.now().UnixNano()
	if now >= r.nextExpiry && r.nextExpiry != 0 {
		r.sweep(now)
	}
	jtiUntil := r.jtiExpiry(rec)
	if until, ok := r.jtis[string(rec.JTI[:])]; !ok || until < jtiUntil {
		r.jtis[string(rec.JTI[:])] = jtiUntil
	}
	if counted {
		r.logouts++
	}
	r.due(jtiUntil)
	if rec.Flags&record.LogoutRuleSID != 0 {
		merge(r.sid, string(rec.SID[:]), rec)
	}
	if rec.Flags&record.LogoutRuleSub != 0 {
		merge(r.sub, string(rec.Sub[:]), rec)
	}
	r.due(rec.Expiry)
	r.setLive(int32(len(r.sid) + len(r.sub)))
}

// merge keeps, for one claim value, the latest cut-off and expiry.
func merge(rules map[string]rule, key string, rec *record.Logout) {
	old, ok := rules[key]
	if !ok {
		rules[key] = rule{at: rec.At, expiry: rec.Expiry}
		return
	}
	if rec.At > old.at {
		old.at = rec.At
	}
	if rec.Expiry > old.expiry {
		old.expiry = rec.Expiry
	}
	rules[key] = old
}

// due notes an expiry for the next sweep. The caller holds mu.
func (r *Store) due(expiry int64) {
	if r.nextExpiry == 0 || expiry < r.nextExpiry {
		r.nextExpiry = expiry
	}
}

// sweep forgets expired rules and jtis. The caller holds mu.
func (r *Store) sweep(now int64) {
	r.nextExpiry = 0
	for _, m := range []map[string]rule{r.sid, r.sub} {
		for k, v := range m {
			if v.expiry <= now {
				delete(m, k)
			} else {
				r.due(v.expiry)
			}
		}
	}
	for k, v := range r.jtis {
		if v <= now {
			delete(r.jtis, k)
		} else {
			r.due(v)
		}
	}
	r.setLive(int32(len(r.sid) + len(r.sub)))
}

// Counts reports the live rules and the logouts applied, sweeping first.
func (r *Store) Counts() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(r.now().UnixNano())
	return len(r.sid) + len(r.sub), r.logouts
}

// Rejects reports whether a live rule rejects token, a JWT bearer whose
// session claim sits at path. It runs on the hot path while a rule is
// live, so it is one function: under Yaegi each interpreted call costs
// about 5 µs, more than the compiled decoding it does.
func (r *Store) Rejects(token string, path []string) bool {
	first := strings.IndexByte(token, '.')
	if first <= 0 {
		return false
	}
	second := strings.IndexByte(token[first+1:], '.')
	if second <= 0 {
		return false // opaque, or no payload
	}
	// Decoded inline, not with jwtpayload.Claims: this is the hot path,
	// and under Yaegi a call costs more than the decoding.
	payload, err := base64.RawURLEncoding.DecodeString(token[first+1 : first+1+second])
	if err != nil {
		// Padded base64url, which lenient parsers accept: the slow way.
		if payload, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(token[first+1:first+1+second], "=")); err != nil {
			return false
		}
		return r.rejectsClaims(payload, path)
	}
	// The common case, inline: session rules only, the session claim at
	// "sid", a payload without escapes that names "sid" once. Its value is
	// read with a few compiled calls and looked up; only a token whose
	// session has a rule needs every claim decoded (its iat decides).
	// Decoding every claim into a map costs about 14 µs under Yaegi, this
	// about a third. Anything else takes the map.
	if len(path) == 1 && path[0] == "sid" && bytes.IndexByte(payload, '\\') < 0 && bytes.Count(payload, sidKey) == 1 {
		r.mu.RLock()
		if len(r.sub) == 0 {
			at := bytes.Index(payload, sidKey) + len(sidKey)
			for at < len(payload) && (payload[at] == ' ' || payload[at] == '\t' || payload[at] == '\n' || payload[at] == '\r') {
				at++
			}
			if at >= len(payload) || payload[at] != ':' {
				r.mu.RUnlock()
				return false // "sid" as a value, not a key: no session claim
			}
			at++
			for at < len(payload) && (payload[at] == ' ' || payload[at] == '\t' || payload[at] == '\n' || payload[at] == '\r') {
				at++
			}
			end := -1
			if at < len(payload) && payload[at] == '"' {
				end = bytes.IndexByte(payload[at+1:], '"')
			}
			if end < 0 {
				r.mu.RUnlock()
				return false // not a string: no rule can match it
			}
			sum := sha256.Sum256(payload[at+1 : at+1+end])
			_, ruled := r.sid[string(sum[:])]
			if !ruled {
				r.mu.RUnlock()
				return false
			}
		}
		r.mu.RUnlock()
	}
	return r.rejectsClaims(payload, path)
}

// rejectsClaims decodes every claim of payload and applies the rules: the
// slow half of rejects, a function of its own because Yaegi allocates every
// local of a function on each call, executed or not.
func (r *Store) rejectsClaims(payload []byte, path []string) bool {
	var claims map[string]interface{}
	if json.Unmarshal(payload, &claims) != nil {
		return false
	}
	issued := int64(math.MinInt64) // no iat: it cannot show it came after a logout
	if iat, ok := claims["iat"].(float64); ok && iat < 1e11 && iat > -1e11 {
		issued = int64(iat * 1e9)
	}
	// Under Yaegi a failed type assertion in a loop keeps the previous
	// iteration's value, so obj is reset explicitly each time.
	var sid interface{} = claims
	var obj map[string]interface{}
	for _, name := range path {
		obj = nil
		if m, ok := sid.(map[string]interface{}); ok {
			obj = m
		}
		sid = obj[name]
	}
	sidValue, hasSID := sid.(string)
	sub, hasSub := claims["sub"].(string)
	now := r.now().UnixNano()
	rejected := false
	r.mu.RLock()
	if hasSID && len(r.sid) > 0 {
		sum := sha256.Sum256([]byte(sidValue))
		ru, ok := r.sid[string(sum[:])]
		rejected = ok && ru.expiry > now && issued <= ru.at
	}
	if !rejected && hasSub && len(r.sub) > 0 {
		sum := sha256.Sum256([]byte(sub))
		ru, ok := r.sub[string(sum[:])]
		rejected = ok && ru.expiry > now && issued <= ru.at
	}
	sweep := r.nextExpiry != 0 && now >= r.nextExpiry
	r.mu.RUnlock()
	if sweep {
		// Expired rules are forgotten here too, so that once the last one
		// has gone the hot path is back to its one atomic load.
		r.mu.Lock()
		r.sweep(now)
		r.mu.Unlock()
	}
	return rejected
}

// sidKey is the session claim's name as it appears in a payload.
var sidKey = []byte(`"sid"`)

// A View is one rule as the admin API lists it.
type View struct {
	// Claim is the claim the rule matches: "sid" or "sub".
	Claim string `json:"claim"`
	// Digest is the SHA-256 of the claim's value, in hex.
	Digest string `json:"digest"`
	// LoggedOutAt is the logout's cut-off, RFC 3339 in UTC.
	LoggedOutAt string `json:"loggedOutAt"`
	// ExpiresAt is when the rule ends, RFC 3339 in UTC.
	ExpiresAt string `json:"expiresAt"`
}

// List returns the live rules.
func (r *Store) List() []View {
	now := r.now().UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []View{}
	for _, kind := range []string{"sid", "sub"} {
		rules := r.sid
		if kind == "sub" {
			rules = r.sub
		}
		for k, v := range rules {
			if v.expiry > now {
				out = append(out, View{Claim: kind, Digest: hex.EncodeToString([]byte(k)),
					LoggedOutAt: time.Unix(0, v.at).UTC().Format(time.RFC3339), ExpiresAt: time.Unix(0, v.expiry).UTC().Format(time.RFC3339)})
			}
		}
	}
	return out
}

// Covers reports whether a live rule names the session sid or the subject
// sub (zero digests name nothing).
func (r *Store) Covers(sid, sub *[sha256.Size]byte) bool {
	if atomic.LoadInt32(&r.live) == 0 {
		return false
	}
	now := r.now().UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if *sid != ([sha256.Size]byte{}) {
		if ru, ok := r.sid[string(sid[:])]; ok && ru.expiry > now {
			return true
		}
	}
	if *sub != ([sha256.Size]byte{}) {
		if ru, ok := r.sub[string(sub[:])]; ok && ru.expiry > now {
			return true
		}
	}
	return false
}
