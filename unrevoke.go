package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
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

const (
	tombstoneRecordType    = 3
	tombstoneRecordVersion = 1
	// tombstoneSize is version, digest, time: what every release reads.
	// tombstoneFullSize adds held and until (lifetime.go), written from
	// this release on.
	tombstoneSize     = 1 + sha256.Size + 8
	tombstoneFullSize = tombstoneSize + 16
)

var errTombstone = errors.New("malformed tombstone")

func encodeTombstone(t *tombstone) []byte {
	buf := make([]byte, tombstoneFullSize)
	buf[0] = tombstoneRecordVersion
	copy(buf[1:], t.digest[:])
	binary.BigEndian.PutUint64(buf[1+sha256.Size:], uint64(t.at))
	binary.BigEndian.PutUint64(buf[tombstoneSize:], uint64(t.held))
	binary.BigEndian.PutUint64(buf[tombstoneSize+8:], uint64(t.until))
	return buf
}

// decodeTombstone reads a tombstone. One written before confirmation times
// (41 bytes) cancels what was confirmed before it, and is kept for maxTTL
// plus leeway after it: the longest life its release recorded.
func decodeTombstone(buf []byte, maxTTL, leeway time.Duration) (tombstone, error) {
	var t tombstone
	if len(buf) < tombstoneSize || buf[0] != tombstoneRecordVersion {
		return t, errTombstone
	}
	copy(t.digest[:], buf[1:])
	t.at = int64(binary.BigEndian.Uint64(buf[1+sha256.Size:]))
	if len(buf) >= tombstoneFullSize {
		t.held = int64(binary.BigEndian.Uint64(buf[tombstoneSize:]))
		t.until = int64(binary.BigEndian.Uint64(buf[tombstoneSize+8:]))
	} else {
		t.held = t.at - 1
		t.until = t.at + int64(maxTTL+leeway)
		t.legacy = true
	}
	if t.at <= 0 {
		return t, errTombstone
	}
	return t, nil
}

// unrevoke undoes the revocation of digest here, then persists and
// replicates the tombstone. It reports whether digest was revoked.
func (d *denylist) unrevoke(digest *[sha256.Size]byte) (bool, error) {
	h := d.held(digest)
	t := tombstone{digest: *digest, at: d.stamp(), held: h.at}
	if t.at <= h.at {
		// After what it undoes, whatever the clocks of the replicas that
		// confirmed it.
		t.at = h.at + int64(time.Millisecond)
	}
	t.until = t.at + int64(d.maxTTL)
	if h.expiry > t.until {
		t.until = h.expiry
	}
	t.until += int64(d.leeway)
	held := d.cancel(&t)
	payload := encodeTombstone(&t)
	var err error
	if d.persist != nil {
		err = d.persist.appendExtension(tombstoneRecordType, tombstoneRecordVersion, payload)
	}
	if d.replica != nil {
		d.replica.enqueueExtension(extension{typ: tombstoneRecordType, version: tombstoneRecordVersion, payload: payload})
	}
	atomic.AddInt64(&d.unrevoked[sourceAdmin], 1)
	return held || h.found, err
}

// applyTombstone applies a tombstone read from the stream or the file.
func (d *denylist) applyTombstone(ext *extension, source byte) {
	t, err := decodeTombstone(ext.payload, d.maxTTL, d.leeway)
	if err != nil {
		atomic.AddInt64(&d.skipped.Malformed, 1)
		return
	}
	if d.cancel(&t) {
		atomic.AddInt64(&d.unrevoked[source], 1)
		d.emit(&obs.AuditEvent{Event: "unrevocation", Source: sourceNames[source], Digest: digestPrefix(&t.digest)})
	}
	// Kept in this replica's file too, so that a restart whose stream was
	// trimmed still cancels what the file holds.
	if d.persist != nil && source == sourceRedis {
		if err := d.persist.appendExtension(tombstoneRecordType, tombstoneRecordVersion, ext.payload); err != nil {
			logTombstoneError(err)
		}
	}
}

// cancel applies t: it is remembered first (so that a revocation it cancels
// staged at the same time is dropped), then the revocations it cancels are
// removed from every store. It reports whether one was live.
func (d *denylist) cancel(t *tombstone) bool {
	d.observe(t.at)
	// The stream is trimmed only past the longest life noted (replicate.go):
	// the tombstone must outlast a revocation it cancels that arrives late,
	// whether or not it cancels anything here.
	d.noteLife(t.until, t.at)
	d.mu.Lock()
	if t.until > d.now().UnixNano() {
		d.rememberTombstone(t)
	}
	d.mu.Unlock()
	return d.remove(t)
}

// remove takes the revocations t cancels out of every store and reports
// whether one was live.
func (d *denylist) remove(t *tombstone) bool {
	now := d.now().UnixNano()
	key := string(t.digest[:])
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
		if !t.cancels(at, d.leeway) {
			continue
		}
		held = held || (len(value) >= expirySize && int64(binary.BigEndian.Uint64(value)) > now)
		// onRemove gives the slot back.
		_ = l.cache.Delete(key)
	}
	d.hot.Delete(key)
	d.mu.Lock()
	if e, ok := d.overflow[key]; ok && t.cancels(e.at, d.leeway) {
		held = held || e.expiry > now
		delete(d.overflow, key)
		atomic.StoreInt32(&d.overflowN, int32(len(d.overflow)))
	}
	if set := d.overlay; set != nil {
		if i, ok := set.index[loadKey(&t.digest)]; ok && set.recs[i].digest == t.digest && t.cancels(set.recs[i].at, d.leeway) {
			held = held || set.recs[i].expiry > now
			set.recs[i].expiry = 0 // skipped by the fill and by lookups
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
	var extra []revocation
	for k, e := range d.overflow {
		if e.expiry > now && len(k) == sha256.Size {
			var rec revocation
			copy(rec.digest[:], k)
			rec.expiry = e.expiry
			extra = append(extra, rec)
		}
	}
	if set := d.overlay; set != nil {
		for i := range set.recs {
			if set.recs[i].expiry > now {
				extra = append(extra, set.recs[i])
			}
		}
	}
	d.mu.Unlock()
	for i := range extra {
		fn(extra[i].digest[:], extra[i].expiry)
	}
}
