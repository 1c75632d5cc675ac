package tokenrevocation

import (
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
)

// Prometheus metrics (metricsPath), in the text exposition format 0.0.4
// (obs.TextPage). Every series carries the denylist's name; every denylist
// of the process is exposed, whichever middleware serves the path. The
// counters live in the denylist, which a reload keeps, so they are never
// reset by one.

// Why a request was rejected, for tokenrevocation_rejected_requests_total.
const (
	rejectRevoked      = iota // a revoked token
	rejectRefreshGrant        // a refresh grant with a revoked refresh token
	rejectLogoutRule          // a back-channel logout rule
	rejectReasons
)

var rejectNames = [rejectReasons]string{"revoked_token", "refresh_grant", "logout_rule"}

// A metricFamily is one metric: its name, type, help, and how to read each
// denylist's series from it.
type metricFamily struct {
	name, typ, help string
	series          func(d *denylist, st *denylistStats, w *obs.SeriesWriter)
}

var metricFamilies = []metricFamily{
	{"tokenrevocation_revocations_total", "counter", "Revocations recorded, by where this replica learned them.", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		for s := sourceRevoke; s < sourceCount; s++ {
			w.Float(float64(atomic.LoadInt64(&d.count.recorded[s])), "source", sourceNames[s])
		}
	}},
	{"tokenrevocation_unrevocations_total", "counter", "Revocations undone (admin unrevoke), by where this replica learned of it.", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		for _, s := range []byte{sourceAdmin, sourceRedis, sourceFile} {
			w.Float(float64(atomic.LoadInt64(&d.count.unrevoked[s])), "source", sourceNames[s])
		}
	}},
	{"tokenrevocation_rejected_requests_total", "counter", "Requests rejected before the upstream, by reason.", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		for r := 0; r < rejectReasons; r++ {
			w.Float(float64(atomic.LoadInt64(&d.count.rejected[r])), "reason", rejectNames[r])
		}
	}},
	{"tokenrevocation_refused_revocations_total", "counter", "Revoke calls refused before the identity service, by reason (capacity: 503, client_limit: 429, lifetime: 503, past maxLifetime).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Refused.Capacity), "reason", "capacity")
		w.Float(float64(st.Refused.ClientLimit), "reason", "client_limit")
		w.Float(float64(st.Refused.Lifetime), "reason", "lifetime")
	}},
	{"tokenrevocation_auth_failures_total", "counter", "Revoke calls the identity service refused with 401: they spend none of the claimed client's limits.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.AuthFailures))
	}},
	{"tokenrevocation_bound_refusals_total", "counter", "What each bound on outside input refused or cut, by bound (README: Limits and hostile input).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		b := &st.Bounded
		w.Float(float64(b.Clients), "bound", "clients")
		w.Float(float64(b.GrantTokens), "bound", "grant_tokens")
		w.Float(float64(b.Jti), "bound", "jti")
		w.Float(float64(b.LogoutRules), "bound", "logout_rules")
		w.Float(float64(b.Overflow), "bound", "overflow")
		w.Float(float64(b.AuditFields), "bound", "audit_fields")
		w.Float(float64(b.Tombstones), "bound", "tombstones")
		w.Float(float64(b.Segment), "bound", "segment")
	}},
	{"tokenrevocation_stream_skipped_total", "counter", "Stream entries skipped rather than applied, by reason (denylists with Redis only).", func(d *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if d.replica != nil {
			w.Float(float64(st.Stream.Oversized), "reason", "oversized")
			w.Float(float64(st.Stream.Malformed), "reason", "malformed")
			w.Float(float64(st.Stream.Unverified), "reason", "unverified")
		}
	}},
	{"tokenrevocation_evictions_total", "counter", "Live revocations bigcache pushed out, all kept in the overflow map: the denylist is too small.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Evictions))
	}},
	{"tokenrevocation_entries", "gauge", "Revocations held, expired ones bigcache has not yet cleaned included.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Entries))
	}},
	{"tokenrevocation_capacity_entries", "gauge", "Revocations one lifetime lane takes before revoke calls are refused.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Capacity))
	}},
	{"tokenrevocation_ready", "gauge", "1 once every source (persistPath, the Redis stream) has loaded.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Bool(st.Ready)
	}},
	{"tokenrevocation_load_duration_seconds", "gauge", "How long loading at start took; 0 while it lasts.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(st.LoadSeconds)
	}},
	{"tokenrevocation_redis_connected", "gauge", "1 while the Redis stream is connected (denylists with Redis only).", func(d *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if d.replica != nil {
			w.Bool(st.Redis == "connected")
		}
	}},
	{"tokenrevocation_redis_queued_records", "gauge", "Records waiting to be written to Redis (denylists with Redis only).", func(d *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if d.replica != nil {
			w.Float(float64(st.Queued))
		}
	}},
	{"tokenrevocation_redis_sync_lag_seconds", "gauge", "Age of the last stream entry read, when it was read (denylists with Redis only).", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		if d.replica != nil {
			w.Float(float64(d.replica.Status().Lag) / 1e9)
		}
	}},
	{"tokenrevocation_redis_master", "gauge", "1, with the address of the node the stream is written to (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(1, "address", st.Failover.Master)
		}
	}},
	{"tokenrevocation_redis_failovers_total", "counter", "Master changes the Sentinels reported, and writes refused with READONLY (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(st.Failover.Failovers)
		}
	}},
	{"tokenrevocation_redis_redirects_total", "counter", "Redis Cluster redirections followed, by kind (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(st.Failover.Moved, "kind", "moved")
			w.Int(st.Failover.Asked, "kind", "ask")
		}
	}},
	{"tokenrevocation_redis_republished_total", "counter", "Records this replica wrote that a failover lost, written again (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(st.Failover.Republished)
		}
	}},
	{"tokenrevocation_redis_unconfirmed_records", "gauge", "Records written here and remembered until safely old, to be written again should a failover lose them (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(int64(st.Failover.Remembered))
		}
	}},
	{"tokenrevocation_redis_unconfirmed_refused_total", "counter", "Records written here but not remembered, the bound of 100000 being reached (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(st.Failover.RememberRefused)
		}
	}},
	{"tokenrevocation_redis_wait_short_total", "counter", "WAITs (redis.waitReplicas) that timed out with fewer replicas (denylists with Redis only).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		if st.Failover != nil {
			w.Int(st.Failover.WaitShort)
		}
	}},
	{"tokenrevocation_logouts_total", "counter", "Back-channel logouts applied, received here or loaded.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Logouts))
	}},
	{"tokenrevocation_logout_rules", "gauge", "Live back-channel logout session and subject rules.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.LogoutRules))
	}},
	{"tokenrevocation_grants", "gauge", "Grant families tracked (trackGrants).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Grants))
	}},
	{"tokenrevocation_grants_untracked_total", "counter", "New grants not tracked because maxGrants was reached: a revoke of their refresh token does not revoke their access tokens.", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.GrantsUntracked))
	}},
	{"tokenrevocation_overflow_entries", "gauge", "Live revocations kept in the overflow map, outside bigcache: its lanes were full or evicted them (still enforced).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Overflow))
	}},
	{"tokenrevocation_loaded_segment_entries", "gauge", "Revocations loaded at start and held in the loaded segment, outside bigcache's lanes (in tokenrevocation_entries too; still enforced).", func(_ *denylist, st *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(st.Segment))
	}},
	{"tokenrevocation_jwks_keys", "gauge", "Signing keys of the OpenID provider held for back-channel logout, by issuer (denylists whose middleware has backchannelLogoutPath only).", func(d *denylist, st *denylistStats, w *obs.SeriesWriter) {
		d.mu.Lock()
		keys := d.keys
		d.mu.Unlock()
		if keys != nil {
			w.Float(float64(st.JWKSKeys), "issuer", keys.issuer)
		}
	}},
	{"tokenrevocation_audit_dropped_total", "counter", "Audit lines dropped because the audit sink was slow.", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		w.Float(float64(atomic.LoadInt64(&d.count.auditDropped)))
	}},
	{"tokenrevocation_admin_requests_total", "counter", "Admin API requests, by operation and outcome.", func(d *denylist, _ *denylistStats, w *obs.SeriesWriter) {
		for op := 0; op < adminOps; op++ {
			for oc := 0; oc < adminOutcomes; oc++ {
				w.Int(atomic.LoadInt64(&d.count.adminCalls[op][oc]), "operation", adminOpNames[op], "outcome", adminOutcomeNames[oc])
			}
		}
	}},
}

// serveMetrics answers GET metricsPath with every denylist's series.
func (m *middleware) serveMetrics(rw http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		writeError(rw, http.StatusMethodNotAllowed, "invalid_request", "Use GET")
		return
	}
	shared := denylists.Values()
	lists := make([]*denylist, 0, len(shared)+1)
	for _, v := range shared {
		lists = append(lists, v.(*denylist))
	}
	if d, _ := denylists.Lookup(m.list.name).(*denylist); d != m.list {
		lists = append(lists, m.list) // built outside the registry (tests)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i].name < lists[j].name })
	stats := make([]denylistStats, len(lists))
	for i, d := range lists {
		stats[i] = d.stats()
	}
	var page obs.TextPage
	for _, f := range metricFamilies {
		page.Family(f.name, f.typ, f.help)
		for i, d := range lists {
			f.series(d, &stats[i], page.Series(f.name, "denylist", d.name))
		}
	}
	h := rw.Header()
	h.Set("Content-Type", obs.TextContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(page.Len()))
	rw.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = rw.Write([]byte(page.String()))
	}
}
