package tokenrevocation

import (
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/replica"
)

// startReplica starts the replication of d through the Redis Stream opts
// names (internal/replica), once per denylist name (createDenylist).
func startReplica(d *denylist, opts *redisOptions) *replica.Replicator {
	return replica.Start(&replica.Config{
		Name:         d.name,
		Stream:       opts.stream(d.name),
		Redis:        opts.dialOptions(),
		Signer:       opts.signer,
		Sink:         &streamSink{d: d},
		Topology:     opts.topology(),
		WaitReplicas: opts.waitReplicas,
		WaitTimeout:  opts.waitTimeout,
	})
}

// A streamSink is what a denylist's replicator delivers the stream to
// (replica.Sink).
type streamSink struct {
	d *denylist
}

// Apply stages recs and applies exts. Time, not stream order, decides
// between a tombstone and a revocation (lifetime.go): a tombstone is
// remembered before it removes anything, and staging drops what a
// remembered one cancels. A tombstone written before confirmation times
// orders by stream position instead: what came before it is staged first,
// and what comes after it (unstamped) it does not cancel.
func (s *streamSink) Apply(recs []record.Revocation, exts []record.Extension) {
	prev := 0
	for i := range exts {
		if exts[i].Type == record.TombstoneType && len(exts[i].Payload) < record.TombstoneFullSize {
			if exts[i].Pos > prev && exts[i].Pos <= len(recs) {
				s.d.stage(recs[prev:exts[i].Pos], sourceRedis)
				prev = exts[i].Pos
			}
			s.d.applyExtension(&exts[i])
		}
	}
	if prev < len(recs) {
		s.d.stage(recs[prev:], sourceRedis)
	}
	for i := range exts {
		if exts[i].Type != record.TombstoneType || len(exts[i].Payload) >= record.TombstoneFullSize {
			s.d.applyExtension(&exts[i])
		}
	}
}

// Loaded marks the stream as a source caught up.
func (s *streamSink) Loaded() {
	s.d.sourceLoaded()
}

// Count is how many records the denylist has loaded, from every source.
func (s *streamSink) Count() int64 {
	return atomic.LoadInt64(&s.d.count.loaded)
}

// Retention is how long the stream keeps entries: past the longest life
// recorded (lifetime.go), since a JWT's revocation may outlive maxTTL, and
// the leeway.
func (s *streamSink) Retention() time.Duration {
	keep := s.d.opts.maxTTL
	if life := time.Duration(atomic.LoadInt64(&s.d.order.longestLife)); life > keep {
		keep = life
	}
	return keep + s.d.opts.leeway
}
