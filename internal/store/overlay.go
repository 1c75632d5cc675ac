package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Loading at start. Loading a large stream or file into bigcache is slow
// under Yaegi (a Set costs about 33 µs, so 1,000,000 entries take about
// 33 s of CPU) and bigcache takes about 100 bytes an entry, so bulk-loaded
// records never go into bigcache while they are many. They go into the
// loaded segment, a loadSet:
//
//  1. Staging (StartLoading, Stage). Each source's records go into the
//     loadSet's flat arrays (digest, expiry, confirmation, source: 49
//     bytes a record) and its open-addressing index (4 bytes a slot, at
//     most half full), and their bits into a staging bitset.
//     Meanwhile the live bitset is all ones and the pre-check open, so
//     every token leaves the caller's hot path.
//  2. Serving (EndStaging). The staging bitset is copied into the live one
//     under the lock markBit takes while staging, the arrays are trimmed
//     to their length, and the loadSet stays as the segment: lookups
//     consult it exactly (full digest compare), beside the lanes. Nothing
//     is copied into bigcache. The segment takes no record after this:
//     what arrives later (replication, a source that loads after a
//     degraded start) goes to the lanes record by record, where it merges
//     with what is held (a replica's own revocations read back from the
//     stream among them), and Held takes the later of the two.
//  3. Draining (drain, from the tick). Once the records the segment holds
//     are mostly expired (drainAt, when seven eighths of a sample of their
//     expiries have passed), a goroutine moves the survivors into the
//     lanes, a batch at a time, and drops the segment, so that its memory
//     goes back. Drain starts it at once (tests).
//
// The segment holds what the sources held, up to what the lanes admit
// together (Options.SegmentLimit): a batch past that is left to the caller,
// who stores it record by record as after loading, and counted
// (Stats.BoundSegment). Its records were confirmed elsewhere, so none is
// refused. Stats counts its records among the entries.

// A loadSet is the loaded segment: the records staged by bulk loading,
// in flat arrays indexed for exact lookup.
type loadSet struct {
	digests [][sha256.Size]byte
	expiry  []int64 // 0: dropped (canceled, or superseded by the lanes)
	at      []int64
	source  []byte
	// table is the index: 1 + a record's place in the arrays, 0 for an
	// empty slot, by linear probing from slotOf. Its length is a power
	// of two, 1 << (64 - shift), kept at most half full: under Yaegi each probe compares a
	// digest by reflection, and three quarters full cost a fifth more per
	// record staged (BenchmarkStage).
	table []int32
	shift uint
	seed  uint64
	// clients are the records staged with a client, counted against that
	// client's share (Options.OnFilled) when staging ends.
	clients []clientRec
	bits    []uint64 // the staging bitset; nil once copied into the live one
	drainAt int64    // when the tick starts the drain (Unix nanoseconds)
	// filled is how many records the drain has taken (some perhaps not yet
	// written; 0 before it starts); late holds updates of those
	// (syncOverlay), which the drain merges into the lanes after writing
	// what it took, so that its copy never overwrites them. All fields are
	// guarded by the store's mu.
	filled   int
	draining bool
	late     []record.Revocation
}

// A clientRec is a staged record's expiry and the client that revoked it.
type clientRec struct {
	expiry int64
	client [16]byte
}

// loadKey is the bytes 8 to 16 of a digest, the bytes that also choose its
// bit in the bitset, so that staging reads them once.
func loadKey(digest *[sha256.Size]byte) uint64 {
	return binary.LittleEndian.Uint64(digest[8:16])
}

// minTableShift makes the first table 1024 slots.
const minTableShift = 64 - 10

func newLoadSet(bits int) *loadSet {
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	// The slot is the high bits of the key times an odd number drawn at
	// start: digests chosen to share low bits (the bitset's) do not
	// share slots, and nobody outside knows which do.
	return &loadSet{
		table: make([]int32, 1<<(64-minTableShift)),
		shift: minTableShift,
		seed:  binary.LittleEndian.Uint64(seed[:]) | 1,
		bits:  make([]uint64, bits),
	}
}

// find is the place of digest's record in the arrays, or -1. The caller
// holds mu. Stage repeats its loop inline.
func (set *loadSet) find(digest *[sha256.Size]byte) int {
	mask := uint64(len(set.table) - 1)
	j := (loadKey(digest) * set.seed) >> set.shift
	for {
		k := set.table[j]
		if k == 0 {
			return -1
		}
		if set.digests[k-1] == *digest {
			return int(k - 1)
		}
		j = (j + 1) & mask
	}
}

// grow doubles the table and indexes every record again.
func (set *loadSet) grow() {
	set.shift--
	set.table = make([]int32, 1<<(64-set.shift))
	mask := uint64(len(set.table) - 1)
	for i := range set.digests {
		j := (binary.LittleEndian.Uint64(set.digests[i][8:16]) * set.seed) >> set.shift
		for set.table[j] != 0 {
			j = (j + 1) & mask
		}
		set.table[j] = int32(i + 1)
	}
}

// record is the segment's record i (without its pre-check key or client).
func (set *loadSet) record(i int) record.Revocation {
	return record.Revocation{Digest: set.digests[i], Expiry: set.expiry[i], At: set.at[i], Source: set.source[i]}
}

// StartLoading puts a new store, not yet shared, in the loading state: the
// live bitset all ones, so that every token leaves the hot path, the
// pre-check open, and an empty loadSet with its staging bitset.
func (s *Store) StartLoading() {
	for i := range s.filter {
		s.filter[i] = ^uint64(0)
	}
	s.overlay = newLoadSet(len(s.filter))
	s.staging = 1
	s.pre.setLoading(true)
}

// Stage adds a batch of loaded records, each marked as learned from
// source, to the loaded segment while staging. What a remembered
// tombstone cancels, and what has expired, is left out. It reports how
// many records were new and the longest life among them, from
// confirmation to expiry; ok is false, and nothing is done, once staging
// is over (or never began), or past the segment's bound: the caller then
// stores the records one by one. Its loop makes no interpreted call but the table's rare
// growth (each costs about 5 µs under Yaegi): the keys, slots and bits
// are computed inline.
func (s *Store) Stage(recs []record.Revocation, source byte) (staged int, longest int64, ok bool) {
	now := s.now().UnixNano()
	s.mu.Lock()
	set := s.overlay
	if set == nil || set.bits == nil {
		s.mu.Unlock()
		return 0, 0, false
	}
	if len(set.digests)+len(recs) > s.segLimit {
		// The bound: what the lanes admit together. The caller stores
		// these one by one (into the lanes, then the overflow map, which
		// has its own bound); counted, never dropped here.
		atomic.AddInt64(&s.counters.boundSegment, int64(len(recs)))
		s.mu.Unlock()
		return 0, 0, false
	}
	// The pre-check: a stamped record's key goes straight into the map of
	// loaded keys (Precheck.addBatch, inline); others go through addBatch
	// after.
	pre := s.pre
	pre.mu.Lock()
	loadedKeys := pre.loaded
	var fresh []record.Revocation
	// Nothing else reads the staging bitset while staging: plain writes.
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
		if 2*(len(set.digests)+1) > len(set.table) {
			set.grow()
		}
		// set.find, inline, leaving j at the empty slot when not found.
		mask := uint64(len(set.table) - 1)
		j := (key * set.seed) >> set.shift
		at := -1
		for {
			k := set.table[j]
			if k == 0 {
				break
			}
			if set.digests[k-1] == rec.Digest {
				at = int(k - 1)
				break
			}
			j = (j + 1) & mask
		}
		if at >= 0 {
			if rec.At == 0 {
				rec.KeyN = 0 // an old rule's key never keys the pre-check (merge)
			}
			// The later confirmation and the later expiry win; a record
			// dropped (expiry 0) is staged again as new.
			if rec.At > set.at[at] {
				set.at[at] = rec.At
			}
			if rec.Expiry > set.expiry[at] {
				set.expiry[at] = rec.Expiry
				// The pre-check must cover the longer life too.
				fresh = append(fresh, *rec)
			}
			continue
		}
		set.table[j] = int32(len(set.digests) + 1)
		if rec.Client != record.NoClient {
			set.clients = append(set.clients, clientRec{expiry: rec.Expiry, client: rec.Client})
		}
		set.digests = append(set.digests, rec.Digest)
		set.expiry = append(set.expiry, rec.Expiry)
		set.at = append(set.at, rec.At)
		set.source = append(set.source, source)
		staged++
		if loadedKeys != nil && rec.KeyN == KeyLen && rec.At != 0 {
			sec := uint32(maxExpirySec) // expirySec, inline
			if rec.Expiry < int64(maxExpirySec)*int64(time.Second) {
				sec = uint32((rec.Expiry + int64(time.Second) - 1) / int64(time.Second))
			}
			if loadedKeys[Key(rec.Key)] < sec {
				loadedKeys[Key(rec.Key)] = sec
			}
		} else {
			fresh = append(fresh, *rec)
		}
		bit := key & s.mask // filterBit, inline
		staging[bit>>6] |= uint64(1) << (bit & 63)
	}
	pre.mu.Unlock()
	if len(fresh) > 0 {
		pre.addBatch(fresh)
	}
	s.mu.Unlock()
	return staged, longest, true
}

// countClients counts staged records with a client against that client's
// share (Options.OnFilled), in the lane that would hold each, as if stored
// there. Its loop makes one interpreted call a record, the callback.
func (s *Store) countClients(recs []clientRec, now int64) {
	if s.onFilled == nil {
		return
	}
	var rec record.Revocation
	last := len(s.lanes) - 1
	for _, c := range recs {
		rec.Expiry = c.expiry
		rec.Client = c.client
		lifetime := time.Duration(c.expiry - now)
		i := 0 // laneFor, inline
		for i < last && s.lanes[i].window < lifetime {
			i++
		}
		s.onFilled(&rec, i, s.lanes[i].window)
	}
}

// EndStaging ends staging: the staging bitset becomes the live one, the
// loadSet the segment lookups consult, and the pre-check closes again. It
// does nothing when staging is over.
func (s *Store) EndStaging() {
	s.mu.Lock()
	set := s.overlay
	var clients []clientRec
	if set != nil && set.bits != nil {
		for i := range set.bits {
			atomic.StoreUint64(&s.filter[i], set.bits[i])
		}
		set.bits = nil
		atomic.StoreInt32(&s.staging, 0)
		set.trim()
		set.drainAt = drainTime(set.expiry, s.now().UnixNano())
		clients = set.clients
		set.clients = nil
		atomic.StoreInt64(&s.segment, int64(len(set.digests)))
	}
	s.mu.Unlock()
	s.pre.setLoading(false)
	if set != nil {
		s.countClients(clients, s.now().UnixNano())
		// What loading churned through (under Yaegi every interpreted
		// statement allocates) and the arrays trim replaced go back to
		// the OS now, not at the scavenger's pace.
		go ReleaseLoadGarbage()
	}
}

// trim gives back the arrays' spare capacity, which appending left (up to
// a quarter of their length).
func (set *loadSet) trim() {
	n := len(set.digests)
	if cap(set.digests)-n > n/16 {
		set.digests = append([][sha256.Size]byte(nil), set.digests...)
		set.expiry = append([]int64(nil), set.expiry...)
		set.at = append([]int64(nil), set.at...)
		set.source = append([]byte(nil), set.source...)
	}
}

// drainTime is when seven eighths of the expiries, by a sample of at most
// 1024 of them, have passed, and at least a minute from now.
func drainTime(expiry []int64, now int64) int64 {
	step := len(expiry)/1024 + 1
	var sample []float64
	for i := 0; i < len(expiry); i += step {
		sample = append(sample, float64(expiry[i]))
	}
	at := now + int64(time.Minute)
	if len(sample) > 0 {
		sort.Float64s(sample)
		if e := int64(sample[len(sample)*7/8]); e > at {
			at = e
		}
	}
	return at
}

// Drain starts moving the segment's live records into the lanes now, if
// there is a segment and its drain has not started; the tick calls it
// once the segment's drainAt has passed.
func (s *Store) Drain() {
	s.mu.Lock()
	set := s.overlay
	if set == nil || set.bits != nil || set.draining {
		s.mu.Unlock()
		return
	}
	set.draining = true
	s.mu.Unlock()
	go s.fill(set)
}

// drainDue reports whether the segment's drain is due.
func (s *Store) drainDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.overlay
	return set != nil && set.bits == nil && !set.draining && s.now().UnixNano() >= set.drainAt
}

// fill moves the segment's live records into the lanes, a batch at a time,
// then drops the segment. The bitset already holds their bits, and the
// pre-check their keys.
func (s *Store) fill(set *loadSet) {
	done := 0
	total := 0
	for {
		s.mu.Lock()
		late := set.late
		set.late = nil
		total = len(set.digests)
		end := done + 1000
		if end > total {
			end = total
		}
		set.filled = end
		if end == done {
			if len(late) > 0 {
				// Merge the last updates while the segment still answers
				// for them; drop it only once none is pending, so no
				// update is ever held by neither the segment nor the lanes.
				s.mu.Unlock()
				s.mergeLate(late)
				continue
			}
			s.overlay = nil
			atomic.StoreInt64(&s.segment, 0)
			s.mu.Unlock()
			break
		}
		now := s.now().UnixNano()
		batch := make([]record.Revocation, 0, end-done)
		places := make([]int, 0, end-done)
		for i := done; i < end; i++ {
			if set.expiry[i] > now {
				batch = append(batch, set.record(i))
				places = append(places, i)
			}
		}
		s.mu.Unlock()
		if s.fillTaken != nil {
			s.fillTaken()
		}
		// Updates of what earlier batches wrote, after those writes.
		s.mergeLate(late)
		for i := range batch {
			// Under the digest's lock, as merge writes: an update that
			// came since the batch was taken (in late) already wrote the
			// later expiry and confirmation into the lanes, and this
			// copy must not overwrite it; one that comes after finds
			// this copy there and takes over its slot. A tombstone
			// applied since is remembered: what it cancels stays out
			// (stillFills checks all three under one lock).
			mu := s.Lock(&batch[i].Digest)
			mu.Lock()
			if s.stillFills(set, places[i], &batch[i]) {
				s.putLoaded(&batch[i], now)
			}
			mu.Unlock()
		}
		done = end
		atomic.StoreInt64(&s.filling, int64(total-done))
	}
	atomic.StoreInt64(&s.filling, 0)
	ReleaseLoadGarbage()
}

// stillFills reports whether the drain still writes rec, the segment's
// record i, taken before: not once a tombstone removed it (its expiry 0),
// nor once an update wrote a later expiry into the lanes (it waits in
// late), nor once a remembered tombstone cancels it. A later confirmation
// merged since (updateAside) is taken into rec. The caller holds the
// digest's lock, which every update holds.
func (s *Store) stillFills(set *loadSet, i int, rec *record.Revocation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set.expiry[i] == 0 {
		return false
	}
	for j := range set.late {
		if set.late[j].Digest == rec.Digest {
			return false
		}
	}
	if set.at[i] > rec.At {
		rec.At = set.at[i]
	}
	return !s.canceledLocked(rec)
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

// overlayHas reports whether the segment holds a live record for digest.
func (s *Store) overlayHas(digest *[sha256.Size]byte, now int64) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.overlay
	if set == nil {
		return 0, false
	}
	i := set.find(digest)
	if i < 0 || set.expiry[i] <= now {
		return 0, false
	}
	return set.expiry[i], true
}

// Overlaid reports whether the loaded segment is still there (tests).
func (s *Store) Overlaid() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlay != nil
}

// Overlay is the segment's record of digest, if any (tests).
func (s *Store) Overlay(digest *[sha256.Size]byte) (record.Revocation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overlay == nil {
		return record.Revocation{}, false
	}
	i := s.overlay.find(digest)
	if i < 0 {
		return record.Revocation{}, false
	}
	return s.overlay.record(i), true
}

// SetFillTaken sets a function the drain calls after it takes a batch and
// before it writes it (tests).
func (s *Store) SetFillTaken(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fillTaken = fn
}
