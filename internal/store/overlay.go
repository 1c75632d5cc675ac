package store

import (
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Loading at start. Loading a large stream or file into bigcache is slow
// under Yaegi (a Set costs about 33 µs, so 1,000,000 entries take about
// 30 s), so it happens in two phases:
//
//  1. Staging (StartLoading, Stage). Each source's records go into a
//     loadSet: a slice of records, a map from 64 bits of each digest to its
//     place in the slice, and a staging bitset. This is cheap interpreted
//     work. Meanwhile the live bitset is all ones and the pre-check open,
//     so every token leaves the caller's hot path.
//  2. Filling (EndStaging). The staging bitset is copied into the live one
//     under the lock markBit takes while staging, and the loadSet becomes
//     the overlay: lookups consult it exactly (full digest compare), so the
//     store answers correctly from this moment. A goroutine then moves the
//     overlay's records into bigcache and drops it when done.

// A loadSet is the records staged by bulk loading, indexed for exact lookup.
type loadSet struct {
	recs  []record.Revocation
	index map[uint64]int32
	bits  []uint64 // the staging bitset; nil once copied into the live one
	// filled is how many of recs the fill has taken (some perhaps not yet
	// written); late holds updates of those, which the fill merges into
	// the lanes after writing what it took, so that its copy never
	// overwrites them. Both are guarded by the denylist's mu.
	filled int
	late   []record.Revocation
}

// loadKey is the map key of a digest: bytes 8 to 16, the bytes that also
// choose its bit in the bitset, so that staging reads them once.
func loadKey(digest *[sha256.Size]byte) uint64 {
	return binary.LittleEndian.Uint64(digest[8:16])
}

// StartLoading puts a new store, not yet shared, in the loading state: the
// live bitset all ones, so that every token leaves the hot path, the
// pre-check open, and an empty loadSet with its staging bitset.
func (s *Store) StartLoading() {
	for i := range s.filter {
		s.filter[i] = ^uint64(0)
	}
	s.overlay = &loadSet{index: map[uint64]int32{}, bits: make([]uint64, len(s.filter))}
	s.staging = 1
	s.pre.setLoading(true)
}

// Stage adds a batch of loaded records, each marked as learned from
// source: to the loadSet while staging, to the overlay while filling. What
// a remembered tombstone cancels, and what has expired, is left out. It
// reports how many records were new and the longest life among them, from
// confirmation to expiry; ok is false, and nothing is done, once loading is
// over: the caller then stores the records one by one. Its loop makes no
// interpreted call (each costs about 5 µs under Yaegi): the keys and bits
// are computed inline.
func (s *Store) Stage(recs []record.Revocation, source byte) (staged int, longest int64, ok bool) {
	now := s.now().UnixNano()
	s.mu.Lock()
	set := s.overlay
	if set == nil {
		s.mu.Unlock()
		return 0, 0, false
	}
	fresh := make([]record.Revocation, 0, 1024) // for the pre-check
	// While staging, nothing else reads the staging bitset: plain writes.
	// While filling, the live one is read by the hot path: atomic writes.
	staging := set.bits
	for i := range recs {
		rec := &recs[i]
		if rec.Expiry <= now {
			continue
		}
		if s.tombN > 0 && s.canceledLocked(rec) {
			continue
		}
		if rec.At > 0 && rec.Expiry-rec.At > longest {
			longest = rec.Expiry - rec.At
		}
		key := binary.LittleEndian.Uint64(rec.Digest[8:16]) // loadKey, inline
		if at, ok := set.index[key]; ok && set.recs[at].Digest == rec.Digest && int(at) < set.filled {
			// The fill has taken that record: it merges the update after
			// writing it (fill).
			rec.Source = source
			set.late = append(set.late, *rec)
			fresh = append(fresh, *rec)
			continue
		}
		if at, ok := set.index[key]; ok && set.recs[at].Digest == rec.Digest {
			if rec.At == 0 {
				rec.KeyN = 0 // an old rule's key never keys the pre-check (merge)
			}
			// The later confirmation and the later expiry win.
			if rec.At > set.recs[at].At {
				set.recs[at].At = rec.At
			}
			if rec.Expiry > set.recs[at].Expiry {
				set.recs[at].Expiry = rec.Expiry
				if rec.KeyN > 0 {
					set.recs[at].Key, set.recs[at].KeyN = rec.Key, rec.KeyN
				}
				// The pre-check must cover the longer life too.
				fresh = append(fresh, set.recs[at])
			}
			continue
		}
		set.index[key] = int32(len(set.recs))
		rec.Source = source
		set.recs = append(set.recs, *rec)
		staged++
		if len(fresh) == cap(fresh) {
			s.pre.addBatch(fresh)
			fresh = fresh[:0]
		}
		fresh = append(fresh, *rec)
		bit := key & s.mask // filterBit, inline
		if staging != nil {
			staging[bit>>6] |= uint64(1) << (bit & 63)
		} else {
			// A compare-and-swap: a local revoke may set a bit of the same
			// word at the same time (markBit, without the lock).
			orBit(&s.filter[bit>>6], uint64(1)<<(bit&63))
		}
	}
	s.pre.addBatch(fresh)
	s.mu.Unlock()
	return staged, longest, true
}

// EndStaging ends staging: the staging bitset becomes the live one, the
// loadSet the overlay a goroutine fills into bigcache, and the pre-check
// closes again. It does nothing when staging is over.
func (s *Store) EndStaging() {
	s.mu.Lock()
	set := s.overlay
	if set != nil && set.bits != nil {
		for i := range set.bits {
			atomic.StoreUint64(&s.filter[i], set.bits[i])
		}
		set.bits = nil
		atomic.StoreInt32(&s.staging, 0)
		atomic.StoreInt64(&s.filling, int64(len(set.recs)))
		go s.fill(set)
	}
	s.mu.Unlock()
	s.pre.setLoading(false)
}

// fill moves the overlay's records into bigcache, a batch at a time, then
// drops the overlay. The bitset already holds their bits.
func (s *Store) fill(set *loadSet) {
	done := 0
	for {
		s.mu.Lock()
		late := set.late
		set.late = nil
		batch := set.recs[done:]
		if len(batch) > 1000 {
			batch = batch[:1000]
		}
		set.filled = done + len(batch)
		if len(batch) == 0 {
			if len(late) > 0 {
				// Merge the last updates while the overlay still answers
				// for them; drop it only once none is pending, so no
				// update is ever held by neither the overlay nor the lanes.
				s.mu.Unlock()
				s.mergeLate(late)
				continue
			}
			s.overlay = nil
			s.mu.Unlock()
			break
		}
		batch = append([]record.Revocation(nil), batch...)
		total := len(set.recs)
		s.mu.Unlock()
		if s.fillTaken != nil {
			s.fillTaken()
		}
		// Updates of what earlier batches wrote, after those writes.
		s.mergeLate(late)
		now := s.now().UnixNano()
		for i := range batch {
			// A tombstone applied since the batch was copied is remembered:
			// what it cancels stays out.
			if batch[i].Expiry > now && !s.Canceled(&batch[i]) {
				s.putLoaded(&batch[i], now)
			}
		}
		done += len(batch)
		atomic.StoreInt64(&s.filling, int64(total-done))
	}
	atomic.StoreInt64(&s.filling, 0)
	ReleaseLoadGarbage()
}

// mergeLate merges updates the fill took after it wrote their records.
func (s *Store) mergeLate(late []record.Revocation) {
	for i := range late {
		if s.Canceled(&late[i]) {
			continue
		}
		mu := s.Lock(&late[i].Digest)
		mu.Lock()
		h := s.Held(&late[i].Digest)
		s.merge(&late[i], &h, -1)
		mu.Unlock()
	}
}

// overlayHas reports whether the overlay holds a live record for digest.
func (s *Store) overlayHas(digest *[sha256.Size]byte, now int64) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.overlay
	if set == nil {
		return 0, false
	}
	at, ok := set.index[loadKey(digest)]
	if !ok || set.recs[at].Digest != *digest || set.recs[at].Expiry <= now {
		return 0, false
	}
	return set.recs[at].Expiry, true
}

// Overlaid reports whether the loading overlay is still there (tests).
func (s *Store) Overlaid() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlay != nil
}

// Overlay is the overlay's record of digest, if any (tests).
func (s *Store) Overlay(digest *[sha256.Size]byte) (record.Revocation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overlay == nil {
		return record.Revocation{}, false
	}
	i, ok := s.overlay.index[loadKey(digest)]
	if !ok {
		return record.Revocation{}, false
	}
	return s.overlay.recs[i], true
}

// SetFillTaken sets a function the fill calls after it takes a batch and
// before it writes it (tests).
func (s *Store) SetFillTaken(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fillTaken = fn
}
