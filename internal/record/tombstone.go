package record

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// A tombstone record (TombstoneType) un-revokes a digest on every replica.
// Time, not arrival, decides what it undoes: it cancels the revocations of
// its digest confirmed before it, and a revocation confirmed after it
// stands, in whatever order the stream, the file or a late replica
// delivers them. The previous release skips tombstones of other versions
// and reads this version's first 41 bytes.
const (
	// TombstoneType is the record type of a tombstone.
	TombstoneType = 3
	// TombstoneVersion is its encoding's version.
	TombstoneVersion = 1
	// TombstoneSize is version, digest, time: what every release reads.
	// TombstoneFullSize adds held and until (lifetime.go), written from
	// this release on.
	TombstoneSize     = 1 + sha256.Size + 8
	TombstoneFullSize = TombstoneSize + 16
)

// ErrTombstone is a tombstone that does not decode.
var ErrTombstone = errors.New("malformed tombstone")

// EncodeTombstone is the payload of a tombstone record.
func EncodeTombstone(t *Tombstone) []byte {
	buf := make([]byte, TombstoneFullSize)
	buf[0] = TombstoneVersion
	copy(buf[1:], t.Digest[:])
	binary.BigEndian.PutUint64(buf[1+sha256.Size:], uint64(t.At))
	binary.BigEndian.PutUint64(buf[TombstoneSize:], uint64(t.Held))
	binary.BigEndian.PutUint64(buf[TombstoneSize+8:], uint64(t.Until))
	return buf
}

// DecodeTombstone reads a tombstone. One written before confirmation times
// (41 bytes) cancels what was confirmed before it, and is kept for maxTTL
// plus leeway after it: the longest life its release recorded.
func DecodeTombstone(buf []byte, maxTTL, leeway time.Duration) (Tombstone, error) {
	var t Tombstone
	if len(buf) < TombstoneSize || buf[0] != TombstoneVersion {
		return t, ErrTombstone
	}
	copy(t.Digest[:], buf[1:])
	t.At = int64(binary.BigEndian.Uint64(buf[1+sha256.Size:]))
	if len(buf) >= TombstoneFullSize {
		t.Held = int64(binary.BigEndian.Uint64(buf[TombstoneSize:]))
		t.Until = int64(binary.BigEndian.Uint64(buf[TombstoneSize+8:]))
	} else {
		t.Held = t.At - 1
		t.Until = t.At + int64(maxTTL+leeway)
		t.Legacy = true
	}
	if t.At <= 0 {
		return t, ErrTombstone
	}
	return t, nil
}

// A Tombstone is an un-revocation (the admin API's unrevoke): it cancels
// the revocations of its digest confirmed before it.
type Tombstone struct {
	Digest [sha256.Size]byte
	// At is when it was confirmed; Held the latest confirmation of the
	// digest the un-revoking replica held (0: none); Until when everything
	// it can cancel has expired.
	At, Held, Until int64
	// Legacy: written before confirmation times (41 bytes). It cancels
	// what this replica holds confirmed before it, unstamped records
	// included, as its release did; an unstamped record that arrives after
	// it came after it in the stream or the file, and stands.
	Legacy bool
}

// Cancels reports whether t cancels a revocation confirmed at at.
func (t *Tombstone) Cancels(at int64, leeway time.Duration) bool {
	return at <= t.Held || at < t.At-int64(leeway)
}

// CancelsArrival is Cancels for a revocation that arrives after t was
// applied.
func (t *Tombstone) CancelsArrival(at int64, leeway time.Duration) bool {
	if t.Legacy && at == 0 {
		return false
	}
	return t.Cancels(at, leeway)
}
