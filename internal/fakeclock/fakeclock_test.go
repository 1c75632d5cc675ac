package fakeclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	// given a clock
	c := New()
	start := c.Now()
	// when it is advanced
	c.Advance(1500 * time.Millisecond)
	// then it moved by exactly that, and stands still otherwise
	if got := c.Now().Sub(start); got != 1500*time.Millisecond {
		t.Fatalf("moved %v", got)
	}
	if !c.Now().Equal(c.Now()) || !start.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatal("the clock moved by itself, or started elsewhere")
	}
}
