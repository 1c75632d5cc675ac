package store

import (
	"crypto/sha256"
	"encoding/binary"
	"log"
	"sync/atomic"
	"time"

	"github.com/allegro/bigcache/v3"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Capacity. bigcache makes room by dropping its oldest entries, and RFC 7009
// has the identity service confirm the revocation of any string, so a flood
// of garbage revocations could push real ones out. The store therefore
// admits a revocation only where it fits without dropping a live one:
//
//   - each lane counts, per bigcache shard, the entries it holds and the
//     slots reserved for revoke calls still at the identity service, and
//     admits up to shardLimit, what a full shard's byte queue holds less a
//     margin; onRemove gives a slot back as bigcache frees an entry;
//   - a revocation goes to the smallest lane whose window covers its
//     lifetime and whose shard has room, else to a larger lane;
//   - when none has room, the revoke call is refused with 503 before it
//     reaches the identity service (RFC 7009 §2.2.1), so nothing is revoked
//     upstream that the edge did not record.
//
// Revocations confirmed elsewhere (Redis, persistPath) cannot be refused:
// they are stored all the same, and should bigcache then push a live entry
// out (or should its byte queue waste space while it grows), onRemove keeps
// that entry in the overflow map. No live revocation is ever dropped; the
// stats count the overflow.

// entryBytes is what one entry takes in a bigcache shard's byte queue: a
// 1-byte length, bigcache's 18-byte header (timestamp, hash, key length),
// the 32-byte digest and the 17-byte value (expiry, source, confirmation).
const entryBytes = 1 + 18 + sha256.Size + valueSize

// shardLimit is how many entries one shard of a sizeMB lane admits: what
// its byte queue holds (1 byte of left margin), less three entries of slack
// for the space the queue's wrap-around and header reserve can waste.
func shardLimit(sizeMB int) int32 {
	perShard := sizeMB << 20 / Shards
	n := (perShard-1)/entryBytes - 3
	if n < 1 {
		n = 1
	}
	return int32(n)
}

// shardOf is the bigcache shard of digest: digestHasher's hash (the first
// eight bytes) masked to the shard count.
func shardOf(digest *[sha256.Size]byte) int {
	return int(binary.LittleEndian.Uint64(digest[:8]) & (Shards - 1))
}

// laneFor is the smallest lane whose window covers lifetime, or the last.
func (s *Store) laneFor(lifetime time.Duration) int {
	for i, l := range s.lanes {
		if l.window >= lifetime {
			return i
		}
	}
	return len(s.lanes) - 1
}

// Reserve takes a slot for digest in the smallest lane, from laneFor up,
// whose shard has room. A lifetime up to maxTTL goes no higher than the
// maxTTL lane, a longer one at most one lane above its own: a lane frees
// an entry only after its window, so a short entry in a long lane would
// hold its slot for that long. It returns the lane's index, or -1 when
// none has room.
func (s *Store) Reserve(digest *[sha256.Size]byte, lifetime time.Duration) int {
	if lifetime > s.lanes[len(s.lanes)-1].window {
		// Longer than the store holds (maxLifetime): refused, never cut short.
		return -1
	}
	shard := shardOf(digest)
	first := s.laneFor(lifetime)
	last := s.laneFor(s.maxTTL)
	if lifetime > s.maxTTL {
		last = first + 1
	}
	if last >= len(s.lanes) {
		last = len(s.lanes) - 1
	}
	for i := first; i <= last; i++ {
		l := s.lanes[i]
		counter := &l.live[shard]
		for {
			n := atomic.LoadInt32(counter)
			if n >= l.shardLimit {
				break
			}
			if atomic.CompareAndSwapInt32(counter, n, n+1) {
				return i
			}
		}
	}
	return -1
}

// ReserveOrForce is Reserve for a revocation that was confirmed elsewhere
// and cannot be refused: when no lane has room it is counted in the lane
// for its lifetime all the same (onRemove keeps whatever bigcache then
// pushes out).
func (s *Store) ReserveOrForce(digest *[sha256.Size]byte, lifetime time.Duration) int {
	i := s.Reserve(digest, lifetime)
	if i < 0 {
		i = s.laneFor(lifetime)
		atomic.AddInt32(&s.lanes[i].live[shardOf(digest)], 1)
	}
	return i
}

// A ReservedToken is a slot ReserveTokens took for one token.
type ReservedToken struct {
	digest [sha256.Size]byte
	lane   int
}

// ReserveTokens reserves a slot for each of tokens not yet revoked, the
// stores a request forces besides its own revocation (a grant family's
// tokens, a logout's, a refresh's previous access tokens), so that they are
// admitted like any other. When one does not fit, it gives back what it
// took and reports false: the request is refused with 503 before the
// identity service (or, for a logout, before anything is applied).
func (s *Store) ReserveTokens(tokens []record.GrantToken) ([]ReservedToken, bool) {
	if len(tokens) == 0 {
		return nil, true
	}
	now := s.now().UnixNano()
	taken := make([]ReservedToken, 0, len(tokens))
	for i := range tokens {
		if s.Has(&tokens[i].Digest) {
			continue
		}
		lane := s.Reserve(&tokens[i].Digest, time.Duration(tokens[i].Expiry-now))
		if lane < 0 {
			s.UnreserveTokens(taken)
			return nil, false
		}
		taken = append(taken, ReservedToken{digest: tokens[i].Digest, lane: lane})
	}
	return taken, true
}

// UnreserveTokens gives back the slots of ReserveTokens.
func (s *Store) UnreserveTokens(taken []ReservedToken) {
	for i := range taken {
		s.Unreserve(taken[i].lane, &taken[i].digest)
	}
}

// Unreserve gives back a slot reserve took for a revocation that was not
// confirmed.
func (s *Store) Unreserve(i int, digest *[sha256.Size]byte) {
	atomic.AddInt32(&s.lanes[i].live[shardOf(digest)], -1)
}

// onRemove gives a slot back as bigcache frees an entry. An entry it pushed
// out while still live goes to the overflow map: it is counted and warned
// about (at most once per obs.WarnEvery), never dropped.
func (l *lane) onRemove(key string, entry []byte, reason bigcache.RemoveReason) {
	if len(key) >= 8 {
		atomic.AddInt32(&l.live[(&digestHasher{}).Sum64(key)&(Shards-1)], -1)
	}
	if reason != bigcache.NoSpace || len(entry) < expirySize {
		return
	}
	s := l.store
	now := s.now().UnixNano()
	expiry := int64(binary.BigEndian.Uint64(entry))
	if expiry <= now {
		return
	}
	at := int64(0)
	if len(entry) >= valueSize {
		at = int64(binary.BigEndian.Uint64(entry[expirySize+1:]))
	}
	s.keepOverflow(key, expiry, at)
	n := atomic.AddInt64(&s.counters.evictions, 1)
	if obs.WarnDue(&s.counters.lastWarnNs, now) {
		log.Printf("tokenrevocation: WARN denylist %q is full: %d live revocations moved to the overflow map so far (none dropped); raise cacheSizeMB", s.name, n)
	}
}

// maxOverflow bounds the overflow map: about 100 MB of entries.
const maxOverflow = 1 << 20

// An overflowEntry is a revocation kept in the overflow map.
type overflowEntry struct {
	expiry, at int64
}

// keepOverflow keeps a live revocation bigcache could not hold (or one
// longer than its longest lane); the later expiry and confirmation win.
// Expired entries are swept out as the map grows, and once it holds
// maxOverflow entries a new one is dropped and counted (boundes.overflow).
func (s *Store) keepOverflow(key string, expiry, at int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow == nil {
		s.overflow = map[string]overflowEntry{}
	}
	old, held := s.overflow[key]
	n := len(s.overflow)
	if n >= 1024 && (n&(n-1) == 0 || (n >= maxOverflow && !held)) {
		now := s.now().UnixNano()
		for k, e := range s.overflow {
			if e.expiry <= now {
				delete(s.overflow, k)
			}
		}
	}
	if len(s.overflow) >= maxOverflow && !held {
		// The bound: only stores that bypass admission (replicated or
		// loaded ones) can get here, and a denylist this far past its
		// size is misconfigured. Counted and logged, never silent.
		n := atomic.AddInt64(&s.counters.boundOverflow, 1)
		if obs.WarnDue(&s.counters.lastWarnNs, s.now().UnixNano()) {
			log.Printf("tokenrevocation: ERROR denylist %q: the overflow map holds %d live revocations, its bound; %d dropped; raise cacheSizeMB", s.name, maxOverflow, n)
		}
		return
	}
	if expiry < old.expiry {
		expiry = old.expiry
	}
	if at < old.at {
		at = old.at
	}
	s.overflow[key] = overflowEntry{expiry: expiry, at: at}
	atomic.StoreInt32(&s.overflowN, int32(len(s.overflow)))
}

// Capacity is how many entries one lane admits.
func (s *Store) Capacity() int {
	return int(s.lanes[0].shardLimit) * Shards
}

// RetryAfterFull is the Retry-After, in seconds, of a revocation refused for
// space: bigcache's cleaner frees the lane's oldest entries about every
// CleanWindow (1 s to 1 min).
func (s *Store) RetryAfterFull(lifetime time.Duration) int {
	return int(cleanWindow(s.lanes[s.laneFor(lifetime)].window) / time.Second)
}

// Window is the window of lane i.
func (s *Store) Window(i int) time.Duration {
	return s.lanes[i].window
}

// LaneWindows are the lanes' windows, shortest first.
func (s *Store) LaneWindows() []time.Duration {
	out := make([]time.Duration, len(s.lanes))
	for i, l := range s.lanes {
		out[i] = l.window
	}
	return out
}

// LaneFor is the smallest lane whose window covers lifetime, or the last.
func (s *Store) LaneFor(lifetime time.Duration) int {
	return s.laneFor(lifetime)
}

// Slots is the counter of entries held and reserved in lane i's shard, up
// to ShardLimit: for tests that fill a shard, and for diagnostics.
func (s *Store) Slots(i, shard int) *int32 {
	return &s.lanes[i].live[shard]
}

// ShardLimit is how many entries one shard of a lane admits.
func (s *Store) ShardLimit() int32 {
	return s.lanes[0].shardLimit
}

// ShardOf is the bigcache shard of digest.
func ShardOf(digest *[sha256.Size]byte) int {
	return shardOf(digest)
}
