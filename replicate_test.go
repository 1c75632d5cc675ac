package tokenrevocation

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"
)

// newReplica builds a Redis-backed denylist as one Traefik replica would.
func newReplica(t *testing.T, name, addr string) *denylist {
	t.Helper()
	d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour})
	d.name = name
	d.startLoading(1)
	d.replica = startReplica(d, testRedisOptions(addr))
	go d.watchLoad()
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
	if err := a.add(digestOf("tok-1"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
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
		if err := a.add(&sum, time.Now().Add(time.Hour), sourceRevoke); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(t, 10*time.Second, func() bool { return a.replica.Status().Queued == 0 }) {
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
	if err := a.add(digestOf("during-outage"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
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
	if !waitFor(t, 5*time.Second, func() bool { return a.replica.Status().Queued == 0 }) {
		t.Fatal("A's queue not drained")
	}
}

// entryRESP encodes one stream entry as XREAD returns it.
func entryRESP(id string, fields ...string) string {
	out := fmt.Sprintf("*2\r\n$%d\r\n%s\r\n*%d\r\n", len(id), id, len(fields))
	for _, f := range fields {
		out += fmt.Sprintf("$%d\r\n%s\r\n", len(f), f)
	}
	return out
}

func TestReplicatorSkipsOtherRecordTypes(t *testing.T) {
	// given a stream holding a record type this release does not know,
	// between two revocations
	srv := startRedis(t)
	seedStream(t, srv, "test:typed", [][]string{
		{"d", fmt.Sprintf("%x", sha256.Sum256([]byte("before"))), "e", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())},
		{"t", "future", "v", "1", "payload", "\n\x00binary"},
		{"d", fmt.Sprintf("%x", sha256.Sum256([]byte("after"))), "e", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())},
	})

	// when a replica loads it
	d := newReplica(t, "typed", srv.addr())

	// then both revocations are enforced
	if !waitFor(t, 5*time.Second, func() bool { return d.stats().Ready }) {
		t.Fatalf("never ready: %+v", d.stats())
	}
	if !d.contains("before") || !d.contains("after") || d.contains("future") {
		t.Fatal("wrong entries loaded")
	}
}

func TestReplicatorSkipsOversizedAndMalformedEntries(t *testing.T) {
	// given a stream holding, between revocations, an entry larger than the
	// reader's buffer and one that is no record at all
	srv := startRedis(t)
	exp := fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
	seedStream(t, srv, "test:hostile", [][]string{
		{"d", fmt.Sprintf("%x", sha256.Sum256([]byte("before"))), "e", exp},
		{"junk", strings.Repeat("x", 200<<10)},
		{"d", "not-hex", "e", "soon"},
		{"d", fmt.Sprintf("%x", sha256.Sum256([]byte("after"))), "e", exp},
	})

	// when a replica loads it, and another revocation arrives once it runs
	d := newReplica(t, "hostile", srv.addr())
	if !waitFor(t, 10*time.Second, func() bool { return d.stats().Ready }) {
		t.Fatalf("never ready: %+v", d.stats())
	}
	seedStream(t, srv, "test:hostile", [][]string{
		{"junk", strings.Repeat("y", 100<<10)},
		{"d", fmt.Sprintf("%x", sha256.Sum256([]byte("later"))), "e", exp},
	})

	// then every revocation is enforced, and the skipped entries counted
	if !waitFor(t, 10*time.Second, func() bool { return d.contains("later") }) {
		t.Fatalf("a revocation after an oversized entry never arrived: %+v", d.stats())
	}
	s := d.stats()
	if !d.contains("before") || !d.contains("after") || s.Stream.Oversized != 2 || s.Stream.Malformed != 1 || !s.Ready {
		t.Fatalf("stats %+v", s)
	}
}

// seedStream XADDs one entry per fields to stream, as a foreign writer would.
func seedStream(t *testing.T, srv *redisServer, stream string, entries [][]string) {
	t.Helper()
	// A patient connection: redis-server fsyncs every write here
	// (appendfsync always), which a busy disk can hold past a second.
	opts := testRedisOptions(srv.addr())
	opts.readTimeout = 10 * time.Second
	conn, err := dialRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, fields := range entries {
		if _, err := conn.Do(append([]string{"XADD", stream, "*"}, fields...)...); err != nil {
			t.Fatal(err)
		}
	}
}
