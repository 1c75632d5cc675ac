package store

import (
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Tombstones (record.Tombstone) undo revocations. Time, not arrival,
// decides what one undoes: it cancels the revocations of its digest
// confirmed before it, and a revocation confirmed after it stands, in
// whatever order they reach the store. So a tombstone is remembered until
// everything it cancels has expired, and what a remembered one cancels is
// dropped when it arrives late (Canceled, Stage, the fill).
//
// Undoing a revocation removes it from bigcache, the overflow map, the hot
// cache and the loaded segment. Its bit in the bitset stays set: a set bit
// only means "look it up", so this costs a lookup, never a wrong answer.

// Cancel applies t: it is remembered first while it lives (so that a
// revocation it cancels staged at the same time is dropped), then the
// revocations it cancels are removed from every store. It reports whether
// one was live.
func (s *Store) Cancel(t *record.Tombstone) bool {
	s.mu.Lock()
	if t.Until > s.now().UnixNano() {
		s.rememberTombstone(t)
	}
	s.mu.Unlock()
	return s.remove(t)
}

// maxTombstones bounds the tombstones remembered: un-revocations are admin
// operations, and one takes about 100 bytes.
const maxTombstones = 1 << 16

// rememberTombstone keeps t until it has nothing left to cancel, merged
// with one already kept for its digest. The caller holds mu. A full table
// (after expired ones are swept) keeps nothing and counts it.
func (s *Store) rememberTombstone(t *record.Tombstone) {
	if s.tombs == nil {
		s.tombs = map[[sha256.Size]byte]record.Tombstone{}
	}
	old, ok := s.tombs[t.Digest]
	if !ok && len(s.tombs) >= maxTombstones {
		now := s.now().UnixNano()
		for k, v := range s.tombs {
			if v.Until <= now {
				delete(s.tombs, k)
			}
		}
		if len(s.tombs) >= maxTombstones {
			atomic.AddInt64(&s.counters.boundTombstones, 1)
			return
		}
	}
	merged := *t
	if ok {
		if old.At > merged.At {
			merged.At = old.At
		}
		if old.Held > merged.Held {
			merged.Held = old.Held
		}
		if old.Until > merged.Until {
			merged.Until = old.Until
		}
		merged.Legacy = old.Legacy && t.Legacy
	}
	s.tombs[t.Digest] = merged
	atomic.StoreInt32(&s.tombN, int32(len(s.tombs)))
}

// canceledLocked reports whether a remembered tombstone cancels rec. The
// caller holds mu.
func (s *Store) canceledLocked(rec *record.Revocation) bool {
	if len(s.tombs) == 0 {
		return false
	}
	t, ok := s.tombs[rec.Digest]
	return ok && t.Until > s.now().UnixNano() && t.CancelsArrival(rec.At, s.leeway)
}

// Canceled is canceledLocked for a caller without mu.
func (s *Store) Canceled(rec *record.Revocation) bool {
	if atomic.LoadInt32(&s.tombN) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceledLocked(rec)
}

// remove takes the revocations t cancels out of every store and reports
// whether one was live.
func (s *Store) remove(t *record.Tombstone) bool {
	now := s.now().UnixNano()
	key := string(t.Digest[:])
	held := false
	for _, l := range s.lanes {
		value, ok := l.value(key)
		if !ok {
			continue
		}
		at := int64(0)
		if len(value) >= valueSize {
			at = int64(binary.BigEndian.Uint64(value[expirySize+1:]))
		}
		if !t.Cancels(at, s.leeway) {
			continue
		}
		held = held || int64(binary.BigEndian.Uint64(value)) > now
		// onRemove gives the slot back.
		_ = l.cache.Delete(key)
	}
	s.hot.Delete(key)
	s.mu.Lock()
	if e, ok := s.overflow[key]; ok && t.Cancels(e.at, s.leeway) {
		held = held || e.expiry > now
		delete(s.overflow, key)
		atomic.StoreInt32(&s.overflowN, int32(len(s.overflow)))
	}
	if set := s.overlay; set != nil {
		if i := set.find(&t.Digest); i >= 0 && t.Cancels(set.at[i], s.leeway) {
			held = held || set.expiry[i] > now
			set.expiry[i] = 0 // skipped by the drain and by lookups
		}
	}
	s.mu.Unlock()
	return held
}
