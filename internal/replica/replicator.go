// Package replica shares a denylist's records with every Traefik replica
// through a Redis Stream, the revocation log: a writer appends each record
// confirmed here (XADD), and a reader follows the stream (XREAD) and hands
// what every replica wrote to a Sink, one reply at a time. It also defines
// the stream's entry format (stream.go) and its signatures (sign.go).
//
// The package knows nothing of the denylist: it talks to it through Sink,
// and the plugin's root wires the two together. It avoids generics, which
// Yaegi, the interpreter Traefik runs plugins with, supports poorly, and
// keeps the reader's per-entry work inline (stream.go).
package replica

import (
	"errors"
	"fmt"
	"log"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// A Sink is what a Replicator delivers the stream to, and asks what it
// needs to know: the denylist. Every call is per reply or rarer, never per
// entry (under Yaegi each interpreted call costs microseconds).
type Sink interface {
	// Apply applies the records of one XREAD reply: the revocations in
	// stream order, and the records of other types, each with Pos, the
	// number of revocations before it in the reply. Calls come one at a
	// time, in stream order.
	Apply(recs []record.Revocation, exts []record.Extension)
	// Loaded is called once, when the reader has caught up with the stream.
	Loaded()
	// Count is how many records the sink has loaded, for the log line
	// that says the reader caught up.
	Count() int64
	// Retention is how long the stream must keep an entry: past it, no
	// entry can still be live (the longest lifetime recorded, and the
	// leeway). Entries older than that are trimmed.
	Retention() time.Duration
}

// Config is what Start needs.
type Config struct {
	// Name is the denylist's name, as log lines quote it.
	Name string
	// Stream is the stream's key.
	Stream string
	// Redis is how to reach the server: every dial reads it.
	Redis *resp.Options
	// Signer signs and verifies the stream's entries; nil: none
	// (redis.signingSecret not set).
	Signer *Signer
	// Sink receives what the reader reads.
	Sink Sink
	// Topology is how to find the node that holds the stream: Sentinels,
	// or a cluster (topology.go). Zero: Redis.Address holds it.
	Topology Topology
	// WaitReplicas, above 0, makes every write wait (WAIT) for that many
	// replicas to acknowledge it, at most WaitTimeout (ledger.go).
	WaitReplicas int
	WaitTimeout  time.Duration
}

// Status is what a Replicator reports about itself (stats, metrics).
type Status struct {
	// Ready is true once the reader has caught up with the stream.
	Ready bool
	// Connected is true while the reader holds a connection.
	Connected bool
	// Stuck is true while the reader cannot make progress: its reads keep
	// failing, or the stream is signed and this replica has no secret.
	Stuck bool
	// Queued counts the records waiting to be written.
	Queued int
	// Lag is the age of the last entry read, when it was read; 0 when a
	// blocking read found nothing new.
	Lag time.Duration
	// Skipped counts the entries skipped rather than applied.
	Skipped Skips
	// Failover is where the stream is written and what failovers did.
	Failover Failover
}

// Failover is where the stream is written, and what failovers and cluster
// redirections did (topology.go, ledger.go).
type Failover struct {
	// Master is the address of the node the stream is written to.
	Master string `json:"master"`
	// Failovers counts master changes the Sentinels reported, and writes
	// refused with READONLY (the node was demoted).
	Failovers int64 `json:"failovers"`
	// Moved and Asked count the cluster redirections followed.
	Moved int64 `json:"moved"`
	Asked int64 `json:"asked"`
	// Republished counts the records this replica wrote that a failover
	// lost, and that it wrote again.
	Republished int64 `json:"republished"`
	// Remembered is how many records written here are kept until safely
	// old; RememberRefused how many were not kept, the ledger being full.
	Remembered      int   `json:"remembered"`
	RememberRefused int64 `json:"rememberRefused"`
	// WaitShort counts the WAITs that timed out with fewer replicas than
	// redis.waitReplicas.
	WaitShort int64 `json:"waitShort"`
}

// Skips counts the stream entries skipped, by why.
type Skips struct {
	// Oversized: entries larger than the reader's buffer.
	Oversized int64 `json:"oversized"`
	// Malformed: entries that are not a record this release reads.
	Malformed int64 `json:"malformed"`
	// Unverified: entries whose signature did not verify (redis.signingSecret).
	Unverified int64 `json:"unverified"`
}

// A Replicator shares one denylist's revocations with every Traefik replica
// through a Redis Stream, the revocation log. Each confirmed revocation is
// appended with XADD (fields d: hex digest, e: expiry in Unix ms; stream.go);
// every replica reads the stream with XREAD from the last ID it saw, so on
// start, and after every reconnect, it loads every revocation it missed.
// Entries older than the sink's retention can no longer be live and are
// trimmed with XTRIM MINID.
//
// A stream rather than keys with PXAT and pub/sub: one ordered log gives
// catch-up after a disconnect for free (read from the last ID), where pub/sub
// loses whatever was published while a replica was away and needs a resync
// by key scan.
//
// The local denylist stays the hot path: requests never wait on Redis. Start
// never dials: one writer and one reader goroutine start per Replicator
// (the root starts one per denylist name), and connect lazily. While Redis
// is down, revocations are enforced locally, queued in memory, written once
// Redis is back, and a warning is logged at most every obs.WarnEvery.
type Replicator struct {
	name   string
	router *router
	signer *Signer
	sink   Sink
	stream string
	// waitReplicas and waitTimeout: WAIT after each write; 0: none.
	waitReplicas int
	waitTimeout  time.Duration

	// written is the ledger of the entries written here (ledger.go).
	written ledger
	// verifyDue is 1 when the writer must check the ledger against the
	// stream: set at every reconnect of either loop.
	verifyDue int32
	waitShort int64

	mu         sync.Mutex
	pending    []record.Revocation
	pendingExt []record.Extension
	wake       chan struct{}

	ready     int32
	connected int32
	// stuck is 1 while reads keep failing (stuckAfter in a row): the
	// replica cannot make progress and reports not ready.
	stuck int32
	// lastRefuseNs spaces out the errSignedStream error.
	lastRefuseNs int64
	lastWarnNs   int64
	// syncLagNs is the age of the last stream entry read, when read.
	syncLagNs int64
	skipped   Skips

	// stop ends both loops; only tests close a denylist.
	stop chan struct{}
}

const (
	// readBatch is how many stream entries one XREAD returns at most.
	readBatch = 10000
	// writeBatch is how many XADDs one pipeline sends at most.
	writeBatch = 1000
	// blockFor is how long XREAD BLOCK waits for new entries.
	blockFor = 5 * time.Second
	// stuckAfter is how many reads in a row may fail before the replica
	// reports not ready.
	stuckAfter = 3
	// trimEvery spaces out XTRIM calls.
	trimEvery = time.Minute
)

// Start starts the writer and the reader of cfg.Stream, and returns at
// once: neither dials until it runs.
func Start(cfg *Config) *Replicator {
	r := &Replicator{name: cfg.Name, signer: cfg.Signer, sink: cfg.Sink, stream: cfg.Stream, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	r.router = newRouter(cfg.Redis, cfg.Topology, cfg.Stream)
	r.waitReplicas = cfg.WaitReplicas
	r.waitTimeout = cfg.WaitTimeout
	go r.writeLoop()
	go r.readLoop()
	return r
}

// EnqueueExtension queues a record of another type, such as a grant.
func (r *Replicator) EnqueueExtension(ext record.Extension) {
	r.mu.Lock()
	r.pendingExt = append(r.pendingExt, ext)
	r.mu.Unlock()
	r.notify()
}

// Enqueue queues a local revocation for Redis.
func (r *Replicator) Enqueue(rec record.Revocation) {
	r.mu.Lock()
	r.pending = append(r.pending, rec)
	r.mu.Unlock()
	r.notify()
}

// notify wakes the writer without waiting.
func (r *Replicator) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops the replicator's loops at their next step.
func (r *Replicator) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
}

// pause waits d, or less if the replicator is closed; it reports whether
// the replicator should go on.
func (r *Replicator) pause(d time.Duration) bool {
	select {
	case <-r.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// retry handles a failed dial or command: it counts the failure, warns, and
// waits the backoff. It reports whether the loop should go on.
func (r *Replicator) retry(failures *int, err error) bool {
	*failures++
	r.warn("%v; %d revocations queued, enforced locally", err, r.queued())
	return r.pause(backoff(*failures))
}

// backoff returns the wait before retry n: doubling from 100 ms up to 5 s,
// with ±50% jitter so replicas do not reconnect in step.
func backoff(n int) time.Duration {
	return obs.Jitter(obs.Backoff(n, 100*time.Millisecond, 5*time.Second))
}

// warn logs a Redis problem at most once per obs.WarnEvery.
func (r *Replicator) warn(format string, args ...interface{}) {
	if obs.WarnDue(&r.lastWarnNs, time.Now().UnixNano()) {
		log.Printf("tokenrevocation: WARN denylist %q, redis %s: %s", r.name, r.router.current(), fmt.Sprintf(format, args...))
	}
}

// writeLoop sends queued revocations to the stream and trims it. After
// every reconnect it checks that what it wrote is still there (ledger.go).
func (r *Replicator) writeLoop() {
	var conn *resp.Conn
	node := ""
	failures, redirects := 0, 0
	marked := false
	lastTrim := time.Time{}
	ticker := time.NewTicker(trimEvery)
	defer ticker.Stop()
	for {
		r.written.forget(time.Now())
		r.mu.Lock()
		n := len(r.pending)
		if n > writeBatch {
			n = writeBatch
		}
		batch := append([]record.Revocation(nil), r.pending[:n]...)
		m := len(r.pendingExt)
		if m > writeBatch {
			m = writeBatch
		}
		exts := append([]record.Extension(nil), r.pendingExt[:m]...)
		r.mu.Unlock()
		// Trimmed only once the stream has loaded: until then this
		// replica does not know the longest life it holds. (Checked here,
		// so that a replica still loading waits for work, not spins.)
		trim := time.Since(lastTrim) >= trimEvery && atomic.LoadInt32(&r.ready) == 1
		verify := atomic.LoadInt32(&r.verifyDue) == 1 && r.written.size() > 0
		if len(batch) == 0 && len(exts) == 0 && !trim && !verify {
			select {
			case <-r.wake:
			case <-ticker.C:
			case <-r.stop:
				if conn != nil {
					conn.Close()
				}
				return
			}
			continue
		}
		if conn == nil {
			c, addr, err := r.router.dial()
			r.written.interrupted(time.Now())
			if err != nil {
				if !r.retry(&failures, err) {
					return
				}
				continue
			}
			conn = c
			node = addr
			// A new connection, perhaps to a new master: check what was
			// written, and mark the stream signed again.
			marked = false
			atomic.StoreInt32(&r.verifyDue, 1)
			continue
		}
		if verify {
			atomic.StoreInt32(&r.verifyDue, 0)
			err := r.verify(conn, node)
			if code := resp.Code(err); code == "NOPERM" || code == "ERR" || code == "WRONGTYPE" {
				// The check cannot run (an ACL without XRANGE, say):
				// writing goes on, unchecked, rather than stop.
				r.warn("cannot check that the records written here are still in the stream: %v", err)
				err = nil
			}
			if err != nil {
				atomic.StoreInt32(&r.verifyDue, 1)
				conn.Close()
				conn = nil
				if !r.failed(err, node, &failures, &redirects) {
					return
				}
				continue
			}
		}
		if len(batch) == 0 && len(exts) == 0 && !trim {
			continue
		}
		cmds := make([][]string, 0, len(batch)+len(exts)+3)
		for i := range batch {
			cmds = append(cmds, appendRevocation([]string{"XADD", r.stream, "*"}, &batch[i]))
		}
		for i := range exts {
			cmds = append(cmds, appendExtension([]string{"XADD", r.stream, "*"}, &exts[i]))
		}
		fields := make([][]string, len(cmds))
		for i := range cmds {
			fields[i] = append([]string(nil), cmds[i][3:]...)
		}
		r.sign(cmds)
		if r.signer != nil && !marked {
			// Marks the stream signed for replicas without the secret.
			cmds = append(cmds, []string{"SET", r.stream + signedMarker, "1"})
		}
		if trim {
			// Past the longest life recorded (the sink's retention): a
			// JWT's revocation may outlive maxTTL, and a replica that
			// starts late must still read it.
			minID := time.Now().Add(-r.sink.Retention()).UnixMilli()
			cmds = append(cmds, []string{"XTRIM", r.stream, "MINID", strconv.FormatInt(minID, 10)})
		}
		cmds, wait := r.withWait(cmds)
		replies, err := r.send(conn, node, cmds, wait)
		if err != nil {
			conn.Close()
			conn = nil
			if !r.failed(err, node, &failures, &redirects) {
				return
			}
			continue
		}
		failures, redirects = 0, 0
		marked = marked || r.signer != nil
		if trim {
			lastTrim = time.Now()
		}
		r.written.add(replies, fields, r.acked(replies, wait))
		r.mu.Lock()
		r.pending = r.pending[len(batch):]
		r.pendingExt = r.pendingExt[len(exts):]
		r.mu.Unlock()
	}
}

// sign appends the signature to each XADD in cmds, when records are signed.
func (r *Replicator) sign(cmds [][]string) {
	if r.signer == nil {
		return
	}
	now := time.Now()
	for i := range cmds {
		cmds[i] = append(cmds[i], "s", r.signer.Sign(r.stream, now, cmds[i][3:]))
	}
}

// withWait appends WAIT to cmds when redis.waitReplicas is set, and returns
// how much longer its reply may take.
func (r *Replicator) withWait(cmds [][]string) ([][]string, time.Duration) {
	if r.waitReplicas <= 0 {
		return cmds, 0
	}
	ms := strconv.FormatInt(r.waitTimeout.Milliseconds(), 10)
	return append(cmds, []string{"WAIT", strconv.Itoa(r.waitReplicas), ms}), r.waitTimeout
}

// acked reads WAIT's reply, the last of replies when wait is set: whether
// enough replicas acknowledged the writes before it.
func (r *Replicator) acked(replies []interface{}, wait time.Duration) bool {
	if wait == 0 || len(replies) == 0 {
		return false
	}
	n, ok := replies[len(replies)-1].(int64)
	if ok && n >= int64(r.waitReplicas) {
		return true
	}
	atomic.AddInt64(&r.waitShort, 1)
	return false
}

// send pipelines cmds on conn, connected to node, and returns the replies,
// the first error reply as the error. A command answered ASK for the
// stream's slot is sent again, after ASKING, to the node it names.
func (r *Replicator) send(conn *resp.Conn, node string, cmds [][]string, wait time.Duration) ([]interface{}, error) {
	replies, err := conn.Pipeline(cmds, wait)
	if err != nil {
		return nil, err
	}
	err = firstError(replies)
	if red, ok := resp.ParseRedirect(err, node); ok && red.Ask && red.Slot == r.router.slot {
		err = r.sendAsking(red.Addr, cmds, replies)
	}
	return replies, err
}

// sendAsking sends the commands of cmds whose reply is an ASK to addr, each
// after ASKING, and puts their replies in place.
func (r *Replicator) sendAsking(addr string, cmds [][]string, replies []interface{}) error {
	c, err := r.router.dialAsk(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var asking [][]string
	var at []int
	for i, reply := range replies {
		if e, ok := reply.(error); ok && resp.Code(e) == "ASK" {
			asking = append(asking, []string{"ASKING"}, cmds[i])
			at = append(at, i)
		}
	}
	again, err := c.Pipeline(asking, 0)
	if err != nil {
		return err
	}
	for j, i := range at {
		replies[i] = again[2*j+1]
	}
	return firstError(replies)
}

// firstError is the first error among replies, nil when none is.
func firstError(replies []interface{}) error {
	for _, reply := range replies {
		if e, ok := reply.(error); ok {
			return e
		}
	}
	return nil
}

// failed handles err, a command's on node: a MOVED for the stream's slot is
// followed at once (up to maxRedirects in a row), anything else waits the
// backoff. It reports whether the loop should go on.
func (r *Replicator) failed(err error, node string, failures, redirects *int) bool {
	r.written.interrupted(time.Now())
	if r.router.follow(err, node) && *redirects < maxRedirects {
		*redirects++
		return true
	}
	*redirects = 0
	if c := resp.Code(err); c == "MOVED" || c == "ASK" {
		// A redirect for another slot: the marker key is not in the
		// stream's (a cluster met without redis.cluster).
		err = fmt.Errorf("%w (the keys span more than one hash slot: set redis.cluster: true on every replica)", err)
	}
	return r.retry(failures, err)
}

// verify checks that every entry in the ledger is still in the stream
// (XRANGE id id), and writes again those that are not.
func (r *Replicator) verify(conn *resp.Conn, node string) error {
	entries := r.written.snapshot()
	for lo := 0; lo < len(entries); lo += writeBatch {
		hi := lo + writeBatch
		if hi > len(entries) {
			hi = len(entries)
		}
		cmds := make([][]string, 0, hi-lo)
		for _, w := range entries[lo:hi] {
			cmds = append(cmds, []string{"XRANGE", r.stream, w.id, w.id})
		}
		replies, err := r.send(conn, node, cmds, 0)
		if err != nil {
			return err
		}
		var missing []writtenEntry
		for i, reply := range replies {
			if items, ok := reply.([]interface{}); ok && len(items) == 0 {
				missing = append(missing, entries[lo+i])
			}
		}
		if err := r.republish(conn, node, missing); err != nil {
			return err
		}
	}
	return nil
}

// republish writes again the entries missing from the stream, but those
// past the stream's retention, which trimming removed.
func (r *Replicator) republish(conn *resp.Conn, node string, missing []writtenEntry) error {
	oldest := time.Now().Add(-r.sink.Retention()).UnixMilli()
	cmds := make([][]string, 0, len(missing)+1)
	var again []writtenEntry
	for _, w := range missing {
		if idMillis(w.id) < oldest {
			r.written.drop(w.id)
			continue
		}
		cmds = append(cmds, append([]string{"XADD", r.stream, "*"}, w.fields...))
		again = append(again, w)
	}
	if len(again) == 0 {
		return nil
	}
	r.sign(cmds)
	cmds, wait := r.withWait(cmds)
	replies, err := r.send(conn, node, cmds, wait)
	if err != nil {
		return err
	}
	acked := r.acked(replies, wait)
	for i, w := range again {
		if id, ok := replies[i].(string); ok && validID(id) {
			r.written.replace(w.id, id, acked)
		}
	}
	r.warn("%d records written here were missing from the stream after a reconnect (lost in a failover): written again", len(again))
	return nil
}

func (r *Replicator) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) + len(r.pendingExt)
}

// readLoop follows the stream from its start and stores every revocation.
func (r *Replicator) readLoop() {
	var conn *resp.Conn
	entries := &entryReader{check: &entryCheck{stream: r.stream, signer: r.signer}, skipped: &r.skipped}
	lastID := "0-0"
	failures, redirects := 0, 0
	node := ""    // the node read from last
	askAddr := "" // the node an ASK named, for the next read only
	// Until caught up, batches are staged on a goroutine of their own, so
	// that reading the next batch (the costlier half under Yaegi) runs on
	// the other core meanwhile.
	staged := make(chan streamBatch, 4)
	stagerDone := make(chan struct{})
	go func() {
		for b := range staged {
			r.sink.Apply(b.recs, b.exts)
		}
		close(stagerDone)
	}()
	defer func() {
		if atomic.LoadInt32(&r.ready) == 0 {
			close(staged)
		}
	}()
	for {
		select {
		case <-r.stop:
			if conn != nil {
				conn.Close()
			}
			return
		default:
		}
		if conn == nil {
			c, addr, err := r.dialReader(askAddr)
			r.written.interrupted(time.Now())
			if err != nil {
				askAddr = ""
				atomic.StoreInt32(&r.connected, 0)
				if !r.retry(&failures, err) {
					return
				}
				continue
			}
			conn = c
			if askAddr == "" && node != "" && addr != node && lastID != "0-0" {
				// Another node: its clock may be behind the last one's.
				lastID = rewind(lastID)
			}
			if askAddr == "" {
				node = addr
			}
			// Perhaps a failover: the writer checks what it wrote.
			atomic.StoreInt32(&r.verifyDue, 1)
			r.notify()
			if err := r.checkMarker(conn); err != nil {
				conn.Close()
				conn = nil
				askAddr = ""
				atomic.StoreInt32(&r.connected, 0)
				r.refuse(err)
				if !r.failed(err, addr, &failures, &redirects) {
					return
				}
				continue
			}
			atomic.StoreInt32(&r.connected, 1)
		}
		caughtUp := atomic.LoadInt32(&r.ready) == 1
		args := []string{"XREAD", "COUNT", strconv.Itoa(readBatch)}
		wait := time.Duration(0)
		if caughtUp {
			args = append(args, "BLOCK", strconv.Itoa(int(blockFor/time.Millisecond)))
			wait = blockFor
		}
		args = append(args, "STREAMS", r.stream, lastID)
		recs, exts, last, count, err := entries.xread(conn, args, wait)
		oversized := errors.Is(err, resp.ErrTooLarge)
		from := node
		if askAddr != "" {
			// One read after ASKING: the next goes to the slot's owner.
			from = askAddr
			askAddr = ""
			if err == nil || oversized {
				conn.Close()
				conn = nil
			}
		}
		if err != nil && !oversized {
			if conn != nil {
				conn.Close()
				conn = nil
			}
			atomic.StoreInt32(&r.connected, 0)
			if red, ok := resp.ParseRedirect(err, from); ok && red.Ask && red.Slot == r.router.slot {
				askAddr = red.Addr
			}
			r.noteStuck(failures + 1)
			r.refuse(err)
			if !r.failed(err, from, &failures, &redirects) {
				return
			}
			continue
		}
		failures, redirects = 0, 0
		r.noteStuck(0)
		if oversized {
			// Skipped for good: what came before it applies below, the
			// read goes on after it, on a new connection (the rest of the
			// reply was not read).
			atomic.AddInt64(&r.skipped.Oversized, 1)
			r.warn("stream entry %s is larger than the read buffer (%d bytes): skipped", last, resp.BufferSize)
			if conn != nil {
				conn.Close()
				conn = nil
			}
		}
		if last != "" {
			lastID = last
			r.written.read(lastID)
		}
		switch {
		case last != "":
			r.noteLag(last)
		case caughtUp:
			// A blocking read that returned nothing: in sync.
			atomic.StoreInt64(&r.syncLagNs, 0)
		}
		r.stageBatch(streamBatch{recs: recs, exts: exts}, caughtUp, staged)
		if !caughtUp && count < readBatch && !oversized {
			close(staged)
			<-stagerDone
			atomic.StoreInt32(&r.ready, 1)
			log.Printf("tokenrevocation: denylist %q is in sync with redis stream %q (%d entries loaded)", r.name, r.stream, r.sink.Count())
			r.sink.Loaded()
		}
	}
}

// dialReader connects the reader: to the node an ASK named, after ASKING,
// when askAddr is set; else to the node that holds the stream.
func (r *Replicator) dialReader(askAddr string) (*resp.Conn, string, error) {
	if askAddr == "" {
		return r.router.dial()
	}
	c, err := r.router.dialAsk(askAddr)
	if err != nil {
		return nil, "", err
	}
	if _, err := c.Do("ASKING"); err != nil {
		c.Close()
		return nil, "", err
	}
	return c, askAddr, nil
}

// checkMarker refuses, for a reader without a secret, a stream that a
// signing replica marked (sign.go).
func (r *Replicator) checkMarker(conn *resp.Conn) error {
	if r.signer != nil {
		return nil
	}
	n, err := conn.Do("EXISTS", r.stream+signedMarker)
	if err != nil {
		return err
	}
	if n, ok := n.(int64); ok && n > 0 {
		return errSignedStream
	}
	return nil
}

// refuse reports at once, for errSignedStream, that this replica cannot
// make progress, with an ERROR at most once a minute; other errors wait
// for stuckAfter failures.
func (r *Replicator) refuse(err error) {
	if !errors.Is(err, errSignedStream) {
		return
	}
	atomic.StoreInt32(&r.stuck, 1)
	if obs.WarnDue(&r.lastRefuseNs, time.Now().UnixNano()) {
		log.Printf("tokenrevocation: ERROR denylist %q, redis stream %q: %v; set the same redis.signingSecret on every replica", r.name, r.stream, err)
	}
}

// noteStuck records the reads failed in a row: from stuckAfter on, the
// replica cannot make progress and reports not ready (stats, metrics).
func (r *Replicator) noteStuck(failed int) {
	stuck := int32(0)
	if failed >= stuckAfter {
		stuck = 1
	}
	atomic.StoreInt32(&r.stuck, stuck)
}

// streamBatch is one XREAD reply's revocations and extensions.
type streamBatch struct {
	recs []record.Revocation
	exts []record.Extension
}

// stageBatch hands b to the sink: on the stager goroutine while catching up (in
// order, after the batches before it), here once caught up.
func (r *Replicator) stageBatch(b streamBatch, caughtUp bool, staged chan streamBatch) {
	switch {
	case len(b.recs) == 0 && len(b.exts) == 0:
	case !caughtUp:
		staged <- b
	default:
		r.sink.Apply(b.recs, b.exts)
	}
}

// noteLag records how old the last entry read was: its ID's milliseconds
// against now (the sync lag metric).
func (r *Replicator) noteLag(id string) {
	if ms := idMillis(id); ms > 0 {
		atomic.StoreInt64(&r.syncLagNs, time.Now().UnixNano()-ms*int64(time.Millisecond))
	}
}

// Status reports the replicator's state and counters.
func (r *Replicator) Status() Status {
	return Status{
		Ready:     atomic.LoadInt32(&r.ready) == 1,
		Connected: atomic.LoadInt32(&r.connected) == 1,
		Stuck:     atomic.LoadInt32(&r.stuck) == 1,
		Queued:    r.queued(),
		Lag:       time.Duration(atomic.LoadInt64(&r.syncLagNs)),
		Skipped: Skips{
			Oversized:  atomic.LoadInt64(&r.skipped.Oversized),
			Malformed:  atomic.LoadInt64(&r.skipped.Malformed),
			Unverified: atomic.LoadInt64(&r.skipped.Unverified),
		},
		Failover: r.failover(),
	}
}

// failover reports where the stream is written and what failovers did.
func (r *Replicator) failover() Failover {
	f := Failover{Master: r.router.current(), Remembered: r.written.size()}
	f.Failovers, f.Moved, f.Asked = r.router.counters()
	f.Republished = atomic.LoadInt64(&r.written.republished)
	f.RememberRefused = atomic.LoadInt64(&r.written.refused)
	f.WaitShort = atomic.LoadInt64(&r.waitShort)
	return f
}
