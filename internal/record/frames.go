package record

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
// it is by a rewrite and otherwise skipped; type 1 is a grant (grant.go),
// type 2 a back-channel logout (logout.go), type 3 a tombstone
// (tombstone.go), which cancels the revocations of its digest confirmed
// before it, type 4 a revocation's pre-check key and type 5 its
// confirmation time (StampType), each in one frame right after the
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
	// FrameSize is one persistPath frame.
	FrameSize = sha256.Size + 8
	// ExtensionMarker is byte 32 of an extension frame.
	ExtensionMarker = 0xFF
)

// EncodeRevocation is the frame of one revocation, followed, when its
// pre-check key is known, by the key's frame, and when its confirmation
// time is, by the time's frame.
func EncodeRevocation(rec *Revocation) []byte {
	var buf [3 * FrameSize]byte
	copy(buf[:], rec.Digest[:])
	binary.BigEndian.PutUint64(buf[sha256.Size:], uint64(rec.Expiry))
	n := FrameSize
	if rec.KeyN == KeyLen {
		var payload [KeySize]byte
		copy(payload[:], rec.Key[:])
		copy(payload[KeyLen:], rec.Digest[:8])
		copy(buf[n:], EncodeExtension(KeyType, KeyVersion, payload[:]))
		n += FrameSize
	}
	if rec.At > 0 {
		var payload [StampSize]byte
		binary.BigEndian.PutUint64(payload[:], uint64(rec.At))
		copy(payload[8:], rec.Digest[:8])
		copy(buf[n:], EncodeExtension(StampType, StampVersion, payload[:]))
		n += FrameSize
	}
	return buf[:n]
}

// A stamp record (type StampType) is a revocation's confirmation
// time: Unix nanoseconds, then the first 8 bytes of the digest, in one
// extension frame after the revocation's frame (and its key's).
const (
	StampType    = 5
	StampVersion = 1
	StampSize    = 16
)

// A key record (type KeyType) is a revocation's pre-check key
// (the root's precheck.go): the key, then the first 8 bytes of the digest, in one
// extension frame right after the revocation's frame.
const (
	KeyType    = 4
	KeyVersion = 1
	KeySize    = KeyLen + 8
)

// An Extension is one record of another type than a revocation.
type Extension struct {
	Type, Version byte
	Payload       []byte
	// pos is, in a persistPath file or an XREAD reply, how many
	// revocations came before it:
	// a tombstone written before confirmation times cancels the unstamped
	// revocations before it, not those after it (DropCanceled).
	Pos int
}

// EncodeExtension is the frames of one record of type typ.
func EncodeExtension(typ, version byte, payload []byte) []byte {
	count := (len(payload) + sha256.Size - 1) / sha256.Size
	if count == 0 {
		count = 1
	}
	out := make([]byte, 0, count*FrameSize)
	for i := 0; i < count; i++ {
		var frame [FrameSize]byte
		chunk := payload[i*sha256.Size:]
		if len(chunk) > sha256.Size {
			chunk = chunk[:sha256.Size]
		}
		copy(frame[:], chunk)
		frame[32], frame[33], frame[34] = ExtensionMarker, typ, version
		frame[35], frame[36], frame[37] = byte(i), byte(count), byte(len(chunk))
		out = append(out, frame[:]...)
	}
	return out
}

// A FrameSet is what a persistPath file holds.
type FrameSet struct {
	// Recs are the revocations that expire after the time given to DecodeFrames.
	Recs []Revocation
	// MinExpiry is the earliest expiry of any revocation, expired ones
	// included; 0 when there is none.
	MinExpiry int64
	// Unknown holds the frames of record types this release does not
	// know, kept as they are so that a rewrite keeps a newer release's records.
	Unknown []byte
	// Records are the extension records of known types, whole.
	Records []Extension
}

// KnownExtension reports whether this release reads records of type typ.
func KnownExtension(typ byte) bool {
	return typ == GrantType || typ == LogoutType || typ == TombstoneType || typ == KeyType || typ == StampType
}

// DecodeFrames reads the frames of buf. A torn last frame is ignored.
// Extension frames are kept aside: this release knows no extension type.
func DecodeFrames(buf []byte, now int64) *FrameSet {
	set := &FrameSet{Recs: make([]Revocation, 0, len(buf)/FrameSize)}
	var open *Extension
	next := 0
	prev := -1 // the revocation the previous frames belong to, for its key and time frames
	for off := 0; off+FrameSize <= len(buf); off += FrameSize {
		expiry := int64(binary.BigEndian.Uint64(buf[off+sha256.Size : off+FrameSize]))
		if expiry <= 0 {
			frame := buf[off : off+FrameSize]
			if frame[32] == ExtensionMarker && frame[33] == KeyType && frame[34] == KeyVersion && frame[36] == 1 {
				// A revocation's pre-check key: it counts only right after
				// the revocation whose digest it names (a release that
				// does not know it may have moved it on a rewrite).
				if prev >= 0 && frame[37] >= KeySize && string(frame[KeyLen:KeyLen+8]) == string(set.Recs[prev].Digest[:8]) {
					set.Recs[prev].SetKey(string(frame[:KeyLen]))
					continue // the time frame may follow
				}
				prev = -1
				continue
			}
			if frame[32] == ExtensionMarker && frame[33] == StampType && frame[34] == StampVersion && frame[36] == 1 {
				// A revocation's confirmation time, on the same terms.
				if prev >= 0 && frame[37] >= StampSize && string(frame[8:16]) == string(set.Recs[prev].Digest[:8]) {
					set.Recs[prev].At = int64(binary.BigEndian.Uint64(frame[:8]))
				}
				prev = -1
				continue
			}
			prev = -1
			if frame[32] != ExtensionMarker || !KnownExtension(frame[33]) {
				set.Unknown = append(set.Unknown, frame...)
				continue
			}
			index, count, n := int(frame[35]), int(frame[36]), int(frame[37])
			if index == 0 {
				open = &Extension{Type: frame[33], Version: frame[34], Pos: len(set.Recs)}
				next = 0
			}
			if open == nil || index != next || n > sha256.Size {
				open = nil // a broken record: skipped
				continue
			}
			open.Payload = append(open.Payload, frame[:n]...)
			next++
			if next == count {
				set.Records = append(set.Records, *open)
				open = nil
			}
			continue
		}
		if set.MinExpiry == 0 || expiry < set.MinExpiry {
			set.MinExpiry = expiry
		}
		if expiry > now {
			var rec Revocation
			copy(rec.Digest[:], buf[off:off+sha256.Size])
			rec.Expiry = expiry
			prev = len(set.Recs)
			set.Recs = append(set.Recs, rec)
		} else {
			prev = -1
		}
	}
	return set
}

// DropCanceled drops from set the revocations its tombstones cancel
// (Tombstone.Cancels), whatever their order in the file, and the tombstones that
// have nothing left to cancel at now.
//
// A tombstone that has nothing left to cancel still cancels what the file
// holds: a release before confirmation times capped every lifetime at
// maxTTL, but a file may say otherwise.
func DropCanceled(set *FrameSet, now int64, maxTTL, leeway time.Duration) {
	type fileTomb struct {
		t   Tombstone
		pos int // for a legacy tombstone, the revocations before it
	}
	var tombs map[[sha256.Size]byte][]fileTomb
	kept := set.Records[:0]
	for i := range set.Records {
		ext := set.Records[i]
		if ext.Type != TombstoneType || ext.Version != TombstoneVersion {
			kept = append(kept, ext)
			continue
		}
		t, err := DecodeTombstone(ext.Payload, maxTTL, leeway)
		if err != nil {
			continue
		}
		if t.Until > now {
			kept = append(kept, ext)
		}
		if tombs == nil {
			tombs = map[[sha256.Size]byte][]fileTomb{}
		}
		tombs[t.Digest] = append(tombs[t.Digest], fileTomb{t: t, pos: ext.Pos})
	}
	set.Records = kept
	if tombs == nil {
		return
	}
	recs := set.Recs[:0]
	for i := range set.Recs {
		canceled := false
		for _, ft := range tombs[set.Recs[i].Digest] {
			if ft.t.Legacy && set.Recs[i].At == 0 {
				// Unstamped: file order decides, as it did.
				canceled = canceled || i < ft.pos
				continue
			}
			canceled = canceled || ft.t.Cancels(set.Recs[i].At, leeway)
		}
		if !canceled {
			recs = append(recs, set.Recs[i])
		}
	}
	set.Recs = recs
}
