package replica

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for n := 0; n < 10; n++ {
		if d := backoff(n); d < 50*time.Millisecond || d > 7500*time.Millisecond {
			t.Fatalf("backoff(%d) = %s", n, d)
		}
	}
}
