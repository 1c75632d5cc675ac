package replica

import (
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

func TestBackoff(t *testing.T) {
	for n := 0; n < 10; n++ {
		if d := backoff(n); d < 50*time.Millisecond || d > 7500*time.Millisecond {
			t.Fatalf("backoff(%d) = %s", n, d)
		}
	}
}

// sink is a Sink that keeps what it is given.
type sink struct {
	mu      sync.Mutex
	recs    []record.Revocation
	exts    []record.Extension
	applies int
	loaded  int
}

func (s *sink) Apply(recs []record.Revocation, exts []record.Extension) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	s.exts = append(s.exts, exts...)
	s.applies++
}

func (s *sink) Loaded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded++
}

func (s *sink) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.recs))
}

func (s *sink) Retention() time.Duration { return time.Hour }

// has reports whether the sink was given a revocation of digest.
func (s *sink) has(digest [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.recs {
		if s.recs[i].Digest == digest {
			return true
		}
	}
	return false
}

// startRedis starts redis-server on a free loopback port, stopped when the
// test ends. (The root package's tests have a fuller one.)
func startRedis(t *testing.T) *resp.Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required (apt-get install redis-server): %v", err)
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", t.TempDir(), "--save", "", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return &resp.Options{Address: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
		}
	}
	t.Fatalf("redis-server did not start on %s", addr)
	return nil
}

func TestReplicatorHandsTheStreamToItsSink(t *testing.T) {
	// given a stream one replicator wrote 3 revocations and a record of another type to
	opts := startRedis(t)
	writer := Start(&Config{Name: "w", Stream: "s", Redis: opts, Sink: &sink{}})
	defer writer.Close()
	for i := 0; i < 3; i++ {
		writer.Enqueue(record.Revocation{Digest: [32]byte{byte(i + 1)}, Expiry: time.Now().Add(time.Hour).UnixNano()})
	}
	writer.EnqueueExtension(record.Extension{Type: record.GrantType, Version: record.GrantVersion, Payload: []byte{1, 2, 3}})
	deadline := time.Now().Add(10 * time.Second)
	for writer.Status().Queued > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	// when another replicator starts on it
	s := &sink{}
	reader := Start(&Config{Name: "r", Stream: "s", Redis: opts, Sink: s})
	defer reader.Close()

	// then its sink gets every record, in batches, and Loaded once
	for time.Now().Before(deadline) && !reader.Status().Ready {
		time.Sleep(10 * time.Millisecond)
	}
	st := reader.Status()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) != 3 || len(s.exts) != 1 || s.applies < 1 || s.applies > 2 || s.loaded != 1 || !st.Ready || !st.Connected || st.Stuck {
		t.Fatalf("sink saw %d revocations, %d extensions, %d applies, loaded %d times; status %+v", len(s.recs), len(s.exts), s.applies, s.loaded, st)
	}
	if s.exts[0].Pos != 3 || string(s.exts[0].Payload) != "\x01\x02\x03" || s.recs[2].Digest != [32]byte{3} {
		t.Fatalf("records %+v, %+v", s.recs, s.exts)
	}
}
