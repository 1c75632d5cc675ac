package record

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordsV1Fixture loads a persistPath file written by the release
// before this package existed, and writes it again byte for byte: what that
// release wrote loads here, and what this package writes, that release
// reads as it wrote it.
func TestRecordsV1Fixture(t *testing.T) {
	// given the file the previous code wrote
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "records-v1", "persist.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// when it is decoded
	set := DecodeFrames(raw, 0)
	// then it holds the three revocations, keys and confirmation times included
	want := []struct {
		token, key string
		at         int64
	}{
		{"token-a", "keyAAAAA", 1767225600000000000},
		{"token-b", "", 1767225601000000000},
		{"token-c", "keyCCCCC", 1767225602000000000},
	}
	if len(set.Recs) != len(want) {
		t.Fatalf("%d revocations, want %d", len(set.Recs), len(want))
	}
	for i, w := range want {
		r := set.Recs[i]
		if r.Digest != sha256.Sum256([]byte(w.token)) || string(r.Key[:r.KeyN]) != w.key || r.At != w.at {
			t.Errorf("record %d: digest %x key %q at %d, want %s %q %d", i, r.Digest[:4], r.Key[:r.KeyN], r.At, w.token, w.key, w.at)
		}
	}
	// and the tombstone, the grant, the logout and the second tombstone, in order
	types := []byte{TombstoneType, GrantType, LogoutType, TombstoneType}
	if len(set.Records) != len(types) || len(set.Unknown) != 0 {
		t.Fatalf("%d records and %d unknown bytes, want %d and 0", len(set.Records), len(set.Unknown), len(types))
	}
	for i, typ := range types {
		if set.Records[i].Type != typ || set.Records[i].Version != 1 {
			t.Errorf("record %d: type %d version %d, want %d 1", i, set.Records[i].Type, set.Records[i].Version, typ)
		}
	}
	tomb, err := DecodeTombstone(set.Records[0].Payload, 0, 0)
	if err != nil || tomb.Digest != sha256.Sum256([]byte("token-c")) || tomb.Legacy || tomb.Held != want[2].at || tomb.At <= tomb.Held {
		t.Errorf("tombstone %+v, %v", tomb, err)
	}
	// and encoded again it is the same bytes
	var out []byte
	next := 0
	for i := range set.Recs {
		for next < len(set.Records) && set.Records[next].Pos == i {
			out = append(out, EncodeExtension(set.Records[next].Type, set.Records[next].Version, set.Records[next].Payload)...)
			next++
		}
		out = append(out, EncodeRevocation(&set.Recs[i])...)
	}
	for ; next < len(set.Records); next++ {
		out = append(out, EncodeExtension(set.Records[next].Type, set.Records[next].Version, set.Records[next].Payload)...)
	}
	if !bytes.Equal(out, raw) {
		t.Errorf("encoded again: %d bytes differ from the %d the previous code wrote", len(out), len(raw))
	}
	// and the tombstone's payload encodes back to itself
	if !bytes.Equal(EncodeTombstone(&tomb), set.Records[0].Payload) {
		t.Error("the tombstone encodes differently")
	}
}
