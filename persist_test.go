package tokenrevocation

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/persist"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

func TestPersistRestart(t *testing.T) {
	// given a persisted denylist with one live and one short-lived entry
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "sub", "denylist.bin")
	p, err := persist.Open(path, clock.now)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	d.persist = p
	if err := d.add(digestOf("long"), clock.now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	if err := d.add(digestOf("short"), clock.now().Add(time.Minute), sourceRevoke); err != nil {
		t.Fatal(err)
	}

	// when the process restarts after the short entry expired, with a torn
	// frame at the end of the file and an extension frame of a later release
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	ext := make([]byte, record.FrameSize)
	ext[32], ext[33], ext[36] = record.ExtensionMarker, 99, 1
	_, _ = f.Write(ext)
	_, _ = f.Write([]byte("torn"))
	_ = f.Close()
	clock.advance(2 * time.Minute)
	restarted := restartFromFile(t, path, clock)

	// then the live entry is enforced, and a later append lands on a frame
	// boundary
	if !restarted.contains("long") || restarted.contains("short") {
		t.Fatal("wrong entries after restart")
	}
	if err := restarted.add(digestOf("after"), clock.now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	// (each revocation is followed by its confirmation time's frame)
	if info, _ := os.Stat(path); info.Size() != 7*record.FrameSize {
		t.Fatalf("file holds %d bytes, want 7 frames", info.Size())
	}
	again := restartFromFile(t, path, clock)
	if !again.contains("after") || !again.contains("long") {
		t.Fatal("entries lost after a second restart")
	}

	// and compaction keeps the live entries and the extension frame
	clock.advance(persist.CompactEvery)
	again.persist.CompactIfDue()
	raw, _ := os.ReadFile(path)
	if len(raw) != 5*record.FrameSize || string(raw[:32]) != string(digestOf("long")[:]) || raw[1*record.FrameSize+33] != record.StampType || raw[4*record.FrameSize+33] != 99 {
		t.Fatalf("compacted file: %d bytes", len(raw))
	}
}

// restartFromFile opens path as a new process would and waits for it to load.
func restartFromFile(t *testing.T, path string, clock *fakeClock) *denylist {
	t.Helper()
	p, err := persist.Open(path, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	d.persist = p
	d.startLoading(1)
	if d.isLoaded() {
		t.Fatal("ready before loading")
	}
	go d.loadFile()
	<-d.life.loadedCh
	return d
}
