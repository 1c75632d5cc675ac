package tokenrevocation

import (
	"encoding/hex"
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

// A replicator shares one denylist's revocations with every Traefik replica
// through a Redis Stream, the revocation log. Each confirmed revocation is
// appended with XADD (fields d: hex digest, e: expiry in Unix ms); every
// replica reads the stream with XREAD from the last ID it saw, so on start,
// and after every reconnect, it loads every revocation it missed. Entries
// older than maxTTL can no longer be live and are trimmed with XTRIM MINID.
//
// A stream rather than keys with PXAT and pub/sub: one ordered log gives
// catch-up after a disconnect for free (read from the last ID), where pub/sub
// loses whatever was published while a replica was away and needs a resync
// by key scan.
//
// The local denylist stays the hot path: requests never wait on Redis. New
// never dials: one writer and one reader goroutine start per denylist name,
// and connect lazily. While Redis is down, revocations are enforced locally,
// queued in memory, written once Redis is back, and a warning is logged at
// most every obs.WarnEvery.
type replicator struct {
	list   *denylist
	opts   *redisOptions
	stream string

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

func startReplicator(list *denylist, opts *redisOptions) *replicator {
	r := &replicator{list: list, opts: opts, stream: opts.keyPrefix + list.name, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go r.writeLoop()
	go r.readLoop()
	return r
}

// enqueueExtension queues a record of another type, such as a grant.
func (r *replicator) enqueueExtension(ext record.Extension) {
	r.mu.Lock()
	r.pendingExt = append(r.pendingExt, ext)
	r.mu.Unlock()
	r.notify()
}

// enqueue queues a local revocation for Redis.
func (r *replicator) enqueue(rec record.Revocation) {
	r.mu.Lock()
	r.pending = append(r.pending, rec)
	r.mu.Unlock()
	r.notify()
}

// notify wakes the writer without waiting.
func (r *replicator) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// close stops the replicator's loops at their next step.
func (r *replicator) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
}

// pause waits d, or less if the replicator is closed; it reports whether
// the replicator should go on.
func (r *replicator) pause(d time.Duration) bool {
	select {
	case <-r.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// retry handles a failed dial or command: it counts the failure, warns, and
// waits the backoff. It reports whether the loop should go on.
func (r *replicator) retry(failures *int, err error) bool {
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
func (r *replicator) warn(format string, args ...interface{}) {
	if obs.WarnDue(&r.lastWarnNs, time.Now().UnixNano()) {
		log.Printf("tokenrevocation: WARN denylist %q, redis %s: %s", r.list.name, r.opts.address, fmt.Sprintf(format, args...))
	}
}

// writeLoop sends queued revocations to the stream and trims it.
func (r *replicator) writeLoop() {
	var conn *resp.Conn
	failures := 0
	marked := false
	lastTrim := time.Time{}
	ticker := time.NewTicker(trimEvery)
	defer ticker.Stop()
	for {
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
		trim := time.Since(lastTrim) >= trimEvery
		if len(batch) == 0 && len(exts) == 0 && !trim {
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
			c, err := dialRedis(r.opts)
			if err != nil {
				if !r.retry(&failures, err) {
					return
				}
				continue
			}
			conn = c
		}
		cmds := make([][]string, 0, len(batch)+len(exts)+1)
		for i := range batch {
			cmd := []string{"XADD", r.stream, "*", "d", hex.EncodeToString(batch[i].Digest[:]), "e", strconv.FormatInt(batch[i].Expiry/int64(time.Millisecond), 10)}
			if batch[i].At > 0 {
				// The confirmation time (lifetime.go); the previous
				// release reads d and e and ignores a.
				cmd = append(cmd, "a", strconv.FormatInt(batch[i].At/int64(time.Millisecond), 10))
			}
			if batch[i].KeyN == keyLen {
				// The pre-check key (precheck.go); the previous release
				// reads d and e and ignores k.
				cmd = append(cmd, "k", hex.EncodeToString(batch[i].Key[:]))
			}
			if batch[i].Client != ([16]byte{}) {
				// The client's limiter tag: every replica counts the entry
				// against the client's share (internal/limit). Older
				// releases ignore it.
				cmd = append(cmd, "c", hex.EncodeToString(batch[i].Client[:]))
			}
			cmds = append(cmds, cmd)
		}
		for i := range exts {
			// Typed entries (record.go): t and v name the type and version,
			// x carries the record, hex-encoded.
			cmds = append(cmds, []string{"XADD", r.stream, "*", "t", strconv.Itoa(int(exts[i].Type)), "v", strconv.Itoa(int(exts[i].Version)), "x", hex.EncodeToString(exts[i].Payload)})
		}
		if signer := r.opts.signer; signer != nil {
			now := time.Now()
			for i := range cmds {
				cmds[i] = append(cmds[i], "s", signer.sign(r.stream, now, cmds[i][3:]))
			}
			if !marked {
				// Marks the stream signed for replicas without the secret.
				cmds = append(cmds, []string{"SET", r.stream + signedMarker, "1"})
			}
		}
		if trim && atomic.LoadInt32(&r.ready) == 0 {
			// Trimmed only once the stream has loaded: until then this
			// replica does not know the longest life it holds.
			trim = false
		}
		if trim {
			// Past the longest life recorded (lifetime.go): a JWT's
			// revocation may outlive maxTTL, and a replica that starts
			// late must still read it.
			keep := r.list.maxTTL
			if life := time.Duration(atomic.LoadInt64(&r.list.longestLife)); life > keep {
				keep = life
			}
			minID := time.Now().Add(-keep - r.list.leeway).UnixMilli()
			cmds = append(cmds, []string{"XTRIM", r.stream, "MINID", strconv.FormatInt(minID, 10)})
		}
		replies, err := conn.Pipeline(cmds, 0)
		if err == nil {
			for _, reply := range replies {
				if e, ok := reply.(error); ok {
					err = e
					break
				}
			}
		}
		if err != nil {
			conn.Close()
			conn = nil
			if !r.retry(&failures, err) {
				return
			}
			continue
		}
		failures = 0
		marked = marked || r.opts.signer != nil
		if trim {
			lastTrim = time.Now()
		}
		r.mu.Lock()
		r.pending = r.pending[len(batch):]
		r.pendingExt = r.pendingExt[len(exts):]
		r.mu.Unlock()
	}
}

func (r *replicator) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) + len(r.pendingExt)
}

// readLoop follows the stream from its start and stores every revocation.
func (r *replicator) readLoop() {
	var conn *resp.Conn
	entries := &entryReader{check: &entryCheck{stream: r.stream, signer: r.opts.signer}, skipped: &r.list.skipped}
	lastID := "0-0"
	failures := 0
	// Until caught up, batches are staged on a goroutine of their own, so
	// that reading the next batch (the costlier half under Yaegi) runs on
	// the other core meanwhile.
	staged := make(chan streamBatch, 4)
	stagerDone := make(chan struct{})
	go func() {
		for b := range staged {
			r.applyBatch(b.recs, b.exts)
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
			c, err := dialRedis(r.opts)
			if err != nil {
				atomic.StoreInt32(&r.connected, 0)
				if !r.retry(&failures, err) {
					return
				}
				continue
			}
			conn = c
			if err := r.checkMarker(conn); err != nil {
				conn.Close()
				conn = nil
				atomic.StoreInt32(&r.connected, 0)
				r.refuse(err)
				if !r.retry(&failures, err) {
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
		if err != nil && !oversized {
			conn.Close()
			conn = nil
			atomic.StoreInt32(&r.connected, 0)
			r.noteStuck(failures + 1)
			r.refuse(err)
			if !r.retry(&failures, err) {
				return
			}
			continue
		}
		failures = 0
		r.noteStuck(0)
		if oversized {
			// Skipped for good: what came before it applies below, the
			// read goes on after it, on a new connection (the rest of the
			// reply was not read).
			atomic.AddInt64(&r.list.skipped.Oversized, 1)
			r.warn("stream entry %s is larger than the read buffer (%d bytes): skipped", last, resp.BufferSize)
			conn.Close()
			conn = nil
		}
		if last != "" {
			lastID = last
		}
		switch {
		case last != "":
			r.noteLag(last)
		case caughtUp:
			// A blocking read that returned nothing: in sync.
			atomic.StoreInt64(&r.list.syncLagNs, 0)
		}
		r.stageBatch(streamBatch{recs: recs, exts: exts}, caughtUp, staged)
		if !caughtUp && count < readBatch && !oversized {
			close(staged)
			<-stagerDone
			atomic.StoreInt32(&r.ready, 1)
			log.Printf("tokenrevocation: denylist %q is in sync with redis stream %q (%d entries loaded)", r.list.name, r.stream, atomic.LoadInt64(&r.list.loaded))
			r.list.sourceLoaded()
		}
	}
}

// checkMarker refuses, for a reader without a secret, a stream that a
// signing replica marked (streamsign.go).
func (r *replicator) checkMarker(conn *resp.Conn) error {
	if r.opts.signer != nil {
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
func (r *replicator) refuse(err error) {
	if !errors.Is(err, errSignedStream) {
		return
	}
	atomic.StoreInt32(&r.stuck, 1)
	if obs.WarnDue(&r.lastRefuseNs, time.Now().UnixNano()) {
		log.Printf("tokenrevocation: ERROR denylist %q, redis stream %q: %v; set the same redis.signingSecret on every replica", r.list.name, r.stream, err)
	}
}

// noteStuck records the reads failed in a row: from stuckAfter on, the
// replica cannot make progress and reports not ready (stats, metrics).
func (r *replicator) noteStuck(failed int) {
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

// stageBatch applies b: on the stager goroutine while catching up (in
// order, after the batches before it), here once caught up.
func (r *replicator) stageBatch(b streamBatch, caughtUp bool, staged chan streamBatch) {
	switch {
	case len(b.recs) == 0 && len(b.exts) == 0:
	case !caughtUp:
		staged <- b
	default:
		r.applyBatch(b.recs, b.exts)
	}
}

// applyBatch stages recs and applies exts. Time, not stream order, decides
// between a tombstone and a revocation (lifetime.go): a tombstone is
// remembered before it removes anything, and staging drops what a
// remembered one cancels. A tombstone written before confirmation times
// orders by stream position instead: what came before it is staged first,
// and what comes after it (unstamped) it does not cancel.
func (r *replicator) applyBatch(recs []record.Revocation, exts []record.Extension) {
	prev := 0
	for i := range exts {
		if exts[i].Type == record.TombstoneType && len(exts[i].Payload) < record.TombstoneFullSize {
			if exts[i].Pos > prev && exts[i].Pos <= len(recs) {
				r.list.stage(recs[prev:exts[i].Pos], sourceRedis)
				prev = exts[i].Pos
			}
			r.list.applyExtension(&exts[i])
		}
	}
	if prev < len(recs) {
		r.list.stage(recs[prev:], sourceRedis)
	}
	for i := range exts {
		if exts[i].Type != record.TombstoneType || len(exts[i].Payload) >= record.TombstoneFullSize {
			r.list.applyExtension(&exts[i])
		}
	}
}

// noteLag records how old the last entry read was: its ID's milliseconds
// against now (the sync lag metric).
func (r *replicator) noteLag(id string) {
	ms := int64(0)
	for i := 0; i < len(id) && id[i] >= '0' && id[i] <= '9'; i++ {
		ms = ms*10 + int64(id[i]-'0')
	}
	if ms > 0 {
		atomic.StoreInt64(&r.list.syncLagNs, time.Now().UnixNano()-ms*int64(time.Millisecond))
	}
}
