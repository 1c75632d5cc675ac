package tokenrevocation

import (
	"crypto/sha256"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// RFC 7009 has the identity service answer 200 to a revoke call whatever the
// token, so anyone holding a client id can have garbage strings "confirmed"
// revoked, and each one takes a place in the bounded denylist, where enough
// of them push real revocations out. A clientLimiter keeps one client from
// flooding it with two limits, both keyed by the client's key (clientKey):
//
//   - a rate: a token bucket of rate calls per second and burst calls at once,
//     from which every revocation the identity service confirmed takes one
//     token;
//   - a share: the client's live revocations in one denylist lane may not
//     exceed share × the lane's capacity.
//
// Only the client itself can spend its limits. The client id a call claims
// is not proven until the identity service answers, so nothing is spent
// before then: admit only checks that the bucket holds a token, and commit
// (the identity service confirmed) takes it. A call the identity service
// refuses, for client authentication or anything else, takes nothing, so a
// flood of "Basic victim:wrong" from anywhere, the victim's own address
// included, leaves the victim's bucket full. The price: calls of one client
// in flight together can overshoot its rate, by at most the calls in flight;
// the debt is paid back before it may call again (tokens go negative, down
// to -burst).
//
// Admission to the share is reserved by admit before the upstream call and
// settled after it by commit or release, so that N concurrent calls cannot
// all pass a check meant for fewer. A reservation is all that an
// unauthenticated caller can hold of another client's limits, and only
// while its call is at the identity service: to keep a victim out it would
// need share × capacity calls (half a million by default) in flight at once.
//
// It is not on the hot path (only revoke calls reach it), so one mutex guards
// everything.
type clientLimiter struct {
	mu         sync.Mutex
	now        func() time.Time
	rate       float64 // tokens per second; 0 is off
	burst      float64 // bucket size, at least 1 when rate is on
	share      float64 // fraction of a lane; 0 is off
	maxClients int
	clients    map[string]*clientState
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

// A laneCount counts one client's revocations in one lane with a sliding
// window of shareBuckets buckets of width ns each: memory is fixed whatever
// the client sends. Bucket i holds the calls made during slot slots[i] (Unix
// ns / width); a bucket counts while its slot is one of the last
// shareBuckets, the current one included.
type laneCount struct {
	lane     int
	width    int64
	slots    [shareBuckets]int64
	counts   [shareBuckets]int
	reserved int // admitted calls not yet committed or released
}

// limitDecision is admit's answer.
type limitDecision struct {
	Allowed bool
	// Reason is "rate" or "share" when refused, "" when allowed.
	Reason string
	// RetryAfter is, when refused, how long until the call could pass: whole
	// seconds, at least one, as Retry-After carries them.
	RetryAfter time.Duration
}

const (
	// shareBuckets is the number of buckets of a lane's sliding window.
	shareBuckets = 8
	// defaultMaxClients bounds the table when newClientLimiter is given none.
	defaultMaxClients = 10000
	// sweepEvery is the least time between two scans for idle clients.
	sweepEvery = time.Second
	// Refusal reasons.
	limitRate  = "rate"
	limitShare = "share"
)

// newClientLimiter returns a limiter of rate calls per second with burst
// (rate <= 0 is off; burst below 1 counts as 1) and of share of a lane's
// capacity (share <= 0 or >= 1 is off), tracking at most maxClients clients
// (below 1: defaultMaxClients). now is its clock; nil is time.Now.
func newClientLimiter(rate float64, burst int, share float64, maxClients int, now func() time.Time) *clientLimiter {
	if now == nil {
		now = time.Now
	}
	if maxClients < 1 {
		maxClients = defaultMaxClients
	}
	c := &clientLimiter{now: now, maxClients: maxClients, clients: map[string]*clientState{}}
	if rate > 0 && !math.IsInf(rate, 1) {
		c.rate = rate
		c.burst = math.Max(float64(burst), 1)
	}
	if share > 0 && share < 1 {
		c.share = share
	}
	return c
}

// admit decides one revoke call of client that would record n entries (at
// least one) into lane, whose entries live about window and which holds
// laneCap entries. When allowed with the share limit on, it has reserved n
// slots that exactly one of commit or release must settle.
func (c *clientLimiter) admit(client string, lane int, window time.Duration, laneCap, n int) *limitDecision {
	if c.rate == 0 && c.share == 0 {
		return &limitDecision{Allowed: true}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	st := c.state(client, now)
	if c.rate > 0 {
		c.refill(st, now)
		if st.tokens < 1 {
			wait := float64(time.Second) * (1 - st.tokens) / c.rate
			return &limitDecision{Reason: limitRate, RetryAfter: retrySeconds(wait)}
		}
		// Not taken here: only a confirmed call spends (commit).
	}
	if c.share > 0 {
		lc := st.laneCount(lane, window, now)
		if lc.live(now)+lc.reserved+n > c.shareLimit(laneCap) {
			return &limitDecision{Reason: limitShare, RetryAfter: lc.retryAfter(now)}
		}
		lc.reserved += n
	}
	return &limitDecision{Allowed: true}
}

// admitRate decides one revoke call of client that takes no slot (its token
// is already held at least as long): only the rate applies. A confirmed one
// spends its token with spend.
func (c *clientLimiter) admitRate(client string) *limitDecision {
	if c.rate == 0 {
		return &limitDecision{Allowed: true}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	st := c.state(client, now)
	c.refill(st, now)
	if st.tokens < 1 {
		wait := float64(time.Second) * (1 - st.tokens) / c.rate
		return &limitDecision{Reason: limitRate, RetryAfter: retrySeconds(wait)}
	}
	return &limitDecision{Allowed: true}
}

// spend takes client's rate token for a confirmed call that took no slot:
// a commit of no entries.
func (c *clientLimiter) spend(client string) {
	c.commit(client, -1, 0)
}

// commit settles a reservation of admit whose call the upstream confirmed:
// it takes the call's rate token and becomes n live entries (the revoked
// token and, for a grant's refresh token, the family revoked with it),
// counted at now. A commit with no reservation still counts (too many,
// never too few). A newcomer decided untracked (see state) has nothing to
// count into; its entries go uncounted.
func (c *clientLimiter) commit(client string, lane, n int) {
	if c.rate == 0 && c.share == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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

// count counts n entries of client in lane that were confirmed elsewhere:
// replicated from another replica, which admitted them against its own
// share. Counting them here makes the share hold across replicas; they
// take no rate token (the other replica took it) and are never refused.
func (c *clientLimiter) count(client string, lane int, window time.Duration, n int) {
	if c.share == 0 || client == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	st := c.state(client, now)
	if _, ok := c.clients[client]; !ok {
		return
	}
	st.laneCount(lane, window, now).addN(now, n)
}

// release settles a reservation of n slots of admit whose call the
// upstream did not confirm: nothing was recorded, so nothing is counted,
// and no rate token was ever taken.
func (c *clientLimiter) release(client string, lane, n int) {
	if c.share == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if lc := c.find(client, lane); lc != nil {
		lc.reserved -= n
		if lc.reserved < 0 {
			lc.reserved = 0
		}
	}
}

// tracked returns how many clients the limiter holds state for.
func (c *clientLimiter) tracked() int {
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
func (c *clientLimiter) state(client string, now int64) *clientState {
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
func (c *clientLimiter) sweep(now int64) {
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
func (c *clientLimiter) idle(st *clientState, now int64) bool {
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
func (c *clientLimiter) refill(st *clientState, now int64) {
	if now <= st.last {
		return
	}
	st.tokens += float64(now-st.last) / float64(time.Second) * c.rate
	if st.tokens > c.burst {
		st.tokens = c.burst
	}
	st.last = now
}

// shareLimit is how many live entries one client may hold in a lane of
// laneCap entries, at least one. The epsilon keeps 0.29 × 100 at 29.
func (c *clientLimiter) shareLimit(laneCap int) int {
	limit := int(c.share*float64(laneCap) + 1e-9)
	if limit < 1 {
		return 1
	}
	return limit
}

// find returns client's count for lane, nil when there is none.
func (c *clientLimiter) find(client string, lane int) *laneCount {
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

// laneCount returns st's count for lane, created on first use. Its bucket
// width is sized for window; should window change, what was counted is kept
// in full as of now.
func (st *clientState) laneCount(lane int, window time.Duration, now int64) *laneCount {
	width := bucketWidth(window)
	for _, lc := range st.lanes {
		if lc.lane != lane {
			continue
		}
		if lc.width != width {
			live := lc.live(now)
			*lc = laneCount{lane: lane, width: width, reserved: lc.reserved}
			slot, i := lc.slot(now)
			lc.slots[i] = slot
			lc.counts[i] = live
		}
		return lc
	}
	lc := &laneCount{lane: lane, width: width}
	st.lanes = append(st.lanes, lc)
	return lc
}

// bucketWidth is the width, in ns, of a bucket of a lane whose entries live
// window: window / (shareBuckets-1) rounded up to whole seconds, at least one.
// The buckets counted then span at least window (rounded up to seconds, as
// bigcache rounds LifeWindow) before now, and at most one bucket more, so an
// entry is counted for at least as long as it lives.
func bucketWidth(window time.Duration) int64 {
	span := (shareBuckets - 1) * time.Second
	seconds := (window + span - 1) / span
	if seconds < 1 {
		seconds = 1
	}
	return int64(seconds * time.Second)
}

// slot returns the slot of now and its bucket.
func (lc *laneCount) slot(now int64) (int64, int) {
	slot := now / lc.width
	i := int(slot % shareBuckets)
	if i < 0 {
		i += shareBuckets
	}
	return slot, i
}

// addN counts n entries at now.
func (lc *laneCount) addN(now int64, n int) {
	slot, i := lc.slot(now)
	// A bucket of a later slot (the clock went back) keeps its slot and takes
	// the entry: counted longer, never shorter.
	if lc.slots[i] < slot {
		lc.slots[i] = slot
		lc.counts[i] = 0
	}
	lc.counts[i] += n
}

// live is how many entries counted at now.
func (lc *laneCount) live(now int64) int {
	first := now/lc.width - (shareBuckets - 1)
	n := 0
	for i := 0; i < shareBuckets; i++ {
		if lc.slots[i] >= first {
			n += lc.counts[i]
		}
	}
	return n
}

// retryAfter is how long until the oldest counted bucket leaves the window,
// one second when only reservations fill the share.
func (lc *laneCount) retryAfter(now int64) time.Duration {
	first := now/lc.width - (shareBuckets - 1)
	oldest := int64(math.MaxInt64)
	for i := 0; i < shareBuckets; i++ {
		if lc.counts[i] > 0 && lc.slots[i] >= first && lc.slots[i] < oldest {
			oldest = lc.slots[i]
		}
	}
	if oldest == math.MaxInt64 {
		return time.Second
	}
	return retrySeconds(float64((oldest+shareBuckets)*lc.width - now))
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

// clientID returns the client a revoke call is from: the user of an HTTP
// Basic Authorization value, else the form's client_id. The user is
// form-urlencoded (RFC 6749 §2.3.1) and decoded here; one that does not
// decode is kept as sent. The password is never returned.
func clientID(authorization string, form url.Values) string {
	if user, ok := basicUser(authorization); ok {
		return user
	}
	return form.Get("client_id")
}

// basicUser returns the user of a Basic credential, the scheme matched
// case-insensitively; ok is false for anything else, malformed ones included.
func basicUser(value string) (string, bool) {
	if len(value) < 6 || (value[5] != ' ' && value[5] != '\t') || !strings.EqualFold(value[:5], "Basic") {
		return "", false
	}
	user, _, ok := basicCredentials(strings.Trim(value[6:], " \t"))
	if !ok {
		return "", false
	}
	if unescaped, err := url.QueryUnescape(user); err == nil {
		return unescaped, true
	}
	return user, true
}

// A clientTag is what the limiter keeps of a client, and what a stream
// record carries of it: the first 16 bytes of a SHA-256 (clientKey). Ids are
// attacker-controlled and unbounded; 16 bytes each is what the table holds
// whatever they send.
type clientTag [16]byte

// clientKey returns the limiter's tag for a revoke call's client. A
// confidential client (HTTP Basic, or client_secret or client_assertion in
// the form) is known by its id alone: the identity service checks its
// secret, and only a confirmed call spends. A public client (client_id
// alone) can be claimed by anyone who knows its id, every user of it
// included, so it is known by its id and the caller's address (the host of
// RemoteAddr, as Traefik's rateLimit middleware sees callers by default):
// a flood from one address spends that address's limits, not the client's
// everywhere.
func clientKey(client string, confidential bool, remoteAddr string) clientTag {
	h := sha256.New()
	h.Write([]byte(client))
	if !confidential {
		host := remoteAddr
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		h.Write([]byte{0})
		h.Write([]byte(host))
	}
	var tag clientTag
	copy(tag[:], h.Sum(nil))
	return tag
}

// isConfidential reports whether a revoke call authenticates its client
// with a secret the identity service checks.
func isConfidential(authorization string, form url.Values) bool {
	if _, ok := basicUser(authorization); ok {
		return true
	}
	return form.Get("client_secret") != "" || form.Get("client_assertion") != ""
}

// maxAuditClient bounds the client id an audit line carries.
const maxAuditClient = 128

// auditClient is a client id as the audit trail shows it: at most
// maxAuditClient bytes, cut on a rune boundary, with "…" when cut.
func auditClient(client string) string {
	if len(client) <= maxAuditClient {
		return client
	}
	cut := maxAuditClient
	for cut > 0 && !utf8.RuneStart(client[cut]) {
		cut--
	}
	return client[:cut] + "…"
}
