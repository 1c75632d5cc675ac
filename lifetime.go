package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Lifetimes and order (README "Storage": lifetimes and order).
//
//   - A digest's revocations merge: the later expiry and the later
//     confirmation win, whichever source (the revoke endpoint, the admin API,
//     a grant or logout family, Redis, persistPath) delivers them and in
//     whatever order. A revocation never shortens a live one.
//   - Every revocation and tombstone carries the time it was confirmed: the
//     confirming replica's wall clock, in whole milliseconds, raised to the
//     latest tombstone time this replica has seen (stamp), so that what a
//     replica confirms after it applied an un-revoke is never ordered
//     before it. Records written before confirmation times load as
//     confirmed at time zero.
//   - A tombstone (unrevoke.go) names the latest confirmation the
//     un-revoking replica held (held). It cancels a revocation of its
//     digest confirmed at or before held, or more than leeway before the
//     tombstone itself. A revocation the un-revoking replica had not seen,
//     confirmed within leeway of the un-revoke, or any time after it,
//     stands: a clock skew of up to leeway between replicas never lets an
//     un-revoke cancel a later revocation, and when in doubt the token stays
//     revoked. Ties go to the revocation.
//   - Tombstones are remembered until everything they cancel has expired,
//     so that a canceled revocation arriving late (a partition healing, a
//     replica starting late, the file read after the stream) stays canceled.
//   - A JWT's revocation lives until its exp plus leeway. maxTTL bounds only
//     guessed lifetimes (opaque tokens, JWTs without exp). maxLifetime is the
//     longest life the store holds: a revoke whose revocation would outlive
//     it is refused with 503 before the identity service is called.

// defaultMaxLifetime is maxLifetime's default: a year.
const defaultMaxLifetime = 8760 * time.Hour

// laneWindows is the ladder of lane windows: fourfold from base, with a rung
// at maxTTL (where the guessed lifetimes end) and the last at maxLifetime.
func laneWindows(base, maxTTL, maxLifetime time.Duration) []time.Duration {
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

// stamp is a confirmation time for a record confirmed now.
func (d *denylist) stamp() int64 {
	now := d.now().UnixNano() / int64(time.Millisecond) * int64(time.Millisecond)
	if c := atomic.LoadInt64(&d.clock); c > now {
		return c
	}
	return now
}

// observe raises the clock to a tombstone's time, up to leeway and a
// minute ahead of this replica's clock: a stamp further ahead (a clock past
// the skew the replicas tolerate, or a forged record) must not pin every
// later stamp.
func (d *denylist) observe(at int64) {
	if limit := d.now().UnixNano() + int64(d.leeway+time.Minute); at > limit {
		at = limit
	}
	for {
		c := atomic.LoadInt64(&d.clock)
		if at <= c || atomic.CompareAndSwapInt64(&d.clock, c, at) {
			return
		}
	}
}

// noteLife keeps the longest lifetime recorded, from confirmation to
// expiry: the Redis stream is trimmed only past it (internal/replica).
func (d *denylist) noteLife(expiry, at int64) {
	if at <= 0 {
		return
	}
	life := expiry - at
	for {
		c := atomic.LoadInt64(&d.longestLife)
		if life <= c || atomic.CompareAndSwapInt64(&d.longestLife, c, life) {
			return
		}
	}
}

// A heldEntry is what the denylist holds for one digest: the latest expiry
// and the latest confirmation among its live entries.
type heldEntry struct {
	found  bool
	expiry int64
	at     int64
	source byte
	// lane holds the entry with the latest expiry, -1 when that is in the
	// overflow map or the loading overlay; lanes has a bit per lane that
	// holds an entry of the digest, live or not.
	lane  int
	lanes uint64
}

// held reports what the denylist holds for digest. The loading overlay is
// read first: the fill moves its records into the lanes, so read the other
// way round a record could be missed in both.
func (d *denylist) held(digest *[sha256.Size]byte) heldEntry {
	h := heldEntry{lane: -1}
	now := d.now().UnixNano()
	key := string(digest[:])
	d.mu.Lock()
	if set := d.overlay; set != nil {
		if i, ok := set.index[loadKey(digest)]; ok && set.recs[i].Digest == *digest && set.recs[i].Expiry > now {
			h.found = true
			h.expiry, h.at, h.source = set.recs[i].Expiry, set.recs[i].At, set.recs[i].Source
		}
	}
	d.mu.Unlock()
	for i, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil || len(value) < expirySize {
			continue
		}
		h.lanes |= uint64(1) << uint(i)
		expiry := int64(binary.BigEndian.Uint64(value))
		if expiry <= now {
			continue
		}
		h.found = true
		if expiry > h.expiry || (expiry == h.expiry && h.lane < 0) {
			// A lane wins a tie with the overlay: an update in place must
			// reach the copy that outlives the fill.
			h.expiry = expiry
			h.lane = i
			h.source = sourceUnknown
			if len(value) > expirySize {
				h.source = value[expirySize]
			}
		}
		if len(value) >= valueSize {
			if at := int64(binary.BigEndian.Uint64(value[expirySize+1:])); at > h.at {
				h.at = at
			}
		}
	}
	d.mu.Lock()
	if e, ok := d.overflow[key]; ok && e.expiry > now {
		h.found = true
		if e.expiry > h.expiry {
			// One assignment each: Yaegi v0.16.1 can lose a constant in a
			// multiple assignment.
			h.expiry = e.expiry
			h.lane = -1
			h.source = sourceUnknown
		}
		if e.at > h.at {
			h.at = e.at
		}
	}
	d.mu.Unlock()
	return h
}

// merge stores rec for a digest held as h: the later expiry and the later
// confirmation win. A new digest, or a later expiry, takes a slot (reserved,
// or one admission picks; none when it overwrites the digest's entry in the
// same lane, whose slot it takes over). A later confirmation alone rewrites
// the entry in place and costs no slot. It reports whether anything
// changed; rec then holds what is stored. A reservation it does not use is
// given back.
func (d *denylist) merge(rec *record.Revocation, h *heldEntry, reserved int) bool {
	if rec.At == 0 {
		// A record of the release before confirmation times: its key
		// follows that release's rule. Dropped before at is raised below,
		// so that it never keys the pre-check (precheckKey).
		rec.KeyN = 0
	}
	if h.found && rec.At < h.at {
		rec.At = h.at
	}
	switch {
	case !h.found || rec.Expiry > h.expiry:
		lifetime := time.Duration(rec.Expiry - d.now().UnixNano())
		i := reserved
		if i < 0 && lifetime <= d.lanes[len(d.lanes)-1].window {
			i = d.reserveOrForce(&rec.Digest, lifetime)
		}
		if i < 0 {
			d.store(rec)
		} else {
			if h.lanes&(uint64(1)<<uint(i)) != 0 {
				// bigcache overwrites that entry without calling onRemove:
				// its slot carries over to this one.
				d.unreserve(i, &rec.Digest)
			}
			d.put(rec, i)
		}
		if h.found {
			d.hot.Delete(string(rec.Digest[:]))
		}
		return true
	case rec.At > h.at:
		if reserved >= 0 {
			d.unreserve(reserved, &rec.Digest)
		}
		rec.Expiry = h.expiry
		if h.lane >= 0 {
			d.set(rec, h.lane)
		} else {
			d.updateAside(rec)
		}
		return true
	default:
		if reserved >= 0 {
			d.unreserve(reserved, &rec.Digest)
		}
		return false
	}
}

// digestLocks is how many stripes digestMu has: a power of two.
const digestLocks = 64

// digestLock is the stripe that serializes updates of digest's entry, so
// that two records of one digest at once cannot leave the shorter expiry.
func (d *denylist) digestLock(digest *[sha256.Size]byte) *sync.Mutex {
	return &d.digestMu[digest[1]&(digestLocks-1)]
}

// mergeSync is merge, followed, while loading, by the same update of the
// loading overlay's copy of the digest (syncOverlay): the fill must never
// write its older copy over what merge stored. The caller holds the
// digest's lock.
func (d *denylist) mergeSync(rec *record.Revocation, h *heldEntry, reserved int) bool {
	// merge wrote to the overlay itself (updateAside) when only the
	// confirmation was later and the overlay alone held the digest.
	aside := h.found && rec.Expiry <= h.expiry && h.lane < 0
	if !d.merge(rec, h, reserved) {
		return false
	}
	if !aside {
		d.syncOverlay(rec)
	}
	return true
}

// syncOverlay makes the loading overlay's copy of rec's digest, if any,
// yield to what merge stored in the lanes: one the fill has not taken yet
// is dropped (its expiry set to 0, which the fill skips); one it has taken
// is merged again after the fill writes it (loadSet.late).
func (d *denylist) syncOverlay(rec *record.Revocation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := d.overlay
	if set == nil {
		return
	}
	i, ok := set.index[loadKey(&rec.Digest)]
	if !ok || set.recs[i].Digest != rec.Digest || set.recs[i].Expiry == 0 {
		return
	}
	if int(i) < set.filled {
		set.late = append(set.late, *rec)
		return
	}
	set.recs[i].Expiry = 0
}

// updateAside raises the confirmation of a digest held in the overflow map
// or the loading overlay.
func (d *denylist) updateAside(rec *record.Revocation) {
	key := string(rec.Digest[:])
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.overflow[key]; ok && rec.At > e.at {
		e.at = rec.At
		d.overflow[key] = e
	}
	if set := d.overlay; set != nil {
		if i, ok := set.index[loadKey(&rec.Digest)]; ok && set.recs[i].Digest == rec.Digest && rec.At > set.recs[i].At {
			set.recs[i].At = rec.At
		}
	}
}

// maxTombstones bounds the tombstones remembered: un-revocations are admin
// operations, and one takes about 100 bytes.
const maxTombstones = 1 << 16

// rememberTombstone keeps t until it has nothing left to cancel, merged
// with one already kept for its digest. The caller holds mu. A full table
// (after expired ones are swept) keeps nothing and counts it.
func (d *denylist) rememberTombstone(t *record.Tombstone) {
	if d.tombs == nil {
		d.tombs = map[[sha256.Size]byte]record.Tombstone{}
	}
	old, ok := d.tombs[t.Digest]
	if !ok && len(d.tombs) >= maxTombstones {
		now := d.now().UnixNano()
		for k, v := range d.tombs {
			if v.Until <= now {
				delete(d.tombs, k)
			}
		}
		if len(d.tombs) >= maxTombstones {
			atomic.AddInt64(&d.boundTombstones, 1)
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
	d.tombs[t.Digest] = merged
	atomic.StoreInt32(&d.tombN, int32(len(d.tombs)))
}

// canceledLocked reports whether a remembered tombstone cancels rec. The
// caller holds mu.
func (d *denylist) canceledLocked(rec *record.Revocation) bool {
	if len(d.tombs) == 0 {
		return false
	}
	t, ok := d.tombs[rec.Digest]
	return ok && t.Until > d.now().UnixNano() && t.CancelsArrival(rec.At, d.leeway)
}

// canceled is canceledLocked for a caller without mu.
func (d *denylist) canceled(rec *record.Revocation) bool {
	if atomic.LoadInt32(&d.tombN) == 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.canceledLocked(rec)
}
