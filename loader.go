package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"log"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Cold start. A replica must never accept a token that was revoked before it
// started, yet loading a large stream or file into bigcache is slow under
// Yaegi (a Set costs about 33 µs, so 1,000,000 entries take about 30 s). So
// loading happens in two phases, both off Traefik's goroutine (New never
// waits on them):
//
//  1. Staging. Each source (persistPath, the Redis stream) reads its records
//     into a loadSet: a slice of records, a map from 64 bits of each digest
//     to its place in the slice, and a staging bitset. This is cheap
//     interpreted work. Meanwhile the live bitset is all ones, so every
//     request carrying a token leaves the hot path and is held in serveSlow
//     (awaitLoaded) for at most loadWait; requests without a token pass.
//  2. Filling. Once every source has caught up, the staging bitset is copied
//     into the live one under the lock that store takes while staging, and
//     the loadSet becomes the overlay: lookups consult it exactly (full
//     digest compare), so the replica answers correctly from this moment.
//     A goroutine then moves the overlay's records into bigcache and drops
//     it when done.
//
// A source that cannot load (Redis unreachable, persistPath unreadable)
// keeps the denylist loading. Once loadWait has passed since start it
// either opens with what it has, reporting itself not ready and logging an
// ERROR at most once a minute (the default), or, with failClosed, keeps
// answering 503 to requests carrying a token until the source loads.
const (
	stateLoading  int32 = iota // sources are still loading: tokens are held
	stateReady                 // every source has loaded
	stateDegraded              // serving with what it has: a source could not load
)

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

// startLoading puts a new denylist, not yet shared, in the loading state for
// n sources: the live bitset all ones, so that every token leaves the hot
// path, and an empty loadSet with its staging bitset.
func (d *denylist) startLoading(n int) {
	for i := range d.filter {
		d.filter[i] = ^uint64(0)
	}
	d.overlay = &loadSet{index: map[uint64]int32{}, bits: make([]uint64, len(d.filter))}
	d.staging = 1
	d.pre.setLoading(true)
	d.state = stateLoading
	d.loadingSources = int32(n)
	d.loadedCh = make(chan struct{})
}

// loadFile loads the persistPath file, the first of the sources. A file
// that cannot be read is retried, backing off up to a minute, and marks the
// source stalled meanwhile (watchLoad); one still being read does not.
func (d *denylist) loadFile() {
	d.persist.SetRetention(d.retention())
	failures := 0
	set, err := d.persist.Load()
	for err != nil {
		// Doubling from 1 s while under a minute: 64 s at most.
		wait := obs.Backoff(failures, time.Second, 64*time.Second)
		failures++
		atomic.StoreInt32(&d.fileFailed, 1)
		log.Printf("tokenrevocation: ERROR denylist %q: %v; retrying in %s", d.name, err, wait)
		select {
		case <-d.closed:
			return
		case <-time.After(wait):
		}
		set, err = d.persist.Load()
	}
	atomic.StoreInt32(&d.fileFailed, 0)
	d.stage(set.Recs, sourceFile)
	for i := range set.Records {
		// The file's tombstones already dropped what they cancel in the
		// file (dropCanceled); applied here they cancel what the stream
		// holds confirmed before them, and nothing confirmed after.
		if set.Records[i].Type == record.TombstoneType {
			// One written before confirmation times orders by file
			// position, which dropCanceled has applied; applied again it
			// would cancel an unstamped re-revocation after it.
			if len(set.Records[i].Payload) >= record.TombstoneFullSize {
				d.applyTombstone(&set.Records[i], sourceFile)
			}
			continue
		}
		d.applyExtension(&set.Records[i])
	}
	atomic.StoreInt32(&d.fileLoading, 0)
	releaseLoadGarbage()
	d.sourceLoaded()
	go d.persist.CompactLoop(d.closed)
}

// stage adds a batch of loaded records: to the loadSet while staging, to the
// overlay while filling, else straight into the store. Its loop makes no
// interpreted call (each costs about 5 µs under Yaegi): the keys and bits
// are computed inline.
func (d *denylist) stage(recs []record.Revocation, source byte) {
	now := d.now().UnixNano()
	d.mu.Lock()
	set := d.overlay
	if set == nil {
		d.mu.Unlock()
		d.loadDirect(recs, source)
		return
	}
	staged := 0
	longest := int64(0)
	fresh := make([]record.Revocation, 0, 1024) // for the pre-check
	// While staging, nothing else reads the staging bitset: plain writes.
	// While filling, the live one is read by the hot path: atomic writes.
	staging := set.bits
	for i := range recs {
		rec := &recs[i]
		if rec.Expiry <= now {
			continue
		}
		if d.tombN > 0 && d.canceledLocked(rec) {
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
			d.pre.addBatch(fresh)
			fresh = fresh[:0]
		}
		fresh = append(fresh, *rec)
		bit := key & d.mask // filterBit, inline
		if staging != nil {
			staging[bit>>6] |= uint64(1) << (bit & 63)
		} else {
			// A compare-and-swap: a local revoke may set a bit of the same
			// word at the same time (markBit, without the lock).
			orBit(&d.filter[bit>>6], uint64(1)<<(bit&63))
		}
	}
	d.pre.addBatch(fresh)
	d.mu.Unlock()
	if longest > 0 {
		d.noteLife(longest, 1)
	}
	atomic.AddInt64(&d.loaded, int64(len(recs)))
	atomic.AddInt64(&d.recorded[source], int64(staged))
}

// applyExtension applies a loaded record of another type than a revocation:
// a grant joins its family, a logout's rules apply. A record it cannot
// read is skipped.
func (d *denylist) applyExtension(ext *record.Extension) {
	if ext.Type == record.TombstoneType {
		d.applyTombstone(ext, sourceRedis)
		return
	}
	if ext.Type == record.LogoutType {
		if rec, err := record.DecodeLogout(ext.Payload); err == nil {
			d.applyLogout(rec)
		}
		return
	}
	if ext.Type != record.GrantType {
		return
	}
	if rec, err := record.DecodeGrant(ext.Payload); err == nil {
		if _, tracked := d.grants.Add(rec, false); tracked && d.isLoaded() {
			d.revokeIfRevoked(rec)
		}
	}
}

// shareGrant persists and replicates a grant record learned here.
func (d *denylist) shareGrant(rec *record.Grant) {
	payload := rec.Encode()
	if err := d.journalExtension(record.GrantType, record.GrantVersion, payload); err != nil {
		log.Printf("tokenrevocation: ERROR a grant was tracked but not persisted: %v", err)
	}
}

// loadDirect stores records one by one, once bulk loading is over. A
// replica's own revocations come back through the stream: a record adds
// nothing to what is held unless it brings a later expiry or a later
// confirmation (merge), and what a remembered tombstone cancels is dropped.
// Every record read counts as loaded, echoes included.
func (d *denylist) loadDirect(recs []record.Revocation, source byte) {
	now := d.now().UnixNano()
	stored := int64(0)
	for i := range recs {
		if recs[i].Expiry <= now || d.canceled(&recs[i]) {
			continue
		}
		recs[i].Source = source
		d.noteLife(recs[i].Expiry, recs[i].At)
		mu := d.digestLock(&recs[i].Digest)
		mu.Lock()
		if d.has(&recs[i].Digest) {
			h := d.held(&recs[i].Digest)
			if d.mergeSync(&recs[i], &h, -1) {
				stored++
			}
			mu.Unlock()
			continue
		}
		{
			lane := d.store(&recs[i])
			mu.Unlock()
			stored++
			if recs[i].Client != ([16]byte{}) {
				// Confirmed on another replica, against its share there:
				// counted against the same share here.
				d.limiter.Count(limit.Key(recs[i].Client), lane, d.lanes[lane].window, 1)
			}
		}
	}
	atomic.AddInt64(&d.loaded, int64(len(recs)))
	atomic.AddInt64(&d.recorded[source], stored)
}

// sourceLoaded marks one source as caught up. When it is the last, the
// denylist becomes ready.
func (d *denylist) sourceLoaded() {
	if atomic.AddInt32(&d.loadingSources, -1) == 0 {
		d.finishLoad(stateReady)
	}
}

// finishLoad ends staging: the staging bitset becomes the live one, the
// loadSet becomes the overlay being filled into bigcache, held requests go
// on. It moves a degraded denylist to ready.
func (d *denylist) finishLoad(state int32) {
	d.mu.Lock()
	previous := atomic.LoadInt32(&d.state)
	if previous == stateReady || (previous == stateDegraded && state == stateDegraded) {
		d.mu.Unlock()
		return
	}
	set := d.overlay
	if set != nil && set.bits != nil {
		for i := range set.bits {
			atomic.StoreUint64(&d.filter[i], set.bits[i])
		}
		set.bits = nil
		atomic.StoreInt32(&d.staging, 0)
		atomic.StoreInt64(&d.filling, int64(len(set.recs)))
		go d.fill(set)
	}
	atomic.StoreInt32(&d.state, state)
	d.pre.setLoading(false)
	if previous == stateLoading {
		d.loadTook = d.now().Sub(d.startedAt)
		close(d.loadedCh)
	}
	d.mu.Unlock()
	if state == stateReady {
		log.Printf("tokenrevocation: denylist %q ready: %d revocations loaded in %s", d.name, atomic.LoadInt64(&d.loaded), d.now().Sub(d.startedAt).Round(time.Millisecond))
	}
}

// fill moves the overlay's records into bigcache, a batch at a time, then
// drops the overlay. The bitset already holds their bits.
func (d *denylist) fill(set *loadSet) {
	done := 0
	for {
		d.mu.Lock()
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
				d.mu.Unlock()
				d.mergeLate(late)
				continue
			}
			d.overlay = nil
			d.mu.Unlock()
			break
		}
		batch = append([]record.Revocation(nil), batch...)
		total := len(set.recs)
		d.mu.Unlock()
		if d.fillTaken != nil {
			d.fillTaken()
		}
		// Updates of what earlier batches wrote, after those writes.
		d.mergeLate(late)
		now := d.now().UnixNano()
		for i := range batch {
			// A tombstone applied since the batch was copied is remembered:
			// what it cancels stays out.
			if batch[i].Expiry > now && !d.canceled(&batch[i]) {
				d.putLoaded(&batch[i], now)
			}
		}
		done += len(batch)
		atomic.StoreInt64(&d.filling, int64(total-done))
	}
	atomic.StoreInt64(&d.filling, 0)
	releaseLoadGarbage()
}

// mergeLate merges updates the fill took after it wrote their records.
func (d *denylist) mergeLate(late []record.Revocation) {
	for i := range late {
		if d.canceled(&late[i]) {
			continue
		}
		mu := d.digestLock(&late[i].Digest)
		mu.Lock()
		h := d.held(&late[i].Digest)
		d.merge(&late[i], &h, -1)
		mu.Unlock()
	}
}

// overlayHas reports whether the overlay holds a live record for digest.
func (d *denylist) overlayHas(digest *[sha256.Size]byte, now int64) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := d.overlay
	if set == nil {
		return 0, false
	}
	at, ok := set.index[loadKey(digest)]
	if !ok || set.recs[at].Digest != *digest || set.recs[at].Expiry <= now {
		return 0, false
	}
	return set.recs[at].Expiry, true
}

// isLoaded reports whether loading is over, ready or degraded.
func (d *denylist) isLoaded() bool {
	return atomic.LoadInt32(&d.state) != stateLoading
}

// awaitLoaded holds a request that carries a token until the denylist has
// loaded, for at most loadWait. It reports whether the request may go on.
func (d *denylist) awaitLoaded() bool {
	if atomic.LoadInt32(&d.state) != stateLoading {
		return true
	}
	if atomic.LoadInt32(&d.stalled) == 1 {
		// failClosed with a source that cannot load: answer at once.
		return false
	}
	t := time.NewTimer(d.loadWait)
	defer t.Stop()
	select {
	case <-d.loadedCh:
		return true
	case <-t.C:
		return false
	}
}

// watchLoad runs while the denylist loads. Once loadWait has passed, a
// source that cannot load (a stalled source) opens the denylist with what it
// has, or with failClosed keeps it closed; either way it logs an ERROR at
// most once a minute until every source has loaded.
func (d *denylist) watchLoad() {
	timer := time.NewTimer(d.loadWait)
	select {
	case <-d.loadedCh:
		timer.Stop()
		return
	case <-timer.C:
	case <-d.closed:
		timer.Stop()
		return
	}
	lastLog := int64(0)
	for atomic.LoadInt32(&d.state) != stateReady {
		if d.sourcesStalled() {
			if !d.failClosed {
				d.finishLoad(stateDegraded)
			} else {
				atomic.StoreInt32(&d.stalled, 1)
			}
			if obs.WarnDue(&lastLog, time.Now().UnixNano()) {
				mode := "serving with what it has (not ready)"
				if d.failClosed {
					mode = "refusing requests that carry a token with 503 (failClosed)"
				}
				log.Printf("tokenrevocation: ERROR denylist %q could not load its revocations within loadWait %s: %s; %d loaded so far", d.name, d.loadWait, mode, atomic.LoadInt64(&d.loaded))
			}
		} else {
			atomic.StoreInt32(&d.stalled, 0)
		}
		select {
		case <-d.closed:
			return
		case <-time.After(time.Second):
		}
	}
}

// sourcesStalled reports whether a source that has not loaded cannot make
// progress: the file could not be read, or Redis is not connected.
func (d *denylist) sourcesStalled() bool {
	if atomic.LoadInt32(&d.fileFailed) == 1 {
		return true
	}
	if atomic.LoadInt32(&d.fileLoading) == 1 {
		// The file is still being read: what it holds is not yet staged,
		// and opening now would serve without it.
		return false
	}
	if d.replica == nil {
		return false
	}
	r := d.replica.Status()
	return !r.Ready && !r.Connected
}
