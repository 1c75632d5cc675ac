package store

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

func newTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.SizeMB == 0 {
		opts.SizeMB = 1
	}
	if opts.MaxTTL == 0 {
		opts.MaxTTL = time.Hour
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func revocation(token string, expiry time.Time) *record.Revocation {
	return &record.Revocation{Digest: sha256.Sum256([]byte(token)), Expiry: expiry.UnixNano(), At: time.Now().UnixNano()}
}

func TestDigestHasher(t *testing.T) {
	h := &digestHasher{}
	if h.Sum64("\x01\x00\x00\x00\x00\x00\x00\x00rest") != 1 || h.Sum64("\x02") != 2 {
		t.Fatal("hasher does not read the key's first eight bytes little-endian")
	}
}

func TestHotCacheIsBounded(t *testing.T) {
	// given more revoked tokens found than the hot map keeps
	s := newTestStore(t, Options{})
	for i := 0; i < hotLimit+100; i++ {
		s.Put(revocation(fmt.Sprint("hot-", i), time.Now().Add(time.Hour)))
	}

	// when each is looked up, twice
	for round := 0; round < 2; round++ {
		for i := 0; i < hotLimit+100; i++ {
			digest := sha256.Sum256([]byte(fmt.Sprint("hot-", i)))
			if !s.Has(&digest) {
				t.Fatalf("hot-%d not revoked in round %d", i, round)
			}
		}
	}

	// then the map was emptied on the way and never holds more than its limit
	if n := s.hotLen(); n == 0 || n > hotLimit {
		t.Fatalf("hot map holds %d entries, want 1..%d", n, hotLimit)
	}
	never := sha256.Sum256([]byte("never-revoked"))
	if s.Has(&never) {
		t.Fatal("a token never revoked is reported revoked")
	}
}

func TestLongerThanEveryLaneIsKeptWhole(t *testing.T) {
	// given a store whose longest lane is an hour
	s := newTestStore(t, Options{MaxTTL: time.Hour, MaxLifetime: time.Hour})

	// when a revocation for a day arrives (confirmed by a replica with a
	// longer maxLifetime)
	rec := revocation("long", time.Now().Add(24*time.Hour))
	s.Put(rec)

	// then it is held whole, in the overflow map
	if !s.Has(&rec.Digest) || s.Held(&rec.Digest).Expiry != rec.Expiry || s.Stats().Overflow != 1 {
		t.Fatalf("held %+v, stats %+v", s.Held(&rec.Digest), s.Stats())
	}
}
