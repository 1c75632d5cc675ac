// Package store is the exact store of revoked token digests: a ladder of
// bigcache lanes, a bitset in front of them, the pre-check in front of
// that, admission and the overflow map, the loaded segment and the
// tombstones that cancel revocations. It owns its lock and knows nothing of
// Redis, files, audit or grants: callers hand it records (internal/record)
// and read back what it holds.
//
// bigcache's LifeWindow is one value per cache, but revoked tokens live from
// seconds (a short JWT) to a month (a refresh token). So the store keeps a
// ladder of lanes, one bigcache each, whose windows grow fourfold from a
// base up to maxTTL and on to maxLifetime (Windows). An entry goes to the
// smallest lane whose window covers its lifetime, so bigcache's own FIFO
// cleaner frees it at most four times its lifetime (or one base) after it
// was set, with no sweep of ours. Each entry also stores its exact expiry,
// checked on every read: an expired entry never rejects, whatever bigcache
// has not yet cleaned.
//
// In front of the lanes sits a bitset keyed by the digest. A clear bit proves
// the token was never recorded, which spares most requests a bigcache lookup
// (about 38 µs under Yaegi, against well under 1 µs for the bit). A set bit
// only means "look it up": the answer always comes from the exact store, so
// the bitset never turns a good token away.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allegro/bigcache/v3"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Options are what a store is created with.
type Options struct {
	// Name names the store in log lines (the denylist's name).
	Name string
	// SizeMB is bigcache's HardMaxCacheSize for each lane.
	SizeMB int
	// MaxTTL bounds guessed lifetimes; MaxLifetime is the longest life the
	// store holds (at least MaxTTL); LaneBase the shortest lane's window.
	MaxTTL      time.Duration
	MaxLifetime time.Duration
	LaneBase    time.Duration
	// Leeway is the clock skew a tombstone tolerates (record.Tombstone).
	Leeway time.Duration
	Now    func() time.Time
	// OnFilled is called for each loaded record with a client
	// (record.Revocation.Client), with the lane that would hold it and its
	// window, as staging ends (or, after, as it is staged): the client
	// limiter counts replicated records against their share.
	OnFilled func(rec *record.Revocation, lane int, window time.Duration)
	// SegmentLimit bounds the loaded segment's records; 0: what the lanes
	// admit together (Capacity times the lanes), about 11.8 million at
	// the default size.
	SegmentLimit int
}

// A Store is the exact store. Its zero value is not usable: see New.
type Store struct {
	name   string
	now    func() time.Time
	maxTTL time.Duration
	leeway time.Duration
	lanes  []*lane
	filter []uint64
	mask   uint64

	// hot remembers revoked digests found recently (string key, int64
	// expiry): a token replayed after its revocation costs a map lookup,
	// not a bigcache Get. Only positives are kept, and revocations are
	// never withdrawn but by Cancel, which deletes from it too.
	hot      *sync.Map
	hotCount int64
	pre      *Precheck

	// mu guards overlay, overflow and tombs.
	mu      sync.Mutex
	overlay *loadSet
	// overflow keeps the live revocations bigcache pushed out for lack of
	// space despite admission control (capacity.go): none is ever dropped.
	overflow  map[string]overflowEntry
	overflowN int32
	// tombs are the live tombstones (tombstones.go).
	tombs map[[sha256.Size]byte]record.Tombstone
	tombN int32
	// digestMu serializes the read-merge-write of one digest's entry
	// (Held, Merge), by a stripe of its digest (Lock).
	digestMu  [digestLocks]sync.Mutex
	staging   int32 // 1 while the live bitset is all ones and stores also mark the staging one
	segLimit  int   // Options.SegmentLimit
	segment   int64 // the loaded segment's records (overlay.go), dropped ones included
	filling   int64
	onFilled  func(rec *record.Revocation, lane int, window time.Duration)
	fillTaken func() // tests: called after the fill takes a batch, before it writes it
	closed    chan struct{}
	counters  counters
}

// counters are the store's own counts, read by Stats.
type counters struct {
	hits            int64
	evictions       int64
	boundOverflow   int64
	boundTombstones int64
	boundSegment    int64
	lastWarnNs      int64
}

// A lane is one bigcache whose window bounds the lifetime of its entries.
// live counts, per bigcache shard, the entries held and reserved, up to
// shardLimit (capacity.go).
type lane struct {
	store      *Store
	window     time.Duration
	cache      *bigcache.BigCache
	used       int32
	shardLimit int32
	live       [Shards]int32
}

const (
	// DefaultLaneBase is the window of the shortest lane.
	DefaultLaneBase = 10 * time.Second
	// Shards is bigcache's shard count per lane (a power of two).
	Shards = 64
	// expirySize is the length of the expiry, in Unix nanoseconds, that
	// starts a stored value; valueSize the value: expiry, source and the
	// confirmation time (at), in Unix nanoseconds.
	expirySize = 8
	valueSize  = expirySize + 1 + 8
	// hotLimit bounds the cache of recently found revoked digests.
	hotLimit = 4096
	// digestLocks is how many stripes digestMu has: a power of two.
	digestLocks = 64
)

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

// New makes a store, with its lanes and its pre-check's tick.
func New(opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LaneBase <= 0 {
		opts.LaneBase = DefaultLaneBase
	}
	if opts.MaxLifetime < opts.MaxTTL {
		opts.MaxLifetime = opts.MaxTTL
	}
	s := &Store{name: opts.Name, now: opts.Now, maxTTL: opts.MaxTTL, leeway: opts.Leeway, hot: &sync.Map{}}
	s.onFilled = opts.OnFilled
	s.pre = newPrecheck(s.now)
	s.closed = make(chan struct{})

	// The bitset gets one bit per 16 bytes of cache budget: 4 MiB at the
	// default 64 MiB, about a 3% false-positive rate with a million entries.
	bits := uint64(64)
	for bits < uint64(opts.SizeMB)<<19 {
		bits <<= 1
	}
	s.filter = make([]uint64, bits/64)
	s.mask = bits - 1

	for _, window := range Windows(opts.LaneBase, opts.MaxTTL, opts.MaxLifetime) {
		l, err := s.newLane(window, opts.SizeMB)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.lanes = append(s.lanes, l)
	}
	s.segLimit = opts.SegmentLimit
	if s.segLimit <= 0 {
		s.segLimit = s.Capacity() * len(s.lanes)
	}
	go s.tickPrecheck()
	return s, nil
}

// Windows is the ladder of lane windows: fourfold from base, with a rung
// at maxTTL (where the guessed lifetimes end) and the last at maxLifetime.
func Windows(base, maxTTL, maxLifetime time.Duration) []time.Duration {
	var out []time.Duration
	w := base
	ttlRung := false
	for w < maxLifetime {
		if !ttlRung && w >= maxTTL {
			out = append(out, maxTTL)
			ttlRung = true
			w = maxTTL * 4
			continue
		}
		out = append(out, w)
		w *= 4
	}
	if !ttlRung && maxTTL < maxLifetime {
		out = append(out, maxTTL)
	}
	return append(out, maxLifetime)
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

func (s *Store) newLane(window time.Duration, sizeMB int) (*lane, error) {
	// bigcache counts whole seconds and removes an entry once more than
	// LifeWindow seconds have passed: round up, never down, so no live
	// entry is ever cleaned early.
	life := (window + time.Second - 1) / time.Second * time.Second
	cfg := bigcache.Config{
		Shards:             Shards,
		LifeWindow:         life,
		CleanWindow:        cleanWindow(window),
		MaxEntriesInWindow: Shards * 16,
		MaxEntrySize:       sha256.Size + expirySize + 32,
		HardMaxCacheSize:   sizeMB,
		Verbose:            false,
	}
	l := &lane{store: s, window: window, shardLimit: shardLimit(sizeMB)}
	cfg.Hasher = &digestHasher{}
	cfg.OnRemoveWithReason = l.onRemove
	cache, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("denylist %q: %w", s.name, err)
	}
	l.cache = cache
	return l, nil
}

// Filter is the bitset and its mask, for a hot path that reads a digest's
// bit inline (atomically: stores set bits while it reads).
func (s *Store) Filter() ([]uint64, uint64) {
	return s.filter, s.mask
}

// Has reports whether digest is revoked and live.
func (s *Store) Has(digest *[sha256.Size]byte) bool {
	i := binary.LittleEndian.Uint64(digest[8:16]) & s.mask
	if atomic.LoadUint64(&s.filter[i>>6])&(uint64(1)<<(i&63)) == 0 {
		return false
	}
	return s.lookup(digest)
}

// lookup asks the lanes for digest; the bitset has already said maybe.
func (s *Store) lookup(digest *[sha256.Size]byte) bool {
	key := string(digest[:])
	now := s.now().UnixNano()
	if expiry, ok := s.hot.Load(key); ok && expiry.(int64) > now {
		atomic.AddInt64(&s.counters.hits, 1)
		return true
	}
	if atomic.LoadInt32(&s.staging) == 0 {
		if expiry, ok := s.overlayHas(digest, now); ok {
			atomic.AddInt64(&s.counters.hits, 1)
			s.remember(key, expiry)
			return true
		}
	}
	// The lane scan of lane.value, inline: this runs for every "maybe" on
	// the request path, where a call per lane costs more than these lines.
	for _, l := range s.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil || len(value) < expirySize {
			continue
		}
		if expiry := int64(binary.BigEndian.Uint64(value)); expiry > now {
			atomic.AddInt64(&s.counters.hits, 1)
			s.remember(key, expiry)
			return true
		}
	}
	if atomic.LoadInt32(&s.overflowN) > 0 {
		s.mu.Lock()
		entry, ok := s.overflow[key]
		s.mu.Unlock()
		if ok && entry.expiry > now {
			atomic.AddInt64(&s.counters.hits, 1)
			return true
		}
	}
	return false
}

// value is lane l's value for key, if it holds one (live or not).
func (l *lane) value(key string) ([]byte, bool) {
	if atomic.LoadInt32(&l.used) == 0 {
		return nil, false
	}
	value, err := l.cache.Get(key)
	if err != nil || len(value) < expirySize {
		return nil, false
	}
	return value, true
}

// remember keeps a found revocation in the hot map, emptying the map when it
// reaches hotLimit.
func (s *Store) remember(key string, expiry int64) {
	if atomic.AddInt64(&s.hotCount, 1) > hotLimit {
		s.hot.Range(func(k, _ interface{}) bool {
			s.hot.Delete(k)
			return true
		})
		atomic.StoreInt64(&s.hotCount, 1)
	}
	s.hot.Store(key, expiry)
}

// hotLen is how many digests the hot map holds (tests).
func (s *Store) hotLen() int {
	n := 0
	s.hot.Range(func(_, _ interface{}) bool { n++; return true })
	return n
}

// Stats is what a store reports about itself.
type Stats struct {
	// Entries counts what bigcache still holds (expired entries its cleaner
	// has not reached yet included), the overflow map and the loaded
	// segment's records (expired and superseded ones included, until it
	// drains). Filling is how many of the segment's records its drain has
	// not yet taken, 0 when it is not draining.
	Entries  int
	Overflow int
	Segment  int // the loaded segment's records, in Entries too
	Filling  int64
	Hits     int64
	// Evictions counts live revocations bigcache pushed out, kept in the
	// overflow map.
	Evictions int64
	// BoundOverflow counts entries the overflow map's bound refused;
	// BoundTombstones tombstones applied but not remembered (the table was
	// full); BoundSegment loaded records the segment had no room for,
	// left to the caller to store one by one (none is dropped).
	BoundOverflow   int64
	BoundTombstones int64
	BoundSegment    int64
}

// Stats reports the store's counters.
func (s *Store) Stats() Stats {
	var st Stats
	for _, l := range s.lanes {
		st.Entries += l.cache.Len()
	}
	s.mu.Lock()
	st.Overflow = len(s.overflow)
	s.mu.Unlock()
	st.Filling = atomic.LoadInt64(&s.filling)
	st.Entries += st.Overflow
	if n := atomic.LoadInt64(&s.segment); n > 0 {
		// Draining, the records already taken count in the lanes.
		st.Segment = int(n)
		if st.Filling > 0 {
			st.Segment = int(st.Filling)
		}
		st.Entries += st.Segment
	}
	st.Hits = atomic.LoadInt64(&s.counters.hits)
	st.Evictions = atomic.LoadInt64(&s.counters.evictions)
	st.BoundOverflow = atomic.LoadInt64(&s.counters.boundOverflow)
	st.BoundTombstones = atomic.LoadInt64(&s.counters.boundTombstones)
	st.BoundSegment = atomic.LoadInt64(&s.counters.boundSegment)
	return st
}

// Each calls fn with every live revocation: bigcache's lanes, the overflow
// map and the loaded segment. A digest may come twice when both the
// segment and a lane hold it.
func (s *Store) Each(fn func(digest []byte, expiry int64)) {
	now := s.now().UnixNano()
	for _, l := range s.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		it := l.cache.Iterator()
		for it.SetNext() {
			entry, err := it.Value()
			if err != nil || len(entry.Value()) < expirySize || len(entry.Key()) != sha256.Size {
				continue
			}
			if expiry := int64(binary.BigEndian.Uint64(entry.Value())); expiry > now {
				fn([]byte(entry.Key()), expiry)
			}
		}
	}
	s.mu.Lock()
	var extra []record.Revocation
	for k, e := range s.overflow {
		if e.expiry > now && len(k) == sha256.Size {
			var rec record.Revocation
			copy(rec.Digest[:], k)
			rec.Expiry = e.expiry
			extra = append(extra, rec)
		}
	}
	if set := s.overlay; set != nil {
		for i := range set.expiry {
			if set.expiry[i] > now {
				extra = append(extra, set.record(i))
			}
		}
	}
	s.mu.Unlock()
	for i := range extra {
		fn(extra[i].Digest[:], extra[i].Expiry)
	}
}

// Close stops the pre-check's tick and closes the lanes.
func (s *Store) Close() {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	for _, l := range s.lanes {
		_ = l.cache.Close()
	}
}

// tickPrecheck runs the pre-check's tick every second until the store is
// closed.
func (s *Store) tickPrecheck() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			s.pre.Tick()
			if s.drainDue() {
				s.Drain()
			}
		}
	}
}

// ReleaseLoadGarbage returns to the OS the memory a bulk load churned
// through (under Yaegi every interpreted statement allocates), so that RSS
// after loading reflects the entries rather than the garbage of loading them.
func ReleaseLoadGarbage() {
	debug.FreeOSMemory()
}

// SetRules opens the pre-check (PrecheckSet.Rules) while logout rules are
// live: a token its keys settle must pass them too.
func (s *Store) SetRules(live bool) {
	s.pre.SetRules(live)
}
