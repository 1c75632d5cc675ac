package replica

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// No revocation lost to a failover. Redis replicates asynchronously: a
// master can acknowledge an XADD and fail before a replica has it, and the
// replica promoted in its place never had the entry. The replica that wrote
// it still enforces it, the others never learn it. So each replica keeps a
// ledger of the entries it wrote (their IDs and fields) until they are
// safely old, and after every reconnect checks that they are still in the
// stream (XRANGE id id), writing again (XADD) those that are not. Records
// are idempotent where they are applied: a record read twice merges into
// the one held (the later expiry and confirmation win), so a re-published
// one neither counts twice nor takes a second capacity slot.
//
// An entry is safely old once the reader has read past it and either WAIT
// acknowledged it (redis.waitReplicas) or it has been in the stream for
// keepWritten of uninterrupted connection since it was written: a failover
// that could lose it would have interrupted the connection, and a
// replica's lag is normally milliseconds, far below keepWritten.

const (
	// keepWritten is how long an entry stays in the ledger after it was
	// written (or after the last interruption, whichever is later).
	keepWritten = time.Minute
	// maxLedger bounds the ledger: an entry written while it is full is
	// not remembered, and counted (Failover.RememberRefused).
	maxLedger = 100000
)

// A writtenEntry is an entry written here: its stream ID and its fields, unsigned.
type writtenEntry struct {
	id     string
	fields []string
	acked  bool // WAIT acknowledged it
}

// A ledger is the entries this replica wrote and has not yet forgotten.
type ledger struct {
	mu      sync.Mutex
	entries []writtenEntry
	// seen is the last stream ID the reader read.
	seen string
	// stableNs is when the last interruption (a reconnect, an error) was
	// seen by either loop.
	stableNs int64

	refused     int64 // atomic: entries not remembered, the ledger full
	republished int64 // atomic: entries written again
}

// add remembers the entries written as ids (XADD's replies, one per
// fields), acked when WAIT acknowledged them, as far as the bound allows.
// A reply that is not a stream ID is not remembered: XRANGE would refuse it.
func (l *ledger) add(ids []interface{}, fields [][]string, acked bool) {
	refused := int64(0)
	l.mu.Lock()
	for i := range fields {
		id, ok := ids[i].(string)
		switch {
		case !ok || !validID(id):
		case len(l.entries) >= maxLedger:
			refused++
		default:
			l.entries = append(l.entries, writtenEntry{id: id, fields: fields[i], acked: acked})
		}
	}
	l.mu.Unlock()
	if refused > 0 {
		atomic.AddInt64(&l.refused, refused)
	}
}

// read records that the reader has read up to id.
func (l *ledger) read(id string) {
	l.mu.Lock()
	l.seen = id
	l.mu.Unlock()
}

// interrupted records that a connection was lost or made anew.
func (l *ledger) interrupted(now time.Time) {
	atomic.StoreInt64(&l.stableNs, now.UnixNano())
}

// forget drops the entries that are safely old at now, from the oldest
// on: it stops at the first one that is not, so that a call costs little
// when nothing is to be forgotten (entries are in write order; one written
// again may hold the others back until it is safely old too).
func (l *ledger) forget(now time.Time) {
	stable := atomic.LoadInt64(&l.stableNs)
	l.mu.Lock()
	defer l.mu.Unlock()
	seenMs, seenSeq := splitID(l.seen)
	n := 0
	for n < len(l.entries) {
		w := &l.entries[n]
		ms, seq := splitID(w.id)
		if l.seen == "" || ms > seenMs || (ms == seenMs && seq > seenSeq) {
			break // not read back yet
		}
		since := ms * int64(time.Millisecond)
		if stable > since {
			since = stable
		}
		if !w.acked && now.UnixNano()-since < int64(keepWritten) {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	for i := 0; i < n; i++ {
		l.entries[i] = writtenEntry{} // no stale fields kept alive
	}
	l.entries = l.entries[n:]
}

// snapshot returns a copy of the entries.
func (l *ledger) snapshot() []writtenEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]writtenEntry(nil), l.entries...)
}

// replace notes that the entry old was written again as id, acked when
// WAIT acknowledged it.
func (l *ledger) replace(old, id string, acked bool) {
	l.mu.Lock()
	for i := range l.entries {
		if l.entries[i].id == old {
			l.entries[i].id = id
			l.entries[i].acked = acked
		}
	}
	l.mu.Unlock()
	atomic.AddInt64(&l.republished, 1)
}

// drop forgets the entry id (trimmed from the stream by age: no longer live).
func (l *ledger) drop(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.entries {
		if l.entries[i].id == id {
			l.entries = append(l.entries[:i], l.entries[i+1:]...)
			return
		}
	}
}

// size is how many entries the ledger holds.
func (l *ledger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// idAtMost reports whether the stream ID a is at or before b ("ms-seq");
// an empty b is before every ID.
func idAtMost(a, b string) bool {
	if b == "" {
		return false
	}
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || (am == bm && as <= bs)
}

// validID reports whether id is a stream ID, <ms>-<seq>, each a 64-bit
// unsigned number in digits.
func validID(id string) bool {
	dash := strings.IndexByte(id, '-')
	if dash < 1 || dash == len(id)-1 || id[dash+1] == '+' {
		return false
	}
	_, errMs := strconv.ParseUint(id[:dash], 10, 64)
	_, errSeq := strconv.ParseUint(id[dash+1:], 10, 64)
	return errMs == nil && errSeq == nil
}

// splitID splits a stream ID into its milliseconds and sequence.
func splitID(id string) (int64, int64) {
	ms := idMillis(id)
	seq := int64(0)
	if dash := strings.IndexByte(id, '-'); dash >= 0 {
		seq, _ = strconv.ParseInt(id[dash+1:], 10, 64)
	}
	return ms, seq
}

// rewind returns the stream ID keepWritten before id: where a reader that
// changed node reads again from, in case the new node's clock is behind
// the old one's (entries re-read merge into what is held).
func rewind(id string) string {
	ms := idMillis(id) - keepWritten.Milliseconds()
	if ms <= 0 {
		return "0-0"
	}
	return strconv.FormatInt(ms, 10) + "-0"
}
