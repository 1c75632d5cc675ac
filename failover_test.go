package tokenrevocation

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// A record a replica writes again after a failover lost it (internal/replica
// ledger.go) reaches the others a second time, under a new stream ID: it
// must merge into the one held, not count twice or take a second slot.
func TestRepublishedRecordIsIdempotent(t *testing.T) {
	for _, loading := range []bool{false, true} {
		name := "ready"
		if loading {
			name = "loading"
		}
		t.Run(name, func(t *testing.T) {
			// given a denylist, loading from the stream or ready
			d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour})
			if loading {
				d.startLoading(1)
			}
			sink := &streamSink{d: d}
			now := time.Now()
			rec := record.Revocation{Digest: *digestOf("tok-republished"), Expiry: now.Add(time.Hour).UnixNano(), At: now.UnixNano()}
			rec.SetKey("ublished")

			// when the stream delivers the record, then the same record again
			sink.Apply([]record.Revocation{rec}, nil)
			if loading {
				d.sourceLoaded()
				waitFor(t, 5*time.Second, func() bool { return d.stats().Ready && d.stats().Filling == 0 })
			}
			first, slots, counted := d.stats(), liveSlots(d, &rec.Digest), atomic.LoadInt64(&d.count.recorded[sourceRedis])
			sink.Apply([]record.Revocation{rec}, nil)

			// then it is held once, in one slot, counted once as a
			// revocation (revocations_total{source="redis"}; stats' loaded
			// counts the records read, the copy included)
			again := d.stats()
			if !d.contains("tok-republished") {
				t.Fatal("the revocation is not enforced")
			}
			if again.Entries != first.Entries || liveSlots(d, &rec.Digest) != slots || atomic.LoadInt64(&d.count.recorded[sourceRedis]) != counted {
				t.Fatalf("after the copy: %d entries, %d slots, %d counted; before %d, %d, %d",
					again.Entries, liveSlots(d, &rec.Digest), atomic.LoadInt64(&d.count.recorded[sourceRedis]), first.Entries, slots, counted)
			}
		})
	}
}

// A copy that arrives after a tombstone confirmed later than the record
// stays canceled: time, not stream position, orders them (lifetime.go).
func TestRepublishedRecordAfterItsTombstone(t *testing.T) {
	// given a revocation and its later un-revoke, both from the stream
	d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour})
	sink := &streamSink{d: d}
	now := time.Now()
	rec := record.Revocation{Digest: *digestOf("tok-unrevoked"), Expiry: now.Add(time.Hour).UnixNano(), At: now.Add(-time.Minute).UnixNano()}
	sink.Apply([]record.Revocation{rec}, nil)
	sink.Apply(nil, []record.Extension{*tombAt(&rec.Digest, now, time.Unix(0, rec.Expiry))})
	if d.contains("tok-unrevoked") {
		t.Fatal("the tombstone did not cancel the revocation")
	}

	// when the revocation is re-published after the tombstone
	sink.Apply([]record.Revocation{rec}, nil)

	// then it stays canceled
	if d.contains("tok-unrevoked") {
		t.Fatal("a re-published copy undid a later un-revoke")
	}
}
