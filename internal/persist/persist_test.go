package persist

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

func revocation(token string, expiry time.Time) *record.Revocation {
	return &record.Revocation{Digest: sha256.Sum256([]byte(token)), Expiry: expiry.UnixNano()}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestCompactsAsEntriesExpire(t *testing.T) {
	// given a file of ten revocations, one expiring each minute
	clock := fakeclock.New()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	p, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := p.Append(revocation(string(rune('a'+i)), clock.Now().Add(time.Duration(i+1)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	// when half have expired, too soon after the last rewrite
	clock.Advance(5*time.Minute + time.Second)
	p.CompactIfDue()
	// then nothing is rewritten
	if got := size(t, path); got != 10*record.FrameSize {
		t.Fatalf("compacted too early: %d", got)
	}
	// and once every entry has expired and CompactEvery has passed, the file is empty
	clock.Advance(CompactEvery)
	p.CompactIfDue()
	if got := size(t, path); got != 0 {
		t.Fatalf("after every entry expired: %d bytes", got)
	}
}

func TestOpenCutsATornFrame(t *testing.T) {
	// given a file of one frame and a torn one, in a directory not yet made
	clock := fakeclock.New()
	path := filepath.Join(t.TempDir(), "sub", "denylist.bin")
	p, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Append(revocation("a", clock.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	_, _ = f.Write([]byte("torn"))
	_ = f.Close()
	// when it is opened again and a record appended
	again, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Append(revocation("b", clock.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	// then both load, on frame boundaries
	set, err := again.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := size(t, path); got != 2*record.FrameSize || len(set.Recs) != 2 {
		t.Fatalf("%d bytes, %d revocations; want 2 frames", got, len(set.Recs))
	}
}

func TestRewriteKeepsWhatTheOwnerKeeps(t *testing.T) {
	// given a file with a live revocation, two grant records and a frame of
	// a type no release here knows
	clock := fakeclock.New()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	p, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Append(revocation("a", clock.Now().Add(time.Hour)))
	_ = p.AppendExtension(record.GrantType, record.GrantVersion, []byte("keep"))
	_ = p.AppendExtension(record.GrantType, record.GrantVersion, []byte("drop"))
	unknown := make([]byte, record.FrameSize)
	unknown[32], unknown[33], unknown[36] = record.ExtensionMarker, 99, 1
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	_, _ = f.Write(unknown)
	_ = f.Close()
	// when it is compacted under a retention that keeps one grant
	asked := 0
	p.SetRetention(Retention{Keep: func(ext *record.Extension, now int64) bool {
		asked++
		return string(ext.Payload[:4]) == "keep" && now == clock.Now().UnixNano()
	}})
	p.Compact()
	// then the revocation, the kept grant and the unknown frame remain
	set, err := p.Load()
	if err != nil {
		t.Fatal(err)
	}
	if asked != 2 || len(set.Recs) != 1 || len(set.Records) != 1 || string(set.Records[0].Payload[:4]) != "keep" || len(set.Unknown) != record.FrameSize {
		t.Fatalf("asked %d; kept %d revocations, %d records, %d unknown bytes", asked, len(set.Recs), len(set.Records), len(set.Unknown))
	}
}
