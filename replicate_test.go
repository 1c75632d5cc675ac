package tokenrevocation

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// newReplica builds a Redis-backed denylist as one Traefik replica would.
func newReplica(t *testing.T, name, addr string) *denylist {
	t.Helper()
	d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour})
	d.name = name
	d.replica = startReplicator(d, testRedisOptions(addr))
	return d
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

func TestReplicatorPropagates(t *testing.T) {
	// given two replicas of one denylist sharing a Redis
	srv := startRedis(t)
	a, b := newReplica(t, "shared", srv.addr()), newReplica(t, "shared", srv.addr())
	other := newReplica(t, "other", srv.addr())

	// when a revocation is recorded on A
	if err := a.add(digestOf("tok-1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// then B enforces it, and a denylist of another name never does
	if !waitFor(t, 2*time.Second, func() bool { return b.contains("tok-1") }) {
		t.Fatal("B never saw A's revocation")
	}
	time.Sleep(100 * time.Millisecond)
	if other.contains("tok-1") {
		t.Fatal("a denylist with another name received the entry")
	}
	if !b.stats().Ready || b.stats().Redis != "connected" {
		t.Fatalf("stats: %+v", b.stats())
	}
}

func TestReplicatorCatchesUpOnStart(t *testing.T) {
	srv := startRedis(t)
	a := newReplica(t, "catchup", srv.addr())
	for i := 0; i < 3000; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprint("tok-", i)))
		if err := a.add(&sum, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(t, 10*time.Second, func() bool { return a.replica.queued() == 0 }) {
		t.Fatal("A never flushed its queue")
	}

	late := newReplica(t, "catchup", srv.addr())

	if !waitFor(t, 30*time.Second, func() bool { return late.stats().Ready }) {
		t.Fatal("late replica never reported ready")
	}
	for i := 0; i < 3000; i++ {
		if !late.contains(fmt.Sprint("tok-", i)) {
			t.Fatalf("late replica misses tok-%d once ready", i)
		}
	}
}

func TestReplicatorSurvivesRedisOutage(t *testing.T) {
	// given two connected replicas
	srv := startRedis(t)
	a, b := newReplica(t, "outage", srv.addr()), newReplica(t, "outage", srv.addr())
	if !waitFor(t, 5*time.Second, func() bool { return a.stats().Ready && b.stats().Ready }) {
		t.Fatal("replicas not ready")
	}

	// when Redis is down, A records a revocation
	srv.stop()
	if err := a.add(digestOf("during-outage"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// then A enforces it at once, B once Redis is back
	if !a.contains("during-outage") {
		t.Fatal("A does not enforce locally while Redis is down")
	}
	time.Sleep(300 * time.Millisecond)
	if b.contains("during-outage") {
		t.Fatal("B saw it without Redis")
	}
	srv.start()
	if !waitFor(t, 15*time.Second, func() bool { return b.contains("during-outage") }) {
		t.Fatalf("B never got the revocation after Redis returned: %+v", b.stats())
	}
	// A drops its queue after the XADD reply, which B may have read first.
	if !waitFor(t, 5*time.Second, func() bool { return a.replica.queued() == 0 }) {
		t.Fatal("A's queue not drained")
	}
}

func TestParseXRead(t *testing.T) {
	good := fmt.Sprintf("%x", sha256.Sum256([]byte("x")))
	reply := []interface{}{[]interface{}{"s", []interface{}{
		[]interface{}{"1-1", []interface{}{"d", good, "e", "4102444800000"}},
		[]interface{}{"1-2", []interface{}{"d", "zz", "e", "1"}},
		[]interface{}{"1-3", "garbage"},
	}}}
	recs, last, n := parseXRead(reply)
	if len(recs) != 1 || last != "1-3" || n != 3 || recs[0].expiry != 4102444800000*int64(time.Millisecond) {
		t.Fatalf("got %d recs, last %q, count %d", len(recs), last, n)
	}
	if _, _, n := parseXRead("nonsense"); n != 0 {
		t.Fatal("parsed nonsense")
	}
}

// Under Yaegi, named results once piled up across calls from one call site
// in a loop; readLoop calls parseXRead that way.
func TestParseXReadInALoop(t *testing.T) {
	for i := 0; i < 3; i++ {
		reply := []interface{}{[]interface{}{"s", []interface{}{
			[]interface{}{fmt.Sprintf("1-%d", i), []interface{}{"d", fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)})), "e", "4102444800000"}},
		}}}
		recs, last, n := parseXRead(reply)
		if len(recs) != 1 || n != 1 || last != fmt.Sprintf("1-%d", i) || recs[0].digest != sha256.Sum256([]byte{byte(i)}) {
			t.Fatalf("call %d: %d recs, count %d, last %q", i, len(recs), n, last)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := 0; n < 10; n++ {
		if d := backoff(n); d < 50*time.Millisecond || d > 7500*time.Millisecond {
			t.Fatalf("backoff(%d) = %s", n, d)
		}
	}
}
