package obs

import (
	"math/rand"
	"time"
)

// Backoff returns the wait before retry n (0 for the first): first doubled n
// times, at most max. Each caller keeps its own bounds: see the callers.
func Backoff(n int, first, max time.Duration) time.Duration {
	d := first
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// Jitter spreads d over [d/2, 3d/2), so that replicas that failed together do
// not retry in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d/2 + time.Duration(rand.Int63n(int64(d))) //nolint:gosec // jitter, not security
}
