package limit

import (
	"math"
	"time"
)

// A laneCount counts one client's revocations in one lane with a sliding
// window of shareBuckets buckets of width ns each: memory is fixed whatever
// the client sends. Bucket i holds the calls made during slot slots[i] (Unix
// ns / width); a bucket counts while its slot is one of the last
// shareBuckets, the current one included.
type laneCount struct {
	lane     int
	width    int64
	slots    [shareBuckets]int64
	counts   [shareBuckets]int
	reserved int // admitted calls not yet committed or released
}

// shareBuckets is the number of buckets of a lane's sliding window.
const shareBuckets = 8

// laneCount returns st's count for lane, created on first use. Its bucket
// width is sized for window; should window change, what was counted is kept
// in full as of now.
func (st *clientState) laneCount(lane int, window time.Duration, now int64) *laneCount {
	width := bucketWidth(window)
	for _, lc := range st.lanes {
		if lc.lane != lane {
			continue
		}
		if lc.width != width {
			live := lc.live(now)
			*lc = laneCount{lane: lane, width: width, reserved: lc.reserved}
			slot, i := lc.slot(now)
			lc.slots[i] = slot
			lc.counts[i] = live
		}
		return lc
	}
	lc := &laneCount{lane: lane, width: width}
	st.lanes = append(st.lanes, lc)
	return lc
}

// bucketWidth is the width, in ns, of a bucket of a lane whose entries live
// window: window / (shareBuckets-1) rounded up to whole seconds, at least one.
// The buckets counted then span at least window (rounded up to seconds, as
// bigcache rounds LifeWindow) before now, and at most one bucket more, so an
// entry is counted for at least as long as it lives.
func bucketWidth(window time.Duration) int64 {
	span := (shareBuckets - 1) * time.Second
	seconds := (window + span - 1) / span
	if seconds < 1 {
		seconds = 1
	}
	return int64(seconds * time.Second)
}

// slot returns the slot of now and its bucket.
func (lc *laneCount) slot(now int64) (int64, int) {
	slot := now / lc.width
	i := int(slot % shareBuckets)
	if i < 0 {
		i += shareBuckets
	}
	return slot, i
}

// addN counts n entries at now.
func (lc *laneCount) addN(now int64, n int) {
	slot, i := lc.slot(now)
	// A bucket of a later slot (the clock went back) keeps its slot and takes
	// the entry: counted longer, never shorter.
	if lc.slots[i] < slot {
		lc.slots[i] = slot
		lc.counts[i] = 0
	}
	lc.counts[i] += n
}

// live is how many entries counted at now.
func (lc *laneCount) live(now int64) int {
	first := now/lc.width - (shareBuckets - 1)
	n := 0
	for i := 0; i < shareBuckets; i++ {
		if lc.slots[i] >= first {
			n += lc.counts[i]
		}
	}
	return n
}

// retryAfter is how long until the oldest counted bucket leaves the window,
// one second when only reservations fill the share.
func (lc *laneCount) retryAfter(now int64) time.Duration {
	first := now/lc.width - (shareBuckets - 1)
	oldest := int64(math.MaxInt64)
	for i := 0; i < shareBuckets; i++ {
		if lc.counts[i] > 0 && lc.slots[i] >= first && lc.slots[i] < oldest {
			oldest = lc.slots[i]
		}
	}
	if oldest == math.MaxInt64 {
		return time.Second
	}
	return retrySeconds(float64((oldest+shareBuckets)*lc.width - now))
}
