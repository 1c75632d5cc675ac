package tokenrevocation

import (
	"crypto/sha256"
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
// The store (internal/store) removes what a tombstone cancels and remembers
// it against late arrivals.

// unrevoke undoes the revocation of digest here, then persists and
// replicates the tombstone. It reports whether digest was revoked.
func (d *denylist) unrevoke(digest *[sha256.Size]byte) (bool, error) {
	h := d.store.Held(digest)
	t := record.Tombstone{Digest: *digest, At: d.stamp(), Held: h.At}
	if t.At <= h.At {
		// After what it undoes, whatever the clocks of the replicas that
		// confirmed it.
		t.At = h.At + int64(time.Millisecond)
	}
	t.Until = t.At + int64(d.opts.maxTTL)
	if h.Expiry > t.Until {
		t.Until = h.Expiry
	}
	t.Until += int64(d.opts.leeway)
	held := d.cancel(&t)
	payload := record.EncodeTombstone(&t)
	err := d.journalExtension(record.TombstoneType, record.TombstoneVersion, payload)
	atomic.AddInt64(&d.count.unrevoked[sourceAdmin], 1)
	return held || h.Found, err
}

// applyTombstone applies a tombstone read from the stream or the file.
func (d *denylist) applyTombstone(ext *record.Extension, source byte) {
	t, err := record.DecodeTombstone(ext.Payload, d.opts.maxTTL, d.opts.leeway)
	if err != nil {
		atomic.AddInt64(&d.count.skipped.Malformed, 1)
		return
	}
	if d.cancel(&t) {
		atomic.AddInt64(&d.count.unrevoked[source], 1)
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

// cancel applies t (store.Cancel), after it raises the clock and the
// longest life. It reports whether a revocation it canceled was live.
func (d *denylist) cancel(t *record.Tombstone) bool {
	d.observe(t.At)
	// The stream is trimmed only past the longest life noted (internal/replica):
	// the tombstone must outlast a revocation it cancels that arrives late,
	// whether or not it cancels anything here.
	d.noteLife(t.Until, t.At)
	return d.store.Cancel(t)
}

// logTombstoneError logs a tombstone that could not be persisted.
func logTombstoneError(err error) {
	log.Printf("tokenrevocation: ERROR an un-revocation was applied but not persisted: %v", err)
}
