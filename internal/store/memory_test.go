package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// BenchmarkMemoryShare measures what each structure of the store holds per
// entry, compiled (the maps and bigcache are the same Go structures under
// Yaegi): the lanes (bigcache's byte queues and index maps), the pre-check's
// key map, the loaded segment while it lives, and the bitset, which is
// fixed by cacheSizeMB. MEMSHARE_ENTRIES sets the count (default 1,000,000):
//
//	go test -run XXX -bench MemoryShare -benchtime 1x ./internal/store
func BenchmarkMemoryShare(b *testing.B) {
	n := 1000000
	if v, err := strconv.Atoi(os.Getenv("MEMSHARE_ENTRIES")); err == nil && v > 0 {
		n = v
	}
	recs := make([]record.Revocation, n)
	expiry := time.Now().Add(24 * time.Hour).UnixNano()
	for i := range recs {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		recs[i].Digest = sha256.Sum256(seed[:])
		recs[i].Expiry = expiry
		recs[i].At = time.Now().UnixNano()
		recs[i].SetKey(fmt.Sprintf("%08d", i%100000000))
	}
	for i := 0; i < b.N; i++ {
		// The pre-check alone: every key, folded into its base map.
		before := heapInUse()
		p := newPrecheck(time.Now)
		for lo := 0; lo < n; lo += 10000 {
			p.addBatch(recs[lo:batchEnd(lo, n)])
		}
		p.Merge()
		pre := heapInUse() - before
		runtime.KeepAlive(p)

		// The loaded segment, as staged and then as served, then the
		// lanes once it drains, in a store of the default size (64 MB per
		// lane) with maxTTL 24h.
		s, err := New(Options{SizeMB: 64, MaxTTL: 24 * time.Hour, MaxLifetime: 48 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		empty := heapInUse()
		s.StartLoading()
		for lo := 0; lo < n; lo += 10000 {
			s.Stage(recs[lo:batchEnd(lo, n)], 6)
		}
		staged := heapInUse() - empty
		s.EndStaging()
		served := heapInUse() - empty
		s.Drain()
		for s.Overlaid() {
			time.Sleep(50 * time.Millisecond)
		}
		full := heapInUse() - empty
		capacity := 0
		for _, l := range s.lanes {
			capacity += l.cache.Capacity()
		}
		per := func(bytes int64) float64 { return float64(bytes) / float64(n) }
		b.ReportMetric(per(pre), "precheck-B/entry")
		b.ReportMetric(per(staged), "segment+precheck-while-loading-B/entry")
		b.ReportMetric(per(served), "store-served-from-segment-B/entry")
		b.ReportMetric(per(full), "store-after-drain-into-bigcache-B/entry")
		b.ReportMetric(per(int64(capacity)), "bigcache-queues-B/entry")
		b.ReportMetric(float64(len(s.filter)*8)/(1<<20), "bitset-MiB")
		s.Close()
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// batchEnd is the end of the batch of 10,000 from lo (Yaegi v0.16.1 has no
// min builtin).
func batchEnd(lo, n int) int {
	if lo+10000 < n {
		return lo + 10000
	}
	return n
}

// BenchmarkStage stages 10,000 keyed records per op into a loading store:
// the store's share of a cold start's CPU, per record. Run it under Yaegi,
// where that share is measured (see BENCHMARKS.md):
//
//	yaegi test -unsafe -run XXX -bench Stage -benchtime 20x .
func BenchmarkStage(b *testing.B) {
	const batch = 10000
	expiry := time.Now().Add(time.Hour).UnixNano()
	recs := make([]record.Revocation, batch)
	s, err := New(Options{SizeMB: 64, MaxTTL: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.StartLoading()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range recs {
			var seed [8]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(i*batch+j))
			recs[j].Digest = sha256.Sum256(seed[:])
			recs[j].Expiry = expiry
			recs[j].At = 1
			recs[j].SetKey(fmt.Sprintf("%08d", (i*batch+j)%100000000))
		}
		b.StartTimer()
		s.Stage(recs, 6)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
	s.EndStaging()
}
