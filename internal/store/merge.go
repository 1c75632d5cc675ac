package store

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Put puts one revocation in the lane capacity admission picks for it;
// when none has room it is stored all the same (it was confirmed, so it
// must be kept), and should bigcache push a live entry out for it, onRemove
// keeps that entry in the overflow map.
func (s *Store) Put(rec *record.Revocation) int {
	lifetime := time.Duration(rec.Expiry - s.now().UnixNano())
	if lifetime > s.lanes[len(s.lanes)-1].window {
		// Longer than any lane holds (a replica with a longer
		// maxLifetime confirmed it): kept whole in the overflow map.
		s.pre.add(rec.PrecheckKey(), rec.Expiry)
		s.keepOverflow(string(rec.Digest[:]), rec.Expiry, rec.At)
		s.markBit(&rec.Digest)
		return len(s.lanes) - 1
	}
	i := s.ReserveOrForce(&rec.Digest, lifetime)
	s.put(rec, i)
	return i
}

// putLoaded stores a record the drain moves out of the loaded segment:
// its bit is already set (store without it, which would set it a million
// times for nothing), its pre-check key is held, and its client was
// counted when it was staged (countClients). One longer than every lane
// goes whole to the overflow map, as Put does.
func (s *Store) putLoaded(rec *record.Revocation, now int64) {
	lifetime := time.Duration(rec.Expiry - now)
	if lifetime > s.lanes[len(s.lanes)-1].window {
		s.keepOverflow(string(rec.Digest[:]), rec.Expiry, rec.At)
		return
	}
	s.set(rec, s.ReserveOrForce(&rec.Digest, lifetime))
}

// put writes rec into lane i, whose slot is already counted, and marks the
// bitset.
func (s *Store) put(rec *record.Revocation, i int) {
	// The pre-check first: from here on it answers "maybe" for the token.
	s.pre.add(rec.PrecheckKey(), rec.Expiry)
	s.set(rec, i)
	s.markBit(&rec.Digest)
}

// set writes rec into lane i, whose slot is already counted.
func (s *Store) set(rec *record.Revocation, i int) {
	l := s.lanes[i]
	var value [valueSize]byte
	binary.BigEndian.PutUint64(value[:], uint64(rec.Expiry))
	value[expirySize] = rec.Source
	binary.BigEndian.PutUint64(value[expirySize+1:], uint64(rec.At))
	if err := l.cache.Set(string(rec.Digest[:]), value[:]); err != nil {
		// Set fails only for an entry larger than a shard, which a 49-byte
		// entry never is; keep it in the overflow map rather than lose it.
		atomic.AddInt32(&l.live[shardOf(&rec.Digest)], -1)
		s.keepOverflow(string(rec.Digest[:]), rec.Expiry, rec.At)
	}
	atomic.StoreInt32(&l.used, 1)
}

// markBit sets digest's bit in the live bitset and, while loading stages a
// new bitset, in that one too, under the lock finishLoad copies it with.
func (s *Store) markBit(digest *[sha256.Size]byte) {
	word, bit := s.filterBit(digest)
	if atomic.LoadInt32(&s.staging) == 1 {
		s.mu.Lock()
		if set := s.overlay; set != nil && set.bits != nil {
			set.bits[s.filterIndex(digest)] |= bit
		}
		orBit(word, bit)
		s.mu.Unlock()
		return
	}
	orBit(word, bit)
}

// filterBit locates digest's bit in the bitset: bytes 8 to 16 of the digest,
// masked to its size. Has, Stage and the caller's hot path repeat this
// inline, on purpose: there an interpreted call costs more than these lines.
func (s *Store) filterBit(digest *[sha256.Size]byte) (*uint64, uint64) {
	i := binary.LittleEndian.Uint64(digest[8:16]) & s.mask
	return &s.filter[i>>6], uint64(1) << (i & 63)
}

// filterIndex is the index of digest's word in the bitset.
func (s *Store) filterIndex(digest *[sha256.Size]byte) int {
	return int((binary.LittleEndian.Uint64(digest[8:16]) & s.mask) >> 6)
}

func orBit(word *uint64, bit uint64) {
	for {
		old := atomic.LoadUint64(word)
		if old&bit != 0 || atomic.CompareAndSwapUint64(word, old, old|bit) {
			return
		}
	}
}

// An Entry is what the store holds for one digest: the latest expiry
// and the latest confirmation among its live entries.
type Entry struct {
	Found  bool
	Expiry int64
	At     int64
	Source byte
	// Lane holds the entry with the latest expiry, -1 when that is in the
	// overflow map or the loaded segment; Lanes has a bit per lane that
	// holds an entry of the digest, live or not.
	Lane  int
	Lanes uint64
}

// Held reports what the store holds for digest. The loaded segment is
// read first: the fill moves its records into the lanes, so read the other
// way round a record could be missed in both.
func (s *Store) Held(digest *[sha256.Size]byte) Entry {
	h := Entry{Lane: -1}
	now := s.now().UnixNano()
	key := string(digest[:])
	s.mu.Lock()
	if set := s.overlay; set != nil {
		if i := set.find(digest); i >= 0 && set.expiry[i] > now {
			h.Found = true
			h.Expiry = set.expiry[i]
			h.At = set.at[i]
			h.Source = set.source[i]
		}
	}
	s.mu.Unlock()
	// The lane scan of lane.value, inline: every revocation recorded or
	// loaded runs it, and a call per lane costs about 5 µs under Yaegi.
	for i, l := range s.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil || len(value) < expirySize {
			continue
		}
		h.Lanes |= uint64(1) << uint(i)
		expiry := int64(binary.BigEndian.Uint64(value))
		if expiry <= now {
			continue
		}
		h.Found = true
		if expiry > h.Expiry || (expiry == h.Expiry && h.Lane < 0) {
			// A lane wins a tie with the overlay: an update in place must
			// reach the copy that outlives the fill.
			h.Expiry = expiry
			h.Lane = i
			h.Source = 0
			if len(value) > expirySize {
				h.Source = value[expirySize]
			}
		}
		if len(value) >= valueSize {
			if at := int64(binary.BigEndian.Uint64(value[expirySize+1:])); at > h.At {
				h.At = at
			}
		}
	}
	s.mu.Lock()
	if e, ok := s.overflow[key]; ok && e.expiry > now {
		h.Found = true
		if e.expiry > h.Expiry {
			// One assignment each: Yaegi v0.16.1 can lose a constant in a
			// multiple assignment.
			h.Expiry = e.expiry
			h.Lane = -1
			h.Source = 0
		}
		if e.at > h.At {
			h.At = e.at
		}
	}
	s.mu.Unlock()
	return h
}

// merge stores rec for a digest held as h: the later expiry and the later
// confirmation win. A new digest, or a later expiry, takes a slot (reserved,
// or one admission picks; none when it overwrites the digest's entry in the
// same lane, whose slot it takes over). A later confirmation alone rewrites
// the entry in place and costs no slot. It reports whether anything
// changed; rec then holds what is stored. A reservation it does not use is
// given back.
func (s *Store) merge(rec *record.Revocation, h *Entry, reserved int) bool {
	if rec.At == 0 {
		// A record of the release before confirmation times: its key
		// follows that release's rule. Dropped before at is raised below,
		// so that it never keys the pre-check (precheckKey).
		rec.KeyN = 0
	}
	if h.Found && rec.At < h.At {
		rec.At = h.At
	}
	switch {
	case !h.Found || rec.Expiry > h.Expiry:
		lifetime := time.Duration(rec.Expiry - s.now().UnixNano())
		i := reserved
		if i < 0 && lifetime <= s.lanes[len(s.lanes)-1].window {
			i = s.ReserveOrForce(&rec.Digest, lifetime)
		}
		if i < 0 {
			s.Put(rec)
		} else {
			if h.Lanes&(uint64(1)<<uint(i)) != 0 {
				// bigcache overwrites that entry without calling onRemove:
				// its slot carries over to this one.
				s.Unreserve(i, &rec.Digest)
			}
			s.put(rec, i)
		}
		if h.Found {
			s.hot.Delete(string(rec.Digest[:]))
		}
		return true
	case rec.At > h.At:
		if reserved >= 0 {
			s.Unreserve(reserved, &rec.Digest)
		}
		rec.Expiry = h.Expiry
		if h.Lane >= 0 {
			s.set(rec, h.Lane)
		} else {
			s.updateAside(rec)
		}
		return true
	default:
		if reserved >= 0 {
			s.Unreserve(reserved, &rec.Digest)
		}
		return false
	}
}

// Lock is the stripe that serializes updates of digest's entry, so
// that two records of one digest at once cannot leave the shorter expiry.
func (s *Store) Lock(digest *[sha256.Size]byte) *sync.Mutex {
	return &s.digestMu[digest[1]&(digestLocks-1)]
}

// MergeSync is Merge, followed, while loading, by the same update of the
// loaded segment's copy of the digest (syncOverlay): the fill must never
// write its older copy over what merge stored. The caller holds the
// digest's lock.
func (s *Store) MergeSync(rec *record.Revocation, h *Entry, reserved int) bool {
	// merge wrote to the overlay itself (updateAside) when only the
	// confirmation was later and the overlay alone held the digest.
	aside := h.Found && rec.Expiry <= h.Expiry && h.Lane < 0
	if !s.merge(rec, h, reserved) {
		return false
	}
	if !aside {
		s.syncOverlay(rec)
	}
	return true
}

// syncOverlay makes the loaded segment's copy of rec's digest, if any,
// yield to what merge stored in the lanes: one the fill has not taken yet
// is dropped (its expiry set to 0, which the fill skips); one it has taken
// is merged again after the fill writes it (loadSet.late).
func (s *Store) syncOverlay(rec *record.Revocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.overlay
	if set == nil {
		return
	}
	i := set.find(&rec.Digest)
	if i < 0 || set.expiry[i] == 0 {
		return
	}
	if i < set.filled {
		set.late = append(set.late, *rec)
		return
	}
	set.expiry[i] = 0
}

// updateAside raises the confirmation of a digest held in the overflow map
// or the loaded segment.
func (s *Store) updateAside(rec *record.Revocation) {
	key := string(rec.Digest[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.overflow[key]; ok && rec.At > e.at {
		e.at = rec.At
		s.overflow[key] = e
	}
	if set := s.overlay; set != nil {
		if i := set.find(&rec.Digest); i >= 0 && rec.At > set.at[i] {
			set.at[i] = rec.At
		}
	}
}
