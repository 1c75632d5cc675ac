package tokenrevocation

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// Prometheus metrics (metricsPath), in the text exposition format 0.0.4,
// written by hand: prometheus/client_golang, with its protobuf and
// reflection-heavy registry, is far more than this needs, and the plugin
// module depends on bigcache alone. Every series carries the denylist's
// name; every denylist of the process is exposed, whichever middleware
// serves the path. The counters live in the denylist, which a reload keeps,
// so they are never reset by one.

// Why a request was rejected, for tokenrevocation_rejected_requests_total.
const (
	rejectRevoked      = iota // a revoked token
	rejectRefreshGrant        // a refresh grant with a revoked refresh token
	rejectLogoutRule          // a back-channel logout rule
	rejectReasons
)

var rejectNames = [rejectReasons]string{"revoked_token", "refresh_grant", "logout_rule"}

// metricsContentType is the text exposition format's media type.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// A metricFamily is one metric: its name, type, help, and how to read each
// denylist's series from it.
type metricFamily struct {
	name, typ, help string
	series          func(d *denylist, st *denylistStats, w *seriesWriter)
}

// A seriesWriter writes one family's series for one denylist.
type seriesWriter struct {
	b    *strings.Builder
	name string
	list string
}

// value writes a series with the denylist label and one optional label.
func (w *seriesWriter) value(label, labelValue string, v float64) {
	w.b.WriteString(w.name)
	w.b.WriteString(`{denylist="`)
	w.b.WriteString(escapeLabel(w.list))
	w.b.WriteByte('"')
	if label != "" {
		w.b.WriteString(`,` + label + `="`)
		w.b.WriteString(escapeLabel(labelValue))
		w.b.WriteByte('"')
	}
	w.b.WriteString("} ")
	w.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	w.b.WriteByte('\n')
}

// escapeLabel escapes a label value: backslash, double quote, line feed.
func escapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var metricFamilies = []metricFamily{
	{"tokenrevocation_revocations_total", "counter", "Revocations recorded, by where this replica learned them.", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		for s := sourceRevoke; s < sourceCount; s++ {
			w.value("source", sourceNames[s], float64(atomic.LoadInt64(&d.recorded[s])))
		}
	}},
	{"tokenrevocation_unrevocations_total", "counter", "Revocations undone (admin unrevoke), by where this replica learned of it.", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		for _, s := range []byte{sourceAdmin, sourceRedis, sourceFile} {
			w.value("source", sourceNames[s], float64(atomic.LoadInt64(&d.unrevoked[s])))
		}
	}},
	{"tokenrevocation_rejected_requests_total", "counter", "Requests rejected before the upstream, by reason.", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		for r := 0; r < rejectReasons; r++ {
			w.value("reason", rejectNames[r], float64(atomic.LoadInt64(&d.rejected[r])))
		}
	}},
	{"tokenrevocation_refused_revocations_total", "counter", "Revoke calls refused before the identity service, by reason (capacity: 503, client_limit: 429, lifetime: 503, past maxLifetime).", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("reason", "capacity", float64(st.Refused.Capacity))
		w.value("reason", "client_limit", float64(st.Refused.ClientLimit))
		w.value("reason", "lifetime", float64(st.Refused.Lifetime))
	}},
	{"tokenrevocation_auth_failures_total", "counter", "Revoke calls the identity service refused with 401: they spend none of the claimed client's limits.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.AuthFailures))
	}},
	{"tokenrevocation_bound_refusals_total", "counter", "What each bound on outside input refused or cut, by bound (README: Limits and hostile input).", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		b := &st.Bounded
		w.value("bound", "clients", float64(b.Clients))
		w.value("bound", "grant_tokens", float64(b.GrantTokens))
		w.value("bound", "jti", float64(b.Jti))
		w.value("bound", "logout_rules", float64(b.LogoutRules))
		w.value("bound", "overflow", float64(b.Overflow))
		w.value("bound", "audit_fields", float64(b.AuditFields))
		w.value("bound", "tombstones", float64(b.Tombstones))
	}},
	{"tokenrevocation_stream_skipped_total", "counter", "Stream entries skipped rather than applied, by reason (denylists with Redis only).", func(d *denylist, st *denylistStats, w *seriesWriter) {
		if d.replica != nil {
			w.value("reason", "oversized", float64(st.Stream.Oversized))
			w.value("reason", "malformed", float64(st.Stream.Malformed))
			w.value("reason", "unverified", float64(st.Stream.Unverified))
		}
	}},
	{"tokenrevocation_evictions_total", "counter", "Live revocations bigcache pushed out, all kept in the overflow map: the denylist is too small.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Evictions))
	}},
	{"tokenrevocation_entries", "gauge", "Revocations held, expired ones bigcache has not yet cleaned included.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Entries))
	}},
	{"tokenrevocation_capacity_entries", "gauge", "Revocations one lifetime lane takes before revoke calls are refused.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Capacity))
	}},
	{"tokenrevocation_ready", "gauge", "1 once every source (persistPath, the Redis stream) has loaded.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", b2f(st.Ready))
	}},
	{"tokenrevocation_load_duration_seconds", "gauge", "How long loading at start took; 0 while it lasts.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", st.LoadSeconds)
	}},
	{"tokenrevocation_redis_connected", "gauge", "1 while the Redis stream is connected (denylists with Redis only).", func(d *denylist, st *denylistStats, w *seriesWriter) {
		if d.replica != nil {
			w.value("", "", b2f(st.Redis == "connected"))
		}
	}},
	{"tokenrevocation_redis_queued_records", "gauge", "Records waiting to be written to Redis (denylists with Redis only).", func(d *denylist, st *denylistStats, w *seriesWriter) {
		if d.replica != nil {
			w.value("", "", float64(st.Queued))
		}
	}},
	{"tokenrevocation_redis_sync_lag_seconds", "gauge", "Age of the last stream entry read, when it was read (denylists with Redis only).", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		if d.replica != nil {
			w.value("", "", float64(atomic.LoadInt64(&d.syncLagNs))/1e9)
		}
	}},
	{"tokenrevocation_logouts_total", "counter", "Back-channel logouts applied, received here or loaded.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Logouts))
	}},
	{"tokenrevocation_logout_rules", "gauge", "Live back-channel logout session and subject rules.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.LogoutRules))
	}},
	{"tokenrevocation_grants", "gauge", "record.Grant families tracked (trackGrants).", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Grants))
	}},
	{"tokenrevocation_grants_untracked_total", "counter", "New grants not tracked because maxGrants was reached: a revoke of their refresh token does not revoke their access tokens.", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.GrantsUntracked))
	}},
	{"tokenrevocation_overflow_entries", "gauge", "Live revocations kept in the overflow map, outside bigcache: its lanes were full or evicted them (still enforced).", func(_ *denylist, st *denylistStats, w *seriesWriter) {
		w.value("", "", float64(st.Overflow))
	}},
	{"tokenrevocation_jwks_keys", "gauge", "Signing keys of the OpenID provider held for back-channel logout, by issuer (denylists whose middleware has backchannelLogoutPath only).", func(d *denylist, st *denylistStats, w *seriesWriter) {
		d.mu.Lock()
		keys := d.keys
		d.mu.Unlock()
		if keys != nil {
			w.value("issuer", keys.issuer, float64(st.JWKSKeys))
		}
	}},
	{"tokenrevocation_audit_dropped_total", "counter", "Audit lines dropped because the audit sink was slow.", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		w.value("", "", float64(atomic.LoadInt64(&d.auditDropped)))
	}},
	{"tokenrevocation_admin_requests_total", "counter", "Admin API requests, by operation and outcome.", func(d *denylist, _ *denylistStats, w *seriesWriter) {
		for op := 0; op < adminOps; op++ {
			for oc := 0; oc < adminOutcomes; oc++ {
				w.b.WriteString(w.name + `{denylist="` + escapeLabel(w.list) + `",operation="` + adminOpNames[op] + `",outcome="` + adminOutcomeNames[oc] + `"} `)
				w.b.WriteString(strconv.FormatInt(atomic.LoadInt64(&d.adminCalls[op][oc]), 10))
				w.b.WriteByte('\n')
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
	registryMu.Lock()
	lists := make([]*denylist, 0, len(registry)+1)
	for _, d := range registry {
		lists = append(lists, d)
	}
	if registry[m.list.name] != m.list {
		lists = append(lists, m.list) // built outside the registry (tests)
	}
	registryMu.Unlock()
	sort.Slice(lists, func(i, j int) bool { return lists[i].name < lists[j].name })
	stats := make([]denylistStats, len(lists))
	for i, d := range lists {
		stats[i] = d.stats()
	}
	var b strings.Builder
	for _, f := range metricFamilies {
		b.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.typ + "\n")
		for i, d := range lists {
			f.series(d, &stats[i], &seriesWriter{b: &b, name: f.name, list: d.name})
		}
	}
	h := rw.Header()
	h.Set("Content-Type", metricsContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	rw.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = rw.Write([]byte(b.String()))
	}
}
