package tokenrevocation

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/store"
)

func newTestDenylist(t testing.TB, opts denylistOptions) *denylist {
	t.Helper()
	if opts.sizeMB == 0 {
		opts.sizeMB = 1
	}
	if opts.maxTTL == 0 {
		opts.maxTTL = 720 * time.Hour
	}
	d, err := newDenylist(uniqueName(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

func digestOf(token string) *[sha256.Size]byte {
	sum := sha256.Sum256([]byte(token))
	return &sum
}

func TestDenylistExpiry(t *testing.T) {
	// given a denylist on a fake clock holding a token for one minute
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	if err := d.add(digestOf("tok"), clock.now().Add(time.Minute), sourceRevoke); err != nil {
		t.Fatal(err)
	}

	// when less than its lifetime has passed, then it is revoked
	clock.advance(59 * time.Second)
	if !d.contains("tok") {
		t.Fatal("entry rejected nothing before its expiry")
	}

	// when its expiry has passed, then it no longer rejects
	clock.advance(time.Second)
	if d.contains("tok") {
		t.Fatal("an expired entry still rejects")
	}
}

func TestDenylistPastExpiryRecordsNothing(t *testing.T) {
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})

	if err := d.add(digestOf("old"), clock.now().Add(-time.Second), sourceRevoke); err != nil {
		t.Fatal(err)
	}

	if d.contains("old") || d.stats().Entries != 0 {
		t.Fatalf("an already expired revocation was stored: %+v", d.stats())
	}
}

func TestDenylistLanes(t *testing.T) {
	d := newTestDenylist(t, denylistOptions{maxTTL: 720 * time.Hour})
	windows := d.store.LaneWindows()
	want := []time.Duration{10 * time.Second, 40 * time.Second, 160 * time.Second, 640 * time.Second,
		2560 * time.Second, 10240 * time.Second, 40960 * time.Second, 163840 * time.Second, 655360 * time.Second, 720 * time.Hour,
		2880 * time.Hour, 8760 * time.Hour}
	if fmt.Sprint(windows) != fmt.Sprint(want) {
		t.Fatalf("lanes: got %v, want %v", windows, want)
	}

	small := newTestDenylist(t, denylistOptions{maxTTL: 5 * time.Second, maxLifetime: 5 * time.Second})
	if w := small.store.LaneWindows(); len(w) != 1 || w[0] != 5*time.Second {
		t.Fatalf("short maxTTL: got %d lanes", len(w))
	}
}

func TestDenylistShortEntryIsFreed(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for bigcache's cleaner")
	}
	// given a one-second lane and a long one, holding one entry each
	d := newTestDenylist(t, denylistOptions{laneBase: time.Second, maxTTL: time.Hour})
	if err := d.add(digestOf("short"), time.Now().Add(500*time.Millisecond), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	if err := d.add(digestOf("long"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	if got := d.stats().Entries; got != 2 {
		t.Fatalf("entries: got %d, want 2", got)
	}

	// when the short lane's window has passed, then bigcache has freed it
	deadline := time.Now().Add(6 * time.Second)
	for d.stats().Entries != 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := d.stats().Entries; got != 1 {
		t.Fatalf("entries after expiry: got %d, want 1", got)
	}
	if !d.contains("long") || d.contains("short") {
		t.Fatal("wrong entry freed")
	}
}

func TestDenylistNeverDropsALiveRevocation(t *testing.T) {
	// given a 1 MiB lane, whose 64 shards hold about 16 KiB each
	d := newTestDenylist(t, denylistOptions{sizeMB: 1, maxTTL: time.Hour})

	// when far more confirmed revocations arrive than fit (as from Redis,
	// which cannot be refused)
	const n = 22000
	for i := 0; i < n; i++ {
		if err := d.add(digestOf(fmt.Sprint("tok-", i)), time.Now().Add(time.Hour), sourceRevoke); err != nil {
			t.Fatal(err)
		}
	}

	// then what bigcache pushed out is counted and kept in the overflow map,
	// and every revocation is still enforced
	s := d.stats()
	if s.Evictions == 0 || s.Overflow != int(s.Evictions) || s.Entries != n {
		t.Fatalf("stats: %+v", s)
	}
	for i := 0; i < n; i += 7 {
		if !d.contains(fmt.Sprint("tok-", i)) {
			t.Fatalf("tok-%d dropped", i)
		}
	}
}

func TestDenylistReserveRefusesBeforeEvicting(t *testing.T) {
	// given a 1 MiB denylist whose revocations all go to its last lane
	d := newTestDenylist(t, denylistOptions{sizeMB: 1, maxTTL: time.Hour})

	// when slots are reserved and filled until reserve refuses
	admitted := 0
	for i := 0; i < d.store.Capacity()*13/10; i++ {
		digest := digestOf(fmt.Sprint("garbage-", i))
		lane := d.store.Reserve(digest, time.Hour)
		if lane < 0 {
			continue
		}
		admitted++
		if err := d.addReserved(digest, "", time.Now().Add(time.Hour), lane, sourceRevoke, nil); err != nil {
			t.Fatal(err)
		}
	}

	// then nearly the whole capacity was admitted, and bigcache evicted nothing
	s := d.stats()
	if admitted > d.store.Capacity() || admitted < d.store.Capacity()*9/10 || s.Evictions != 0 || s.Overflow != 0 {
		t.Fatalf("admitted %d of capacity %d; stats %+v", admitted, d.store.Capacity(), s)
	}

	// and a slot given back can be taken again
	digest := digestOf("garbage-0")
	lane := d.store.LaneFor(time.Hour)
	d.store.Unreserve(lane, digest)
	if d.store.Reserve(digest, time.Hour) != lane {
		t.Fatal("a freed slot was not reusable")
	}
}

func TestDenylistReserveUsesALargerLane(t *testing.T) {
	// given a denylist whose 10 s lane shard is full
	d := newTestDenylist(t, denylistOptions{sizeMB: 1, maxTTL: time.Hour})
	digest := digestOf("x")
	atomic.StoreInt32(d.store.Slots(0, store.ShardOf(digest)), d.store.ShardLimit())

	// when a 5 s revocation is reserved, then it goes to the next lane
	if got := d.store.Reserve(digest, 5*time.Second); got != 1 {
		t.Fatalf("lane %d, want 1", got)
	}
}

func TestDenylistConcurrentAddAndContains(t *testing.T) {
	d := newTestDenylist(t, denylistOptions{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				token := fmt.Sprintf("w%d-%d", w, i)
				if err := d.add(digestOf(token), time.Now().Add(time.Hour), sourceRevoke); err != nil {
					t.Error(err)
					return
				}
				if !d.contains(token) {
					t.Errorf("%s not revoked right after add", token)
					return
				}
				if d.contains(token + "-never") {
					t.Errorf("%s-never reported revoked", token)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if got := d.stats().Revokes; got != 2000 {
		t.Fatalf("revokes: got %d, want 2000", got)
	}
}

func TestSharedDenylist(t *testing.T) {
	name := uniqueName(t)
	a, err := sharedDenylist(name, denylistOptions{sizeMB: 1, maxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sharedDenylist(name, denylistOptions{sizeMB: 2, maxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sharedDenylist(name+"-c", denylistOptions{sizeMB: 1, maxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == c || b.opts.sizeMB != 1 {
		t.Fatal("denylists are not shared by name")
	}
}

func BenchmarkDenylistContains(b *testing.B) {
	d := newTestDenylist(b, denylistOptions{sizeMB: 64})
	for i := 0; i < 100000; i++ {
		_ = d.add(digestOf(fmt.Sprint("revoked-", i)), time.Now().Add(time.Hour), sourceRevoke)
	}
	b.Run("unknown", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.contains("eyJhbGciOiJIUzI1NiJ9.unknown-token")
		}
	})
	b.Run("revoked", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.contains("revoked-42")
		}
	})
}

func TestFixedOptionsWarnOncePerChange(t *testing.T) {
	// given a shared denylist
	var logged strings.Builder
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	name := uniqueName(t)
	opts := denylistOptions{sizeMB: 1, maxTTL: time.Hour, clientRate: 100, clientBurst: 200, maxGrants: 10}
	d, err := sharedDenylist(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	unregister(t, name, d)
	// when routers are built again with options fixed at its creation changed
	changed := opts
	changed.clientRate, changed.maxGrants = 5, 20
	for i := 0; i < 3; i++ {
		if _, err := sharedDenylist(name, changed); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = sharedDenylist(name, opts)
	// then one WARN names what is kept, not one per New
	if n := strings.Count(logged.String(), fmt.Sprintf("denylist %q keeps clientRate, maxGrants as it was created until restart", name)); n != 1 {
		t.Fatalf("%d warnings:\n%s", n, logged.String())
	}
}

// BenchmarkDenylistRecord is the cost of recording one revocation with its
// pre-check key (the revoke endpoint's and the bench preload's path).
func BenchmarkDenylistRecord(b *testing.B) {
	d := newTestDenylist(b, denylistOptions{sizeMB: 64})
	expiry := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		token := "bench-record-" + strconv.Itoa(i)
		sum := sha256.Sum256([]byte(token))
		_ = d.addKeyed(&sum, token[len(token)-8:], expiry, sourceRevoke)
	}
}
