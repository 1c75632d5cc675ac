package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
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
// its record, byte 36 the record's frame count and byte 37 how many of the
// frame's first 32 bytes carry the record's payload. A record's frames are
// written together. A record of a type a release does not know is kept as
// it is by a rewrite and otherwise skipped; type 1 is a grant (grants.go),
// type 2 a back-channel logout (logout.go), type 3 a tombstone
// (unrevoke.go), which cancels the revocations of its digest confirmed
// before it, type 4 a revocation's pre-check key and type 5 its
// confirmation time (lifetime.go), each in one frame right after the
// revocation's frame (the key first). A revocation with no type 5 frame,
// as every release before confirmation times wrote it, loads as confirmed
// at time zero.
//
// In the stream an entry with the fields d (hex digest) and e (expiry in
// Unix milliseconds) and no t field is a revocation, as every release so far
// has written it; a (its confirmation time in Unix milliseconds), k (its
// pre-check key) and c (its client's tag) are optional. Other record types carry t (type) and v (version) fields
// and their own; an entry whose t is not known is skipped, and the previous
// release, which reads only d and e, skips them too.
const (
	// frameSize is one persistPath frame.
	frameSize = sha256.Size + 8
	// extensionMarker is byte 32 of an extension frame.
	extensionMarker = 0xFF
)

// encodeRevocation is the frame of one revocation, followed, when its
// pre-check key is known, by the key's frame, and when its confirmation
// time is, by the time's frame.
func encodeRevocation(rec *revocation) []byte {
	var buf [3 * frameSize]byte
	copy(buf[:], rec.digest[:])
	binary.BigEndian.PutUint64(buf[sha256.Size:], uint64(rec.expiry))
	n := frameSize
	if rec.keyN == keyLen {
		var payload [keyRecordSize]byte
		copy(payload[:], rec.key[:])
		copy(payload[keyLen:], rec.digest[:8])
		copy(buf[n:], encodeExtension(keyRecordType, keyRecordVersion, payload[:]))
		n += frameSize
	}
	if rec.at > 0 {
		var payload [stampRecordSize]byte
		binary.BigEndian.PutUint64(payload[:], uint64(rec.at))
		copy(payload[8:], rec.digest[:8])
		copy(buf[n:], encodeExtension(stampRecordType, stampRecordVersion, payload[:]))
		n += frameSize
	}
	return buf[:n]
}

// A stamp record (type stampRecordType) is a revocation's confirmation
// time: Unix nanoseconds, then the first 8 bytes of the digest, in one
// extension frame after the revocation's frame (and its key's).
const (
	stampRecordType    = 5
	stampRecordVersion = 1
	stampRecordSize    = 16
)

// A key record (type keyRecordType) is a revocation's pre-check key
// (precheck.go): the key, then the first 8 bytes of the digest, in one
// extension frame right after the revocation's frame.
const (
	keyRecordType    = 4
	keyRecordVersion = 1
	keyRecordSize    = keyLen + 8
)

// An extension is one record of another type than a revocation.
type extension struct {
	typ, version byte
	payload      []byte
	// pos is, in a persistPath file or an XREAD reply, how many
	// revocations came before it:
	// a tombstone written before confirmation times cancels the unstamped
	// revocations before it, not those after it (dropCanceled).
	pos int
}

// encodeExtension is the frames of one record of type typ.
func encodeExtension(typ, version byte, payload []byte) []byte {
	count := (len(payload) + sha256.Size - 1) / sha256.Size
	if count == 0 {
		count = 1
	}
	out := make([]byte, 0, count*frameSize)
	for i := 0; i < count; i++ {
		var frame [frameSize]byte
		chunk := payload[i*sha256.Size:]
		if len(chunk) > sha256.Size {
			chunk = chunk[:sha256.Size]
		}
		copy(frame[:], chunk)
		frame[32], frame[33], frame[34] = extensionMarker, typ, version
		frame[35], frame[36], frame[37] = byte(i), byte(count), byte(len(chunk))
		out = append(out, frame[:]...)
	}
	return out
}

// frameSet is what a persistPath file holds.
type frameSet struct {
	// recs are the revocations that expire after the time given to decodeFrames.
	recs []revocation
	// minExpiry is the earliest expiry of any revocation, expired ones
	// included; 0 when there is none.
	minExpiry int64
	// extensions are the frames of record types this release does not
	// know, kept as they are so that a rewrite keeps a newer release's records.
	extensions []byte
	// records are the extension records of known types, whole.
	records []extension
}

// knownExtension reports whether this release reads records of type typ.
func knownExtension(typ byte) bool {
	return typ == grantRecordType || typ == logoutRecordType || typ == tombstoneRecordType || typ == keyRecordType || typ == stampRecordType
}

// decodeFrames reads the frames of buf. A torn last frame is ignored.
// Extension frames are kept aside: this release knows no extension type.
func decodeFrames(buf []byte, now int64) *frameSet {
	set := &frameSet{recs: make([]revocation, 0, len(buf)/frameSize)}
	var open *extension
	next := 0
	prev := -1 // the revocation the previous frames belong to, for its key and time frames
	for off := 0; off+frameSize <= len(buf); off += frameSize {
		expiry := int64(binary.BigEndian.Uint64(buf[off+sha256.Size : off+frameSize]))
		if expiry <= 0 {
			frame := buf[off : off+frameSize]
			if frame[32] == extensionMarker && frame[33] == keyRecordType && frame[34] == keyRecordVersion && frame[36] == 1 {
				// A revocation's pre-check key: it counts only right after
				// the revocation whose digest it names (a release that
				// does not know it may have moved it on a rewrite).
				if prev >= 0 && frame[37] >= keyRecordSize && string(frame[keyLen:keyLen+8]) == string(set.recs[prev].digest[:8]) {
					set.recs[prev].setKey(string(frame[:keyLen]))
					continue // the time frame may follow
				}
				prev = -1
				continue
			}
			if frame[32] == extensionMarker && frame[33] == stampRecordType && frame[34] == stampRecordVersion && frame[36] == 1 {
				// A revocation's confirmation time, on the same terms.
				if prev >= 0 && frame[37] >= stampRecordSize && string(frame[8:16]) == string(set.recs[prev].digest[:8]) {
					set.recs[prev].at = int64(binary.BigEndian.Uint64(frame[:8]))
				}
				prev = -1
				continue
			}
			prev = -1
			if frame[32] != extensionMarker || !knownExtension(frame[33]) {
				set.extensions = append(set.extensions, frame...)
				continue
			}
			index, count, n := int(frame[35]), int(frame[36]), int(frame[37])
			if index == 0 {
				open = &extension{typ: frame[33], version: frame[34], pos: len(set.recs)}
				next = 0
			}
			if open == nil || index != next || n > sha256.Size {
				open = nil // a broken record: skipped
				continue
			}
			open.payload = append(open.payload, frame[:n]...)
			next++
			if next == count {
				set.records = append(set.records, *open)
				open = nil
			}
			continue
		}
		if set.minExpiry == 0 || expiry < set.minExpiry {
			set.minExpiry = expiry
		}
		if expiry > now {
			var rec revocation
			copy(rec.digest[:], buf[off:off+sha256.Size])
			rec.expiry = expiry
			prev = len(set.recs)
			set.recs = append(set.recs, rec)
		} else {
			prev = -1
		}
	}
	return set
}

// dropCanceled drops from set the revocations its tombstones cancel
// (lifetime.go), whatever their order in the file, and the tombstones that
// have nothing left to cancel at now.
//
// A tombstone that has nothing left to cancel still cancels what the file
// holds: a release before confirmation times capped every lifetime at
// maxTTL, but a file may say otherwise.
func dropCanceled(set *frameSet, now int64, maxTTL, leeway time.Duration) {
	type fileTomb struct {
		t   tombstone
		pos int // for a legacy tombstone, the revocations before it
	}
	var tombs map[[sha256.Size]byte][]fileTomb
	kept := set.records[:0]
	for i := range set.records {
		ext := set.records[i]
		if ext.typ != tombstoneRecordType || ext.version != tombstoneRecordVersion {
			kept = append(kept, ext)
			continue
		}
		t, err := decodeTombstone(ext.payload, maxTTL, leeway)
		if err != nil {
			continue
		}
		if t.until > now {
			kept = append(kept, ext)
		}
		if tombs == nil {
			tombs = map[[sha256.Size]byte][]fileTomb{}
		}
		tombs[t.digest] = append(tombs[t.digest], fileTomb{t: t, pos: ext.pos})
	}
	set.records = kept
	if tombs == nil {
		return
	}
	recs := set.recs[:0]
	for i := range set.recs {
		canceled := false
		for _, ft := range tombs[set.recs[i].digest] {
			if ft.t.legacy && set.recs[i].at == 0 {
				// Unstamped: file order decides, as it did.
				canceled = canceled || i < ft.pos
				continue
			}
			canceled = canceled || ft.t.cancels(set.recs[i].at, leeway)
		}
		if !canceled {
			recs = append(recs, set.recs[i])
		}
	}
	set.recs = recs
}
