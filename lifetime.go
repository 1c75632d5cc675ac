package tokenrevocation

import (
	"sync/atomic"
	"time"
)

// Lifetimes and order (README "Storage": lifetimes and order).
//
//   - A digest's revocations merge: the later expiry and the later
//     confirmation win, whichever source (the revoke endpoint, the admin API,
//     a grant or logout family, Redis, persistPath) delivers them and in
//     whatever order. A revocation never shortens a live one.
//   - Every revocation and tombstone carries the time it was confirmed: the
//     confirming replica's wall clock, in whole milliseconds, raised to the
//     latest tombstone time this replica has seen (stamp), so that what a
//     replica confirms after it applied an un-revoke is never ordered
//     before it. Records written before confirmation times load as
//     confirmed at time zero.
//   - A tombstone (unrevoke.go) names the latest confirmation the
//     un-revoking replica held (held). It cancels a revocation of its
//     digest confirmed at or before held, or more than leeway before the
//     tombstone itself. A revocation the un-revoking replica had not seen,
//     confirmed within leeway of the un-revoke, or any time after it,
//     stands: a clock skew of up to leeway between replicas never lets an
//     un-revoke cancel a later revocation, and when in doubt the token stays
//     revoked. Ties go to the revocation.
//   - Tombstones are remembered until everything they cancel has expired,
//     so that a canceled revocation arriving late (a partition healing, a
//     replica starting late, the file read after the stream) stays canceled.
//   - A JWT's revocation lives until its exp plus leeway. maxTTL bounds only
//     guessed lifetimes (opaque tokens, JWTs without exp). maxLifetime is the
//     longest life the store holds: a revoke whose revocation would outlive
//     it is refused with 503 before the identity service is called.

// defaultMaxLifetime is maxLifetime's default: a year.
const defaultMaxLifetime = 8760 * time.Hour

// order is what a denylist keeps of time: clock, the latest confirmation
// time seen in a tombstone, and longestLife, the longest lifetime recorded,
// from confirmation to expiry.
type order struct {
	clock       int64
	longestLife int64
}

// stamp is a confirmation time for a record confirmed now.
func (d *denylist) stamp() int64 {
	now := d.opts.now().UnixNano() / int64(time.Millisecond) * int64(time.Millisecond)
	if c := atomic.LoadInt64(&d.order.clock); c > now {
		return c
	}
	return now
}

// observe raises the clock to a tombstone's time, up to leeway and a
// minute ahead of this replica's clock: a stamp further ahead (a clock past
// the skew the replicas tolerate, or a forged record) must not pin every
// later stamp.
func (d *denylist) observe(at int64) {
	if limit := d.opts.now().UnixNano() + int64(d.opts.leeway+time.Minute); at > limit {
		at = limit
	}
	for {
		c := atomic.LoadInt64(&d.order.clock)
		if at <= c || atomic.CompareAndSwapInt64(&d.order.clock, c, at) {
			return
		}
	}
}

// noteLife keeps the longest lifetime recorded, from confirmation to
// expiry: the Redis stream is trimmed only past it (internal/replica).
func (d *denylist) noteLife(expiry, at int64) {
	if at <= 0 {
		return
	}
	life := expiry - at
	for {
		c := atomic.LoadInt64(&d.order.longestLife)
		if life <= c || atomic.CompareAndSwapInt64(&d.order.longestLife, c, life) {
			return
		}
	}
}
