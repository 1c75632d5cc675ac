// Package fakeclock is the clock the tests inject and move by hand: it
// starts at 2026-01-01T00:00:00Z, a bucket edge of every limiter window, and
// stands still until advanced. It is imported by tests only.
package fakeclock

import (
	"sync/atomic"
	"time"
)

// A Clock is a clock that only Advance moves; safe for concurrent use.
type Clock struct{ ns int64 }

// New is a Clock at 2026-01-01T00:00:00Z.
func New() *Clock {
	return &Clock{ns: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

// Now is the clock's time; pass the method value where a now func is taken.
func (c *Clock) Now() time.Time { return time.Unix(0, atomic.LoadInt64(&c.ns)) }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) { atomic.AddInt64(&c.ns, int64(d)) }
