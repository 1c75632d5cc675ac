package store

import (
	"strconv"
	"testing"
	"time"

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
