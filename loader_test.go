package tokenrevocation

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// loadingMiddleware is a middleware whose denylist is loading one source,
// with the given loadWait and failClosed.
func loadingMiddleware(t *testing.T, next http.Handler, loadWait time.Duration, failClosed bool) *middleware {
	t.Helper()
	m := newTestMiddleware(t, next, nil, nil)
	m.list.opts.loadWait, m.list.opts.failClosed = loadWait, failClosed
	m.list.startLoading(1)
	return m
}

func TestLoadingHoldsTokensUntilLoaded(t *testing.T) {
	// given a denylist loading a source that revoked "old"
	next := &upstream{}
	m := loadingMiddleware(t, next, 5*time.Second, false)
	m.list.stage([]record.Revocation{{Digest: *digestOf("old"), Expiry: time.Now().Add(time.Hour).UnixNano()}}, sourceRedis)

	// when requests arrive before the load finishes
	type result struct{ old, fresh int }
	done := make(chan result)
	go func() {
		done <- result{serve(m, apiRequest("old")).Code, serve(m, apiRequest("fresh")).Code}
	}()
	noToken := serve(m, apiRequest(""))
	time.Sleep(100 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("a request carrying a token was not held")
	default:
	}
	m.list.sourceLoaded()

	// then requests without a token were never held, the revoked token is
	// refused and the fresh one served, and the denylist is ready
	got := <-done
	if noToken.Code != 200 || got.old != 401 || got.fresh != 200 {
		t.Fatalf("no token %d, old %d, fresh %d", noToken.Code, got.old, got.fresh)
	}
	if s := m.list.stats(); !s.Ready || s.State != "ready" {
		t.Fatalf("stats: %+v", s)
	}
}

func TestLoadingPastLoadWaitAnswers503(t *testing.T) {
	// given a denylist still loading after loadWait
	next := &upstream{}
	m := loadingMiddleware(t, next, 50*time.Millisecond, false)

	// when a request carrying a token in any source arrives
	for _, req := range []*http.Request{apiRequest("tok"), formRequest(http.MethodPost, "access_token=tok")()} {
		rw := serve(m, req)

		// then it gets 503 with Retry-After, and nothing reached the upstream
		if rw.Code != http.StatusServiceUnavailable || rw.Header().Get("Retry-After") == "" || next.calls() != 0 {
			t.Fatalf("status %d, Retry-After %q, upstream calls %d", rw.Code, rw.Header().Get("Retry-After"), next.calls())
		}
		assertJSONError(t, rw, "temporarily_unavailable", "")
	}
}

func TestLoadingStagesFastAndFillsExactly(t *testing.T) {
	// given 20,000 revocations staged while loading
	m := loadingMiddleware(t, &upstream{}, time.Second, false)
	recs := make([]record.Revocation, 20000)
	for i := range recs {
		recs[i] = record.Revocation{Digest: *digestOf(fmt.Sprint("tok-", i)), Expiry: time.Now().Add(time.Hour).UnixNano()}
	}
	m.list.stage(recs[:10000], sourceRedis)
	m.list.stage(recs[10000:], sourceRedis)
	m.list.stage(recs[:5], sourceRedis) // a duplicate is staged once

	// when the load finishes, then every one is enforced at once, from the
	// overlay and then from bigcache, and a token never revoked passes
	m.list.sourceLoaded()
	for _, i := range []int{0, 9999, 10000, 19999} {
		if !m.list.contains(fmt.Sprint("tok-", i)) {
			t.Fatalf("tok-%d not enforced", i)
		}
	}
	if m.list.contains("never") {
		t.Fatal("a token never revoked is reported revoked")
	}
	if s := m.list.stats(); s.Entries != len(recs) || s.Segment != len(recs) || s.Filling != 0 {
		t.Fatalf("stats while served from the loaded segment: %+v", s)
	}
	m.list.store.Drain()
	if !waitFor(t, 30*time.Second, func() bool { return m.list.stats().Filling == 0 && overlayGone(m.list) }) {
		t.Fatalf("fill did not finish: %+v", m.list.stats())
	}
	for i := 0; i < len(recs); i += 97 {
		if !m.list.contains(fmt.Sprint("tok-", i)) {
			t.Fatalf("tok-%d lost after the fill", i)
		}
	}
	if s := m.list.stats(); s.Entries != len(recs) || s.Loaded != int64(len(recs))+5 {
		t.Fatalf("stats: %+v", s)
	}
}

func overlayGone(d *denylist) bool {
	return !d.store.Overlaid()
}

func TestLoadingKeepsLocalRevocations(t *testing.T) {
	// given a denylist loading, when a revocation is confirmed locally
	m := loadingMiddleware(t, &upstream{}, time.Second, false)
	revoke(t, m, "local", "")

	// then it is still enforced once the staged bitset replaces the live one
	m.list.sourceLoaded()
	if rw := serve(m, apiRequest("local")); rw.Code != 401 {
		t.Fatalf("status %d", rw.Code)
	}
}

func TestLoadingUnreachableSource(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failClosed=%v", failClosed), func(t *testing.T) {
			// given a denylist whose only source cannot load
			next := &upstream{}
			m := loadingMiddleware(t, next, 100*time.Millisecond, failClosed)
			m.list.stage([]record.Revocation{{Digest: *digestOf("old"), Expiry: time.Now().Add(time.Hour).UnixNano()}}, sourceRedis)
			atomic.StoreInt32(&m.list.life.fileFailed, 1)
			go m.list.watchLoad()

			// when loadWait has passed
			time.Sleep(300 * time.Millisecond)
			fresh, old := serve(m, apiRequest("fresh")), serve(m, apiRequest("old"))

			// then by default it serves with what it has and is not ready;
			// failClosed answers 503 at once
			s := m.list.stats()
			if failClosed {
				start := time.Now()
				again := serve(m, apiRequest("fresh"))
				if fresh.Code != 503 || old.Code != 503 || again.Code != 503 || s.Ready || s.State != "loading" || time.Since(start) > 50*time.Millisecond {
					t.Fatalf("fresh %d old %d, stats %+v", fresh.Code, old.Code, s)
				}
				return
			}
			if fresh.Code != 200 || old.Code != 401 || s.Ready || s.State != "degraded" {
				t.Fatalf("fresh %d old %d, stats %+v", fresh.Code, old.Code, s)
			}
		})
	}
}

func TestLoadingRedisSourceStallsOnlyWhenIdle(t *testing.T) {
	// given a denylist loading from a Redis source that is not connected
	// (nothing listens at its address), with a short loadWait
	d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour, loadWait: 200 * time.Millisecond})
	d.startLoading(1)
	d.replica = startReplica(d, testRedisOptions("127.0.0.1:1"))
	go d.watchLoad()

	// when the stream still makes progress (as a reader that lost its
	// connection for a moment mid-load does), for well past loadWait
	for i := 0; i < 30; i++ {
		d.stage([]record.Revocation{{Digest: *digestOf(fmt.Sprint("streamed-", i)), Expiry: time.Now().Add(time.Hour).UnixNano(), At: 1}}, sourceRedis)
		time.Sleep(50 * time.Millisecond)
	}

	// then it keeps loading: it does not open with part of the stream
	if s := d.stats(); s.State != "loading" {
		t.Fatalf("a progressing source was taken for stalled: %+v", s)
	}
	// and once it has made no progress for loadWait, it is, and the
	// denylist opens degraded (failClosed is off)
	if !waitFor(t, 5*time.Second, func() bool { return d.stats().State == "degraded" }) {
		t.Fatalf("an idle, disconnected source never stalled: %+v", d.stats())
	}
}
