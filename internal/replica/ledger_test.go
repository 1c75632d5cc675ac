package replica

import (
	"strconv"
	"testing"
	"time"
)

func TestLedgerForgetsWhatIsSafelyOld(t *testing.T) {
	now := time.Now()
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) + "-0" }
	tests := []struct {
		desc   string
		id     string
		acked  bool
		seen   string
		stable time.Duration // the last interruption, from now
		keep   bool
	}{
		{desc: "not read back yet", id: ms(-time.Hour), seen: ms(-2 * time.Hour), stable: -time.Hour, keep: true},
		{desc: "read back, old", id: ms(-2 * keepWritten), seen: ms(0), stable: -time.Hour},
		{desc: "read back, young", id: ms(-time.Second), seen: ms(0), stable: -time.Hour, keep: true},
		{desc: "read back, old, but a reconnect since", id: ms(-time.Hour), seen: ms(0), stable: -time.Second, keep: true},
		{desc: "read back, young, WAIT acknowledged", id: ms(-time.Second), acked: true, seen: ms(0), stable: -time.Second},
		{desc: "acknowledged, not read back", id: ms(-time.Second), acked: true, seen: "", stable: -time.Hour, keep: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a ledger with one entry
			l := &ledger{}
			l.add(test.id, []string{"d", "x"}, test.acked)
			l.read(test.seen)
			l.interrupted(now.Add(test.stable))
			// when it forgets what is safely old
			l.forget(now)
			// then the entry is kept or not
			if kept := l.size() == 1; kept != test.keep {
				t.Fatalf("kept %v, want %v", kept, test.keep)
			}
		})
	}
}

func TestLedgerBound(t *testing.T) {
	// given a full ledger, when one more entry is written, then it is
	// refused and counted
	l := &ledger{entries: make([]writtenEntry, maxLedger)}
	l.add("1-1", nil, false)
	if l.size() != maxLedger || l.refused != 1 {
		t.Fatalf("size %d, refused %d", l.size(), l.refused)
	}
}

func TestStreamIDs(t *testing.T) {
	for _, test := range []struct {
		a, b string
		want bool
	}{
		{"1-1", "1-1", true}, {"1-1", "1-2", true}, {"1-2", "1-1", false}, {"9-0", "10-0", true},
		{"10-0", "9-99", false}, {"1-0", "", false},
	} {
		if got := idAtMost(test.a, test.b); got != test.want {
			t.Errorf("idAtMost(%q, %q) = %v", test.a, test.b, got)
		}
	}
	if got := rewind("1700000060000-5", time.Minute); got != "1700000000000-0" {
		t.Errorf("rewind: %s", got)
	}
	if got := rewind("5-0", time.Minute); got != "0-0" {
		t.Errorf("rewind near 0: %s", got)
	}
}
