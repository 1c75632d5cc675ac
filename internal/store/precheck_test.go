package store

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// TestPrecheckWriteCost logs what writes cost with 1,000,000 keys: a bulk
// load at start (one map), a revocation's add (a sync.Map store, no copy),
// and the background merge of a delta (one copy, outside the lock). Run
// under Yaegi too (`make yaegi_test`). It asserts nothing about time.
func TestPrecheckWriteCost(t *testing.T) {
	n := 1000000
	if testing.Short() {
		n = 100000
	}
	p := newPrecheck(time.Now)
	recs := make([]record.Revocation, n)
	expiry := time.Now().Add(time.Hour).UnixNano()
	for i := range recs {
		recs[i].Expiry = expiry
		recs[i].At = 1 // stamped: a key of this release's rule
		recs[i].SetKey(strconv.Itoa(10000000 + i))
	}
	p.setLoading(true)
	start := time.Now()
	for lo := 0; lo < n; lo += 10000 {
		p.addBatch(recs[lo : lo+10000])
	}
	p.setLoading(false)
	t.Logf("bulk load of %d keys: %v", n, time.Since(start))
	const adds = 20000
	start = time.Now()
	for i := 0; i < adds; i++ {
		p.add(strconv.Itoa(20000000+i), expiry)
	}
	t.Logf("add with %d keys: %v per revocation", n, time.Since(start)/adds)
	start = time.Now()
	p.Merge()
	t.Logf("merge of %d keys into %d: %v", adds, n, time.Since(start))
	if len(p.cur.Load().(*PrecheckSet).Keys) != n+adds {
		t.Fatal("keys lost")
	}
}

func TestPrecheckKeepsAKeyUntilItsRevocationExpires(t *testing.T) {
	// given revocations expiring a nanosecond past a whole second, loaded
	// and added, and one past what a uint32 of seconds counts
	clock := fakeclock.New()
	p := newPrecheck(clock.Now)
	at := clock.Now().Truncate(time.Second).Add(time.Hour + time.Nanosecond)
	loaded := record.Revocation{Expiry: at.UnixNano(), At: 1}
	loaded.SetKey("loaded-1")
	far := record.Revocation{Expiry: math.MaxInt64, At: 1}
	far.SetKey("farfar-1")
	p.setLoading(true)
	p.addBatch([]record.Revocation{loaded, far})
	p.setLoading(false)
	p.add("added-01", at.UnixNano())
	p.Merge()
	keys := p.Current().Load().(*PrecheckSet).Keys

	// then each is held at its expiry rounded up, the far one at the
	// largest value, never wrapped to an early one
	for _, k := range []string{"loaded-1", "added-01"} {
		if got := keys[Key([]byte(k))]; got != uint32(at.Unix()+1) {
			t.Fatalf("%s held until %d, want %d", k, got, at.Unix()+1)
		}
	}
	if got := keys[Key([]byte("farfar-1"))]; got != maxExpirySec {
		t.Fatalf("far key held until %d", got)
	}
	if expirySec(0) != 0 || expirySec(int64(time.Second)) != 1 || expirySec(int64(time.Second)+1) != 2 {
		t.Fatal("expirySec does not round up")
	}

	// and a merge just before the expiry keeps them, one after drops them
	clock.Advance(time.Hour)
	p.add("other-01", clock.Now().Add(time.Hour).UnixNano())
	p.Merge()
	if keys := p.Current().Load().(*PrecheckSet).Keys; keys[Key([]byte("loaded-1"))] == 0 || keys[Key([]byte("added-01"))] == 0 {
		t.Fatal("a key was dropped before its revocation expired")
	}
	clock.Advance(2 * time.Second)
	p.add("other-02", clock.Now().Add(time.Hour).UnixNano())
	p.Merge()
	if keys := p.Current().Load().(*PrecheckSet).Keys; keys[Key([]byte("loaded-1"))] != 0 || keys[Key([]byte("farfar-1"))] == 0 {
		t.Fatal("merge kept an expired key or dropped a live one")
	}
}
