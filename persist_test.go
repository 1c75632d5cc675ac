package tokenrevocation

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPersistRestart(t *testing.T) {
	// given a persisted denylist with one live and one short-lived entry
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "sub", "denylist.bin")
	p, recs, err := openPersister(path, clock.now)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open: %v, %d records", err, len(recs))
	}
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	d.persist = p
	if err := d.add(digestOf("long"), clock.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := d.add(digestOf("short"), clock.now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	// when the process restarts after the short entry expired, with a torn
	// record at the end of the file
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	_, _ = f.Write([]byte("torn"))
	_ = f.Close()
	clock.advance(2 * time.Minute)
	p2, recs, err := openPersister(path, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	restarted := newTestDenylist(t, denylistOptions{now: clock.now})
	restarted.persist = p2
	if err := restarted.load(recs); err != nil {
		t.Fatal(err)
	}

	// then the live entry is enforced and the file holds only it
	if !restarted.contains("long") || restarted.contains("short") {
		t.Fatal("wrong entries after restart")
	}
	if info, _ := os.Stat(path); info.Size() != persistRecordSize {
		t.Fatalf("file not compacted: %d bytes", info.Size())
	}
	raw, _ := os.ReadFile(path)
	if string(raw[:32]) != string(digestOf("long")[:]) {
		t.Fatal("file does not hold the digest")
	}
}

func TestPersistCompactsAsEntriesExpire(t *testing.T) {
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	p, _, err := openPersister(path, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		rec := revocation{digest: *digestOf(string(rune('a' + i))), expiry: clock.now().Add(time.Duration(i+1) * time.Minute).UnixNano()}
		if err := p.append(&rec); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(5*time.Minute + time.Second)
	p.compactIfDue() // too soon after the last rewrite
	if info, _ := os.Stat(path); info.Size() != 10*persistRecordSize {
		t.Fatalf("compacted too early: %d", info.Size())
	}
	clock.advance(compactEvery)
	p.compactIfDue()
	if info, _ := os.Stat(path); info.Size() != 0 {
		t.Fatalf("after every entry expired: %d bytes", info.Size())
	}
}
