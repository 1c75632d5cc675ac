package store

import (
	"crypto/sha256"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The store's own guarantees, without the plugin around it. The root's
// tests exercise the same through the denylist and every source.

func TestExactAndExpiring(t *testing.T) {
	// given a store holding a revocation for a minute
	clock := fakeclock.New()
	s := newTestStore(t, Options{Now: clock.Now})
	rec := &record.Revocation{Digest: sha256.Sum256([]byte("a")), Expiry: clock.Now().Add(time.Minute).UnixNano(), At: clock.Now().UnixNano()}
	s.Put(rec)

	// then it is held, and a digest differing in one bit is not
	other := rec.Digest
	other[31] ^= 1
	if !s.Has(&rec.Digest) || s.Has(&other) {
		t.Fatal("the store is not exact")
	}
	// and once its expiry has passed, it no longer is, whatever bigcache
	// has not cleaned yet
	clock.Advance(time.Minute)
	if s.Has(&rec.Digest) || s.Held(&rec.Digest).Found {
		t.Fatal("an expired revocation is still held")
	}
}

func TestBitsetAndPrecheckNeverHideARevocation(t *testing.T) {
	// given a small store (a dense bitset) filled with random digests
	s := newTestStore(t, Options{SizeMB: 1})
	r := rand.New(rand.NewSource(1))
	expiry := time.Now().Add(time.Hour).UnixNano()
	var recs []record.Revocation
	for i := 0; i < 5000; i++ {
		var rec record.Revocation
		r.Read(rec.Digest[:])
		// Two assignments: under Yaegi v0.16.1, "a, b = x, call()" can
		// drop x, a variable as well as a constant.
		rec.Expiry = expiry
		rec.At = time.Now().UnixNano()
		rec.SetKey(fmt.Sprintf("k%07d", i))
		s.Put(&rec)
		recs = append(recs, rec)
	}
	filter, mask := s.Filter()
	pre := s.Precheck().Current().Load().(*PrecheckSet)
	for i := range recs {
		// then every one has its bit set, its pre-check key present, and
		// is held
		bit := uint64(0)
		for j := 0; j < 8; j++ {
			bit |= uint64(recs[i].Digest[8+j]) << (8 * j)
		}
		bit &= mask
		if atomic.LoadUint64(&filter[bit>>6])>>(bit&63)&1 == 0 {
			t.Fatalf("record %d: bit clear", i)
		}
		var k Key
		copy(k[:], recs[i].PrecheckKey())
		_, inDelta := pre.Delta.Load(k)
		if pre.Keys[k] == 0 && !inDelta {
			t.Fatalf("record %d: pre-check key missing", i)
		}
		if !s.Has(&recs[i].Digest) {
			t.Fatalf("record %d: not held", i)
		}
	}
}

func TestAdmission(t *testing.T) {
	// given a store whose shortest lane's shard is full
	s := newTestStore(t, Options{SizeMB: 1, MaxTTL: time.Hour})
	digest := sha256.Sum256([]byte("x"))
	atomic.StoreInt32(s.Slots(0, ShardOf(&digest)), s.ShardLimit())

	// then a 5 s revocation goes to the next lane
	if got := s.Reserve(&digest, 5*time.Second); got != 1 {
		t.Fatalf("lane %d, want 1", got)
	}
	// and one longer than the longest lane is refused, never cut short
	if got := s.Reserve(&digest, longerThanAnyLane); got != -1 {
		t.Fatalf("lane %d for a revocation longer than the store holds", got)
	}
	// and when every lane it may use is full, it is refused
	for i := range s.LaneWindows() {
		atomic.StoreInt32(s.Slots(i, ShardOf(&digest)), s.ShardLimit())
	}
	if got := s.Reserve(&digest, 5*time.Second); got != -1 {
		t.Fatalf("lane %d in a full store", got)
	}
}

// longerThanAnyLane is longer than any lane of newTestStore's.
const longerThanAnyLane = 24 * time.Hour

func TestTombstoneCancelsByTime(t *testing.T) {
	// given a revocation confirmed at t0
	clock := fakeclock.New()
	s := newTestStore(t, Options{Now: clock.Now, Leeway: time.Second})
	t0 := clock.Now().UnixNano()
	rec := &record.Revocation{Digest: sha256.Sum256([]byte("t")), Expiry: clock.Now().Add(time.Hour).UnixNano(), At: t0}
	s.Put(rec)

	// when a tombstone that held it is applied a minute later
	clock.Advance(time.Minute)
	tomb := &record.Tombstone{Digest: rec.Digest, At: clock.Now().UnixNano(), Held: t0, Until: clock.Now().Add(time.Hour).UnixNano()}
	if !s.Cancel(tomb) || s.Has(&rec.Digest) {
		t.Fatal("the tombstone did not cancel what it held")
	}

	// then the same revocation arriving late stays canceled
	if !s.Canceled(rec) {
		t.Fatal("a late copy of a canceled revocation is not canceled")
	}
	// and a revocation confirmed after the tombstone stands
	later := *rec
	later.At = clock.Now().Add(time.Millisecond).UnixNano()
	if s.Canceled(&later) {
		t.Fatal("a revocation confirmed after the tombstone is canceled")
	}
}

func TestLoadingStagesThenAnswersExactly(t *testing.T) {
	// given a store loading
	s := newTestStore(t, Options{})
	s.StartLoading()
	filter, _ := s.Filter()
	if filter[0] != ^uint64(0) || !s.Precheck().Current().Load().(*PrecheckSet).Open {
		t.Fatal("a loading store must send every token to the exact path")
	}

	// when records are staged, one twice with a longer expiry
	expiry := time.Now().Add(time.Hour).UnixNano()
	var recs []record.Revocation
	for i := 0; i < 3000; i++ {
		recs = append(recs, record.Revocation{Digest: sha256.Sum256([]byte(fmt.Sprint("l-", i))), Expiry: expiry, At: 1})
	}
	staged, _, ok := s.Stage(recs, 6)
	longer := recs[0]
	longer.Expiry += int64(time.Hour)
	again, _, _ := s.Stage([]record.Revocation{longer}, 6)
	if !ok || staged != len(recs) || again != 0 {
		t.Fatalf("staged %d then %d", staged, again)
	}

	// and staging ends
	s.EndStaging()

	// then every record is held, from the loaded segment and not the
	// lanes, and the longer expiry wins
	for i := range recs {
		if !s.Has(&recs[i].Digest) {
			t.Fatalf("record %d not held after staging", i)
		}
	}
	if got := s.Held(&recs[0].Digest).Expiry; got != longer.Expiry {
		t.Fatalf("expiry %d, want the longer %d", got, longer.Expiry)
	}
	if st := s.Stats(); st.Entries != len(recs) || st.Segment != len(recs) || laneEntries(s) != 0 || st.Filling != 0 {
		t.Fatalf("after staging: %+v, %d in the lanes; want all %d in the segment", st, laneEntries(s), len(recs))
	}

	// when the segment drains, then it moves them all into the lanes and
	// is dropped, and none is lost
	s.Drain()
	deadline := time.Now().Add(10 * time.Second)
	for s.Overlaid() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Overlaid() {
		t.Fatal("the drain never ended")
	}
	for i := range recs {
		if !s.Has(&recs[i].Digest) {
			t.Fatalf("record %d lost by the drain", i)
		}
	}
	if got := s.Held(&recs[0].Digest).Expiry; got != longer.Expiry {
		t.Fatalf("expiry %d after the drain, want the longer %d", got, longer.Expiry)
	}
	// (the longer one, two hours against the longest lane's hour, goes
	// whole to the overflow map, as Put would keep it)
	if st := s.Stats(); st.Entries != len(recs) || st.Segment != 0 || laneEntries(s) != len(recs)-1 || st.Overflow != 1 {
		t.Fatalf("after the drain: %+v, %d in the lanes", st, laneEntries(s))
	}
	if _, _, ok := s.Stage(recs, 6); ok {
		t.Fatal("Stage after loading must leave the records to the caller")
	}
}

// laneEntries is how many entries bigcache's lanes hold.
func laneEntries(s *Store) int {
	n := 0
	for _, l := range s.lanes {
		n += l.cache.Len()
	}
	return n
}
