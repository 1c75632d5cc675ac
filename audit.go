package tokenrevocation

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
)

// The audit trail (auditLog): one JSON line per state change of a denylist,
// written by a goroutine of its own so that a slow disk or a slow log
// collector never holds a request. Lines wait in a bounded queue; when it
// is full the line is dropped and counted
// (tokenrevocation_audit_dropped_total). Each line names the denylist, and
// a token only by the first 8 hex characters of its SHA-256 digest: never
// the token, never the whole digest, never the admin secret.
//
// Revocations are audited where they are recorded from a request (the
// revoke endpoint, a revoked grant, a back-channel logout, the admin API),
// on the replica that recorded them; one that loads them from Redis or
// persistPath audits nothing for them (its ready line in Traefik's log
// gives the count).

// An auditor writes the lines of one sink: a file path, stdout or stderr.
type auditor struct {
	sink  string
	lines chan []byte
}

// auditQueue bounds the lines waiting to be written.
const auditQueue = 8192

var (
	auditorsMu sync.Mutex
	auditors   = map[string]*auditor{}
)

// sharedAuditor returns the auditor of sink, starting its writer the first
// time. A file is opened by the writer, not here: New never blocks.
func sharedAuditor(sink string) *auditor {
	auditorsMu.Lock()
	defer auditorsMu.Unlock()
	if a, ok := auditors[sink]; ok {
		return a
	}
	a := &auditor{sink: sink, lines: make(chan []byte, auditQueue)}
	auditors[sink] = a
	go a.write()
	return a
}

// write drains the queue into the sink. A file that cannot be opened or
// written is retried; lines queued meanwhile wait, and once the queue is
// full new ones are dropped and counted.
func (a *auditor) write() {
	var w io.Writer
	var f *os.File
	switch a.sink {
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	}
	lastWarn := int64(0)
	for line := range a.lines {
		for w == nil {
			var err error
			f, err = os.OpenFile(a.sink, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err == nil {
				w = f
				break
			}
			if warnDue(&lastWarn, time.Now().UnixNano()) {
				log.Printf("tokenrevocation: ERROR audit log %s: %v", a.sink, err)
			}
			time.Sleep(time.Second)
		}
		if _, err := w.Write(line); err != nil && warnDue(&lastWarn, time.Now().UnixNano()) {
			log.Printf("tokenrevocation: ERROR audit log %s: %v", a.sink, err)
		}
	}
}

// An auditEvent is one line. Empty fields are left out.
type auditEvent struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	Denylist  string `json:"denylist"`
	Source    string `json:"source,omitempty"`
	Client    string `json:"client,omitempty"`
	Hint      string `json:"hint,omitempty"`
	Digest    string `json:"digest,omitempty"` // first 8 hex characters
	ExpiresAt string `json:"expiresAt,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Operation string `json:"operation,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
	Count     int    `json:"count,omitempty"`
}

// emit queues ev for d's auditor, without waiting; nil auditor: no trail.
func (d *denylist) emit(ev *auditEvent) {
	a := d.auditor()
	if a == nil {
		return
	}
	ev.Time = d.now().UTC().Format(time.RFC3339Nano)
	ev.Denylist = d.name
	line, err := json.Marshal(ev)
	if err != nil {
		return
	}
	select {
	case a.lines <- append(line, '\n'):
	default:
		atomic.AddInt64(&d.auditDropped, 1)
	}
}

// auditor is the denylist's audit sink, nil when no middleware of it has
// auditLog set.
func (d *denylist) auditor() *auditor {
	a, _ := d.audit.Load().(*auditor)
	return a
}

// digestPrefix is what the audit trail shows of a digest.
func digestPrefix(digest *[32]byte) string {
	return hex.EncodeToString(digest[:4])
}

// auditRevocation records a revocation recorded here; who is nil when it
// did not come from the revoke endpoint.
func (d *denylist) auditRevocation(rec *revocation, who *revokeInfo) {
	if d.auditor() == nil {
		return
	}
	ev := &auditEvent{Event: "revocation", Source: sourceNames[rec.source], Digest: digestPrefix(&rec.digest),
		ExpiresAt: time.Unix(0, rec.expiry).UTC().Format(time.RFC3339)}
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
func (d *denylist) auditLogout(rec *logoutRecord) {
	if d.auditor() == nil {
		return
	}
	ev := &auditEvent{Event: "logout", Reason: "sid", Digest: digestPrefix(&rec.sid),
		ExpiresAt: time.Unix(0, rec.expiry).UTC().Format(time.RFC3339)}
	if rec.flags&logoutRuleSub != 0 && rec.flags&logoutRuleSID == 0 {
		ev.Reason = "sub" // one assignment each: see adminRule
		ev.Digest = digestPrefix(&rec.sub)
	}
	if rec.flags&logoutDelete != 0 {
		ev.Event = "rule_deleted"
	}
	d.emit(ev)
}
