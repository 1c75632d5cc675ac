package store

import (
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The loaded segment (overlay.go): bulk-loaded records answered from flat
// arrays and an open-addressing index, never copied into bigcache until
// they are mostly expired.

// collidingDigest is a digest whose bytes 8 to 16, the index's key and the
// bitset's, are the same for every n: only the other bytes tell them apart.
func collidingDigest(n int) [sha256.Size]byte {
	var d [sha256.Size]byte
	binary.LittleEndian.PutUint64(d[8:16], 0x5eed)
	binary.LittleEndian.PutUint64(d[0:8], uint64(n))
	binary.LittleEndian.PutUint64(d[24:32], uint64(n)*7919)
	return d
}

func TestSegmentIsExactWhenKeysCollide(t *testing.T) {
	// given a segment whose 300 records all share the index's key, and as
	// many ordinary ones (the table grows from 1024 slots meanwhile)
	clock := fakeclock.New()
	s := newTestStore(t, Options{Now: clock.Now})
	s.StartLoading()
	now := clock.Now()
	var recs []record.Revocation
	for i := 0; i < 300; i++ {
		recs = append(recs, record.Revocation{Digest: collidingDigest(i), Expiry: now.Add(time.Duration(i+1) * time.Minute).UnixNano(), At: now.UnixNano()})
		recs = append(recs, record.Revocation{Digest: sha256.Sum256([]byte{byte(i), byte(i >> 8)}), Expiry: now.Add(time.Hour).UnixNano(), At: now.UnixNano()})
	}
	if staged, _, _ := s.Stage(recs, 6); staged != len(recs) {
		t.Fatalf("staged %d of %d", staged, len(recs))
	}
	s.EndStaging()

	// then each is held with its own expiry, and digests sharing the key
	// that were never staged are not
	for i := range recs {
		if h := s.Held(&recs[i].Digest); !h.Found || h.Expiry != recs[i].Expiry || !s.Has(&recs[i].Digest) {
			t.Fatalf("record %d: %+v, want expiry %d", i, h, recs[i].Expiry)
		}
	}
	for i := 300; i < 400; i++ {
		d := collidingDigest(i)
		if s.Has(&d) || s.Held(&d).Found {
			t.Fatalf("digest %d, never staged, is held", i)
		}
	}

	// when a tombstone cancels one in the middle of the collision chain
	victim := recs[2*150]
	s.Cancel(&record.Tombstone{Digest: victim.Digest, At: now.Add(time.Second).UnixNano(), Until: victim.Expiry})

	// then only it is gone, and each record expires at its own time
	if s.Has(&victim.Digest) {
		t.Fatal("a canceled record is still held")
	}
	for i := 0; i < len(recs); i += 2 {
		if i != 300 && !s.Has(&recs[i].Digest) {
			t.Fatalf("record %d lost with its neighbour's cancel", i)
		}
	}
	clock.Advance(100*time.Minute + time.Second)
	for i := 0; i < len(recs); i += 2 {
		if held := s.Has(&recs[i].Digest); i != 300 && held != (i/2 >= 100) {
			t.Fatalf("record %d (expiring at %d min) held %v after 100 min", i, i/2+1, held)
		}
	}
}

func TestSegmentNeverShortensAndDrainsInOrder(t *testing.T) {
	// given a segment holding two digests and 30 others for an hour, and
	// one for a day
	clock := fakeclock.New()
	s := newTestStore(t, Options{Now: clock.Now, MaxTTL: 24 * time.Hour})
	now := clock.Now()
	a, b, c := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))
	hour := now.Add(time.Hour).UnixNano()
	recs := []record.Revocation{
		{Digest: a, Expiry: hour, At: now.UnixNano()},
		{Digest: b, Expiry: hour, At: now.UnixNano()},
		{Digest: c, Expiry: now.Add(24 * time.Hour).UnixNano(), At: now.UnixNano()},
	}
	for i := 0; i < 30; i++ {
		recs = append(recs, record.Revocation{Digest: sha256.Sum256([]byte{byte(i)}), Expiry: hour, At: now.UnixNano()})
	}
	s.StartLoading()
	s.Stage(recs, 6)
	s.EndStaging()

	// when a revocation records a later expiry for a, and a shorter one for b
	longer := record.Revocation{Digest: a, Expiry: now.Add(2 * time.Hour).UnixNano(), At: now.Add(time.Second).UnixNano()}
	shorter := record.Revocation{Digest: b, Expiry: now.Add(time.Minute).UnixNano(), At: now.Add(time.Second).UnixNano()}
	for _, rec := range []record.Revocation{longer, shorter} {
		rec := rec
		mu := s.Lock(&rec.Digest)
		mu.Lock()
		h := s.Held(&rec.Digest)
		s.MergeSync(&rec, &h, -1)
		mu.Unlock()
	}

	// then the later expiry is held, and the shorter one shortens nothing
	if got := s.Held(&a).Expiry; got != longer.Expiry {
		t.Fatalf("a: expiry %d, want the later %d", got, longer.Expiry)
	}
	if got := s.Held(&b).Expiry; got != hour {
		t.Fatalf("b: expiry %d, want the hour it was loaded with", got)
	}

	// when the clock passes the time seven eighths of the segment has
	// expired by, then the tick drains it into the lanes by itself
	clock.Advance(90 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for s.Overlaid() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.Overlaid() {
		t.Fatal("the tick never drained a mostly expired segment")
	}

	// and after it, what lives is held with its latest expiry, from the
	// lanes, and what expired is not held
	if got := s.Held(&a).Expiry; got != longer.Expiry {
		t.Fatalf("a after the drain: expiry %d, want %d", got, longer.Expiry)
	}
	if s.Has(&b) {
		t.Fatal("b is held past its expiry")
	}
	if h := s.Held(&c); !h.Found || h.Lane < 0 {
		t.Fatalf("c after the drain: %+v, want it in a lane", h)
	}
	if _, _, ok := s.Stage([]record.Revocation{{Digest: a, Expiry: hour}}, 6); ok {
		t.Fatal("Stage after the drain must leave records to the caller")
	}
}

func TestSegmentCountsClientsAsStagingEnds(t *testing.T) {
	// given a store whose limiter callback records what it is told
	type counted struct {
		client [16]byte
		lane   int
	}
	var got []counted
	clock := fakeclock.New()
	s := newTestStore(t, Options{Now: clock.Now, MaxTTL: 24 * time.Hour, OnFilled: func(rec *record.Revocation, lane int, _ time.Duration) {
		got = append(got, counted{rec.Client, lane})
	}})
	now := clock.Now()
	s.StartLoading()
	recs := []record.Revocation{
		{Digest: sha256.Sum256([]byte("x")), Expiry: now.Add(time.Minute).UnixNano(), At: now.UnixNano(), Client: [16]byte{1}},
		{Digest: sha256.Sum256([]byte("y")), Expiry: now.Add(20 * time.Hour).UnixNano(), At: now.UnixNano(), Client: [16]byte{2}},
		{Digest: sha256.Sum256([]byte("z")), Expiry: now.Add(time.Hour).UnixNano(), At: now.UnixNano()},
	}
	s.Stage(recs, 6)
	if len(got) != 0 {
		t.Fatal("counted before staging ended")
	}

	// when staging ends, then each record with a client is counted once,
	// in the lane its life would take
	s.EndStaging()
	if len(got) != 2 || got[0].client != recs[0].Client || got[1].client != recs[1].Client {
		t.Fatalf("counted %+v", got)
	}
	if got[0].lane != s.LaneFor(time.Minute) || got[1].lane != s.LaneFor(20*time.Hour) {
		t.Fatalf("lanes %+v", got)
	}

	// and the drain counts nothing again
	if st := s.Stats(); st.Segment != 3 || st.Entries != 3 {
		t.Fatalf("stats %+v, want the 3 records in the segment", st)
	}
	s.Drain()
	for deadline := time.Now().Add(5 * time.Second); s.Overlaid() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Fatalf("the drain counted again: %+v", got)
	}
}

// FuzzSegmentMatchesAMap drives a segment with stages, cancels and clock
// steps decoded from the input, over digests that share the index's key
// half of the time, and checks every answer against a plain map.
func FuzzSegmentMatchesAMap(f *testing.F) {
	f.Add([]byte{0, 1, 5, 0, 2, 9, 1, 1, 0, 2, 1, 3, 3, 1, 0})
	f.Add([]byte{0, 200, 1, 0, 201, 2, 1, 200, 0, 2, 60, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clock := fakeclock.New()
		s, err := New(Options{SizeMB: 1, MaxTTL: time.Hour, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.StartLoading()
		digest := func(b byte) [sha256.Size]byte {
			if b&1 == 0 {
				return collidingDigest(int(b))
			}
			return sha256.Sum256([]byte{b})
		}
		model := map[[sha256.Size]byte]int64{} // digest: latest expiry, 0 when canceled
		ended := false
		for len(ops) >= 3 {
			op, arg, n := ops[0]%4, ops[1], ops[2]
			ops = ops[3:]
			now := clock.Now()
			switch op {
			case 0: // stage arg's digest for n minutes, or, once staging
				// has ended, store it as the caller then does
				d := digest(arg)
				expiry := now.Add(time.Duration(n%120+1) * time.Minute).UnixNano()
				rec := record.Revocation{Digest: d, Expiry: expiry, At: now.UnixNano()}
				if _, _, ok := s.Stage([]record.Revocation{rec}, 6); !ok && !s.Canceled(&rec) {
					mu := s.Lock(&d)
					mu.Lock()
					h := s.Held(&d)
					s.MergeSync(&rec, &h, -1)
					mu.Unlock()
				}
				if expiry > model[d] {
					model[d] = expiry
				}
			case 1: // cancel arg's digest
				d := digest(arg)
				s.Cancel(&record.Tombstone{Digest: d, At: now.Add(time.Millisecond).UnixNano(), Until: now.Add(3 * time.Hour).UnixNano()})
				model[d] = 0
			case 2: // let n minutes pass
				clock.Advance(time.Duration(n%30) * time.Minute)
			case 3: // end staging
				if !ended {
					s.EndStaging()
					ended = true
				}
			}
			// a millisecond between operations, so that a stage after a
			// cancel is confirmed after it
			clock.Advance(time.Millisecond)
		}
		if !ended {
			s.EndStaging()
		}
		now := clock.Now().UnixNano()
		for b := 0; b < 256; b++ {
			d := digest(byte(b))
			want := model[d] > now
			if s.Has(&d) != want {
				t.Fatalf("digest %d: held %v, the model says %v", b, !want, want)
			}
			if h := s.Held(&d); h.Found != want || (want && h.Expiry != model[d]) {
				t.Fatalf("digest %d: %+v, the model says %d", b, h, model[d])
			}
		}
	})
}

func TestSegmentIsBounded(t *testing.T) {
	// given a store whose segment holds at most 100 records, loading
	s := newTestStore(t, Options{SegmentLimit: 100})
	if def := newTestStore(t, Options{}); def.segLimit != def.Capacity()*len(def.lanes) {
		t.Fatalf("default bound %d, want the lanes' capacity together", def.segLimit)
	}
	s.StartLoading()
	batch := func(from, n int) []record.Revocation {
		var recs []record.Revocation
		for i := from; i < from+n; i++ {
			recs = append(recs, record.Revocation{Digest: sha256.Sum256([]byte{byte(i), byte(i >> 8), 'b'}), Expiry: time.Now().Add(time.Hour).UnixNano(), At: 1})
		}
		return recs
	}

	// when a batch fits, then it is staged; when the next would pass the
	// bound, then none of it is, the caller is told so, and it is counted
	if staged, _, ok := s.Stage(batch(0, 80), 6); !ok || staged != 80 {
		t.Fatalf("first batch: staged %d, ok %t", staged, ok)
	}
	over := batch(80, 30)
	if staged, _, ok := s.Stage(over, 6); ok || staged != 0 {
		t.Fatalf("batch past the bound: staged %d, ok %t", staged, ok)
	}
	if got := s.Stats().BoundSegment; got != 30 {
		t.Fatalf("bound counted %d, want 30", got)
	}
	// and what the caller then stores one by one is held with the rest
	for i := range over {
		s.Put(&over[i])
	}
	s.EndStaging()
	for _, rec := range append(batch(0, 80), over...) {
		if !s.Has(&rec.Digest) {
			t.Fatal("a record is lost at the segment's bound")
		}
	}
}

func TestSegmentTakesNothingOnceStagingEnds(t *testing.T) {
	// given a store whose staging ended (a degraded start ends it too)
	s := newTestStore(t, Options{})
	s.StartLoading()
	rec := record.Revocation{Digest: sha256.Sum256([]byte("first")), Expiry: time.Now().Add(time.Hour).UnixNano(), At: 1}
	s.Stage([]record.Revocation{rec}, 6)
	s.EndStaging()

	// when more records arrive (replication, a late source, this
	// replica's own revocations read back from the stream), then the
	// segment refuses them, so that the caller merges them with what the
	// lanes hold rather than keeping a second copy
	late := record.Revocation{Digest: sha256.Sum256([]byte("late")), Expiry: time.Now().Add(time.Hour).UnixNano(), At: 1}
	if staged, _, ok := s.Stage([]record.Revocation{late, rec}, 6); ok || staged != 0 {
		t.Fatalf("staged %d after staging ended, ok %t", staged, ok)
	}
	if st := s.Stats(); st.Segment != 1 || st.BoundSegment != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDrainKeepsWhatChangedAfterItTookABatch(t *testing.T) {
	for _, change := range []string{"a later confirmation", "a later expiry", "a tombstone"} {
		// given a segment's record, taken by the drain but not yet written
		clock := fakeclock.New()
		s := newTestStore(t, Options{Now: clock.Now, MaxTTL: 24 * time.Hour})
		now := clock.Now()
		rec := record.Revocation{Digest: sha256.Sum256([]byte("r")), Expiry: now.Add(time.Hour).UnixNano(), At: now.UnixNano()}
		s.StartLoading()
		s.Stage([]record.Revocation{rec}, 6)
		s.EndStaging()
		update := rec
		s.SetFillTaken(func() {
			s.SetFillTaken(nil)
			// when it changes then, as a caller changes it
			switch change {
			case "a later confirmation":
				update.At += int64(time.Second)
			case "a later expiry":
				update.Expiry += int64(time.Hour)
			case "a tombstone":
				s.Cancel(&record.Tombstone{Digest: rec.Digest, At: rec.At + 1, Until: rec.Expiry})
				return
			}
			mu := s.Lock(&update.Digest)
			mu.Lock()
			h := s.Held(&update.Digest)
			s.MergeSync(&update, &h, -1)
			mu.Unlock()
		})
		s.Drain()
		for deadline := time.Now().Add(5 * time.Second); s.Overlaid() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}

		// then, drained, the lanes hold what the change made, in one slot
		h := s.Held(&rec.Digest)
		if change == "a tombstone" {
			if h.Found {
				t.Fatalf("%s: the drain wrote back a canceled record: %+v", change, h)
			}
			continue
		}
		if !h.Found || h.Expiry != update.Expiry || h.At != update.At || h.Lane < 0 {
			t.Fatalf("%s: held %+v, want expiry %d and confirmation %d in a lane", change, h, update.Expiry, update.At)
		}
		slots := int32(0)
		for i := range s.lanes {
			slots += atomic.LoadInt32(s.Slots(i, ShardOf(&rec.Digest)))
		}
		if slots != 1 {
			t.Fatalf("%s: %d slots, want 1", change, slots)
		}
	}
}
