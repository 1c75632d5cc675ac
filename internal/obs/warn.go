package obs

import (
	"sync/atomic"
	"time"
)

// WarnEvery spaces out repeated warnings of one kind: every line the plugin
// logs reaches Traefik's log at ERROR, and a failure that lasts must not
// flood it.
const WarnEvery = time.Minute

// WarnDue reports whether a warning throttled by *last, the Unix nanoseconds
// of its last warning, may be logged at now: at most once per WarnEvery. It
// claims the slot when it may, so that of concurrent callers one logs.
func WarnDue(last *int64, now int64) bool {
	prev := atomic.LoadInt64(last)
	return now-prev >= int64(WarnEvery) && atomic.CompareAndSwapInt64(last, prev, now)
}
