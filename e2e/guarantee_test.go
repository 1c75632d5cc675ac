package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// The guarantee: once the identity service confirms a revocation, that token
// never passes the edge again: not while a replica starts, not under a flood
// of garbage revocations, and not in any place a token can be carried.

// fillStream XADDs a revocation of every token straight into the stream, as
// other replicas' revocations would be, in pipelined batches.
func fillStream(t *testing.T, rds *harness.Redis, tokens []string, exp time.Time) {
	t.Helper()
	conn, err := harness.DialRedis(rds.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expiry := strconv.FormatInt(exp.UnixMilli(), 10)
	for lo := 0; lo < len(tokens); lo += 5000 {
		hi := min(lo+5000, len(tokens))
		cmds := make([][]string, 0, hi-lo)
		for _, token := range tokens[lo:hi] {
			cmds = append(cmds, []string{"XADD", replicaStream, "*", "d", digestHex(token), "e", expiry})
		}
		if _, err := conn.Pipeline(cmds); err != nil {
			t.Fatalf("XADD batch at %d: %v", lo, err)
		}
	}
}

func TestColdStartNeverAcceptsRevokedTokens(t *testing.T) {
	const total = 200000
	e := newReplicaEnv(t)
	rds := startRedis(t)
	exp := time.Now().Add(time.Hour)
	tokens := newTokens(total, exp)
	fillStream(t, rds, tokens, exp)
	probes := []string{tokens[0], tokens[1], tokens[total/2], tokens[total/2+1], tokens[total-2], tokens[total-1]}
	unrelated := newTokens(4, exp)

	// A replica starts against the stream; startTraefik returns at its first
	// routed request (the stats path, which carries no token).
	started := time.Now()
	c := e.startTraefik(t, t.TempDir(), rds.Addr(), "")
	live := time.Since(started)

	// From then on, revoked tokens early, midway and late in the stream are
	// probed without pause, and unrelated ones until they are served.
	var accepted, probed atomic.Int64
	var firstServed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, _, err := e.call(c, probes[i%len(probes)])
				probed.Add(1)
				if err == nil && status == http.StatusOK {
					accepted.Add(1)
				}
			}
		}()
	}
	for _, token := range unrelated {
		deadline := time.Now().Add(60 * time.Second)
		for {
			status, _, err := e.call(c, token)
			if err == nil && status == http.StatusOK {
				break
			}
			if err == nil && status != http.StatusServiceUnavailable {
				t.Errorf("unrelated token: %d", status)
			}
			if time.Now().After(deadline) {
				t.Fatalf("unrelated token not served within 60 s (last %d, %v)\n%s", status, err, logTail(c))
			}
		}
		firstServed.CompareAndSwap(0, int64(time.Since(started)))
	}
	st := e.waitReady(t, c, 120*time.Second)
	ready := time.Since(started)
	time.Sleep(time.Second) // keep probing once ready
	close(stop)
	wg.Wait()
	t.Logf("200,000 in the stream: routers live %s after start, unrelated tokens served %s, ready %s; %d probes of revoked tokens, %d accepted; stats %+v",
		live.Round(time.Millisecond), time.Duration(firstServed.Load()).Round(time.Millisecond), ready.Round(time.Millisecond), probed.Load(), accepted.Load(), st)
	if n := accepted.Load(); n != 0 || probed.Load() == 0 {
		t.Fatalf("%d of %d probes of revoked tokens were accepted", n, probed.Load())
	}
	assertAllRevoked(t, c, probes)
	assertAccepted(t, c, unrelated)
}

func TestColdStartRedisUnreachable(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failClosed=%v", failClosed), func(t *testing.T) {
			e := newReplicaEnv(t)
			port, err := harness.FreePort() // nothing listens there
			if err != nil {
				t.Fatal(err)
			}
			c := e.startTraefikWith(t, t.TempDir(), replicaData{
				RedisAddress: fmt.Sprintf("127.0.0.1:%d", port),
				Options:      map[string]string{"loadWait": "2s", "failClosed": strconv.FormatBool(failClosed)},
			})
			token := newTokens(1, time.Now().Add(time.Hour))[0]

			// Requests without a token are never held.
			start := time.Now()
			if r := on(c).do(t, http.MethodGet, replicaAPIPath, nil, ""); r.status != http.StatusOK || time.Since(start) > time.Second {
				t.Fatalf("no token: %d after %s", r.status, time.Since(start))
			}
			// Once loadWait has passed, the default serves with what it has
			// and reports not ready; failClosed answers 503 to tokens.
			time.Sleep(3 * time.Second)
			r := on(c).do(t, http.MethodGet, replicaAPIPath, bearer(token), "")
			st, err := e.stats(c)
			if err != nil {
				t.Fatal(err)
			}
			if st.Ready {
				t.Fatalf("ready without Redis: %+v", st)
			}
			if !failClosed {
				if r.status != http.StatusOK || st.State != "degraded" {
					t.Fatalf("open: %d, stats %+v\n%s", r.status, st, logTail(c))
				}
			} else {
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
					t.Fatalf("failClosed: %d %v", r.status, r.header)
				}
				assertErrorBody(t, r, "temporarily_unavailable")
			}
			if !strings.Contains(c.Log(), "could not load its revocations") {
				t.Fatalf("no ERROR logged\n%s", logTail(c))
			}
			if r := on(c).do(t, http.MethodGet, replicaAPIPath, nil, ""); r.status != http.StatusOK {
				t.Fatalf("no token after loadWait: %d", r.status)
			}
		})
	}
}

// revokeAs revokes token through tr as the given client, with the refresh
// hint (the longest lifetime), and returns the status.
func (e *replicaEnv) revokeAs(tr *harness.Traefik, client, secret, token string) (int, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequest(http.MethodPost, tr.URL+fixtures.RevokePath, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestFloodKeepsEveryRevocation(t *testing.T) {
	cases := []struct {
		name    string
		options map[string]string
		// share: the flooder is stopped by its share (429) and another
		// client can still revoke; else by capacity (503).
		share bool
		times int
	}{
		{"per-client share", map[string]string{"cacheSizeMB": "1", "maxTTL": "1h", "clientRate": "0"}, true, 10},
		{"default limits", map[string]string{"cacheSizeMB": "1", "maxTTL": "1h"}, true, 10},
		{"no client limits", map[string]string{"cacheSizeMB": "1", "maxTTL": "1h", "clientRate": "0", "clientSharePercent": "100"}, false, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newReplicaEnv(t)
			_ = e.identity.Close()
			var err error
			clients := map[string]string{clientID: clientSecret, "flooder": "flood-secret"}
			if e.identity, err = fixtures.StartIdentity("127.0.0.1:0", clients, time.Hour); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.identity.Close() })
			tr := e.startTraefikWith(t, t.TempDir(), replicaData{Options: c.options})
			st := e.waitReady(t, tr, 10*time.Second)

			real := newTokens(50, time.Now().Add(time.Hour))
			for _, token := range real {
				if code, err := e.revokeAs(tr, clientID, clientSecret, token); err != nil || code != 200 {
					t.Fatalf("real revocation: %d %v", code, err)
				}
			}

			// One client sends c.times the capacity in garbage revocations,
			// which the identity service confirms.
			total := c.times * st.Capacity
			var next atomic.Int64
			var codes sync.Map
			var wg sync.WaitGroup
			started := time.Now()
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(total); i = next.Add(1) {
						code, err := e.revokeAs(tr, "flooder", "flood-secret", fmt.Sprintf("garbage-%d", i))
						if err != nil {
							code = -1
						}
						n, _ := codes.LoadOrStore(code, new(atomic.Int64))
						n.(*atomic.Int64).Add(1)
					}
				}()
			}
			wg.Wait()
			count := map[int]int64{}
			codes.Range(func(k, v any) bool { count[k.(int)] = v.(*atomic.Int64).Load(); return true })
			st, err = e.stats(tr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d garbage revocations (%d× capacity %d) in %s: %v; stats %+v",
				total, c.times, st.Capacity, time.Since(started).Round(time.Millisecond), count, st)

			// Every earlier revocation is still enforced; nothing was evicted.
			assertAllRevoked(t, tr, real)
			if st.Evictions != 0 || st.Overflow != 0 || count[-1] != 0 {
				t.Fatalf("evictions or errors: %v, stats %+v", count, st)
			}
			if count[200]+count[429]+count[503] != int64(total) {
				t.Fatalf("unexpected answers: %v", count)
			}
			// The refusals are counted by reason.
			if st.Refused.ClientLimit != count[429] || st.Refused.Capacity != count[503] {
				t.Fatalf("refusals %+v, answers %v", st.Refused, count)
			}
			if !c.share {
				if count[503] == 0 {
					t.Fatalf("a full denylist refused nothing: %v", count)
				}
				return
			}
			if count[429] == 0 || count[200] > int64(st.Capacity/2+1) {
				t.Fatalf("the flooder got %d of capacity %d: %v", count[200], st.Capacity, count)
			}
			// Another client can still revoke.
			for _, token := range newTokens(20, time.Now().Add(time.Hour)) {
				if code, err := e.revokeAs(tr, clientID, clientSecret, token); err != nil || code != 200 {
					t.Fatalf("another client's revocation during the flood: %d %v", code, err)
				}
				assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(token), ""))
			}
		})
	}
}

func TestTraefikEveryTokenLocation(t *testing.T) {
	s := traefikSuite(t)
	bad, good := s.issue(t).AccessToken, s.issue(t).AccessToken
	if r := s.revoke(t, fixtures.RevokePath, bad, ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	withHeader := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	cases := []struct {
		name         string
		method, path string
		header       http.Header
		body         string
		revoked      bool
	}{
		{"header", http.MethodGet, "/api/orders", bearer(bad), "", true},
		{"query", http.MethodGet, "/api/orders?access_token=" + url.QueryEscape(bad), nil, "", true},
		{"form body", http.MethodPost, "/api/orders", form, "item=1&access_token=" + url.QueryEscape(bad), true},
		{"form body, PUT", http.MethodPut, "/api/orders", form, "access_token=" + url.QueryEscape(bad), true},
		{"good header, revoked query", http.MethodGet, "/api/orders?access_token=" + url.QueryEscape(bad), bearer(good), "", true},
		{"revoked header, good form", http.MethodPost, "/api/orders", withHeader(form, "Authorization", "Bearer "+bad), "access_token=" + url.QueryEscape(good), true},
		{"good query, revoked form", http.MethodPost, "/api/orders?access_token=" + url.QueryEscape(good), form, "access_token=" + url.QueryEscape(bad), true},
		{"custom header", http.MethodGet, "/custom/orders", http.Header{"X-Access-Token": {bad}}, "", true},
		{"cookie", http.MethodGet, "/custom/orders", http.Header{"Cookie": {"theme=dark; at=" + bad}}, "", true},
		{"good form passes byte-identical", http.MethodPost, "/api/orders", form, "b=%7E2&access_token=" + url.QueryEscape(good) + "&a=1", false},
		{"good custom header", http.MethodGet, "/custom/orders", http.Header{"X-Access-Token": {good}}, "", false},
		{"good cookie", http.MethodGet, "/custom/orders", http.Header{"Cookie": {"at=" + good}}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := s.api.Calls.Load()
			r := s.do(t, c.method, c.path, c.header, c.body)
			if c.revoked {
				assertRevoked(t, r)
				if s.api.Calls.Load() != calls {
					t.Fatal("a rejected request reached the API")
				}
				return
			}
			var got fixtures.APIResponse
			if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.Body != c.body {
				t.Fatalf("got %d %s, want 200 and the body %q unchanged", r.status, r.body, c.body)
			}
		})
	}

	// A form body over maxBodyBytes cannot be checked, so it is refused.
	r := s.do(t, http.MethodPost, "/api/orders", form, "access_token="+strings.Repeat("x", 2000))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("large form body: %d", r.status)
	}
	assertErrorBody(t, r, "invalid_request")
}
