package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The pre-check: the hot path's first question, "was this bearer token
// ever revoked?", answered by the last KeyLen characters of the raw token,
// with no hashing and no []byte conversion. Under Yaegi a SHA-256 of a
// 250-byte token through []byte, and every extra interpreted call, cost
// microseconds; a map index keyed by a slice of the header's string costs a
// fraction of one.
//
// It never says "not revoked" for a revoked token: every revocation either
// adds its key (the last KeyLen characters of the token), or, when its
// source knows only the digest (a record of the previous release, an admin
// revocation by digest), holds the pre-check open until that revocation
// expires. A key present only means "maybe": the request takes the exact
// path (SHA-256, bitset, bigcache) as before. So a poor key (tokens whose
// tails are a fixed suffix or a checksum) costs speed, never correctness.
//
// Race-free for the hot path: it reads one immutable set through an
// atomic.Value. Writers add keys to a small sync.Map (delta), which the hot
// path consults only while it is not empty; a background tick, every
// second, folds the delta into a new immutable map once it holds a
// sixteenth of the base (at least 1024 keys) or is older than mergeAfter.
// So a revoke never copies the map, the copy holds no lock a revoke waits
// on, and a bulk load of 1,000,000 at start builds one map.
//
// A key is a short fragment of the token: KeyLen characters out of
// hundreds. It cannot rebuild the token, and a fragment is not a token:
// presenting it authenticates nothing. It is stored next to the digest in
// the stream and persistPath so that replicas and restarts keep the
// pre-check closed.

// KeyLen is the length of a pre-check key (record.KeyLen).
const KeyLen = record.KeyLen

// A Key is a pre-check key as the maps hold it: an array, not a string,
// so that the maps hold no pointer and the garbage collector never scans
// their million entries (with string keys, every GC cycle walked them, and
// the cost landed on every request).
type Key [KeyLen]byte

// The maps hold an expiry as Unix seconds, rounded up, in a uint32: 12
// bytes a slot instead of 16 (about 28 bytes an entry instead of 38 at a
// million). Rounded up, a key is never dropped before its revocation
// expires; one past maxExpirySec (the year 2106) is held at that.
const maxExpirySec = 1<<32 - 1

// expirySec is expiry, in Unix nanoseconds, as the maps hold it.
func expirySec(expiry int64) uint32 {
	if expiry >= int64(maxExpirySec)*int64(time.Second) {
		return maxExpirySec
	}
	if expiry <= 0 {
		return 0
	}
	return uint32((expiry + int64(time.Second) - 1) / int64(time.Second))
}

// mergeAfter bounds how long keys wait in the delta.
const mergeAfter = time.Minute

// A PrecheckSet is what the hot path reads. A token whose key is in
// neither Keys nor Delta was never revoked, unless Open; with Rules, it
// must pass the logout rules too.
type PrecheckSet struct {
	Keys  map[Key]uint32 // key: the latest expiry of a revocation with it, in Unix seconds rounded up (expirySec)
	Delta *sync.Map      // keys added since; nil when none
	Open  bool           // cannot settle: loading, or a keyless revocation is live
	Rules bool           // logout rules are live: a token the keys settle must pass them too
}

// A Precheck is a store's pre-check.
type Precheck struct {
	now func() time.Time
	cur atomic.Value // *precheckSet

	mu          sync.Mutex
	base        map[Key]uint32
	delta       *sync.Map
	deltaN      int
	deltaSince  int64
	keylessTill int64 // latest expiry of a live revocation without a key
	loading     bool
	loaded      map[Key]uint32 // the keys bulk-loaded while loading
	gen         int            // counts the bases loading put in place (Merge)
	rules       bool
}

func newPrecheck(now func() time.Time) *Precheck {
	p := &Precheck{now: now, base: map[Key]uint32{}}
	p.publish()
	return p
}

// publish makes the current state the one the hot path reads. The caller
// holds mu (or owns p).
func (p *Precheck) publish() {
	open := p.loading || p.keylessTill > p.now().UnixNano()
	p.cur.Store(&PrecheckSet{Keys: p.base, Delta: p.delta, Open: open, Rules: p.rules})
}

// add records a revocation's key, or, for key "", holds the pre-check open
// until expiry.
func (p *Precheck) add(key string, expiry int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addLocked(key, expiry) {
		p.publish()
	}
}

// addLocked records one key, and reports whether what the hot path reads
// must be published again: a new delta, or a keyless revocation that opens
// the pre-check. A key stored in the published delta needs no new set.
func (p *Precheck) addLocked(key string, expiry int64) bool {
	if len(key) != KeyLen {
		opened := p.keylessTill <= p.now().UnixNano()
		if expiry > p.keylessTill {
			p.keylessTill = expiry
		}
		return opened
	}
	var k Key
	copy(k[:], key)
	if old, ok := p.base[k]; ok && int64(old)*int64(time.Second) >= expiry {
		return false
	}
	fresh := p.delta == nil
	if fresh {
		p.delta = &sync.Map{}
		p.deltaSince = p.now().UnixNano()
	}
	if old, ok := p.delta.Load(k); !ok || old.(int64) < expiry {
		p.delta.Store(k, expiry)
		p.deltaN++
	}
	return fresh
}

// addBatch records many revocations at once. While loading they go into
// a map of their own, never published until loading ends (one map for a
// bulk load of any size); afterwards into the delta.
func (p *Precheck) addBatch(recs []record.Revocation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range recs {
		rec := &recs[i]
		if rec.KeyN == 0 || rec.At == 0 || !p.loading {
			p.addLocked(rec.PrecheckKey(), rec.Expiry)
			continue
		}
		if rec.KeyN != KeyLen {
			p.addLocked("", rec.Expiry)
			continue
		}
		// expirySec, inline: a call per record costs about 5 µs under Yaegi.
		sec := uint32(maxExpirySec)
		if rec.Expiry < int64(maxExpirySec)*int64(time.Second) {
			sec = uint32((rec.Expiry + int64(time.Second) - 1) / int64(time.Second))
		}
		if p.loaded[Key(rec.Key)] < sec {
			p.loaded[Key(rec.Key)] = sec
		}
	}
	p.publish()
}

// Merge folds the delta into a new base map, leaving out expired keys.
// The copy, O(n), is made without the lock, so that revocations go on
// meanwhile (into the same delta, which is read again under the lock at
// the end); only the swap holds it.
func (p *Precheck) Merge() {
	p.mu.Lock()
	base, delta, gen := p.base, p.delta, p.gen
	p.mu.Unlock()
	if delta == nil {
		return
	}
	now := p.now().UnixNano()
	next := make(map[Key]uint32, len(base)+p.deltaCount())
	for k, v := range base {
		if int64(v)*int64(time.Second) > now {
			next[k] = v
		}
	}
	fold := func(k, v interface{}) bool {
		key, expiry := k.(Key), v.(int64)
		if sec := expirySec(expiry); expiry > now && next[key] < sec {
			next[key] = sec
		}
		return true
	}
	delta.Range(fold)
	p.mu.Lock()
	defer p.mu.Unlock()
	delta.Range(fold) // what was added during the copy
	if p.gen != gen {
		// A bulk load replaced the base meanwhile: its keys join too.
		for k, v := range p.base {
			if next[k] < v && int64(v)*int64(time.Second) > now {
				next[k] = v
			}
		}
	}
	p.base = next
	if p.delta == delta {
		p.delta = nil
		p.deltaN = 0
	}
	p.publish()
}

// deltaCount is the number of keys added since the last merge.
func (p *Precheck) deltaCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deltaN
}

// setLoading and SetRules open or close the pre-check for loading at start
// and for live logout rules.
func (p *Precheck) setLoading(loading bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if loading && !p.loading {
		p.loaded = map[Key]uint32{}
	}
	if !loading && p.loading {
		// The loaded keys join the base: a map of its own before, so
		// that the hot path never read a map being written.
		for k, v := range p.base {
			if p.loaded[k] < v {
				p.loaded[k] = v
			}
		}
		p.base = p.loaded
		p.loaded = nil
		p.gen++
	}
	p.loading = loading
	p.publish()
}

// SetRules opens the pre-check while logout rules are live, and closes
// it again once none is.
func (p *Precheck) SetRules(live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rules != live {
		p.rules = live
		p.publish()
	}
}

// Tick folds the delta once it holds a sixteenth of the base (at least
// 1024 keys) or is older than mergeAfter, and closes the pre-check once
// the last keyless revocation has expired; the store calls it every second.
func (p *Precheck) Tick() {
	p.mu.Lock()
	now := p.now().UnixNano()
	due := p.delta != nil && (now-p.deltaSince >= int64(mergeAfter) || (p.deltaN >= 1024 && p.deltaN >= len(p.base)/16))
	if set, _ := p.cur.Load().(*PrecheckSet); set != nil && set.Open && !p.loading && p.keylessTill <= now {
		p.publish()
	}
	p.mu.Unlock()
	if due {
		p.Merge()
	}
}

// Current is what the hot path reads: a *PrecheckSet, replaced, never
// changed.
func (p *Precheck) Current() *atomic.Value {
	return &p.cur
}

// Precheck is the store's pre-check.
func (s *Store) Precheck() *Precheck {
	return s.pre
}
