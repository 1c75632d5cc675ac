package tokenrevocation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allegro/bigcache/v3"
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

	sizeMB       int
	maxTTL       time.Duration
	persistPath  string
	redisAddress string

	// hot remembers revoked digests found recently (string key, int64
	// expiry): a token replayed after its revocation costs a map lookup,
	// not a bigcache Get. Only positives are kept, and revocations are
	// never withdrawn, so it cannot turn a good token away.
	hot      *sync.Map
	hotCount int64

	// persist and replica are set when persistPath or redis is configured.
	persist *persister
	replica *replicator

	hits       int64
	revokes    int64
	loaded     int64
	evictions  int64
	lastWarnNs int64
}

// A lane is one bigcache whose window bounds the lifetime of its entries.
type lane struct {
	window time.Duration
	cache  *bigcache.BigCache
	used   int32
}

// A revocation is one record: a token's digest and its expiry.
type revocation struct {
	digest [sha256.Size]byte
	expiry int64 // Unix nanoseconds
}

const (
	// laneBase is the window of the shortest lane.
	laneBase = 10 * time.Second
	// laneShards is bigcache's shard count per lane (a power of two).
	laneShards = 64
	// expirySize is the length of a stored value: the expiry in Unix nanoseconds.
	expirySize = 8
	// hotLimit bounds the cache of recently found revoked digests.
	hotLimit = 4096
	// warnEvery spaces out the warning about live entries dropped for space.
	warnEvery = time.Minute
)

// denylistOptions are the settings fixed when a denylist is created.
type denylistOptions struct {
	sizeMB      int
	maxTTL      time.Duration
	laneBase    time.Duration
	now         func() time.Time
	persistPath string
	redis       *redisOptions
}

// redisAddress is the configured Redis address, "" when Redis is off.
func (o *denylistOptions) redisAddress() string {
	if o.redis == nil {
		return ""
	}
	return o.redis.address
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
	// Ready is false until a Redis-backed denylist has loaded the stream.
	Ready bool `json:"ready"`
	// Redis is "off", "connected" or "disconnected".
	Redis string `json:"redis"`
	// Queued counts revocations waiting to be written to Redis.
	Queued int `json:"queued"`
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
	d := &denylist{name: name, now: opts.now, sizeMB: opts.sizeMB, maxTTL: opts.maxTTL, hot: &sync.Map{}}
	d.persistPath = opts.persistPath
	d.redisAddress = opts.redisAddress()

	// The bitset gets one bit per 16 bytes of cache budget: 4 MiB at the
	// default 64 MiB, about a 3% false-positive rate with a million entries.
	bits := uint64(64)
	for bits < uint64(opts.sizeMB)<<19 {
		bits <<= 1
	}
	d.filter = make([]uint64, bits/64)
	d.mask = bits - 1

	window := opts.laneBase
	for {
		if window >= opts.maxTTL {
			window = opts.maxTTL
		}
		l, err := d.newLane(window, opts.sizeMB)
		if err != nil {
			d.close()
			return nil, err
		}
		d.lanes = append(d.lanes, l)
		if window >= opts.maxTTL {
			break
		}
		window *= 4
	}
	return d, nil
}

func (d *denylist) newLane(window time.Duration, sizeMB int) (*lane, error) {
	// bigcache counts whole seconds and removes an entry once more than
	// LifeWindow seconds have passed: round up, never down, so no live
	// entry is ever cleaned early.
	life := (window + time.Second - 1) / time.Second * time.Second
	clean := life / 8
	if clean < time.Second {
		clean = time.Second
	}
	if clean > time.Minute {
		clean = time.Minute
	}
	cfg := bigcache.Config{
		Shards:             laneShards,
		LifeWindow:         life,
		CleanWindow:        clean,
		MaxEntriesInWindow: laneShards * 16,
		MaxEntrySize:       sha256.Size + expirySize + 32,
		HardMaxCacheSize:   sizeMB,
		Verbose:            false,
	}
	cfg.Hasher = &digestHasher{}
	cfg.OnRemoveWithReason = d.onRemove
	cache, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("denylist %q: %w", d.name, err)
	}
	return &lane{window: window, cache: cache}, nil
}

// onRemove counts live entries that bigcache dropped for lack of space, and
// warns about them at most once per warnEvery.
func (d *denylist) onRemove(_ string, entry []byte, reason bigcache.RemoveReason) {
	if reason != bigcache.NoSpace || len(entry) < expirySize {
		return
	}
	now := d.now().UnixNano()
	if int64(binary.BigEndian.Uint64(entry)) <= now {
		return
	}
	n := atomic.AddInt64(&d.evictions, 1)
	last := atomic.LoadInt64(&d.lastWarnNs)
	if now-last >= int64(warnEvery) && atomic.CompareAndSwapInt64(&d.lastWarnNs, last, now) {
		log.Printf("tokenrevocation: WARN denylist %q is full: %d live revocations dropped so far; raise cacheSizeMB", d.name, n)
	}
}

// add records a revocation the identity service confirmed: in memory, then
// in the persistence file and the Redis replication queue when configured.
// A past expiry records nothing.
func (d *denylist) add(digest *[sha256.Size]byte, expiry time.Time) error {
	rec := revocation{digest: *digest, expiry: expiry.UnixNano()}
	if rec.expiry <= d.now().UnixNano() {
		return nil
	}
	err := d.store(&rec)
	if d.persist != nil {
		if perr := d.persist.append(&rec); perr != nil && err == nil {
			err = perr
		}
	}
	if d.replica != nil {
		d.replica.enqueue(rec)
	}
	atomic.AddInt64(&d.revokes, 1)
	return err
}

// load stores revocations read back from the persistence file or Redis,
// skipping expired ones.
func (d *denylist) load(recs []revocation) error {
	now := d.now().UnixNano()
	for i := range recs {
		if recs[i].expiry <= now {
			continue
		}
		if err := d.store(&recs[i]); err != nil {
			return err
		}
		atomic.AddInt64(&d.loaded, 1)
	}
	return nil
}

// store puts one revocation in its lane and marks the bitset.
func (d *denylist) store(rec *revocation) error {
	lifetime := time.Duration(rec.expiry - d.now().UnixNano())
	l := d.lanes[len(d.lanes)-1]
	for _, candidate := range d.lanes {
		if candidate.window >= lifetime {
			l = candidate
			break
		}
	}
	var value [expirySize]byte
	binary.BigEndian.PutUint64(value[:], uint64(rec.expiry))
	if err := l.cache.Set(string(rec.digest[:]), value[:]); err != nil {
		return fmt.Errorf("denylist %q: %w", d.name, err)
	}
	atomic.StoreInt32(&l.used, 1)
	word, bit := d.filterBit(&rec.digest)
	for {
		old := atomic.LoadUint64(word)
		if old&bit != 0 || atomic.CompareAndSwapUint64(word, old, old|bit) {
			break
		}
	}
	return nil
}

// contains reports whether token is revoked and its entry still live.
func (d *denylist) contains(token string) bool {
	sum := sha256.Sum256([]byte(token))
	if word, bit := d.filterBit(&sum); atomic.LoadUint64(word)&bit == 0 {
		return false
	}
	return d.lookup(&sum)
}

// filterBit locates digest's bit in the bitset: bytes 8 to 16 of the digest,
// masked to its size. serveBearer repeats this inline, on purpose: it is the
// hot path, where an interpreted call costs more than these lines.
func (d *denylist) filterBit(digest *[sha256.Size]byte) (word *uint64, bit uint64) {
	i := binary.LittleEndian.Uint64(digest[8:16]) & d.mask
	return &d.filter[i>>6], uint64(1) << (i & 63)
}

// lookup asks the lanes for digest; the bitset has already said maybe.
func (d *denylist) lookup(digest *[sha256.Size]byte) bool {
	key := string(digest[:])
	now := d.now().UnixNano()
	if expiry, ok := d.hot.Load(key); ok && expiry.(int64) > now {
		atomic.AddInt64(&d.hits, 1)
		return true
	}
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil || len(value) != expirySize {
			continue
		}
		if expiry := int64(binary.BigEndian.Uint64(value)); expiry > now {
			atomic.AddInt64(&d.hits, 1)
			d.remember(key, expiry)
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
	s := denylistStats{Denylist: d.name, Ready: true, Redis: "off"}
	for _, l := range d.lanes {
		s.Entries += l.cache.Len()
	}
	s.Revokes = atomic.LoadInt64(&d.revokes)
	s.Loaded = atomic.LoadInt64(&d.loaded)
	s.Hits = atomic.LoadInt64(&d.hits)
	s.Evictions = atomic.LoadInt64(&d.evictions)
	if r := d.replica; r != nil {
		s.Ready = atomic.LoadInt32(&r.ready) == 1
		s.Redis = "disconnected"
		if atomic.LoadInt32(&r.connected) == 1 {
			s.Redis = "connected"
		}
		s.Queued = r.queued()
	}
	return s
}

func (d *denylist) close() {
	if d.replica != nil {
		d.replica.close()
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

// The registry shares one denylist per name across every middleware instance
// in the interpreter: Traefik calls New once per router and again on every
// configuration reload, and each of those must see the same revocations.
var (
	registryMu sync.Mutex
	registry   = map[string]*denylist{}
)

// benchPreload is nil in the plugin. Only the benchmark harness sets it, by
// adding e2e/testdata/benchhook/preload_bench.go to its own copy of the
// plugin: no configuration can reach it.
var benchPreload func(*denylist)

// sharedDenylist returns the denylist called name, creating it with opts the
// first time. A later caller gets the existing one whatever its opts, so a
// reload never loses entries; a change of size or maxTTL is logged and takes
// effect only on restart.
func sharedDenylist(name string, opts denylistOptions) (*denylist, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if d, ok := registry[name]; ok {
		if d.sizeMB != opts.sizeMB || d.maxTTL != opts.maxTTL || d.persistPath != opts.persistPath || d.redisAddress != opts.redisAddress() {
			log.Printf("tokenrevocation: WARN denylist %q keeps cacheSizeMB=%d maxTTL=%s persistPath=%q redis=%q until restart",
				name, d.sizeMB, d.maxTTL, d.persistPath, d.redisAddress)
		}
		return d, nil
	}
	d, err := newDenylist(name, opts)
	if err != nil {
		return nil, err
	}
	if opts.persistPath != "" {
		p, recs, err := openPersister(opts.persistPath, d.now)
		if err != nil {
			d.close()
			return nil, err
		}
		if err := d.load(recs); err != nil {
			d.close()
			return nil, err
		}
		releaseLoadGarbage()
		d.persist = p
		go p.compactLoop()
	}
	if opts.redis != nil {
		d.replica = startReplicator(d, opts.redis)
	}
	registry[name] = d
	if benchPreload != nil {
		benchPreload(d)
	}
	return d, nil
}
