package record

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func digestOf(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

func TestGrantRecordEncoding(t *testing.T) {
	rec := &Grant{Family: digestOf("f"), SID: digestOf("s"), Tokens: []GrantToken{
		{Digest: digestOf("a"), Expiry: 123}, {Digest: digestOf("r"), Expiry: 456, Refresh: true},
	}}
	got, err := DecodeGrant(rec.Encode())
	if err != nil || got.Family != rec.Family || got.SID != rec.SID || got.Sub != rec.Sub || len(got.Tokens) != 2 || got.Tokens[1] != rec.Tokens[1] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := DecodeGrant(append([]byte{9}, rec.Encode()[1:]...)); err == nil {
		t.Fatal("a later version was read")
	}
	// in persistPath frames, between revocations
	frames := append(EncodeRevocation(&Revocation{Digest: digestOf("x"), Expiry: 1 << 62}), EncodeExtension(GrantType, GrantVersion, rec.Encode())...)
	set := DecodeFrames(frames, 0)
	if len(set.Recs) != 1 || len(set.Records) != 1 || len(set.Unknown) != 0 {
		t.Fatalf("frames: %d recs, %d records", len(set.Recs), len(set.Records))
	}
	if back, err := DecodeGrant(set.Records[0].Payload); err != nil || back.Tokens[0] != rec.Tokens[0] {
		t.Fatalf("from frames: %v", err)
	}
	// The previous release reads every frame as a digest and an expiry and
	// keeps those that expire after now: it must skip every grant frame.
	for off := FrameSize; off < len(frames); off += FrameSize {
		if expiry := int64(binary.BigEndian.Uint64(frames[off+32 : off+40])); expiry > 0 {
			t.Fatalf("frame at %d reads as a live revocation to the previous release", off)
		}
	}
}
