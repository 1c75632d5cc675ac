package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log"
	"sync/atomic"
	"time"
)

// Un-revoking (the admin API's unrevoke): a mistaken revocation is undone on
// every replica by a tombstone, record type tombstoneRecordType. Order is
// what makes it right: a tombstone cancels the revocations of its digest
// that came before it, in the stream and in persistPath, and a revocation
// after it revokes the token again. So the replicator writes tombstones in
// the same queue as revocations, and readers apply a batch in stream order.
// The previous release skips tombstones: it keeps enforcing what they undo.
//
// Undoing a revocation removes it from bigcache, the overflow map, the hot
// cache and the loading overlay. Its bit in the bitset stays set: a set bit
// only means "look it up", so this costs a lookup, never a wrong answer.

const (
	tombstoneRecordType    = 3
	tombstoneRecordVersion = 1
	// tombstoneSize is version, digest, time.
	tombstoneSize = 1 + sha256.Size + 8
	// sourceTombstone marks, in the replicator's queue, a tombstone among
	// the revocations (never stored, never counted).
	sourceTombstone byte = 0xFF
)

var errTombstone = errors.New("malformed tombstone")

func encodeTombstone(digest *[sha256.Size]byte, at int64) []byte {
	buf := make([]byte, tombstoneSize)
	buf[0] = tombstoneRecordVersion
	copy(buf[1:], digest[:])
	binary.BigEndian.PutUint64(buf[1+sha256.Size:], uint64(at))
	return buf
}

func decodeTombstone(buf []byte) ([sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	if len(buf) < tombstoneSize || buf[0] != tombstoneRecordVersion {
		return digest, errTombstone
	}
	copy(digest[:], buf[1:])
	return digest, nil
}

// unrevoke undoes the revocation of digest here, then persists and
// replicates the tombstone. It reports whether digest was revoked.
func (d *denylist) unrevoke(digest *[sha256.Size]byte) (bool, error) {
	held := d.remove(digest)
	var err error
	if d.persist != nil {
		err = d.persist.appendExtension(tombstoneRecordType, tombstoneRecordVersion, encodeTombstone(digest, d.now().UnixNano()))
	}
	if d.replica != nil {
		d.replica.enqueue(revocation{digest: *digest, expiry: d.now().UnixNano(), source: sourceTombstone})
	}
	atomic.AddInt64(&d.unrevoked[sourceAdmin], 1)
	return held, err
}

// applyTombstone applies a tombstone read from the stream or the file.
func (d *denylist) applyTombstone(ext *extension, source byte) {
	digest, err := decodeTombstone(ext.payload)
	if err != nil {
		return
	}
	if d.remove(&digest) {
		atomic.AddInt64(&d.unrevoked[source], 1)
		d.emit(&auditEvent{Event: "unrevocation", Source: sourceNames[source], Digest: digestPrefix(&digest)})
	}
	// Kept in this replica's file too, so that a restart that loads both
	// the file and the stream cannot bring back from the file what the
	// stream undid.
	if d.persist != nil && source == sourceRedis {
		if err := d.persist.appendExtension(tombstoneRecordType, tombstoneRecordVersion, ext.payload); err != nil {
			logTombstoneError(err)
		}
	}
}

// remove takes digest out of every store and reports whether it was live.
func (d *denylist) remove(digest *[sha256.Size]byte) bool {
	now := d.now().UnixNano()
	key := string(digest[:])
	held := false
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		if value, err := l.cache.Get(key); err == nil {
			held = held || (len(value) >= expirySize && int64(binary.BigEndian.Uint64(value)) > now)
			// onRemove gives the slot back.
			_ = l.cache.Delete(key)
		}
	}
	d.hot.Delete(key)
	d.mu.Lock()
	if expiry, ok := d.overflow[key]; ok {
		held = held || expiry > now
		delete(d.overflow, key)
		atomic.StoreInt32(&d.overflowN, int32(len(d.overflow)))
	}
	if set := d.overlay; set != nil {
		if at, ok := set.index[loadKey(digest)]; ok && set.recs[at].digest == *digest {
			held = held || set.recs[at].expiry > now
			set.recs[at].expiry = 0 // skipped by the fill and by lookups
		}
	}
	d.mu.Unlock()
	return held
}

// entry reports digest's expiry and source when it is revoked and live.
func (d *denylist) entry(digest *[sha256.Size]byte) (time.Time, byte, bool) {
	now := d.now().UnixNano()
	key := string(digest[:])
	for _, l := range d.lanes {
		if atomic.LoadInt32(&l.used) == 0 {
			continue
		}
		if value, err := l.cache.Get(key); err == nil && len(value) >= expirySize {
			if expiry := int64(binary.BigEndian.Uint64(value)); expiry > now {
				source := sourceUnknown
				if len(value) >= valueSize {
					source = value[expirySize]
				}
				return time.Unix(0, expiry), source, true
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if expiry, ok := d.overflow[key]; ok && expiry > now {
		return time.Unix(0, expiry), sourceUnknown, true
	}
	if set := d.overlay; set != nil {
		if at, ok := set.index[loadKey(digest)]; ok && set.recs[at].digest == *digest && set.recs[at].expiry > now {
			return time.Unix(0, set.recs[at].expiry), set.recs[at].source, true
		}
	}
	return time.Time{}, 0, false
}

// logTombstoneError logs a tombstone that could not be persisted.
func logTombstoneError(err error) {
	log.Printf("tokenrevocation: ERROR an un-revocation was applied but not persisted: %v", err)
}

// cancelBefore cancels (expiry 0) the revocations of a tombstone's digest
// read before it, and returns the index of revocations by digest, built at
// the first tombstone.
func cancelBefore(set *frameSet, payload []byte, byDigest map[[sha256.Size]byte][]int) map[[sha256.Size]byte][]int {
	digest, err := decodeTombstone(payload)
	if byDigest == nil {
		byDigest = make(map[[sha256.Size]byte][]int, len(set.recs))
		for i := range set.recs {
			byDigest[set.recs[i].digest] = append(byDigest[set.recs[i].digest], i)
		}
	}
	if err != nil {
		return byDigest
	}
	for _, i := range byDigest[digest] {
		set.recs[i].expiry = 0
	}
	delete(byDigest, digest)
	return byDigest
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
	for k, expiry := range d.overflow {
		if expiry > now && len(k) == sha256.Size {
			var rec revocation
			copy(rec.digest[:], k)
			rec.expiry = expiry
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
