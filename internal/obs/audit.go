package obs

import (
	"encoding/json"
	"io"
	"log"
	"os"
	"time"
)

// An AuditEvent is one line of the audit trail, written as JSON. Empty
// fields are left out. The caller sets Time and every field it knows; a
// token appears only as Digest, a prefix of its digest, never in full.
type AuditEvent struct {
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

// An Auditor writes the lines of one sink, a file path, "stdout" or
// "stderr", from a goroutine of its own (Run), so that a slow disk or a slow
// log collector never holds a request. Lines wait in a bounded queue; when
// it is full, Emit drops the line and says so.
type Auditor struct {
	sink  string
	lines chan []byte
}

// AuditQueue bounds the lines waiting to be written by a shared Auditor.
const AuditQueue = 8192

// auditors holds the process's Auditors, one per sink.
var auditors Registry

// SharedAuditor returns the Auditor of sink, starting its writer the first
// time. A file is opened by the writer, not here: SharedAuditor never
// blocks on the sink.
func SharedAuditor(sink string) *Auditor {
	v, _, _ := auditors.Get(sink, func() (interface{}, error) {
		a := NewAuditor(sink, AuditQueue)
		go a.Run()
		return a, nil
	})
	return v.(*Auditor)
}

// NewAuditor returns an Auditor of sink holding up to queue lines, its
// writer not started: tests use it as a sink that never drains.
func NewAuditor(sink string, queue int) *Auditor {
	return &Auditor{sink: sink, lines: make(chan []byte, queue)}
}

// Emit queues ev as one JSON line, without waiting. It reports whether the
// line was dropped because the queue was full.
func (a *Auditor) Emit(ev *AuditEvent) (dropped bool) {
	line, err := json.Marshal(ev)
	if err != nil {
		return false
	}
	select {
	case a.lines <- append(line, '\n'):
		return false
	default:
		return true
	}
}

// Run drains the queue into the sink, for ever. A file that cannot be opened
// or written is retried every second; lines queued meanwhile wait, and once
// the queue is full new ones are dropped. Failures are logged at most once
// per WarnEvery.
func (a *Auditor) Run() {
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
			if WarnDue(&lastWarn, time.Now().UnixNano()) {
				log.Printf("tokenrevocation: ERROR audit log %s: %v", a.sink, err)
			}
			time.Sleep(time.Second)
		}
		if _, err := w.Write(line); err != nil && WarnDue(&lastWarn, time.Now().UnixNano()) {
			log.Printf("tokenrevocation: ERROR audit log %s: %v", a.sink, err)
		}
	}
}
