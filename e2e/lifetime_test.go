package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// Issue 17, lifetimes and order, against real Traefik processes and a real
// redis-server: the later expiry wins, a revocation confirmed after an
// un-revoke stands on every replica, a JWT's revocation lives until exp +
// leeway whatever maxTTL, maxLifetime refuses what the store cannot hold,
// and the default leeway is 5m. testdata/lifetime-dynamic.yml.tmpl is the
// ops configuration (the API, the identity stand-in, the admin API) without
// a leeway of its own, so that the plugin's default applies.

// defaultLeeway is the plugin's documented default leeway.
const defaultLeeway = 5 * time.Minute

// startLifetime starts a Traefik with the lifetime configuration in dir,
// stopped when the test ends, and returns once its denylist is ready.
func (e *opsEnv) startLifetime(t *testing.T, dir string, data opsData) *harness.Traefik {
	t.Helper()
	return e.startTemplate(t, dir, "lifetime-dynamic.yml.tmpl", data)
}

// jwtExpiring returns a JWT whose exp is d from now, and that exp as the
// plugin reads it (whole seconds).
func jwtExpiring(d time.Duration) (string, time.Time) {
	exp := time.Unix(time.Now().Add(d).Unix(), 0)
	return fixtures.NewJWT(exp), exp
}

// revokeAt posts token to tr's revoke endpoint as an access token, with
// the client's HTTP Basic credentials, and returns the whole answer.
func revokeAt(t *testing.T, tr *harness.Traefik, token string) response {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	return on(tr).do(t, http.MethodPost, fixtures.RevokePath, formHeader(true), form.Encode())
}

// revokeConfirmed revokes token through tr's revoke endpoint and wants 200
// and exactly one more revoke call answered by the identity stand-in.
func (e *opsEnv) revokeConfirmed(t *testing.T, tr *harness.Traefik, token string) {
	t.Helper()
	before := e.identity.Revokes.Load()
	if r := revokeAt(t, tr, token); r.status != http.StatusOK {
		t.Fatalf("revoke through %s: got %d %s, want 200%s\n%s", tr.URL, r.status, r.body, panics(tr), logTail(tr))
	}
	if n := e.identity.Revokes.Load() - before; n != 1 {
		t.Fatalf("revoke through %s: the identity stand-in answered %d revoke calls, want 1", tr.URL, n)
	}
}

// panics is the plugin's panic lines in tr's log (Yaegi logs one per
// frame, innermost first, before Traefik's recovery logs its stack), for
// failure messages.
func panics(tr *harness.Traefik) string {
	var out []string
	for _, line := range strings.Split(tr.Log(), "\n") {
		if strings.Contains(line, "panic") && !strings.Contains(line, "runtime/panic.go") && !strings.HasPrefix(strings.TrimSpace(line), "panic(") {
			out = append(out, line)
		}
		if len(out) == 12 {
			break
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "\nplugin panics in the log:\n" + strings.Join(out, "\n")
}

// adminTime parses the RFC 3339 time got[key] of an admin answer.
func adminTime(t *testing.T, what string, got map[string]any, key string) time.Time {
	t.Helper()
	s, _ := got[key].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s: %s is %#v (%v), want an RFC 3339 time; whole answer %v", what, key, got[key], err, got)
	}
	return at
}

// near checks that at is want to within a few seconds (the answers are
// whole seconds, and the request takes its time).
func near(t *testing.T, what string, at, want time.Time) {
	t.Helper()
	if d := at.Sub(want); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("%s: %s, want about %s", what, rfc3339(at), rfc3339(want))
	}
}

// stayRejected checks, every 100 ms for d, that tr answers token with the
// exact 401 of a revoked token, then once more through assertRevoked.
func (e *opsEnv) stayRejected(t *testing.T, tr *harness.Traefik, token string, d time.Duration) {
	t.Helper()
	until := time.Now().Add(d)
	for time.Now().Before(until) {
		status, challenge, err := e.call(tr, token)
		if err != nil || status != http.StatusUnauthorized || challenge != revokedWWW {
			st, _ := e.stats(tr)
			t.Fatalf("%s: a revoked token got %d %q (%v) %s before the end of the check; stats %s\n%s",
				tr.URL, status, challenge, err, time.Until(until).Round(time.Millisecond), st.Raw, logTail(tr))
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(token), ""))
}

// refusedLifetime is stats' refused.lifetime.
func (e *opsEnv) refusedLifetime(t *testing.T, tr *harness.Traefik) int64 {
	t.Helper()
	st, err := e.stats(tr)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Refused struct {
			Lifetime *int64 `json:"lifetime"`
		} `json:"refused"`
	}
	if err := json.Unmarshal([]byte(st.Raw), &doc); err != nil || doc.Refused.Lifetime == nil {
		t.Fatalf("stats have no refused.lifetime (%v): %s", err, st.Raw)
	}
	return *doc.Refused.Lifetime
}

func TestLifetimeLaterExpiryWins(t *testing.T) {
	e := newOpsEnv(t)
	tr := e.startLifetime(t, t.TempDir(), opsData{})

	t.Run("admin ttl then the revoke endpoint", func(t *testing.T) {
		// Given a JWT a day from its exp, revoked by the admin API for 2s.
		tok, exp := jwtExpiring(24 * time.Hour)
		got := e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q,"ttl":"2s"}`, tok))
		adminAnswered := time.Now()
		wantFields(t, "admin revoke with ttl 2s", got, "digest", shortDigest(tok), "recorded", true)
		near(t, "admin revoke with ttl 2s: expiresAt", adminTime(t, "admin revoke", got, "expiresAt"), adminAnswered.Add(2*time.Second))
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))

		// When the same token is revoked through the revoke endpoint and
		// the identity stand-in confirms it.
		beforeEndpoint := time.Now()
		e.revokeConfirmed(t, tr, tok)

		// Then it is still rejected well past the admin ttl: the later
		// expiry, exp + the default leeway, is the one held.
		e.stayRejected(t, tr, tok, time.Until(adminAnswered.Add(3500*time.Millisecond)))
		got = e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
		wantFields(t, "lookup after the admin ttl ended", got, "revoked", true, "expiresAt", rfc3339(exp.Add(defaultLeeway)))
		if at := adminTime(t, "lookup", got, "expiresAt"); !at.After(time.Now().Add(time.Hour)) {
			t.Errorf("lookup: expiresAt %s, want past now + 1h (the JWT's exp is a day away)", rfc3339(at))
		}
		if at := adminTime(t, "lookup", got, "confirmedAt"); at.Before(beforeEndpoint.Truncate(time.Millisecond)) {
			t.Errorf("lookup: confirmedAt %s, before the revoke endpoint's call at %s: want the latest confirmation", at.Format(time.RFC3339Nano), beforeEndpoint.Format(time.RFC3339Nano))
		}
	})

	t.Run("admin ttls: longer raises, shorter keeps", func(t *testing.T) {
		// Given a token revoked by the admin API for 1h.
		tok, _ := jwtExpiring(24 * time.Hour)
		got := e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q,"ttl":"1h"}`, tok))
		wantFields(t, "admin revoke with ttl 1h", got, "recorded", true)
		near(t, "admin revoke with ttl 1h: expiresAt", adminTime(t, "admin revoke", got, "expiresAt"), time.Now().Add(time.Hour))

		// When it is revoked again for 720h, then again for 10m.
		long := e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q,"ttl":"720h"}`, tok))
		short := e.adminOK(t, tr, http.MethodPost, "/revoke", fmt.Sprintf(`{"token":%q,"ttl":"10m"}`, tok))

		// Then the 720h one is recorded and answered, and the 10m one
		// records nothing and answers the 720h expiry still stored.
		wantFields(t, "admin revoke with ttl 720h after 1h", long, "recorded", true)
		stored := adminTime(t, "admin revoke with ttl 720h", long, "expiresAt")
		near(t, "admin revoke with ttl 720h after 1h: expiresAt", stored, time.Now().Add(720*time.Hour))
		wantFields(t, "admin revoke with ttl 10m after 720h", short, "recorded", false, "expiresAt", rfc3339(stored))
		got = e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
		wantFields(t, "lookup after the three admin revokes", got, "revoked", true, "expiresAt", rfc3339(stored))
		assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
	})
}

// A redisProxy is a loopback TCP proxy to a Redis: cut closes every
// connection through it and turns away new ones (accepted, then closed at
// once) until heal.
type redisProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startRedisProxy listens on a loopback port and forwards to target; it is
// closed, its goroutines ended, when the test ends.
func startRedisProxy(t *testing.T, target string) *redisProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *redisProxy) Addr() string { return p.ln.Addr().String() }

func (p *redisProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track adds c to the connections cut closes; false while cut or closed.
func (p *redisProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *redisProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// forward pipes client to a new connection to the target, both ways, until
// either side ends or cut closes them.
func (p *redisProxy) forward(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, up); done <- struct{}{} }()
	<-done
	// Closing both (the deferred untracks) ends the other copy.
	_ = client.Close()
	_ = up.Close()
	<-done
}

// Cut closes every connection through the proxy and turns new ones away.
func (p *redisProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Heal lets new connections through again.
func (p *redisProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *redisProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func TestLifetimeRevokeAfterPartitionedUnrevoke(t *testing.T) {
	e := newOpsEnv(t)
	rds := startRedis(t)
	proxy := startRedisProxy(t, rds.Addr())
	// leeway 0s: a tombstone's allowance for clock skew is off, so only the
	// confirmation times decide.
	options := map[string]string{"leeway": "0s"}
	persistA := filepath.Join(t.TempDir(), "a.bin")
	persistB := filepath.Join(t.TempDir(), "b.bin")
	// A reaches Redis only through the proxy; B directly.
	a := e.startLifetime(t, t.TempDir(), opsData{RedisAddress: proxy.Addr(), PersistPath: persistA, Options: options})
	b := e.startLifetime(t, t.TempDir(), opsData{RedisAddress: rds.Addr(), PersistPath: persistB, Options: options})
	tok, _ := jwtExpiring(time.Hour)
	assertAccepted(t, a, []string{tok})
	assertAccepted(t, b, []string{tok})
	lookup := fmt.Sprintf(`{"token":%q}`, tok)

	// Given T revoked on B, confirmed, and enforced on A and B.
	e.revokeConfirmed(t, b, tok)
	e.waitRejected(t, b, tok, 5*time.Second)
	e.waitRejected(t, a, tok, 10*time.Second)

	// And A cut off from Redis.
	proxy.Cut()
	e.waitStats(t, a, "A disconnected from Redis", 20*time.Second, func(st replicaStats) bool { return st.Redis == "disconnected" })

	// When A un-revokes T: applied on A, its tombstone queued.
	wantFields(t, "unrevoke on A", e.adminOK(t, a, http.MethodPost, "/unrevoke", lookup), "unrevoked", true)
	if s := e.status(t, a, tok); s != http.StatusOK {
		t.Fatalf("A after its own un-revoke: %d, want 200\n%s", s, logTail(a))
	}
	if st, err := e.stats(a); err != nil || st.Queued < 1 || st.Redis != "disconnected" {
		t.Fatalf("A's stats after the un-revoke: %s %v, want the tombstone queued and Redis disconnected", st.Raw, err)
	}
	assertRevoked(t, on(b).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))

	// And, a little later, B revokes T again through the revoke endpoint,
	// confirmed by the identity stand-in.
	time.Sleep(100 * time.Millisecond)
	beforeSecond := time.Now()
	e.revokeConfirmed(t, b, tok)
	got := e.adminOK(t, b, http.MethodPost, "/lookup", lookup)
	wantFields(t, "lookup on B after its second revoke", got, "revoked", true)
	if at := adminTime(t, "lookup on B", got, "confirmedAt"); at.Before(beforeSecond.Truncate(time.Millisecond)) {
		t.Errorf("lookup on B after its second revoke: confirmedAt %s, before that revoke's call at %s: want the second confirmation",
			at.Format(time.RFC3339Nano), beforeSecond.Format(time.RFC3339Nano))
	}
	e.waitStats(t, b, "B's queue flushed", 10*time.Second, func(st replicaStats) bool { return st.Queued == 0 })
	// A cannot know yet: the partition holds.
	if s := e.status(t, a, tok); s != http.StatusOK {
		t.Fatalf("A during the partition, after B's second revoke: %d, want 200 (A cannot reach Redis)\n%s", s, logTail(a))
	}

	// And the partition heals: A reconnects and writes its tombstone.
	proxy.Heal()
	st := e.waitStats(t, a, "A reconnected, queue flushed", 30*time.Second, func(st replicaStats) bool {
		return st.Redis == "connected" && st.Queued == 0
	})
	t.Logf("A after the heal: %s", st.Raw)

	// Then A and B both reject T, and keep rejecting it: B's second
	// revocation was confirmed after A's un-revoke. A saw the tombstone
	// first, B the revocation first.
	e.waitRejected(t, a, tok, 10*time.Second)
	e.waitRejected(t, b, tok, 10*time.Second)
	e.stayRejected(t, a, tok, 2*time.Second)
	e.stayRejected(t, b, tok, 2*time.Second)
	for name, tr := range map[string]*harness.Traefik{"A": a, "B": b} {
		got := e.adminOK(t, tr, http.MethodPost, "/lookup", lookup)
		wantFields(t, "lookup on "+name+" after the heal", got, "revoked", true)
		if at := adminTime(t, "lookup on "+name, got, "confirmedAt"); at.Before(beforeSecond.Truncate(time.Millisecond)) {
			t.Errorf("lookup on %s after the heal: confirmedAt %s, before B's second revoke at %s", name, at.Format(time.RFC3339Nano), beforeSecond.Format(time.RFC3339Nano))
		}
	}

	// And a replica that starts afterwards, which reads the stream in its
	// order (revocation, revocation, tombstone), rejects T once ready.
	c := e.startLifetime(t, t.TempDir(), opsData{RedisAddress: rds.Addr(), Options: options})
	assertRevoked(t, on(c).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))

	// And through the files: B restarted on its file alone (its two
	// revocations, then the tombstone it read from Redis) rejects T; A
	// restarted on its file (the tombstone) and Redis rejects T.
	b.Stop()
	b2 := e.startLifetime(t, t.TempDir(), opsData{PersistPath: persistB, Options: options})
	assertRevoked(t, on(b2).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
	a.Stop()
	a2 := e.startLifetime(t, t.TempDir(), opsData{RedisAddress: rds.Addr(), PersistPath: persistA, Options: options})
	assertRevoked(t, on(a2).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
}

func TestLifetimeJWTOutlivesMaxTTL(t *testing.T) {
	e := newOpsEnv(t)
	tr := e.startLifetime(t, t.TempDir(), opsData{Options: map[string]string{"maxTTL": "5s"}})

	// Given maxTTL 5s, a JWT with 60s left and an opaque token.
	tok, exp := jwtExpiring(60 * time.Second)
	opaque := "opaque-" + opsRandHex(16)
	assertAccepted(t, tr, []string{tok, opaque})

	// When both are revoked through the revoke endpoint.
	e.revokeConfirmed(t, tr, tok)
	e.revokeConfirmed(t, tr, opaque)
	revoked := time.Now()
	assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(opaque), ""))

	// Then the JWT is rejected throughout the next 7s, past maxTTL: its
	// revocation lives until exp + leeway.
	e.stayRejected(t, tr, tok, time.Until(revoked.Add(7*time.Second)))
	got := e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "lookup of the JWT", got, "revoked", true, "expiresAt", rfc3339(exp.Add(defaultLeeway)))
	// While maxTTL still bounds the guessed lifetime of the opaque token.
	if s := e.status(t, tr, opaque); s != http.StatusOK {
		t.Errorf("the opaque token 7s after its revoke with maxTTL 5s: %d, want 200", s)
	}
}

func TestLifetimeExpiredJWTWithinLeeway(t *testing.T) {
	e := newOpsEnv(t)
	tr := e.startLifetime(t, t.TempDir(), opsData{})

	// Given a JWT whose exp was 2 minutes ago, within the default leeway.
	tok, exp := jwtExpiring(-2 * time.Minute)
	assertAccepted(t, tr, []string{tok})

	// When it is revoked through the revoke endpoint.
	e.revokeConfirmed(t, tr, tok)

	// Then it is rejected, until exp + 5m.
	assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(tok), ""))
	got := e.adminOK(t, tr, http.MethodPost, "/lookup", fmt.Sprintf(`{"token":%q}`, tok))
	wantFields(t, "lookup of the expired JWT", got, "revoked", true, "expiresAt", rfc3339(exp.Add(defaultLeeway)))
}

func TestLifetimeMaxLifetimeRefuses(t *testing.T) {
	e := newOpsEnv(t)
	tr := e.startLifetime(t, t.TempDir(), opsData{Options: map[string]string{"maxTTL": "30m", "maxLifetime": "1h"}})
	if n := e.refusedLifetime(t, tr); n != 0 {
		t.Fatalf("refused.lifetime of a fresh Traefik: %d", n)
	}

	// Given maxLifetime 1h and a JWT 2h from its exp.
	tok, _ := jwtExpiring(2 * time.Hour)
	assertAccepted(t, tr, []string{tok})

	// When it is revoked through the revoke endpoint.
	before := e.identity.Revokes.Load()
	r := revokeAt(t, tr, tok)

	// Then the edge answers 503 temporarily_unavailable before the identity
	// service is called, records nothing, and counts the refusal.
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("revoke of a JWT whose revocation would outlive maxLifetime: got %d %s, want 503\n%s", r.status, r.body, logTail(tr))
	}
	assertErrorBody(t, r, "temporarily_unavailable")
	if n := e.identity.Revokes.Load() - before; n != 0 {
		t.Errorf("the identity stand-in answered %d revoke calls for the refused revoke, want 0", n)
	}
	if _, revoked := e.identity.Issued(tok); revoked {
		t.Errorf("the identity stand-in revoked the token the edge refused")
	}
	if n := e.refusedLifetime(t, tr); n != 1 {
		t.Errorf("refused.lifetime after the refusal: %d, want 1", n)
	}
	assertAccepted(t, tr, []string{tok})

	// And a JWT whose revocation fits (exp + leeway within 1h) is revoked.
	fits, _ := jwtExpiring(30 * time.Minute)
	e.revokeConfirmed(t, tr, fits)
	assertRevoked(t, on(tr).do(t, http.MethodGet, replicaAPIPath, bearer(fits), ""))
	if n := e.refusedLifetime(t, tr); n != 1 {
		t.Errorf("refused.lifetime after a revoke that fits: %d, want still 1", n)
	}
}
