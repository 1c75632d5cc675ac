package tokenrevocation

import (
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/replica"
)

// The denylist's stats: the JSON of statsPath and of the admin API, and
// the figures the metrics (metrics.go) are drawn from.

// denylistStats is what a denylist reports about itself.
type denylistStats struct {
	Denylist string `json:"denylist"`
	Entries  int    `json:"entries"`
	Revokes  int64  `json:"revokes"`
	// Loaded counts entries read back from persistPath or Redis, this
	// instance's own echoes from the stream included.
	Loaded    int64 `json:"loaded"`
	Hits      int64 `json:"hits"`
	Evictions int64 `json:"evictions"`
	// Capacity is how many entries one lane takes before revocations are refused.
	Capacity int `json:"capacity"`
	// Overflow counts live revocations bigcache pushed out, kept in a map instead.
	Overflow int `json:"overflow"`
	// Refused counts revoke calls refused before the identity service, by reason.
	Refused refusals `json:"refused"`
	// AuthFailures counts revoke calls the identity service refused with
	// 401: they spent none of the claimed client's limits.
	AuthFailures int64 `json:"authFailures"`
	// Bounded counts what each bound on outside input refused or cut.
	Bounded bounded `json:"bounded"`
	// Stream counts the stream entries skipped rather than applied.
	Stream replica.Skips `json:"stream"`
	// Grants counts the grant families tracked; GrantsUntracked the grants
	// not tracked because maxGrants was reached.
	Grants          int   `json:"grants"`
	GrantsUntracked int64 `json:"grantsUntracked"`
	// GrantTokens counts the tokens of every family tracked.
	GrantTokens int `json:"grantTokens"`
	// Logouts counts the back-channel logouts applied, received here or
	// loaded; LogoutRules the live session and subject rules.
	Logouts     int64 `json:"logouts"`
	LogoutRules int   `json:"logoutRules"`
	// JWKSKeys is how many signing keys of the OpenID provider are held
	// for back-channel logout; 0 when none are (or logout is off).
	JWKSKeys int `json:"jwksKeys"`
	// State is "loading", "ready" or "degraded" (serving without every source loaded).
	State string `json:"state"`
	// Ready is true once every source (persistPath, the Redis stream) has loaded.
	Ready bool `json:"ready"`
	// LoadSeconds is how long loading took, 0 while it lasts.
	LoadSeconds float64 `json:"loadSeconds"`
	// Segment counts the revocations held in the loaded segment, outside
	// bigcache (in Entries too); Filling those its late move into bigcache
	// has left, 0 when it is not moving them (internal/store, overlay.go).
	Segment int   `json:"segment"`
	Filling int64 `json:"filling"`
	// Redis is "off", "connected" or "disconnected".
	Redis string `json:"redis"`
	// Queued counts revocations waiting to be written to Redis.
	Queued int `json:"queued"`
	// Failover is where the stream is written and what failovers did.
	Failover *replica.Failover `json:"failover,omitempty"`
}

// bounded counts, per bound on a structure keyed by outside input, what the
// bound refused or cut (README "Limits and hostile input").
type bounded struct {
	// Clients: clients decided untracked because the limiter's table was full.
	Clients int64 `json:"clients"`
	// GrantTokens: tokens a grant family dropped at its cap (oldest first).
	GrantTokens int64 `json:"grantTokens"`
	// Jti: logout tokens refused because the replay set was full.
	Jti int64 `json:"jti"`
	// LogoutRules: logouts refused because the rule table was full.
	LogoutRules int64 `json:"logoutRules"`
	// Overflow: entries the overflow map could not keep (it was full).
	Overflow int64 `json:"overflow"`
	// AuditFields: audit fields cut to their bound.
	AuditFields int64 `json:"auditFields"`
	// Tombstones: un-revocations applied but not remembered because the
	// tombstone table was full (a revocation confirmed before one, arriving
	// later, then stands).
	Tombstones int64 `json:"tombstones"`
	// Segment: loaded records the loaded segment had no room for, stored
	// one by one into the lanes instead (none is dropped by this bound).
	Segment int64 `json:"segment"`
}

// refusals counts revoke calls refused before they reached the identity service.
type refusals struct {
	// Capacity: the denylist could not take the revocation without dropping a live one (503).
	Capacity int64 `json:"capacity"`
	// ClientLimit: the client was over its rate or its share of the denylist (429).
	ClientLimit int64 `json:"clientLimit"`
	// Lifetime: the token's revocation would outlive maxLifetime, the
	// longest the store holds (503).
	Lifetime int64 `json:"lifetime"`
}

// stats reports the denylist's counters. Entries counts what bigcache still
// holds, which includes expired entries its cleaner has not reached yet.
func (d *denylist) stats() denylistStats {
	s := denylistStats{Denylist: d.name, Redis: "off"}
	st := d.store.Stats()
	s.Entries, s.Overflow, s.Filling = st.Entries, st.Overflow, st.Filling
	s.Segment = st.Segment
	s.Hits, s.Evictions = st.Hits, st.Evictions
	s.Capacity = d.store.Capacity()
	s.Refused.Capacity = atomic.LoadInt64(&d.count.refusedCapacity)
	s.Refused.ClientLimit = atomic.LoadInt64(&d.count.refusedClientLimit)
	s.Refused.Lifetime = atomic.LoadInt64(&d.count.refusedLifetime)
	s.AuthFailures = atomic.LoadInt64(&d.count.authFailures)
	s.Bounded = d.bounds()
	s.Stream.Oversized = atomic.LoadInt64(&d.count.skipped.Oversized)
	s.Stream.Malformed = atomic.LoadInt64(&d.count.skipped.Malformed)
	s.Stream.Unverified = atomic.LoadInt64(&d.count.skipped.Unverified)
	families, grantTokens := d.grants.Size()
	s.Grants = families
	s.GrantTokens = grantTokens
	s.GrantsUntracked = d.grants.Untracked()
	s.LogoutRules, s.Logouts = d.rules.Counts()
	d.mu.Lock()
	s.LoadSeconds = d.life.loadTook.Seconds()
	keys := d.keys
	d.mu.Unlock()
	if keys != nil {
		s.JWKSKeys = keys.current().Len()
	}
	switch atomic.LoadInt32(&d.life.state) {
	case stateReady:
		s.State, s.Ready = "ready", true
	case stateDegraded:
		s.State = "degraded"
	default:
		s.State = "loading"
	}
	s.Revokes = atomic.LoadInt64(&d.count.revokes)
	s.Loaded = atomic.LoadInt64(&d.count.loaded)
	if d.replica != nil {
		r := d.replica.Status()
		if s.Ready && r.Stuck {
			// Loaded once, but the stream cannot be read: not in sync.
			s.State, s.Ready = "degraded", false
		}
		s.Redis = "disconnected"
		if r.Connected {
			s.Redis = "connected"
		}
		s.Queued = r.Queued
		s.Failover = &r.Failover
		s.Stream.Oversized += r.Skipped.Oversized
		s.Stream.Malformed += r.Skipped.Malformed
		s.Stream.Unverified += r.Skipped.Unverified
	}
	return s
}

// bounds gathers what each bound on outside input refused or cut.
func (d *denylist) bounds() bounded {
	var b bounded
	b.Clients = d.limiter.Untracked()
	b.GrantTokens = d.grants.Dropped()
	jti, ruleRefusals := d.rules.Refusals()
	b.Jti = jti
	b.LogoutRules = ruleRefusals
	st := d.store.Stats()
	b.Overflow = st.BoundOverflow
	b.AuditFields = atomic.LoadInt64(&d.count.boundAudit)
	b.Tombstones = st.BoundTombstones
	b.Segment = st.BoundSegment
	return b
}
