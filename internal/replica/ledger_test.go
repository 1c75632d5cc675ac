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
			l.add([]interface{}{test.id}, [][]string{{"d", "x"}}, test.acked)
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
	l.add([]interface{}{"1-1"}, [][]string{nil}, false)
	if l.size() != maxLedger || l.refused != 1 {
		t.Fatalf("size %d, refused %d", l.size(), l.refused)
	}
}

func TestLedgerKeepsOnlyStreamIDs(t *testing.T) {
	// given XADD replies a hostile server might send, when they are
	// remembered, then only stream IDs are: XRANGE would refuse the rest
	l := &ledger{}
	l.add([]interface{}{"1-1", "OK", int64(3), "-1", "1-", "18446744073709551616-1", "x-1", "1-2"}, make([][]string, 8), false)
	if got := l.snapshot(); len(got) != 2 || got[0].id != "1-1" || got[1].id != "1-2" {
		t.Fatalf("remembered %+v", got)
	}
}

func TestLedgerForgetsFromTheOldest(t *testing.T) {
	// given three entries read back and old, the middle one written again
	now := time.Now()
	old := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)
	l := &ledger{}
	l.add([]interface{}{old + "-1", old + "-2", old + "-3"}, make([][]string, 3), false)
	l.replace(old+"-2", strconv.FormatInt(now.UnixMilli(), 10)+"-0", false)
	l.read(strconv.FormatInt(now.UnixMilli(), 10) + "-0")
	l.interrupted(now.Add(-time.Hour))
	// when it forgets, then it stops at the young one, until it is old too
	l.forget(now)
	if l.size() != 2 {
		t.Fatalf("size %d, want 2", l.size())
	}
	l.forget(now.Add(2 * keepWritten))
	if l.size() != 0 {
		t.Fatalf("size %d, want 0", l.size())
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
	if got := rewind("1700000060000-5"); got != "1700000000000-0" {
		t.Errorf("rewind: %s", got)
	}
	if got := rewind("5-0"); got != "0-0" {
		t.Errorf("rewind near 0: %s", got)
	}
}
