package tokenrevocation

import (
	"log"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// Cold start. A replica must never accept a token that was revoked before it
// started, yet loading a large stream or file into bigcache is slow under
// Yaegi (a Set costs about 33 µs, so 1,000,000 entries take about 30 s). So
// loading happens in two phases, both off Traefik's goroutine (New never
// waits on them):
//
//  1. Staging. Each source (persistPath, the Redis stream) reads its records
//     into the store's loaded segment: flat arrays of digest, expiry,
//     confirmation and source, an open-addressing index, and a staging
//     bitset. This is cheap interpreted work. Meanwhile the live bitset is
//     all ones, so every request carrying a token leaves the hot path and is
//     held in serveSlow (awaitLoaded) for at most loadWait; requests without
//     a token pass.
//  2. Serving. Once every source has caught up, the staging bitset is
//     copied into the live one under the lock that store takes while
//     staging, and lookups consult the segment exactly (full digest
//     compare), so the replica answers correctly from this moment. Nothing
//     is copied into bigcache then: once most of the segment's records have
//     expired, a goroutine moves the survivors into bigcache and drops it
//     (internal/store, overlay.go).
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

// lifecycle is a denylist's loading state: state and loadingSources (the
// sources not yet loaded); loadedCh closes when loading ends and closed
// when the denylist does; stalled is set while failClosed keeps it closed;
// fileFailed and fileLoading describe the file's loading. loadTook is
// guarded by the denylist's mu.
type lifecycle struct {
	state          int32
	loadingSources int32
	loadedCh       chan struct{}
	closed         chan struct{}
	startedAt      time.Time
	loadTook       time.Duration
	stalled        int32
	fileFailed     int32
	fileLoading    int32
}

// startLoading puts a new denylist, not yet shared, in the loading state for
// n sources: its store stages what they load (store.StartLoading), and
// requests carrying a token are held until they have.
func (d *denylist) startLoading(n int) {
	d.store.StartLoading()
	d.life.state = stateLoading
	d.life.loadingSources = int32(n)
	d.life.loadedCh = make(chan struct{})
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
		atomic.StoreInt32(&d.life.fileFailed, 1)
		log.Printf("tokenrevocation: ERROR denylist %q: %v; retrying in %s", d.name, err, wait)
		select {
		case <-d.life.closed:
			return
		case <-time.After(wait):
		}
		set, err = d.persist.Load()
	}
	atomic.StoreInt32(&d.life.fileFailed, 0)
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
	atomic.StoreInt32(&d.life.fileLoading, 0)
	store.ReleaseLoadGarbage()
	d.sourceLoaded()
	go d.persist.CompactLoop(d.life.closed)
}

// stage adds a batch of loaded records: staged in the store while it loads
// (store.Stage), else stored one by one (loadDirect).
func (d *denylist) stage(recs []record.Revocation, source byte) {
	staged, longest, ok := d.store.Stage(recs, source)
	if !ok {
		d.loadDirect(recs, source)
		return
	}
	if longest > 0 {
		d.noteLife(longest, 1)
	}
	atomic.AddInt64(&d.count.loaded, int64(len(recs)))
	atomic.AddInt64(&d.count.recorded[source], int64(staged))
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
	now := d.opts.now().UnixNano()
	stored := int64(0)
	for i := range recs {
		if recs[i].Expiry <= now || d.store.Canceled(&recs[i]) {
			continue
		}
		recs[i].Source = source
		d.noteLife(recs[i].Expiry, recs[i].At)
		mu := d.store.Lock(&recs[i].Digest)
		mu.Lock()
		if d.store.Has(&recs[i].Digest) {
			h := d.store.Held(&recs[i].Digest)
			if d.store.MergeSync(&recs[i], &h, -1) {
				stored++
			}
			mu.Unlock()
			continue
		}
		{
			lane := d.store.Put(&recs[i])
			mu.Unlock()
			stored++
			if recs[i].Client != record.NoClient {
				// Confirmed on another replica, against its share there:
				// counted against the same share here.
				d.limiter.Count(limit.Key(recs[i].Client), lane, d.store.Window(lane), 1)
			}
		}
	}
	atomic.AddInt64(&d.count.loaded, int64(len(recs)))
	atomic.AddInt64(&d.count.recorded[source], stored)
}

// sourceLoaded marks one source as caught up. When it is the last, the
// denylist becomes ready.
func (d *denylist) sourceLoaded() {
	if atomic.AddInt32(&d.life.loadingSources, -1) == 0 {
		d.finishLoad(stateReady)
	}
}

// finishLoad ends staging (store.EndStaging: the store answers exactly
// from here on, from its loaded segment and its lanes), and held requests
// go on. It moves a degraded denylist to ready.
func (d *denylist) finishLoad(state int32) {
	d.mu.Lock()
	previous := atomic.LoadInt32(&d.life.state)
	if previous == stateReady || (previous == stateDegraded && state == stateDegraded) {
		d.mu.Unlock()
		return
	}
	d.store.EndStaging()
	atomic.StoreInt32(&d.life.state, state)
	if previous == stateLoading {
		d.life.loadTook = d.opts.now().Sub(d.life.startedAt)
		close(d.life.loadedCh)
	}
	d.mu.Unlock()
	if state == stateReady {
		log.Printf("tokenrevocation: denylist %q ready: %d revocations loaded in %s", d.name, atomic.LoadInt64(&d.count.loaded), d.opts.now().Sub(d.life.startedAt).Round(time.Millisecond))
	}
}

// isLoaded reports whether loading is over, ready or degraded.
func (d *denylist) isLoaded() bool {
	return atomic.LoadInt32(&d.life.state) != stateLoading
}

// awaitLoaded holds a request that carries a token until the denylist has
// loaded, for at most loadWait. It reports whether the request may go on.
func (d *denylist) awaitLoaded() bool {
	if atomic.LoadInt32(&d.life.state) != stateLoading {
		return true
	}
	if atomic.LoadInt32(&d.life.stalled) == 1 {
		// failClosed with a source that cannot load: answer at once.
		return false
	}
	t := time.NewTimer(d.opts.loadWait)
	defer t.Stop()
	select {
	case <-d.life.loadedCh:
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
	timer := time.NewTimer(d.opts.loadWait)
	select {
	case <-d.life.loadedCh:
		timer.Stop()
		return
	case <-timer.C:
	case <-d.life.closed:
		timer.Stop()
		return
	}
	lastLog := int64(0)
	// The stream's progress: a reader that is loading is not stalled by a
	// moment's disconnect (a 10,000,000-entry load under request load lost
	// its connection once and went degraded): only once it has staged
	// nothing new for loadWait.
	streamed := int64(0)
	progressAt := time.Now().Add(-d.opts.loadWait)
	for atomic.LoadInt32(&d.life.state) != stateReady {
		if n := atomic.LoadInt64(&d.count.recorded[sourceRedis]); n != streamed {
			streamed = n
			progressAt = time.Now()
		}
		if d.sourcesStalled(time.Since(progressAt) >= d.opts.loadWait) {
			if !d.opts.failClosed {
				d.finishLoad(stateDegraded)
			} else {
				atomic.StoreInt32(&d.life.stalled, 1)
			}
			if obs.WarnDue(&lastLog, time.Now().UnixNano()) {
				mode := "serving with what it has (not ready)"
				if d.opts.failClosed {
					mode = "refusing requests that carry a token with 503 (failClosed)"
				}
				log.Printf("tokenrevocation: ERROR denylist %q could not load its revocations within loadWait %s: %s; %d loaded so far", d.name, d.opts.loadWait, mode, atomic.LoadInt64(&d.count.loaded))
			}
		} else {
			atomic.StoreInt32(&d.life.stalled, 0)
		}
		select {
		case <-d.life.closed:
			return
		case <-time.After(time.Second):
		}
	}
}

// sourcesStalled reports whether a source that has not loaded cannot make
// progress: the file could not be read, or Redis is not connected and the
// stream has made no progress for loadWait (idle).
func (d *denylist) sourcesStalled(idle bool) bool {
	if atomic.LoadInt32(&d.life.fileFailed) == 1 {
		return true
	}
	if atomic.LoadInt32(&d.life.fileLoading) == 1 {
		// The file is still being read: what it holds is not yet staged,
		// and opening now would serve without it.
		return false
	}
	if d.replica == nil {
		return false
	}
	r := d.replica.Status()
	return !r.Ready && !r.Connected && idle
}
