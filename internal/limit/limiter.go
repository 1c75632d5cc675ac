// Package limit keeps one client from flooding the revocation list through
// the revoke endpoint: a Limiter holds, per client Key, a token bucket of
// revoke calls and a share of each denylist lane, within a process-wide
// bound on the clients it tracks. It also reads who a revoke call is from
// (ClientID, IsConfidential, KeyOf) and how the audit trail shows it
// (AuditClient).
//
// It knows nothing of the denylist: a lane is a number with a window and a
// capacity that the caller passes in. The clock is injected (New's now), so
// tests drive it.
package limit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// A Limiter keeps one client from flooding the bounded denylist through the
// revoke endpoint. RFC 7009 has the identity service answer 200 to a revoke
// call whatever the token, so anyone holding a client id can have garbage
// strings "confirmed" revoked, and each one takes a place in the denylist,
// where enough of them push real revocations out. A Limiter holds two
// limits, both keyed by the client's Key (KeyOf):
//
//   - a rate: a token bucket of rate calls per second and burst calls at once,
//     from which every revocation the identity service confirmed takes one
//     token;
//   - a share: the client's live revocations in one denylist lane may not
//     exceed share × the lane's capacity.
//
// Only the client itself can spend its limits. The client id a call claims
// is not proven until the identity service answers, so nothing is spent
// before then: Admit only checks that the bucket holds a token, and Commit
// (the identity service confirmed) takes it. A call the identity service
// refuses, for client authentication or anything else, takes nothing, so a
// flood of "Basic victim:wrong" from anywhere, the victim's own address
// included, leaves the victim's bucket full. The price: calls of one client
// in flight together can overshoot its rate, by at most the calls in flight;
// the debt is paid back before it may call again (tokens go negative, down
// to -burst).
//
// Admission to the share is reserved by Admit before the upstream call and
// settled after it by Commit or Release, so that N concurrent calls cannot
// all pass a check meant for fewer. A reservation is all that an
// unauthenticated caller can hold of another client's limits, and only
// while its call is at the identity service: to keep a victim out it would
// need share × capacity calls (half a million by default) in flight at once.
//
// It is not on the hot path (only revoke calls reach it), so one mutex guards
// everything.
type Limiter struct {
	mu         sync.Mutex
	now        func() time.Time
	rate       float64 // tokens per second; 0 is off
	burst      float64 // bucket size, at least 1 when rate is on
	share      float64 // fraction of a lane; 0 is off
	maxClients int
	clients    map[string]*clientState // by string(Key[:])
	// nextSweep (Unix ns) spaces out the scans for idle clients: each scan
	// walks the whole table under the mutex, and newcomers are free to send.
	nextSweep int64
	// untracked counts the calls decided on an untracked state because the
	// table was full (the stats' bounded.clients).
	untracked int64
}

// clientState is what the limiter keeps about one client.
type clientState struct {
	tokens float64
	last   int64 // Unix ns of the last refill
	lanes  []*laneCount
}

// A Decision is Admit's and AdmitRate's answer.
type Decision struct {
	// Allowed is whether the call may go on.
	Allowed bool
	// Reason is "rate" or "share" when refused, "" when allowed.
	Reason string
	// RetryAfter is, when refused, how long until the call could pass: whole
	// seconds, at least one, as Retry-After carries them.
	RetryAfter time.Duration
}

const (
	// defaultMaxClients bounds the table when New is given no bound.
	defaultMaxClients = 10000
	// sweepEvery is the least time between two scans for idle clients.
	sweepEvery = time.Second
	// Refusal reasons.
	limitRate  = "rate"
	limitShare = "share"
)

// New returns a limiter of rate calls per second with burst (rate <= 0 is
// off; burst below 1 counts as 1) and of share of a lane's capacity
// (share <= 0 or >= 1 is off), tracking at most maxClients clients (below
// 1: 10000). now is its clock; nil is time.Now.
func New(rate float64, burst int, share float64, maxClients int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if maxClients < 1 {
		maxClients = defaultMaxClients
	}
	c := &Limiter{now: now, maxClients: maxClients, clients: map[string]*clientState{}}
	if rate > 0 && !math.IsInf(rate, 1) {
		c.rate = rate
		c.burst = math.Max(float64(burst), 1)
	}
	if share > 0 && share < 1 {
		c.share = share
	}
	return c
}

// Admit decides one revoke call of the client key that would record n
// entries (at least one) into lane, whose entries live about window and
// which holds laneCap entries. When allowed with the share limit on, it has
// reserved n slots that exactly one of Commit or Release must settle.
func (c *Limiter) Admit(key Key, lane int, window time.Duration, laneCap, n int) *Decision {
	if c.rate == 0 && c.share == 0 {
		return &Decision{Allowed: true}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	st := c.state(string(key[:]), now)
	if c.rate > 0 {
		c.refill(st, now)
		if st.tokens < 1 {
			wait := float64(time.Second) * (1 - st.tokens) / c.rate
			return &Decision{Reason: limitRate, RetryAfter: retrySeconds(wait)}
		}
		// Not taken here: only a confirmed call spends (Commit).
	}
	if c.share > 0 {
		lc := st.laneCount(lane, window, now)
		if lc.live(now)+lc.reserved+n > c.ShareLimit(laneCap) {
			return &Decision{Reason: limitShare, RetryAfter: lc.retryAfter(now)}
		}
		lc.reserved += n
	}
	return &Decision{Allowed: true}
}

// AdmitRate decides one revoke call of the client key that takes no slot
// (its token is already held at least as long): only the rate applies. A
// confirmed one spends its token with Spend.
func (c *Limiter) AdmitRate(key Key) *Decision {
	if c.rate == 0 {
		return &Decision{Allowed: true}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	st := c.state(string(key[:]), now)
	c.refill(st, now)
	if st.tokens < 1 {
		wait := float64(time.Second) * (1 - st.tokens) / c.rate
		return &Decision{Reason: limitRate, RetryAfter: retrySeconds(wait)}
	}
	return &Decision{Allowed: true}
}

// Spend takes the client key's rate token for a confirmed call that took
// no slot: a Commit of no entries.
func (c *Limiter) Spend(key Key) {
	c.Commit(key, -1, 0)
}

// Commit settles a reservation of Admit whose call the upstream confirmed:
// it takes the call's rate token and becomes n live entries (the revoked
// token and, for a grant's refresh token, the family revoked with it),
// counted at now. A Commit with no reservation still counts (too many,
// never too few). A newcomer decided untracked (see state) has nothing to
// count into; its entries go uncounted.
func (c *Limiter) Commit(key Key, lane, n int) {
	if c.rate == 0 && c.share == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	client := string(key[:])
	st, ok := c.clients[client]
	if !ok {
		return
	}
	now := c.now().UnixNano()
	if c.rate > 0 {
		c.refill(st, now)
		if st.tokens > -c.burst {
			st.tokens--
		}
	}
	if c.share == 0 {
		return
	}
	lc := c.find(client, lane)
	if lc == nil {
		return
	}
	lc.reserved -= n
	if lc.reserved < 0 {
		lc.reserved = 0
	}
	lc.addN(now, n)
}

// Count counts n entries of the client key in lane that were confirmed
// elsewhere: replicated from another replica, which admitted them against
// its own share. Counting them here makes the share hold across replicas;
// they take no rate token (the other replica took it) and are never
// refused. The zero Key is no client: nothing is counted for it.
func (c *Limiter) Count(key Key, lane int, window time.Duration, n int) {
	if c.share == 0 || key == (Key{}) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	client := string(key[:])
	now := c.now().UnixNano()
	st := c.state(client, now)
	if _, ok := c.clients[client]; !ok {
		return
	}
	st.laneCount(lane, window, now).addN(now, n)
}

// Release settles a reservation of n slots of Admit whose call the
// upstream did not confirm: nothing was recorded, so nothing is counted,
// and no rate token was ever taken.
func (c *Limiter) Release(key Key, lane, n int) {
	if c.share == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if lc := c.find(string(key[:]), lane); lc != nil {
		lc.reserved -= n
		if lc.reserved < 0 {
			lc.reserved = 0
		}
	}
}

// ShareLimit is how many live entries one client may hold in a lane of
// laneCap entries, at least one. The epsilon keeps 0.29 × 100 at 29.
func (c *Limiter) ShareLimit(laneCap int) int {
	limit := int(c.share*float64(laneCap) + 1e-9)
	if limit < 1 {
		return 1
	}
	return limit
}

// Untracked is how many calls were decided on a state the limiter did not
// keep because its table of clients was full (see state): what its bound
// refused, for the stats and the metrics.
func (c *Limiter) Untracked() int64 {
	return atomic.LoadInt64(&c.untracked)
}

// tracked returns how many clients the limiter holds state for.
func (c *Limiter) tracked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients)
}

// state returns client's state, adding it to the table when there is room.
//
// Client ids are attacker-controlled until the upstream checks them, so the
// table never holds more than maxClients. When it is full, idle clients (a
// full bucket, nothing live, nothing reserved) are dropped: forgetting them
// loses nothing. When none is idle, the newcomer is decided on a fresh state
// that is not stored, so it gets a full burst and an empty share on every
// call until room appears. That is the trade-off: refusing newcomers instead
// would let anyone who fills the table with made-up ids stop every other
// client from revoking, which is worse than letting an unknown client
// through; and clients already tracked, a flooding one included, keep their
// limits.
func (c *Limiter) state(client string, now int64) *clientState {
	if st, ok := c.clients[client]; ok {
		return st
	}
	st := &clientState{tokens: c.burst, last: now}
	if len(c.clients) >= c.maxClients {
		c.sweep(now)
	}
	if len(c.clients) < c.maxClients {
		c.clients[client] = st
	} else {
		atomic.AddInt64(&c.untracked, 1)
	}
	return st
}

// sweep drops every idle client, at most once per sweepEvery: a full table of
// busy clients would otherwise cost a scan per newcomer.
func (c *Limiter) sweep(now int64) {
	if now < c.nextSweep {
		return
	}
	c.nextSweep = now + int64(sweepEvery)
	for client, st := range c.clients {
		if c.idle(st, now) {
			delete(c.clients, client)
		}
	}
}

// idle reports whether forgetting st changes no later decision.
func (c *Limiter) idle(st *clientState, now int64) bool {
	if c.rate > 0 {
		c.refill(st, now)
		if st.tokens < c.burst {
			return false
		}
	}
	for _, lc := range st.lanes {
		if lc.reserved > 0 || lc.live(now) > 0 {
			return false
		}
	}
	return true
}

// refill adds the tokens earned since the last refill. A clock that went back
// earns nothing, and the later time is kept.
func (c *Limiter) refill(st *clientState, now int64) {
	if now <= st.last {
		return
	}
	st.tokens += float64(now-st.last) / float64(time.Second) * c.rate
	if st.tokens > c.burst {
		st.tokens = c.burst
	}
	st.last = now
}

// find returns client's count for lane, nil when there is none.
func (c *Limiter) find(client string, lane int) *laneCount {
	st, ok := c.clients[client]
	if !ok {
		return nil
	}
	for _, lc := range st.lanes {
		if lc.lane == lane {
			return lc
		}
	}
	return nil
}

// retrySeconds rounds a wait in ns up to whole seconds, at least one and at
// most a day.
func retrySeconds(ns float64) time.Duration {
	seconds := math.Ceil(ns / float64(time.Second))
	if !(seconds >= 1) {
		return time.Second
	}
	if seconds > 86400 {
		seconds = 86400
	}
	return time.Duration(seconds) * time.Second
}
