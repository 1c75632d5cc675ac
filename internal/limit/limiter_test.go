package limit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
)

// key is the limiter's key of a confidential client: the tests name
// clients by id.
func key(client string) Key {
	return KeyOf(client, true, "")
}

// testWindow is a lane window of exactly seven 10 s buckets: an entry counts
// for 70 s to 80 s, depending on where in its bucket it was made.
const testWindow = 70 * time.Second

// A limiterStep is one thing done to a limiter in a scenario.
type limiterStep struct {
	advance time.Duration // the clock moves first
	client  string
	lane    int
	// action: "revoke" admits and, when allowed, commits; "hold" admits and
	// keeps the reservation; "commit" and "release" settle one held.
	action        string
	expRefused    string // for revoke and hold: "" allowed, else the reason
	expRetryAfter time.Duration
}

// runSteps plays steps on l and checks each decision.
func runSteps(t *testing.T, l *Limiter, clock *fakeclock.Clock, laneCap int, steps []limiterStep) {
	t.Helper()
	for i, step := range steps {
		clock.Advance(step.advance)
		switch step.action {
		case "commit":
			l.Commit(key(step.client), step.lane, 1)
			continue
		case "release":
			l.Release(key(step.client), step.lane, 1)
			continue
		}
		d := l.Admit(key(step.client), step.lane, testWindow, laneCap, 1)
		if d.Allowed != (step.expRefused == "") || d.Reason != step.expRefused {
			t.Fatalf("step %d (%s %q): got %+v, want refused=%q", i, step.action, step.client, d, step.expRefused)
		}
		if d.Allowed && d.RetryAfter != 0 || !d.Allowed && d.RetryAfter != step.expRetryAfter {
			t.Fatalf("step %d (%s %q): retry after %v, want %v", i, step.action, step.client, d.RetryAfter, step.expRetryAfter)
		}
		if d.Allowed && step.action == "revoke" {
			l.Commit(key(step.client), step.lane, 1)
		}
	}
}

// repeat returns n copies of step.
func repeat(n int, step limiterStep) []limiterStep {
	steps := make([]limiterStep, n)
	for i := range steps {
		steps[i] = step
	}
	return steps
}

// join concatenates groups of steps.
func join(groups ...[]limiterStep) []limiterStep {
	var steps []limiterStep
	for _, g := range groups {
		steps = append(steps, g...)
	}
	return steps
}

var (
	revokeOK   = limiterStep{action: "revoke"}
	holdOK     = limiterStep{action: "hold"}
	rateRefuse = limiterStep{action: "revoke", expRefused: "rate", expRetryAfter: time.Second}
)

func TestClientLimiterRate(t *testing.T) {
	tests := []struct {
		desc  string
		rate  float64
		burst int
		steps []limiterStep
	}{
		{
			desc: "burst, then refused until a token is earned", rate: 10, burst: 3,
			steps: join(repeat(3, revokeOK), repeat(2, rateRefuse)),
		},
		{
			desc: "refills over time, never beyond the burst", rate: 10, burst: 2,
			steps: join(repeat(2, revokeOK), []limiterStep{
				rateRefuse,
				{advance: 100 * time.Millisecond, action: "revoke"},
				rateRefuse,
				{advance: time.Hour, action: "revoke"},
				revokeOK,
				rateRefuse,
			}),
		},
		{
			desc: "a slow rate tells how long to wait", rate: 0.25, burst: 1,
			steps: []limiterStep{
				revokeOK,
				{action: "revoke", expRefused: "rate", expRetryAfter: 4 * time.Second},
				{advance: 3 * time.Second, action: "revoke", expRefused: "rate", expRetryAfter: time.Second},
				{advance: time.Second, action: "revoke"},
			},
		},
		{
			desc: "burst below one is one", rate: 1, burst: 0,
			steps: []limiterStep{revokeOK, rateRefuse, {advance: time.Second, action: "revoke"}},
		},
		{
			desc: "rate 0 is off", rate: 0, burst: 1,
			steps: repeat(1000, revokeOK),
		},
		{
			desc: "a negative rate is off", rate: -1, burst: 1,
			steps: repeat(100, revokeOK),
		},
		{
			desc: "refused calls do not drain the bucket further", rate: 1, burst: 1,
			steps: join([]limiterStep{revokeOK}, repeat(50, rateRefuse), []limiterStep{{advance: time.Second, action: "revoke"}}),
		},
		{
			desc: "the empty client id is a client like any other", rate: 1, burst: 1,
			steps: []limiterStep{revokeOK, rateRefuse, {client: "other", action: "revoke"}},
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			clock := fakeclock.New()
			l := New(test.rate, test.burst, 1, 0, clock.Now)
			runSteps(t, l, clock, 100, test.steps)
		})
	}
}

func TestClientLimiterShare(t *testing.T) {
	// Every case: half of an 8-entry lane, so 4 live entries per client and
	// lane, on testWindow (10 s buckets); the clock starts on a bucket edge.
	shareRefuse := func(retry time.Duration) limiterStep {
		return limiterStep{action: "revoke", expRefused: "share", expRetryAfter: retry}
	}
	tests := []struct {
		desc  string
		share float64
		steps []limiterStep
	}{
		{
			desc: "reached, then freed once the window has passed", share: 0.5,
			steps: join(repeat(4, revokeOK), []limiterStep{
				shareRefuse(80 * time.Second),
				{advance: 79 * time.Second, action: "revoke", expRefused: "share", expRetryAfter: time.Second},
				{advance: time.Second, action: "revoke"},
			}),
		},
		{
			desc: "the oldest bucket sets the wait, and frees only its own entries", share: 0.5,
			steps: join(repeat(2, revokeOK), []limiterStep{{advance: 30 * time.Second, action: "revoke"}, revokeOK},
				[]limiterStep{shareRefuse(50 * time.Second), {advance: 50 * time.Second, action: "revoke"}, revokeOK},
				[]limiterStep{shareRefuse(30 * time.Second)}),
		},
		{
			desc: "an entry counts for at least the window", share: 0.5,
			steps: join([]limiterStep{{advance: 9 * time.Second, action: "revoke"}}, repeat(3, revokeOK),
				[]limiterStep{{advance: testWindow - time.Nanosecond, action: "revoke", expRefused: "share", expRetryAfter: 2 * time.Second}}),
		},
		{
			desc: "reservations count until released", share: 0.5,
			steps: join(repeat(4, holdOK), []limiterStep{
				{action: "hold", expRefused: "share", expRetryAfter: time.Second},
				{action: "release"},
				holdOK,
				{action: "hold", expRefused: "share", expRetryAfter: time.Second},
			}),
		},
		{
			desc: "released reservations leave nothing counted", share: 0.5,
			steps: join(repeat(4, holdOK), repeat(4, limiterStep{action: "release"}), repeat(4, revokeOK), []limiterStep{shareRefuse(80 * time.Second)}),
		},
		{
			desc: "committed reservations count for the window", share: 0.5,
			steps: join(repeat(4, holdOK), []limiterStep{{advance: 5 * time.Second, action: "commit"}}, repeat(3, limiterStep{action: "commit"}), []limiterStep{
				shareRefuse(75 * time.Second),
				{advance: 75 * time.Second, action: "revoke"},
			}),
		},
		{
			desc: "lanes are counted apart", share: 0.5,
			steps: join(repeat(4, revokeOK), []limiterStep{shareRefuse(80 * time.Second), {lane: 1, action: "revoke"}}),
		},
		{
			desc: "share 1 is off", share: 1,
			steps: repeat(100, revokeOK),
		},
		{
			desc: "a share below one entry still allows one", share: 0.01,
			steps: []limiterStep{revokeOK, shareRefuse(80 * time.Second)},
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			clock := fakeclock.New()
			l := New(0, 0, test.share, 0, clock.Now)
			runSteps(t, l, clock, 8, test.steps)
		})
	}
}

func TestClientLimiterRefusedCallsSpendNothing(t *testing.T) {
	// given a client with a burst of 3 and a share of one entry
	clock := fakeclock.New()
	l := New(1, 3, 0.5, 0, clock.Now)
	runSteps(t, l, clock, 2, []limiterStep{revokeOK, {action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})

	// when a thousand calls are admitted and the identity service refuses
	// them all (a wrong secret), then none spent a token or held a slot:
	// the share refuses, not the rate, and once the entry leaves the
	// window the client has its whole burst
	for i := 0; i < 1000; i++ {
		if d := l.Admit(key(""), 0, testWindow, 2, 1); d.Allowed {
			l.Release(key(""), 0, 1)
		}
	}
	runSteps(t, l, clock, 2, []limiterStep{{action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})
	clock.Advance(80 * time.Second)
	runSteps(t, l, clock, 1000, []limiterStep{revokeOK, revokeOK, revokeOK, rateRefuse})
}

func TestClientLimiterUnconfirmedCallsLeaveTheBucketFull(t *testing.T) {
	// given a client with a burst of 2
	clock := fakeclock.New()
	l := New(1, 2, 0, 0, clock.Now)

	// when 500 calls in flight together are all refused upstream
	for i := 0; i < 500; i++ {
		if !l.Admit(key("victim"), 0, testWindow, 10, 1).Allowed {
			t.Fatalf("call %d refused before the identity service answered anything", i)
		}
	}
	for i := 0; i < 500; i++ {
		l.Release(key("victim"), 0, 1)
	}

	// then the client's own calls get its whole burst, and no more
	runSteps(t, l, clock, 10, []limiterStep{{client: "victim", action: "revoke"}, {client: "victim", action: "revoke"},
		{client: "victim", action: "revoke", expRefused: "rate", expRetryAfter: time.Second}})
}

func TestClientLimiterCountedElsewhereHoldsTheShare(t *testing.T) {
	// given a client with a share of 4 entries
	clock := fakeclock.New()
	l := New(0, 0, 0.5, 0, clock.Now)

	// when another replica's 3 entries of it arrive, then one more fits here
	l.Count(key("app"), 0, testWindow, 3)
	runSteps(t, l, clock, 8, []limiterStep{{client: "app", action: "revoke"},
		{client: "app", action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})
}

func TestClientLimiterWindowChangeKeepsCounts(t *testing.T) {
	// given a client at its share in a lane of testWindow
	clock := fakeclock.New()
	l := New(0, 0, 0.5, 0, clock.Now)
	runSteps(t, l, clock, 8, repeat(4, revokeOK))

	// when the lane's window shrinks (1 s buckets), then the entries still
	// count, for the new window from now
	clock.Advance(30 * time.Second)
	if d := l.Admit(key(""), 0, 7*time.Second, 8, 1); d.Allowed || d.Reason != "share" || d.RetryAfter != 8*time.Second {
		t.Fatalf("after the window changed: got %+v, want refused for share for 8s", d)
	}
}

func TestClientLimiterConcurrentAdmitsKeepTheShare(t *testing.T) {
	// given a share of 10 entries and 64 calls of one client at once
	l := New(0, 0, 0.5, 0, nil)
	const calls = 64
	var allowed int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(calls)
	for i := 0; i < calls; i++ {
		go func() {
			defer wg.Done()
			<-start
			if l.Admit(key("app"), 0, time.Hour, 20, 1).Allowed {
				atomic.AddInt64(&allowed, 1)
			}
		}()
	}

	// when they are admitted together, then only 10 pass
	close(start)
	wg.Wait()
	if allowed != 10 {
		t.Fatalf("allowed %d of %d concurrent calls, want 10", allowed, calls)
	}

	// when half are confirmed and half not, then the other half is free again
	wg.Add(10)
	for i := 0; i < 10; i++ {
		go func(confirmed bool) {
			defer wg.Done()
			if confirmed {
				l.Commit(key("app"), 0, 1)
			} else {
				l.Release(key("app"), 0, 1)
			}
		}(i%2 == 0)
	}
	wg.Wait()
	allowed = 0
	for i := 0; i < calls; i++ {
		if l.Admit(key("app"), 0, time.Hour, 20, 1).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("allowed %d after 5 releases, want 5", allowed)
	}
}

func TestClientLimiterClientsAreIndependent(t *testing.T) {
	tests := []struct {
		desc   string
		rate   float64
		share  float64
		reason string
	}{
		{desc: "flooding the rate", rate: 10, share: 1, reason: "rate"},
		{desc: "filling the share", rate: 0, share: 0.5, reason: "share"},
		{desc: "both limits on", rate: 10, share: 0.5, reason: "rate"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a flooder refused for its own calls
			clock := fakeclock.New()
			l := New(test.rate, 5, test.share, 0, clock.Now)
			refused := ""
			for i := 0; i < 1000; i++ {
				if d := l.Admit(key("flooder"), 0, time.Hour, 20, 1); d.Allowed {
					l.Commit(key("flooder"), 0, 1)
				} else {
					refused = d.Reason
				}
			}
			if refused != test.reason {
				t.Fatalf("flooder refused for %q, want %q", refused, test.reason)
			}

			// when another client calls, then it gets its own full allowance
			allowed := 0
			for i := 0; i < 20; i++ {
				if l.Admit(key("bystander"), 0, time.Hour, 20, 1).Allowed {
					l.Commit(key("bystander"), 0, 1)
					allowed++
				}
			}
			if want := map[string]int{"rate": 5, "share": 10}[test.reason]; allowed != want {
				t.Fatalf("bystander allowed %d, want %d", allowed, want)
			}
		})
	}
}

func TestClientLimiterMaxClients(t *testing.T) {
	// given a table of 1000 clients and 100k made-up ids, each revoking once
	// (a live entry in a one-entry share: none is ever idle in this test)
	clock := fakeclock.New()
	l := New(1, 1, 0.5, 1000, clock.Now)
	for i := 0; i < 100000; i++ {
		id := "id-" + strconv.Itoa(i)
		k := key(id)
		if d := l.Admit(k, 0, time.Hour, 2, 1); d.Allowed {
			l.Commit(k, 0, 1)
		} else {
			t.Fatalf("newcomer %s refused: %+v", id, d)
		}
		if i%10000 == 0 {
			clock.Advance(time.Second)
		}
	}

	// then the table never grew past its bound
	if got := l.tracked(); got != 1000 {
		t.Fatalf("tracked %d clients, want 1000", got)
	}

	// and a tracked client kept its limits
	if d := l.Admit(key("id-0"), 0, time.Hour, 2, 1); d.Allowed {
		t.Fatal("a tracked client was forgotten while busy")
	}
}

func TestClientLimiterIdleClientsMakeRoom(t *testing.T) {
	// given a table of two clients that have just called
	clock := fakeclock.New()
	l := New(1, 1, 1, 2, clock.Now)
	for _, id := range []string{"a", "b"} {
		if !l.Admit(key(id), 0, time.Hour, 10, 1).Allowed {
			t.Fatalf("%s refused", id)
		}
		l.Commit(key(id), 0, 1)
	}

	// when a third calls, then it is decided afresh every time, untracked
	for i := 0; i < 3; i++ {
		if d := l.Admit(key("c"), 0, time.Hour, 10, 1); !d.Allowed {
			t.Fatalf("untracked newcomer refused: %+v", d)
		}
	}
	if got := l.tracked(); got != 2 {
		t.Fatalf("tracked %d, want 2", got)
	}

	// when the first two are idle again, then the newcomer takes their room
	clock.Advance(time.Second)
	if !l.Admit(key("c"), 0, time.Hour, 10, 1).Allowed {
		t.Fatal("newcomer refused")
	}
	l.Commit(key("c"), 0, 1)
	if got := l.tracked(); got != 1 {
		t.Fatalf("tracked %d after the sweep, want 1", got)
	}
	if d := l.Admit(key("c"), 0, time.Hour, 10, 1); d.Allowed || d.Reason != "rate" {
		t.Fatalf("tracked newcomer not limited: %+v", d)
	}
}

func TestClientLimiterKeepsClientsWithLiveEntries(t *testing.T) {
	// given a table of one client holding a live entry, and one holding a
	// reservation in another limiter
	clock := fakeclock.New()
	l := New(0, 0, 0.5, 1, clock.Now)
	runSteps(t, l, clock, 2, []limiterStep{{client: "a", action: "revoke"}})
	held := New(0, 0, 0.5, 1, clock.Now)
	runSteps(t, held, clock, 2, []limiterStep{{client: "a", action: "hold"}})

	// when a newcomer calls much later, within the window, then the first
	// client is kept and still at its share
	clock.Advance(time.Minute)
	for _, lim := range []*Limiter{l, held} {
		if !lim.Admit(key("b"), 0, testWindow, 2, 1).Allowed {
			t.Fatal("newcomer refused")
		}
		lim.Commit(key("b"), 0, 1)
		if d := lim.Admit(key("a"), 0, testWindow, 2, 1); d.Allowed || d.Reason != "share" {
			t.Fatalf("first client: got %+v, want refused for share", d)
		}
	}
}

func TestClientLimiterOffTracksNothing(t *testing.T) {
	l := New(0, 0, 1, 1, nil)
	for i := 0; i < 100; i++ {
		id := strconv.Itoa(i)
		if !l.Admit(key(id), 0, time.Hour, 1, 1).Allowed {
			t.Fatal("refused with both limits off")
		}
		l.Commit(key(id), 0, 1)
	}
	if got := l.tracked(); got != 0 {
		t.Fatalf("tracked %d with both limits off", got)
	}
}

func TestBucketWidth(t *testing.T) {
	tests := []struct {
		window time.Duration
		exp    time.Duration
	}{
		{window: 0, exp: time.Second},
		{window: time.Second, exp: time.Second},
		{window: 7 * time.Second, exp: time.Second},
		{window: 10 * time.Second, exp: 2 * time.Second},
		{window: 70 * time.Second, exp: 10 * time.Second},
		{window: 720 * time.Hour, exp: 370286 * time.Second},
	}
	for _, test := range tests {
		if got := time.Duration(bucketWidth(test.window)); got != test.exp {
			t.Errorf("bucketWidth(%v) = %v, want %v", test.window, got, test.exp)
		}
	}
}
