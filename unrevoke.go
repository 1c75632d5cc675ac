package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"log"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Un-revoking (the admin API's unrevoke): a mistaken revocation is undone on
// every replica by a tombstone, record type tombstoneRecordType. Time, not
// arrival, decides what it undoes (lifetime.go): a tombstone cancels the
// revocations of its digest confirmed before it, and a revocation confirmed
// after it stands, in whatever order the stream, the file or a late
// replica delivers them. The previous release skips tombstones of other
// versions and reads this version's first 41 bytes: it keeps enforcing
// what they undo, or undoes in stream order, as it always did.
//
// Undoing a revocation removes it from bigcache, the overflow map, the hot
// cache and the loading overlay. Its bit in the bitset stays set: a set bit
// only means "look it up", so this costs a lookup, never a wrong answer.

// unrevoke undoes the revocation of digest here, then persists and
// replicates the tombstone. It reports whether digest was revoked.
func (d *denylist) unrevoke(digest *[sha256.Size]byte) (bool, error) {
	h := d.held(digest)
	t := record.Tombstone{Digest: *digest, At: d.stamp(), Held: h.at}
	if t.At <= h.at {
		// After what it undoes, whatever the clocks of the replicas that
		// confirmed it.
		t.At = h.at + int64(time.Millisecond)
	}
	t.Until = t.At + int64(d.maxTTL)
	if h.expiry > t.Until {
		t.Until = h.expiry
	}
	t.Until += int64(d.leeway)
	held := d.cancel(&t)
	payload := record.EncodeTombstone(&t)
	err := d.journalExtension(record.TombstoneType, record.TombstoneVersion, payload)
	atomic.AddInt64(&d.unrevoked[sourceAdmin], 1)
	return held || h.found, err
}

// applyTombstone applies a tombstone read from the stream or the file.
func (d *denylist) applyTombstone(ext *record.Extension, source byte) {
	t, err := record.DecodeTombstone(ext.Payload, d.maxTTL, d.leeway)
	if err != nil {
		atomic.AddInt64(&d.skipped.Malformed, 1)
		return
	}
	if d.cancel(&t) {
		atomic.AddInt64(&d.unrevoked[source], 1)
		d.emit(&obs.AuditEvent{Event: "unrevocation", Source: sourceNames[source], Digest: digestPrefix(&t.Digest)})
	}
	// Kept in this replica's file too, so that a restart whose stream was
	// trimmed still cancels what the file holds.
	if source == sourceRedis {
		if err := d.journalFile(record.TombstoneType, record.TombstoneVersion, ext.Payload); err != nil {
			logTombstoneError(err)
		}
	}
}

// cancel applies t: it is remembered first (so that a revocation it cancels
// staged at the same time is dropped), then the revocations it cancels are
// removed from every store. It reports whether one was live.
func (d *denylist) cancel(t *record.Tombstone) bool {
	d.observe(t.At)
	// The stream is trimmed only past the longest life noted (internal/replica):
	// the tombstone must outlast a revocation it cancels that arrives late,
	// whether or not it cancels anything here.
	d.noteLife(t.Until, t.At)
	d.mu.Lock()
	if t.Until > d.now().UnixNano() {
		d.rememberTombstone(t)
	}
	d.mu.Unlock()
	return d.remove(t)
}

// remove takes the revocations t cancels out of every store and reports
// whether one was live.
func (d *denylist) remove(t *record.Tombstone) bool {
	now := d.now().UnixNano()
	key := string(t.Digest[:])
	held := false
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		value, err := l.cache.Get(key)
		if err != nil {
			continue
		}
		at := int64(0)
		if len(value) >= valueSize {
			at = int64(binary.BigEndian.Uint64(value[expirySize+1:]))
		}
		if !t.Cancels(at, d.leeway) {
			continue
		}
		held = held || (len(value) >= expirySize && int64(binary.BigEndian.Uint64(value)) > now)
		// onRemove gives the slot back.
		_ = l.cache.Delete(key)
	}
	d.hot.Delete(key)
	d.mu.Lock()
	if e, ok := d.overflow[key]; ok && t.Cancels(e.at, d.leeway) {
		held = held || e.expiry > now
		delete(d.overflow, key)
		atomic.StoreInt32(&d.overflowN, int32(len(d.overflow)))
	}
	if set := d.overlay; set != nil {
		if i, ok := set.index[loadKey(&t.Digest)]; ok && set.recs[i].Digest == t.Digest && t.Cancels(set.recs[i].At, d.leeway) {
			held = held || set.recs[i].Expiry > now
			set.recs[i].Expiry = 0 // skipped by the fill and by lookups
		}
	}
	d.mu.Unlock()
	return held
}

// logTombstoneError logs a tombstone that could not be persisted.
func logTombstoneError(err error) {
	log.Printf("tokenrevocation: ERROR an un-revocation was applied but not persisted: %v", err)
}

// each calls fn with every live revocation: bigcache's lanes, the overflow
// map and the loading overlay. A digest may come twice while the overlay is
// being filled into bigcache.
func (d *denylist) each(fn func(digest []byte, expiry int64)) {
	now := d.now().UnixNano()
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		it := l.cache.Iterator()
		for it.SetNext() {
			entry, err := it.Value()
			if err != nil || len(entry.Value()) < expirySize || len(entry.Key()) != sha256.Size {
				continue
			}
			if expiry := int64(binary.BigEndian.Uint64(entry.Value())); expiry > now {
				fn([]byte(entry.Key()), expiry)
			}
		}
	}
	d.mu.Lock()
	var extra []record.Revocation
	for k, e := range d.overflow {
		if e.expiry > now && len(k) == sha256.Size {
			var rec record.Revocation
			copy(rec.Digest[:], k)
			rec.Expiry = e.expiry
			extra = append(extra, rec)
		}
	}
	if set := d.overlay; set != nil {
		for i := range set.recs {
			if set.recs[i].Expiry > now {
				extra = append(extra, set.recs[i])
			}
		}
	}
	d.mu.Unlock()
	for i := range extra {
		fn(extra[i].Digest[:], extra[i].Expiry)
	}
}
