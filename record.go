package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
)

// The record format shared by persistPath and the Redis stream. Revocations
// are the first record type; grants, logout rules and pre-check keys will be
// others. Each format is extended so that old entries load in a new release
// and the previous release skips what it does not know.
//
// persistPath is a sequence of 40-byte frames. A frame whose last 8 bytes,
// read as a big-endian int64, are above zero is a revocation: the 32-byte
// SHA-256 digest of the token, then its expiry in Unix nanoseconds. This is
// the format every release so far has written. Any other frame is an
// extension frame: byte 32 is 0xFF (so the int64 is negative, and a release
// that knows only revocations reads an expired revocation and skips it),
// byte 33 the record type, byte 34 its version, byte 35 the frame's index in
// its record and byte 36 the record's frame count; bytes 0 to 32 carry the
// type's payload. A record of a type or version a release does not know is
// skipped whole.
//
// In the stream an entry with the fields d (hex digest) and e (expiry in
// Unix milliseconds) and no t field is a revocation, as every release so far
// has written it. Other record types carry t (type) and v (version) fields
// and their own; an entry whose t is not known is skipped, and the previous
// release, which reads only d and e, skips them too.
const (
	// frameSize is one persistPath frame.
	frameSize = sha256.Size + 8
	// extensionMarker is byte 32 of an extension frame.
	extensionMarker = 0xFF
)

// encodeRevocation is the frame of one revocation.
func encodeRevocation(rec *revocation) []byte {
	var buf [frameSize]byte
	copy(buf[:], rec.digest[:])
	binary.BigEndian.PutUint64(buf[sha256.Size:], uint64(rec.expiry))
	return buf[:]
}

// frameSet is what a persistPath file holds.
type frameSet struct {
	// recs are the revocations that expire after the time given to decodeFrames.
	recs []revocation
	// minExpiry is the earliest expiry of any revocation, expired ones
	// included; 0 when there is none.
	minExpiry int64
	// extensions are the extension frames, kept as they are so that a
	// rewrite by this release keeps the records of a newer one.
	extensions []byte
}

// decodeFrames reads the frames of buf. A torn last frame is ignored.
// Extension frames are kept aside: this release knows no extension type.
func decodeFrames(buf []byte, now int64) *frameSet {
	set := &frameSet{recs: make([]revocation, 0, len(buf)/frameSize)}
	for off := 0; off+frameSize <= len(buf); off += frameSize {
		expiry := int64(binary.BigEndian.Uint64(buf[off+sha256.Size : off+frameSize]))
		if expiry <= 0 {
			set.extensions = append(set.extensions, buf[off:off+frameSize]...)
			continue
		}
		if set.minExpiry == 0 || expiry < set.minExpiry {
			set.minExpiry = expiry
		}
		if expiry > now {
			var rec revocation
			copy(rec.digest[:], buf[off:off+sha256.Size])
			rec.expiry = expiry
			set.recs = append(set.recs, rec)
		}
	}
	return set
}
