package traefik37

import (
	"fmt"
	"net/http"
	"testing"
)

// TestRedisReplication: two replicas, each its own process and so its own
// denylist, share revocations through a real redis-server. Replica A is
// this process, replica B the test binary run again (runReplica); both load
// the plugin through v3.7.13's loader with the same configuration. A
// revocation confirmed through either is enforced by the other.
func TestRedisReplication(t *testing.T) {
	redisAddr := startRedis(t)
	id, upstream := startIdentity(t), startAPI(t)
	dyn := dynamicYAML(id.srv.URL, upstream.srv.URL, fmt.Sprintf(`
cacheSizeMB: 8
denylist: replicated
statsPath: %s
redis:
  address: %q
  dialTimeout: 1s
  readTimeout: 1s
  writeTimeout: 1s
  signingSecret: traefik37-replication-secret`, statsPath, redisAddr))

	b, err := newBuilder(staticUnsafe)
	if err != nil {
		t.Fatalf("loading the plugin: %v", err)
	}
	a := serveEdge(t, b, dyn).URL
	rb := startReplica(t, staticUnsafe, dyn)

	// Both serve, with Redis loaded: an unknown token passes.
	for name, base := range map[string]string{"A": a, "B": rb.url} {
		wantPassed(t, "replica "+name+", an unknown token", bearer(t, base, "unknown-token"))
		waitFor(t, "replica "+name+" ready with Redis", func() (bool, string) {
			s := readStats(t, base)
			return s.Ready && s.State == "ready", fmt.Sprintf("%+v", s)
		})
	}

	mustRevoke(t, a, "revoked-on-a")
	wantRejected(t, "replica A, its own revocation", bearer(t, a, "revoked-on-a"))
	waitFor(t, "replica B enforcing a revocation confirmed on A", func() (bool, string) {
		r := bearer(t, rb.url, "revoked-on-a")
		return r.status == http.StatusUnauthorized, r.String() + "\nreplica B log:\n" + rb.log()
	})
	wantRejected(t, "replica B, a revocation confirmed on A", bearer(t, rb.url, "revoked-on-a"))

	mustRevoke(t, rb.url, "revoked-on-b")
	wantRejected(t, "replica B, its own revocation", bearer(t, rb.url, "revoked-on-b"))
	waitFor(t, "replica A enforcing a revocation confirmed on B", func() (bool, string) {
		r := bearer(t, a, "revoked-on-b")
		return r.status == http.StatusUnauthorized, r.String()
	})
	wantRejected(t, "replica A, a revocation confirmed on B", bearer(t, a, "revoked-on-b"))

	// Each replica confirmed one revocation itself and holds both: the
	// other's came through Redis, not a shared in-process denylist.
	sa, sb := readStats(t, a), readStats(t, rb.url)
	if sa.Revokes != 1 || sb.Revokes != 1 || sa.Entries != 2 || sb.Entries != 2 {
		t.Fatalf("stats: A %+v, B %+v; want each 1 revoke confirmed here and 2 entries", sa, sb)
	}
	if got := id.confirmed.Load(); got != 2 {
		t.Fatalf("the identity service confirmed %d revokes, want 2", got)
	}
	wantPassed(t, "replica B, an unknown token at the end", bearer(t, rb.url, "still-unknown"))
}
