package tokenrevocation

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

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
func runSteps(t *testing.T, l *clientLimiter, clock *fakeClock, laneCap int, steps []limiterStep) {
	t.Helper()
	for i, step := range steps {
		clock.advance(step.advance)
		switch step.action {
		case "commit":
			l.commit(step.client, step.lane, 1)
			continue
		case "release":
			l.release(step.client, step.lane, 1)
			continue
		}
		d := l.admit(step.client, step.lane, testWindow, laneCap, 1)
		if d.Allowed != (step.expRefused == "") || d.Reason != step.expRefused {
			t.Fatalf("step %d (%s %q): got %+v, want refused=%q", i, step.action, step.client, d, step.expRefused)
		}
		if d.Allowed && d.RetryAfter != 0 || !d.Allowed && d.RetryAfter != step.expRetryAfter {
			t.Fatalf("step %d (%s %q): retry after %v, want %v", i, step.action, step.client, d.RetryAfter, step.expRetryAfter)
		}
		if d.Allowed && step.action == "revoke" {
			l.commit(step.client, step.lane, 1)
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
			clock := newFakeClock()
			l := newClientLimiter(test.rate, test.burst, 1, 0, clock.now)
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
			clock := newFakeClock()
			l := newClientLimiter(0, 0, test.share, 0, clock.now)
			runSteps(t, l, clock, 8, test.steps)
		})
	}
}

func TestClientLimiterRefusedCallsSpendNothing(t *testing.T) {
	// given a client with a burst of 3 and a share of one entry
	clock := newFakeClock()
	l := newClientLimiter(1, 3, 0.5, 0, clock.now)
	runSteps(t, l, clock, 2, []limiterStep{revokeOK, {action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})

	// when a thousand calls are admitted and the identity service refuses
	// them all (a wrong secret), then none spent a token or held a slot:
	// the share refuses, not the rate, and once the entry leaves the
	// window the client has its whole burst
	for i := 0; i < 1000; i++ {
		if d := l.admit("", 0, testWindow, 2, 1); d.Allowed {
			l.release("", 0, 1)
		}
	}
	runSteps(t, l, clock, 2, []limiterStep{{action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})
	clock.advance(80 * time.Second)
	runSteps(t, l, clock, 1000, []limiterStep{revokeOK, revokeOK, revokeOK, rateRefuse})
}

func TestClientLimiterUnconfirmedCallsLeaveTheBucketFull(t *testing.T) {
	// given a client with a burst of 2
	clock := newFakeClock()
	l := newClientLimiter(1, 2, 0, 0, clock.now)

	// when 500 calls in flight together are all refused upstream
	for i := 0; i < 500; i++ {
		if !l.admit("victim", 0, testWindow, 10, 1).Allowed {
			t.Fatalf("call %d refused before the identity service answered anything", i)
		}
	}
	for i := 0; i < 500; i++ {
		l.release("victim", 0, 1)
	}

	// then the client's own calls get its whole burst, and no more
	runSteps(t, l, clock, 10, []limiterStep{{client: "victim", action: "revoke"}, {client: "victim", action: "revoke"},
		{client: "victim", action: "revoke", expRefused: "rate", expRetryAfter: time.Second}})
}

func TestClientLimiterCountedElsewhereHoldsTheShare(t *testing.T) {
	// given a client with a share of 4 entries
	clock := newFakeClock()
	l := newClientLimiter(0, 0, 0.5, 0, clock.now)

	// when another replica's 3 entries of it arrive, then one more fits here
	l.count("app", 0, testWindow, 3)
	runSteps(t, l, clock, 8, []limiterStep{{client: "app", action: "revoke"},
		{client: "app", action: "revoke", expRefused: "share", expRetryAfter: 80 * time.Second}})
}

func TestClientKeySeparatesPublicCallers(t *testing.T) {
	// given one client id
	// when it comes with a secret, then every address shares one key
	if clientKey("app", true, "10.0.0.1:1") != clientKey("app", true, "10.0.0.2:2") {
		t.Fatal("a confidential client's key depends on the address")
	}
	// when it comes alone, then each address has its own key, whatever the port
	if clientKey("app", false, "10.0.0.1:1") == clientKey("app", false, "10.0.0.2:1") {
		t.Fatal("public callers at two addresses share a key")
	}
	if clientKey("app", false, "[::1]:1") != clientKey("app", false, "[::1]:2") {
		t.Fatal("a public caller's key depends on its port")
	}
	if clientKey("app", false, "10.0.0.1:1") == clientKey("app", true, "10.0.0.1:1") {
		t.Fatal("a public and a confidential caller share a key")
	}
	// and a 60 KB id is kept as 16 bytes
	if got := len(clientKey(strings.Repeat("x", 60<<10), true, "")); got != 16 {
		t.Fatalf("key of %d bytes", got)
	}
	if got := auditClient(strings.Repeat("é", 100)); len(got) > maxAuditClient+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("audit client %q", got)
	}
}

func TestClientLimiterWindowChangeKeepsCounts(t *testing.T) {
	// given a client at its share in a lane of testWindow
	clock := newFakeClock()
	l := newClientLimiter(0, 0, 0.5, 0, clock.now)
	runSteps(t, l, clock, 8, repeat(4, revokeOK))

	// when the lane's window shrinks (1 s buckets), then the entries still
	// count, for the new window from now
	clock.advance(30 * time.Second)
	if d := l.admit("", 0, 7*time.Second, 8, 1); d.Allowed || d.Reason != "share" || d.RetryAfter != 8*time.Second {
		t.Fatalf("after the window changed: got %+v, want refused for share for 8s", d)
	}
}

func TestClientLimiterConcurrentAdmitsKeepTheShare(t *testing.T) {
	// given a share of 10 entries and 64 calls of one client at once
	l := newClientLimiter(0, 0, 0.5, 0, nil)
	const calls = 64
	var allowed int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(calls)
	for i := 0; i < calls; i++ {
		go func() {
			defer wg.Done()
			<-start
			if l.admit("app", 0, time.Hour, 20, 1).Allowed {
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
				l.commit("app", 0, 1)
			} else {
				l.release("app", 0, 1)
			}
		}(i%2 == 0)
	}
	wg.Wait()
	allowed = 0
	for i := 0; i < calls; i++ {
		if l.admit("app", 0, time.Hour, 20, 1).Allowed {
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
			clock := newFakeClock()
			l := newClientLimiter(test.rate, 5, test.share, 0, clock.now)
			refused := ""
			for i := 0; i < 1000; i++ {
				if d := l.admit("flooder", 0, time.Hour, 20, 1); d.Allowed {
					l.commit("flooder", 0, 1)
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
				if l.admit("bystander", 0, time.Hour, 20, 1).Allowed {
					l.commit("bystander", 0, 1)
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
	clock := newFakeClock()
	l := newClientLimiter(1, 1, 0.5, 1000, clock.now)
	for i := 0; i < 100000; i++ {
		id := "id-" + strconv.Itoa(i)
		if d := l.admit(id, 0, time.Hour, 2, 1); d.Allowed {
			l.commit(id, 0, 1)
		} else {
			t.Fatalf("newcomer %s refused: %+v", id, d)
		}
		if i%10000 == 0 {
			clock.advance(time.Second)
		}
	}

	// then the table never grew past its bound
	if got := l.tracked(); got != 1000 {
		t.Fatalf("tracked %d clients, want 1000", got)
	}

	// and a tracked client kept its limits
	if d := l.admit("id-0", 0, time.Hour, 2, 1); d.Allowed {
		t.Fatal("a tracked client was forgotten while busy")
	}
}

func TestClientLimiterIdleClientsMakeRoom(t *testing.T) {
	// given a table of two clients that have just called
	clock := newFakeClock()
	l := newClientLimiter(1, 1, 1, 2, clock.now)
	for _, id := range []string{"a", "b"} {
		if !l.admit(id, 0, time.Hour, 10, 1).Allowed {
			t.Fatalf("%s refused", id)
		}
		l.commit(id, 0, 1)
	}

	// when a third calls, then it is decided afresh every time, untracked
	for i := 0; i < 3; i++ {
		if d := l.admit("c", 0, time.Hour, 10, 1); !d.Allowed {
			t.Fatalf("untracked newcomer refused: %+v", d)
		}
	}
	if got := l.tracked(); got != 2 {
		t.Fatalf("tracked %d, want 2", got)
	}

	// when the first two are idle again, then the newcomer takes their room
	clock.advance(time.Second)
	if !l.admit("c", 0, time.Hour, 10, 1).Allowed {
		t.Fatal("newcomer refused")
	}
	l.commit("c", 0, 1)
	if got := l.tracked(); got != 1 {
		t.Fatalf("tracked %d after the sweep, want 1", got)
	}
	if d := l.admit("c", 0, time.Hour, 10, 1); d.Allowed || d.Reason != "rate" {
		t.Fatalf("tracked newcomer not limited: %+v", d)
	}
}

func TestClientLimiterKeepsClientsWithLiveEntries(t *testing.T) {
	// given a table of one client holding a live entry, and one holding a
	// reservation in another limiter
	clock := newFakeClock()
	l := newClientLimiter(0, 0, 0.5, 1, clock.now)
	runSteps(t, l, clock, 2, []limiterStep{{client: "a", action: "revoke"}})
	held := newClientLimiter(0, 0, 0.5, 1, clock.now)
	runSteps(t, held, clock, 2, []limiterStep{{client: "a", action: "hold"}})

	// when a newcomer calls much later, within the window, then the first
	// client is kept and still at its share
	clock.advance(time.Minute)
	for _, lim := range []*clientLimiter{l, held} {
		if !lim.admit("b", 0, testWindow, 2, 1).Allowed {
			t.Fatal("newcomer refused")
		}
		lim.commit("b", 0, 1)
		if d := lim.admit("a", 0, testWindow, 2, 1); d.Allowed || d.Reason != "share" {
			t.Fatalf("first client: got %+v, want refused for share", d)
		}
	}
}

func TestClientLimiterOffTracksNothing(t *testing.T) {
	l := newClientLimiter(0, 0, 1, 1, nil)
	for i := 0; i < 100; i++ {
		id := strconv.Itoa(i)
		if !l.admit(id, 0, time.Hour, 1, 1).Allowed {
			t.Fatal("refused with both limits off")
		}
		l.commit(id, 0, 1)
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

// basicHeader returns a Basic Authorization value for user and secret as
// sent on the wire.
func basicHeader(user, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

func TestClientID(t *testing.T) {
	form := url.Values{"client_id": {"form-app"}}
	tests := []struct {
		desc          string
		authorization string
		form          url.Values
		exp           string
	}{
		{desc: "Basic user", authorization: basicHeader("app", "secret"), form: form, exp: "app"},
		{desc: "Basic user form-urlencoded", authorization: basicHeader("my+app%3A1%2F%C3%A9", "secret"), exp: "my app:1/é"},
		{desc: "undecodable escape kept as sent", authorization: basicHeader("100%", "secret"), exp: "100%"},
		{desc: "secret with colons", authorization: basicHeader("app", "se:cr:et"), exp: "app"},
		{desc: "empty user", authorization: basicHeader("", "secret"), form: form, exp: ""},
		{desc: "lower-case scheme", authorization: "basic " + base64.StdEncoding.EncodeToString([]byte("app:secret")), exp: "app"},
		{desc: "upper-case scheme", authorization: "BASIC " + base64.StdEncoding.EncodeToString([]byte("app:secret")), exp: "app"},
		{desc: "extra blanks", authorization: "Basic \t " + base64.StdEncoding.EncodeToString([]byte("app:secret")) + " ", exp: "app"},
		{desc: "malformed base64 falls back to the form", authorization: "Basic !!!not-base64", form: form, exp: "form-app"},
		{desc: "URL-safe base64 is not standard", authorization: "Basic " + base64.URLEncoding.EncodeToString([]byte("a?>:secret")), form: form, exp: "form-app"},
		{desc: "missing colon falls back to the form", authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("app")), form: form, exp: "form-app"},
		{desc: "scheme alone", authorization: "Basic", form: form, exp: "form-app"},
		{desc: "scheme and blank", authorization: "Basic ", form: form, exp: "form-app"},
		{desc: "no blank after the scheme", authorization: "Basicx" + base64.StdEncoding.EncodeToString([]byte("app:secret")), form: form, exp: "form-app"},
		{desc: "bearer is not client auth", authorization: "Bearer tok", form: form, exp: "form-app"},
		{desc: "form client_id", form: form, exp: "form-app"},
		{desc: "nothing", exp: ""},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got := clientID(test.authorization, test.form)
			if got != test.exp {
				t.Fatalf("clientID: got %q, want %q", got, test.exp)
			}
			if strings.Contains(got, "secret") {
				t.Fatal("clientID returned the secret")
			}
		})
	}
}

func FuzzClientID(f *testing.F) {
	f.Add(basicHeader("app", "secret"), "my app", "s:e:c", "form-app")
	f.Fuzz(func(t *testing.T, authorization, user, secret, formID string) {
		form := url.Values{"client_id": {formID}}
		// Anything but a Basic value leaves the form's client_id.
		got := clientID(authorization, form)
		if (len(authorization) < 5 || !strings.EqualFold(authorization[:5], "Basic")) && got != formID {
			t.Fatalf("clientID(%q) = %q, want the form's %q", authorization, got, formID)
		}
		// A Basic credential built as RFC 6749 §2.3.1 says gives back its user.
		if got := clientID(basicHeader(url.QueryEscape(user), secret), form); got != user {
			t.Fatalf("clientID of a Basic credential for %q = %q", user, got)
		}
	})
}

func TestShareCountsRevocationsFromOtherReplicas(t *testing.T) {
	// given a share of 1% (172 entries of a 1 MiB lane), and 172 revocations
	// of one client received from other replicas
	m := newTestMiddleware(t, &upstream{}, nil, func(c *Config) { c.ClientRate = 0; c.ClientSharePercent = 1 })
	d := m.list
	limit := d.limiter.shareLimit(d.capacity())
	recs := make([]record.Revocation, limit)
	tag := clientKey("client", true, "")
	for i := range recs {
		recs[i] = record.Revocation{Digest: sha256.Sum256([]byte(fmt.Sprint("elsewhere-", i))), Expiry: time.Now().Add(time.Hour).UnixNano(), Client: tag}
	}
	d.loadDirect(recs, sourceRedis)

	// when the client revokes here, into the same lane (an hour), then its
	// share is already spent
	rw := serve(m, revokeRequest("token=here&token_type_hint=access_token"))
	if rw.Code != http.StatusTooManyRequests {
		t.Fatalf("revoke past the share held on other replicas: %d", rw.Code)
	}
	// and another client is unaffected
	req := revokeRequest("token=other")
	req.SetBasicAuth("other", "secret")
	if rw := serve(m, req); rw.Code != http.StatusOK {
		t.Fatalf("another client: %d", rw.Code)
	}
}

func TestReRevokeOfAHeldTokenSpendsTheRate(t *testing.T) {
	// given a client allowed 1 revoke call a second, burst 2, and one token it revoked
	clock := newFakeClock()
	up := &upstream{}
	m := newTestMiddleware(t, up, clock, func(c *Config) { c.ClientRate = 1; c.ClientBurst = 2 })
	revoke(t, m, "held-token", "")
	// when it revokes the held token again and again, faster than its rate
	codes := []int{}
	for i := 0; i < 6; i++ {
		clock.advance(time.Millisecond)
		codes = append(codes, serve(m, revokeRequest("token=held-token")).Code)
	}
	// then the calls past its rate and burst get 429 before the identity
	// service, so they write nothing to the file or the stream
	refused := 0
	for _, c := range codes {
		if c == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 || up.calls() != 1+len(codes)-refused {
		t.Fatalf("answers %v, %d upstream calls", codes, up.calls())
	}
	if got := m.list.stats().Refused.ClientLimit; got != int64(refused) {
		t.Fatalf("refused.clientLimit %d, want %d", got, refused)
	}
	// and the token stays revoked
	if rw := serve(m, apiRequest("held-token")); rw.Code != http.StatusUnauthorized {
		t.Fatalf("held token: %d", rw.Code)
	}
}
