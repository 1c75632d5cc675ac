package tokenrevocation

import (
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The audit trail (auditLog): one JSON line per state change of a denylist,
// written by the sink's own goroutine (obs.Auditor) so that a slow disk or
// a slow log collector never holds a request. Lines wait in a bounded
// queue; when it is full the line is dropped and counted
// (tokenrevocation_audit_dropped_total). Each line names the denylist, and
// a token only by the first 8 hex characters of its SHA-256 digest: never
// the token, never the whole digest, never the admin secret.
//
// Revocations are audited where they are recorded from a request (the
// revoke endpoint, a revoked grant, a back-channel logout, the admin API),
// on the replica that recorded them; one that loads them from Redis or
// persistPath audits nothing for them (its ready line in Traefik's log
// gives the count).

// emit queues ev for d's auditor, without waiting; nil auditor: no trail.
func (d *denylist) emit(ev *obs.AuditEvent) {
	a := d.auditor()
	if a == nil {
		return
	}
	ev.Time = d.opts.now().UTC().Format(time.RFC3339Nano)
	ev.Denylist = d.name
	if a.Emit(ev) {
		atomic.AddInt64(&d.count.auditDropped, 1)
	}
}

// auditor is the denylist's audit sink, nil when no middleware of it has
// auditLog set.
func (d *denylist) auditor() *obs.Auditor {
	a, _ := d.audit.Load().(*obs.Auditor)
	return a
}

// digestPrefix is what the audit trail shows of a digest.
func digestPrefix(digest *[32]byte) string {
	return hex.EncodeToString(digest[:4])
}

// auditRevocation records a revocation recorded here; who is nil when it
// did not come from the revoke endpoint.
func (d *denylist) auditRevocation(rec *record.Revocation, who *revokeInfo) {
	if d.auditor() == nil {
		return
	}
	ev := &obs.AuditEvent{Event: "revocation", Source: sourceNames[rec.Source], Digest: digestPrefix(&rec.Digest),
		ExpiresAt: time.Unix(0, rec.Expiry).UTC().Format(time.RFC3339)}
	if who != nil {
		ev.Client = who.client
		ev.Hint = who.hint
	}
	d.emit(ev)
}

// A revokeInfo is what the revoke endpoint knows of a revocation's caller.
type revokeInfo struct {
	client, hint string
	tag          limit.Key // the client's limiter key, replicated (limit.KeyOf)
}

// auditLogout records a logout, or an admin rule change, applied here.
func (d *denylist) auditLogout(rec *record.Logout) {
	if d.auditor() == nil {
		return
	}
	ev := &obs.AuditEvent{Event: "logout", Reason: "sid", Digest: digestPrefix(&rec.SID),
		ExpiresAt: time.Unix(0, rec.Expiry).UTC().Format(time.RFC3339)}
	if rec.Flags&record.LogoutRuleSub != 0 && rec.Flags&record.LogoutRuleSID == 0 {
		ev.Reason = "sub" // one assignment each: see adminRule
		ev.Digest = digestPrefix(&rec.Sub)
	}
	if rec.Flags&record.LogoutDelete != 0 {
		ev.Event = "rule_deleted"
	}
	d.emit(ev)
}
