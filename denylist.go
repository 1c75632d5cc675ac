package tokenrevocation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allegro/bigcache/v3"
	"github.com/edgerevoke/tokenrevocation/internal/grants"
	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/persist"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/replica"
	"github.com/edgerevoke/tokenrevocation/internal/rules"
)

// A denylist holds the SHA-256 digests of revoked tokens, each with its own
// expiry. Raw tokens never reach it: callers hand it a digest.
//
// bigcache's LifeWindow is one value per cache, but revoked tokens live from
// seconds (a short JWT) to a month (a refresh token). So the denylist keeps a
// ladder of lanes, one bigcache each, whose windows grow fourfold from
// laneBase up to maxTTL. An entry goes to the smallest lane whose window
// covers its lifetime, so bigcache's own FIFO cleaner frees it at most four
// times its lifetime (or one laneBase) after it was set, with no sweep of
// ours. Each entry also stores its exact expiry, checked on every read: an
// expired entry never rejects, whatever bigcache has not yet cleaned.
//
// In front of the lanes sits a bitset keyed by the digest. A clear bit proves
// the token was never recorded, which spares most requests a bigcache lookup
// (about 38 µs under Yaegi, against well under 1 µs for the bit). A set bit
// only means "look it up": the answer always comes from the exact store, so
// the bitset never turns a good token away.
type denylist struct {
	name   string
	now    func() time.Time
	lanes  []*lane
	filter []uint64
	mask   uint64

	sizeMB      int
	maxTTL      time.Duration
	maxLifetime time.Duration
	leeway      time.Duration
	persistPath string

	// hot remembers revoked digests found recently (string key, int64
	// expiry): a token replayed after its revocation costs a map lookup,
	// not a bigcache Get. Only positives are kept, and revocations are
	// never withdrawn, so it cannot turn a good token away.
	hot      *sync.Map
	hotCount int64

	// persist and replica are set when persistPath or redis is configured.
	persist *persist.File
	replica *replica.Replicator

	// Loading at start (loader.go). mu guards overlay, overflow and
	// warnedFixed.
	mu        sync.Mutex
	overlay   *loadSet
	fillTaken func() // tests: called after the fill takes a batch, before it writes it
	// opts are the options the denylist was created with; warnedFixed the
	// last change of them a New was warned about (sharedDenylist).
	opts        denylistOptions
	warnedFixed string
	// digestMu serializes the read-merge-write of one digest's entry
	// (held, merge), by a stripe of its digest (digestLock).
	digestMu       [digestLocks]sync.Mutex
	staging        int32 // 1 while the live bitset is all ones and stores also mark the staging one
	state          int32
	loadingSources int32
	loadedCh       chan struct{}
	closed         chan struct{}
	startedAt      time.Time
	loadTook       time.Duration
	loadWait       time.Duration
	failClosed     bool
	stalled        int32
	fileFailed     int32
	fileLoading    int32
	filling        int64

	// overflow keeps the live revocations bigcache pushed out for lack of
	// space despite admission control (capacity.go): none is ever dropped.
	overflow  map[string]overflowEntry
	overflowN int32

	hits       int64
	revokes    int64
	loaded     int64
	evictions  int64
	lastWarnNs int64

	refusedCapacity    int64
	refusedClientLimit int64
	authFailures       int64         // revoke calls the identity service answered 401
	boundOverflow      int64         // overflow entries the map's bound refused
	boundAudit         int64         // audit fields cut
	skipped            replica.Skips // the records the denylist skipped; the replicator counts its own
	limiter            *limit.Limiter
	grants             *grants.Store
	rules              *rules.Store
	pre                *precheck

	// Counters for the metrics (metrics.go), never reset: a reload keeps
	// the denylist.
	recorded     [sourceCount]int64 // revocations recorded, by source
	unrevoked    [sourceCount]int64 // un-revocations applied, by source
	rejected     [rejectReasons]int64
	adminCalls   [adminOps][adminOutcomes]int64
	audit        atomic.Value // *auditor (audit.go); unset: no audit trail
	auditDropped int64
	keys         *keySource // the last back-channel logout key source configured; guarded by mu

	// Ordering and lifetimes (lifetime.go). clock is the latest
	// confirmation time seen in a tombstone; tombs the live tombstones,
	// guarded by mu; longestLife the longest lifetime recorded, from
	// confirmation to expiry.
	clock           int64
	tombs           map[[sha256.Size]byte]record.Tombstone
	tombN           int32
	longestLife     int64
	refusedLifetime int64
	boundTombstones int64
}

// A lane is one bigcache whose window bounds the lifetime of its entries.
// live counts, per bigcache shard, the entries held and reserved, up to
// shardLimit (capacity.go).
type lane struct {
	list       *denylist
	window     time.Duration
	cache      *bigcache.BigCache
	used       int32
	shardLimit int32
	live       [laneShards]int32
}

// Where a revocation or un-revocation was learned, as the metrics, the
// audit trail and the admin lookup name it.
const (
	sourceUnknown byte = iota
	sourceRevoke       // the revoke endpoint
	sourceGrant        // a token of a revoked grant (trackGrants)
	sourceLogout       // a back-channel logout's grant families
	sourceAdmin        // the admin API
	sourceRedis        // the Redis stream: another replica
	sourceFile         // persistPath, at start
	sourceCount
)

// sourceNames are the sources' names, by source.
var sourceNames = [sourceCount]string{"unknown", "revoke_endpoint", "grant", "logout", "admin", "redis", "file"}

const (
	// laneBase is the window of the shortest lane.
	laneBase = 10 * time.Second
	// laneShards is bigcache's shard count per lane (a power of two).
	laneShards = 64
	// expirySize is the length of the expiry, in Unix nanoseconds, that
	// starts a stored value; valueSize the value: expiry, source and the
	// confirmation time (at), in Unix nanoseconds.
	expirySize = 8
	valueSize  = expirySize + 1 + 8
	// hotLimit bounds the cache of recently found revoked digests.
	hotLimit = 4096
	// maxClients bounds the clients the revoke path's limiter tracks.
	maxClients = 10000
)

// denylistOptions are the settings fixed when a denylist is created.
type denylistOptions struct {
	sizeMB      int
	maxTTL      time.Duration
	laneBase    time.Duration
	now         func() time.Time
	persistPath string
	redis       *redisOptions
	// loadWait and failClosed govern loading at start (loader.go).
	loadWait   time.Duration
	failClosed bool
	// The per-client limits of the revoke path (internal/limit).
	clientRate  int
	clientBurst int
	clientShare float64
	// maxGrants caps the grant families (internal/grants).
	maxGrants int
	// leeway is the clock skew tolerated between replicas and apps;
	// maxLifetime the longest life the store holds (lifetime.go).
	leeway      time.Duration
	maxLifetime time.Duration
}

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
	// Filling counts loaded revocations not yet moved into bigcache (still enforced).
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

// digestHasher hands bigcache the first eight bytes of a key that is already
// a SHA-256 digest. bigcache's default FNV hasher would run byte by byte in
// the interpreter. It has a pointer receiver: under Yaegi a value receiver
// stored in bigcache's Config.Hasher panics in reflect.Set.
type digestHasher struct{}

// Sum64 returns the key's first eight bytes as a number.
func (h *digestHasher) Sum64(key string) uint64 {
	if len(key) < 8 {
		var b [8]byte
		copy(b[:], key)
		return binary.LittleEndian.Uint64(b[:])
	}
	return binary.LittleEndian.Uint64([]byte(key[:8]))
}

func newDenylist(name string, opts denylistOptions) (*denylist, error) {
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.laneBase <= 0 {
		opts.laneBase = laneBase
	}
	if opts.maxLifetime <= 0 {
		opts.maxLifetime = defaultMaxLifetime
	}
	if opts.maxLifetime < opts.maxTTL {
		opts.maxLifetime = opts.maxTTL
	}
	d := &denylist{name: name, now: opts.now, sizeMB: opts.sizeMB, maxTTL: opts.maxTTL, hot: &sync.Map{}}
	d.maxLifetime, d.leeway = opts.maxLifetime, opts.leeway
	d.loadWait, d.failClosed = opts.loadWait, opts.failClosed
	if d.loadWait <= 0 {
		d.loadWait = 10 * time.Second
	}
	share := opts.clientShare
	if share <= 0 {
		share = 1
	}
	d.limiter = limit.New(float64(opts.clientRate), opts.clientBurst, share, maxClients, d.now)
	if opts.maxGrants <= 0 {
		opts.maxGrants = 100000
	}
	d.grants = grants.New(opts.maxGrants, d.now)
	d.pre = newPrecheck(d.now)
	d.rules = rules.New(d.now, jtiExpiry, d.pre.setRules)
	d.loadedCh = make(chan struct{})
	d.closed = make(chan struct{})
	go d.tickPrecheck()
	d.startedAt = d.now()
	d.state = stateReady
	close(d.loadedCh)
	d.persistPath = opts.persistPath

	// The bitset gets one bit per 16 bytes of cache budget: 4 MiB at the
	// default 64 MiB, about a 3% false-positive rate with a million entries.
	bits := uint64(64)
	for bits < uint64(opts.sizeMB)<<19 {
		bits <<= 1
	}
	d.filter = make([]uint64, bits/64)
	d.mask = bits - 1

	for _, window := range laneWindows(opts.laneBase, opts.maxTTL, opts.maxLifetime) {
		l, err := d.newLane(window, opts.sizeMB)
		if err != nil {
			d.close()
			return nil, err
		}
		d.lanes = append(d.lanes, l)
	}
	return d, nil
}

// cleanWindow is how often bigcache's cleaner runs in a lane: an eighth of
// its window, from 1 s to 1 min.
func cleanWindow(window time.Duration) time.Duration {
	life := (window + time.Second - 1) / time.Second * time.Second
	clean := life / 8
	if clean < time.Second {
		clean = time.Second
	}
	if clean > time.Minute {
		clean = time.Minute
	}
	return clean
}

func (d *denylist) newLane(window time.Duration, sizeMB int) (*lane, error) {
	// bigcache counts whole seconds and removes an entry once more than
	// LifeWindow seconds have passed: round up, never down, so no live
	// entry is ever cleaned early.
	life := (window + time.Second - 1) / time.Second * time.Second
	clean := cleanWindow(window)
	cfg := bigcache.Config{
		Shards:             laneShards,
		LifeWindow:         life,
		CleanWindow:        clean,
		MaxEntriesInWindow: laneShards * 16,
		MaxEntrySize:       sha256.Size + expirySize + 32,
		HardMaxCacheSize:   sizeMB,
		Verbose:            false,
	}
	l := &lane{list: d, window: window, shardLimit: shardLimit(sizeMB)}
	cfg.Hasher = &digestHasher{}
	cfg.OnRemoveWithReason = l.onRemove
	cache, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("denylist %q: %w", d.name, err)
	}
	l.cache = cache
	return l, nil
}

// add records a revocation learned from source, with no slot reserved for it.
// Without the token, no pre-check key is known: the pre-check stays open
// until the revocation expires (precheck.go).
func (d *denylist) add(digest *[sha256.Size]byte, expiry time.Time, source byte) error {
	return d.addReserved(digest, "", expiry, -1, source, nil)
}

// addKeyed is add with the token's pre-check key (keyOf).
func (d *denylist) addKeyed(digest *[sha256.Size]byte, key string, expiry time.Time, source byte) error {
	return d.addReserved(digest, key, expiry, -1, source, nil)
}

// addReserved records a revocation the identity service confirmed (record).
func (d *denylist) addReserved(digest *[sha256.Size]byte, key string, expiry time.Time, reserved int, source byte, who *revokeInfo) error {
	_, _, err := d.record(digest, key, expiry, reserved, source, who)
	return err
}

// record records a revocation confirmed now: in memory, in the lane
// reserved for it (reserve; -1 when none was), then in the persistence file
// and the Redis replication queue when configured. For a digest already
// held the later expiry and the later confirmation win (merge): a
// revocation never shortens one. A past expiry records nothing. It returns
// the expiry now held and whether it is new or later than the one held (a
// later confirmation alone is recorded too, but reported false); a
// reservation not used is given back.
func (d *denylist) record(digest *[sha256.Size]byte, key string, expiry time.Time, reserved int, source byte, who *revokeInfo) (int64, bool, error) {
	rec := record.Revocation{Digest: *digest, Expiry: expiry.UnixNano(), Source: source, At: d.stamp()}
	rec.SetKey(key)
	if rec.Expiry <= d.now().UnixNano() {
		if reserved >= 0 {
			d.unreserve(reserved, digest)
		}
		return 0, false, nil
	}
	if who != nil {
		rec.Client = [16]byte(who.tag)
	}
	mu := d.digestLock(digest)
	mu.Lock()
	h := d.held(digest)
	extended := !h.found || rec.Expiry > h.expiry
	changed := d.mergeSync(&rec, &h, reserved)
	mu.Unlock()
	if !changed {
		return h.expiry, false, nil
	}
	d.noteLife(rec.Expiry, rec.At)
	err := d.journalRevocation(&rec)
	atomic.AddInt64(&d.revokes, 1)
	atomic.AddInt64(&d.recorded[source], 1)
	d.auditRevocation(&rec, who)
	return rec.Expiry, extended, err
}

// store puts one revocation in the lane capacity admission picks for it;
// when none has room it is stored all the same (it was confirmed, so it
// must be kept), and should bigcache push a live entry out for it, onRemove
// keeps that entry in the overflow map.
func (d *denylist) store(rec *record.Revocation) int {
	lifetime := time.Duration(rec.Expiry - d.now().UnixNano())
	if lifetime > d.lanes[len(d.lanes)-1].window {
		// Longer than any lane holds (a replica with a longer
		// maxLifetime confirmed it): kept whole in the overflow map.
		d.pre.add(rec.PrecheckKey(), rec.Expiry)
		d.keepOverflow(string(rec.Digest[:]), rec.Expiry, rec.At)
		d.markBit(&rec.Digest)
		return len(d.lanes) - 1
	}
	i := d.reserveOrForce(&rec.Digest, lifetime)
	d.put(rec, i)
	return i
}

// putLoaded stores a loaded record whose bit is already set: store without
// the bit, which the fill would set a million times for nothing.
func (d *denylist) putLoaded(rec *record.Revocation, now int64) {
	i := d.reserveOrForce(&rec.Digest, time.Duration(rec.Expiry-now))
	d.set(rec, i)
	if rec.Client != ([16]byte{}) {
		// Loaded from the stream: counted against its client's share here
		// too (see loadDirect).
		d.limiter.Count(limit.Key(rec.Client), i, d.lanes[i].window, 1)
	}
}

// put writes rec into lane i, whose slot is already counted, and marks the
// bitset.
func (d *denylist) put(rec *record.Revocation, i int) {
	// The pre-check first: from here on it answers "maybe" for the token.
	d.pre.add(rec.PrecheckKey(), rec.Expiry)
	d.set(rec, i)
	d.markBit(&rec.Digest)
}

// set writes rec into lane i, whose slot is already counted.
func (d *denylist) set(rec *record.Revocation, i int) {
	l := d.lanes[i]
	var value [valueSize]byte
	binary.BigEndian.PutUint64(value[:], uint64(rec.Expiry))
	value[expirySize] = rec.Source
	binary.BigEndian.PutUint64(value[expirySize+1:], uint64(rec.At))
	if err := l.cache.Set(string(rec.Digest[:]), value[:]); err != nil {
		// Set fails only for an entry larger than a shard, which a 49-byte
		// entry never is; keep it in the overflow map rather than lose it.
		atomic.AddInt32(&l.live[shardOf(&rec.Digest)], -1)
		d.keepOverflow(string(rec.Digest[:]), rec.Expiry, rec.At)
	}
	atomic.StoreInt32(&l.used, 1)
}

// markBit sets digest's bit in the live bitset and, while loading stages a
// new bitset, in that one too, under the lock finishLoad copies it with.
func (d *denylist) markBit(digest *[sha256.Size]byte) {
	word, bit := d.filterBit(digest)
	if atomic.LoadInt32(&d.staging) == 1 {
		d.mu.Lock()
		if set := d.overlay; set != nil && set.bits != nil {
			set.bits[d.filterIndex(digest)] |= bit
		}
		orBit(word, bit)
		d.mu.Unlock()
		return
	}
	orBit(word, bit)
}

func orBit(word *uint64, bit uint64) {
	for {
		old := atomic.LoadUint64(word)
		if old&bit != 0 || atomic.CompareAndSwapUint64(word, old, old|bit) {
			return
		}
	}
}

// has reports whether digest is revoked and live.
func (d *denylist) has(digest *[sha256.Size]byte) bool {
	if word, bit := d.filterBit(digest); atomic.LoadUint64(word)&bit == 0 {
		return false
	}
	return d.lookup(digest)
}

// contains reports whether token is revoked and its entry still live: by
// its identity, or, for a JWS, by the exact string older records hold.
func (d *denylist) contains(token string) bool {
	sums, n := tokenDigests(token)
	return d.has(&sums[0]) || (n == 2 && d.has(&sums[1]))
}

// filterBit locates digest's bit in the bitset: bytes 8 to 16 of the digest,
// masked to its size. serveBearer repeats this inline, on purpose: it is the
// hot path, where an interpreted call costs more than these lines.
func (d *denylist) filterBit(digest *[sha256.Size]byte) (*uint64, uint64) {
	i := binary.LittleEndian.Uint64(digest[8:16]) & d.mask
	return &d.filter[i>>6], uint64(1) << (i & 63)
}

// filterIndex is the index of digest's word in the bitset.
func (d *denylist) filterIndex(digest *[sha256.Size]byte) int {
	return int((binary.LittleEndian.Uint64(digest[8:16]) & d.mask) >> 6)
}

// lookup asks the lanes for digest; the bitset has already said maybe.
func (d *denylist) lookup(digest *[sha256.Size]byte) bool {
	key := string(digest[:])
	now := d.now().UnixNano()
	if expiry, ok := d.hot.Load(key); ok && expiry.(int64) > now {
		atomic.AddInt64(&d.hits, 1)
		return true
	}
	if atomic.LoadInt32(&d.staging) == 0 {
		if expiry, ok := d.overlayHas(digest, now); ok {
			atomic.AddInt64(&d.hits, 1)
			d.remember(key, expiry)
			return true
		}
	}
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil || len(value) < expirySize {
			continue
		}
		if expiry := int64(binary.BigEndian.Uint64(value)); expiry > now {
			atomic.AddInt64(&d.hits, 1)
			d.remember(key, expiry)
			return true
		}
	}
	if atomic.LoadInt32(&d.overflowN) > 0 {
		d.mu.Lock()
		entry, ok := d.overflow[key]
		d.mu.Unlock()
		if ok && entry.expiry > now {
			atomic.AddInt64(&d.hits, 1)
			return true
		}
	}
	return false
}

// remember keeps a found revocation in the hot map, emptying the map when it
// reaches hotLimit.
func (d *denylist) remember(key string, expiry int64) {
	if atomic.AddInt64(&d.hotCount, 1) > hotLimit {
		d.hot.Range(func(k, _ interface{}) bool {
			d.hot.Delete(k)
			return true
		})
		atomic.StoreInt64(&d.hotCount, 1)
	}
	d.hot.Store(key, expiry)
}

// stats reports the denylist's counters. Entries counts what bigcache still
// holds, which includes expired entries its cleaner has not reached yet.
func (d *denylist) stats() denylistStats {
	s := denylistStats{Denylist: d.name, Redis: "off"}
	for _, l := range d.lanes {
		s.Entries += l.cache.Len()
	}
	s.Capacity = d.capacity()
	d.mu.Lock()
	s.Overflow = len(d.overflow)
	d.mu.Unlock()
	s.Filling = atomic.LoadInt64(&d.filling)
	s.Entries += s.Overflow + int(s.Filling)
	s.Refused.Capacity = atomic.LoadInt64(&d.refusedCapacity)
	s.Refused.ClientLimit = atomic.LoadInt64(&d.refusedClientLimit)
	s.Refused.Lifetime = atomic.LoadInt64(&d.refusedLifetime)
	s.AuthFailures = atomic.LoadInt64(&d.authFailures)
	s.Bounded = d.bounds()
	s.Stream.Oversized = atomic.LoadInt64(&d.skipped.Oversized)
	s.Stream.Malformed = atomic.LoadInt64(&d.skipped.Malformed)
	s.Stream.Unverified = atomic.LoadInt64(&d.skipped.Unverified)
	families, grantTokens := d.grants.Size()
	s.Grants = families
	s.GrantTokens = grantTokens
	s.GrantsUntracked = d.grants.Untracked()
	s.LogoutRules, s.Logouts = d.rules.Counts()
	d.mu.Lock()
	s.LoadSeconds = d.loadTook.Seconds()
	keys := d.keys
	d.mu.Unlock()
	if keys != nil {
		s.JWKSKeys = keys.current().Len()
	}
	switch atomic.LoadInt32(&d.state) {
	case stateReady:
		s.State, s.Ready = "ready", true
	case stateDegraded:
		s.State = "degraded"
	default:
		s.State = "loading"
	}
	s.Revokes = atomic.LoadInt64(&d.revokes)
	s.Loaded = atomic.LoadInt64(&d.loaded)
	s.Hits = atomic.LoadInt64(&d.hits)
	s.Evictions = atomic.LoadInt64(&d.evictions)
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

func (d *denylist) close() {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	if d.replica != nil {
		d.replica.Close()
	}
	for _, l := range d.lanes {
		_ = l.cache.Close()
	}
}

// releaseLoadGarbage returns to the OS the memory a bulk load churned
// through (under Yaegi every interpreted statement allocates), so that RSS
// after loading reflects the entries rather than the garbage of loading them.
func releaseLoadGarbage() {
	debug.FreeOSMemory()
}

// denylists shares one denylist per name across every middleware instance
// in the interpreter: Traefik calls New once per router and again on every
// configuration reload, and each of those must see the same revocations.
var denylists obs.Registry

// changedFixed names the options fixed at a denylist's creation that b
// changes from a: they take effect only on restart. Secrets are compared,
// never shown.
func changedFixed(a, b *denylistOptions) []string {
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	add("cacheSizeMB", a.sizeMB != b.sizeMB)
	add("maxTTL", a.maxTTL != b.maxTTL)
	add("maxLifetime", a.maxLifetime != b.maxLifetime)
	add("leeway", a.leeway != b.leeway)
	add("persistPath", a.persistPath != b.persistPath)
	add("loadWait", a.loadWait != b.loadWait)
	add("failClosed", a.failClosed != b.failClosed)
	add("clientRate", a.clientRate != b.clientRate)
	add("clientBurst", a.clientBurst != b.clientBurst)
	add("clientSharePercent", a.clientShare != b.clientShare)
	add("maxGrants", a.maxGrants != b.maxGrants)
	ra, rb := a.redis, b.redis
	switch {
	case (ra == nil) != (rb == nil):
		add("redis", true)
	case ra != nil:
		add("redis.address", ra.address != rb.address)
		add("redis.username", ra.username != rb.username)
		add("redis.password", ra.password != rb.password || ra.passwordFile != rb.passwordFile)
		add("redis.db", ra.db != rb.db)
		add("redis.tls", ra.tls != rb.tls || ra.tlsSkipCheck != rb.tlsSkipCheck || ra.caFile != rb.caFile)
		add("redis.keyPrefix", ra.keyPrefix != rb.keyPrefix)
		add("redis timeouts", ra.dialTimeout != rb.dialTimeout || ra.readTimeout != rb.readTimeout || ra.writeTimeout != rb.writeTimeout)
		add("redis signing secrets", (ra.signer == nil) != (rb.signer == nil) || (ra.signer != nil && !ra.signer.Same(rb.signer)))
		add("redis.sentinels", strings.Join(ra.sentinels, ",") != strings.Join(rb.sentinels, ",") || ra.masterName != rb.masterName)
		add("redis sentinel credentials", ra.sentinelUsername != rb.sentinelUsername || ra.sentinelPassword != rb.sentinelPassword || ra.sentinelPasswordFile != rb.sentinelPasswordFile)
		add("redis.cluster", ra.cluster != rb.cluster)
		add("redis.waitReplicas", ra.waitReplicas != rb.waitReplicas || ra.waitTimeout != rb.waitTimeout)
	}
	return out
}

// benchPreload is nil in the plugin. Only the benchmark harness sets it, by
// adding e2e/testdata/benchhook/preload_bench.go to its own copy of the
// plugin: no configuration can reach it.
var benchPreload func(*denylist)

// sharedDenylist returns the denylist called name, creating it with opts the
// first time. A later caller gets the existing one whatever its opts, so a
// reload never loses entries; a change of size or maxTTL is logged and takes
// effect only on restart.
func sharedDenylist(name string, opts denylistOptions) (*denylist, error) {
	v, created, err := denylists.Get(name, func() (interface{}, error) {
		d, err := createDenylist(name, opts)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	d := v.(*denylist)
	if !created {
		d.warnFixed(opts)
	}
	return d, nil
}

// warnFixed logs the options fixed at d's creation that opts, a later New's,
// changes: once per different change, not at every New of every router.
func (d *denylist) warnFixed(opts denylistOptions) {
	changed := strings.Join(changedFixed(&d.opts, &opts), ", ")
	d.mu.Lock()
	defer d.mu.Unlock()
	if changed != "" && changed != d.warnedFixed {
		d.warnedFixed = changed
		log.Printf("tokenrevocation: WARN denylist %q keeps %s as it was created until restart: this configuration changes them", d.name, changed)
	}
}

// createDenylist makes the denylist called name and starts its loading, once
// per name: sharedDenylist calls it under the registry's lock.
func createDenylist(name string, opts denylistOptions) (*denylist, error) {
	d, err := newDenylist(name, opts)
	if err != nil {
		return nil, err
	}
	d.opts = opts
	// New never waits on loading: the file and the stream load in the
	// background while requests carrying a token are held (loader.go).
	sources := 0
	if opts.persistPath != "" {
		p, err := persist.Open(opts.persistPath, d.now)
		if err != nil {
			d.close()
			return nil, err
		}
		d.persist = p
		sources++
	}
	if opts.redis != nil {
		sources++
	}
	if sources > 0 {
		d.startLoading(sources)
	}
	if opts.redis != nil {
		d.replica = startReplica(d, opts.redis)
	}
	if d.persist != nil {
		d.fileLoading = 1
		go d.loadFile()
	}
	if sources > 0 {
		go d.watchLoad()
	}
	if benchPreload != nil {
		benchPreload(d)
	}
	return d, nil
}

// bounds gathers what each bound on outside input refused or cut.
func (d *denylist) bounds() bounded {
	var b bounded
	b.Clients = d.limiter.Untracked()
	b.GrantTokens = d.grants.Dropped()
	jti, ruleRefusals := d.rules.Refusals()
	b.Jti = jti
	b.LogoutRules = ruleRefusals
	b.Overflow = atomic.LoadInt64(&d.boundOverflow)
	b.AuditFields = atomic.LoadInt64(&d.boundAudit)
	b.Tombstones = atomic.LoadInt64(&d.boundTombstones)
	return b
}
