package obs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRegistryCreatesOncePerName(t *testing.T) {
	// given an empty registry
	var r Registry
	var made int64
	create := func() (interface{}, error) {
		atomic.AddInt64(&made, 1)
		return new(int), nil
	}
	// when many callers ask for the same name at once
	var wg sync.WaitGroup
	got := make([]interface{}, 8)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], _, _ = r.Get("a", create)
		}(i)
	}
	wg.Wait()
	// then create ran once and every caller got its value
	if made != 1 {
		t.Fatalf("created %d times", made)
	}
	for _, v := range got {
		if v != got[0] {
			t.Fatal("callers got different values")
		}
	}
	if _, created, _ := r.Get("a", create); created {
		t.Fatal("a second Get reports it created")
	}
	if r.Lookup("a") != got[0] || r.Lookup("b") != nil || len(r.Values()) != 1 {
		t.Fatal("Lookup or Values disagree with Get")
	}
	// and Delete forgets it
	if r.Delete("a") != got[0] || r.Lookup("a") != nil || len(r.Values()) != 0 {
		t.Fatal("Delete kept the value")
	}
}

func TestRegistryKeepsNoFailure(t *testing.T) {
	var r Registry
	if _, _, err := r.Get("a", func() (interface{}, error) { return nil, errors.New("no") }); err == nil {
		t.Fatal("the error is lost")
	}
	v, created, err := r.Get("a", func() (interface{}, error) { return "ok", nil })
	if err != nil || !created || v != "ok" {
		t.Fatalf("after a failure: %v %v %v", v, created, err)
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n          int
		first, max time.Duration
		want       time.Duration
	}{
		{0, 100 * time.Millisecond, 5 * time.Second, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 5 * time.Second, 200 * time.Millisecond},
		{5, 100 * time.Millisecond, 5 * time.Second, 3200 * time.Millisecond},
		{6, 100 * time.Millisecond, 5 * time.Second, 5 * time.Second},
		{1000, 100 * time.Millisecond, 5 * time.Second, 5 * time.Second},
		{0, time.Second, 30 * time.Second, time.Second},
		{4, time.Second, 30 * time.Second, 16 * time.Second},
		{5, time.Second, 30 * time.Second, 30 * time.Second},
		{5, time.Second, 64 * time.Second, 32 * time.Second},
		{6, time.Second, 64 * time.Second, 64 * time.Second},
		{60, time.Second, 64 * time.Second, 64 * time.Second},
	} {
		if got := Backoff(c.n, c.first, c.max); got != c.want {
			t.Errorf("Backoff(%d, %s, %s) = %s, want %s", c.n, c.first, c.max, got, c.want)
		}
	}
}

func TestJitterStaysWithinHalf(t *testing.T) {
	for i := 0; i < 100; i++ {
		if d := Jitter(time.Second); d < 500*time.Millisecond || d >= 1500*time.Millisecond {
			t.Fatalf("Jitter(1s) = %s", d)
		}
	}
	if Jitter(0) != 0 {
		t.Fatal("Jitter(0) is not 0")
	}
}

func TestWarnDueOncePerMinute(t *testing.T) {
	// given a warning never logged
	var last int64
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	// then the first may be logged, and the next only a minute later
	for _, c := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{time.Second, false},
		{WarnEvery - 1, false},
		{WarnEvery, true},
		{WarnEvery + time.Second, false},
		{2 * WarnEvery, true},
	} {
		if got := WarnDue(&last, now+int64(c.after)); got != c.want {
			t.Errorf("after %s: %v, want %v", c.after, got, c.want)
		}
	}
}

func TestTextPage(t *testing.T) {
	// given a page with two families
	var p TextPage
	p.Family("x_total", "counter", "Xs.")
	w := p.Series("x_total", "denylist", `a"b`)
	w.Float(1.5)
	w.Float(3, "reason", "r\n")
	p.Family("y", "gauge", "Ys.")
	w = p.Series("y", "denylist", "b")
	w.Bool(true)
	w.Bool(false, "k", "v")
	w.Int(1<<62, "operation", "revoke", "outcome", "ok")
	// then it is in the text format, byte for byte
	want := "# HELP x_total Xs.\n# TYPE x_total counter\n" +
		"x_total{denylist=\"a\\\"b\"} 1.5\n" +
		"x_total{denylist=\"a\\\"b\",reason=\"r\\n\"} 3\n" +
		"# HELP y Ys.\n# TYPE y gauge\n" +
		"y{denylist=\"b\"} 1\n" +
		"y{denylist=\"b\",k=\"v\"} 0\n" +
		"y{denylist=\"b\",operation=\"revoke\",outcome=\"ok\"} 4611686018427387904\n"
	if p.String() != want || p.Len() != len(want) {
		t.Fatalf("page:\n%s\nwant:\n%s", p.String(), want)
	}
}

func TestMetricsLabelEscaping(t *testing.T) {
	if got := EscapeLabel("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Fatalf("EscapeLabel: %s", got)
	}
}

func TestAuditorWritesJSONLines(t *testing.T) {
	// given a shared auditor writing to a file
	path := filepath.Join(t.TempDir(), "audit.log")
	a := SharedAuditor(path)
	if SharedAuditor(path) != a {
		t.Fatal("two auditors for one sink")
	}
	// when an event is emitted
	if a.Emit(&AuditEvent{Time: "t", Event: "revocation", Denylist: "d", Digest: "0123abcd"}) {
		t.Fatal("dropped")
	}
	// then the file holds its line, empty fields left out
	want := `{"time":"t","event":"revocation","denylist":"d","digest":"0123abcd"}` + "\n"
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) || len(b) > len(want) {
			t.Fatalf("file holds %q, want %q", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuditorDropsWhenFull(t *testing.T) {
	// given an auditor whose sink never drains
	a := NewAuditor("stuck", 2)
	// when more lines come than it holds, then Emit returns and says so
	dropped := 0
	for i := 0; i < 10; i++ {
		if a.Emit(&AuditEvent{Event: "revocation"}) {
			dropped++
		}
	}
	if dropped != 8 || !strings.Contains(string(<-a.lines), `"event":"revocation"`) {
		t.Fatalf("dropped %d, want 8", dropped)
	}
}
