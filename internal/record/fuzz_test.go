package record

import (
	"testing"
	"time"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, as go test expects.

func FuzzDecodeFrames(f *testing.F) {
	rec := Revocation{Expiry: 4102444800000000000, At: 1767225600000000000}
	f.Add(append(EncodeRevocation(&rec), 0xFF, 1, 2))
	tomb := Tombstone{At: 1767225601000000000, Held: rec.At, Until: rec.Expiry}
	f.Add(append(EncodeRevocation(&rec), EncodeExtension(TombstoneType, TombstoneVersion, EncodeTombstone(&tomb))...))
	f.Fuzz(func(t *testing.T, buf []byte) {
		set := DecodeFrames(buf, 0)
		if len(set.Recs)*FrameSize+len(set.Unknown) > len(buf) {
			t.Fatalf("decoded more than %d bytes", len(buf))
		}
		for _, r := range set.Recs {
			if r.Expiry <= 0 || (set.MinExpiry != 0 && r.Expiry < set.MinExpiry) {
				t.Fatalf("expiry %d, min %d", r.Expiry, set.MinExpiry)
			}
		}
		// Tombstones drop revocations, never add or change one.
		before := len(set.Recs)
		DropCanceled(set, 0, time.Hour, time.Minute)
		if len(set.Recs) > before {
			t.Fatalf("%d revocations after tombstones, %d before", len(set.Recs), before)
		}
	})
}

func FuzzDecodeGrant(f *testing.F) {
	rec := Grant{Tokens: []GrantToken{{Expiry: 1}, {Expiry: 2, Refresh: true}}}
	f.Add(rec.Encode())
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := DecodeGrant(buf)
		if err != nil {
			return
		}
		again, err := DecodeGrant(got.Encode())
		if err != nil || again.Family != got.Family || len(again.Tokens) != len(got.Tokens) {
			t.Fatalf("re-encoding changed the record: %v", err)
		}
	})
}

func FuzzDecodeLogout(f *testing.F) {
	rec := &Logout{Flags: LogoutRuleSID | LogoutGrantsSID, At: 1, Expiry: 2}
	f.Add(rec.Encode())
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := DecodeLogout(buf)
		if err != nil {
			return
		}
		if again, err := DecodeLogout(got.Encode()); err != nil || *again != *got {
			t.Fatalf("decodeLogout(%x) does not round-trip", buf)
		}
	})
}
