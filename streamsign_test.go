package tokenrevocation

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/replica"
)

func TestSigningSecretSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets")
	if err := os.WriteFile(file, []byte("first-secret-0123456\n\nsecond-secret-012345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc    string
		cfg     RedisConfig
		secrets int
		errPart string
	}{
		{"none", RedisConfig{}, 0, ""},
		{"inline", RedisConfig{SigningSecret: "0123456789abcdef"}, 1, ""},
		{"inline with a previous one", RedisConfig{SigningSecret: "0123456789abcdef", PreviousSigningSecret: "fedcba9876543210"}, 2, ""},
		{"a file of two", RedisConfig{SigningSecretFile: file}, 2, ""},
		{"too short", RedisConfig{SigningSecret: "short-secret"}, 0, "at least 16"},
		{"both", RedisConfig{SigningSecret: "0123456789abcdef", SigningSecretFile: file}, 0, "exclusive"},
		{"a previous one alone", RedisConfig{PreviousSigningSecret: "0123456789abcdef"}, 0, "needs redis.signingSecret"},
		{"a missing file", RedisConfig{SigningSecretFile: filepath.Join(dir, "none")}, 0, "cannot be read"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			k, err := test.cfg.signer()
			if test.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), test.errPart) || strings.Contains(err.Error(), "short-secret") {
					t.Fatalf("error %v, want one containing %q and no secret", err, test.errPart)
				}
				return
			}
			if err != nil || (k == nil) != (test.secrets == 0) || (k != nil && k.Len() != test.secrets) {
				t.Fatalf("signer %+v, error %v", k, err)
			}
		})
	}
}

// newSignedReplica is newReplica with a signing secret (nil: none).
func newSignedReplica(t *testing.T, name, addr string, signer *replica.Signer) *denylist {
	t.Helper()
	d := newTestDenylist(t, denylistOptions{maxTTL: 24 * time.Hour})
	d.name = name
	d.startLoading(1)
	opts := testRedisOptions(addr)
	opts.signer = signer
	d.replica = startReplica(d, opts)
	go d.watchLoad()
	return d
}

func TestSignedStreamSkipsForgedRecords(t *testing.T) {
	// given two replicas that sign, one revocation each way
	srv := startRedis(t)
	signer := replica.NewSigner([]string{"a-shared-secret-0123456789"})
	a := newSignedReplica(t, "signed", srv.addr(), signer)
	b := newSignedReplica(t, "signed", srv.addr(), signer)
	if err := a.add(digestOf("real"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return b.contains("real") }) {
		t.Fatalf("B never saw A's signed revocation: %+v", b.stats())
	}

	// when a Redis writer without the secret XADDs a tombstone of it, a
	// revocation, and a record signed with another secret
	exp := time.Now().Add(time.Hour)
	tomb := record.EncodeTombstone(&record.Tombstone{Digest: *digestOf("real"), At: time.Now().UnixNano()})
	forger := replica.NewSigner([]string{"not-the-secret-0123456789"})
	forged := []string{"d", hex.EncodeToString(digestOf("forged-2")[:]), "e", strconv.FormatInt(exp.UnixMilli(), 10)}
	seedStream(t, srv, "test:signed", [][]string{
		{"t", strconv.Itoa(record.TombstoneType), "v", strconv.Itoa(record.TombstoneVersion), "x", hex.EncodeToString(tomb)},
		{"d", hex.EncodeToString(digestOf("forged")[:]), "e", strconv.FormatInt(exp.UnixMilli(), 10)},
		append(forged, "s", forger.Sign("test:signed", time.Now(), forged)),
	})
	if err := a.add(digestOf("after"), exp, sourceRevoke); err != nil {
		t.Fatal(err)
	}

	// then neither replica applies them, both count them, and later
	// revocations still flow
	if !waitFor(t, 5*time.Second, func() bool { return b.contains("after") && a.stats().Stream.Unverified == 3 }) {
		t.Fatalf("stats A %+v, B %+v", a.stats(), b.stats())
	}
	for _, d := range []*denylist{a, b} {
		if !d.contains("real") || d.contains("forged") || d.contains("forged-2") || d.stats().Stream.Unverified != 3 {
			t.Fatalf("forged records applied, or not counted: %+v", d.stats())
		}
	}
}

func TestUnsignedReplicaRefusesASignedStream(t *testing.T) {
	// given a stream a signing replica has written to
	srv := startRedis(t)
	a := newSignedReplica(t, "marked", srv.addr(), replica.NewSigner([]string{"a-shared-secret-0123456789"}))
	if err := a.add(digestOf("real"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return a.stats().Ready && a.stats().Queued == 0 }) {
		t.Fatalf("A: %+v", a.stats())
	}

	// when a replica without the secret starts on it
	b := newSignedReplica(t, "marked", srv.addr(), nil)

	// then it refuses it, never loads it, and never reports ready
	if !waitFor(t, 5*time.Second, func() bool { return b.replica.Status().Stuck }) {
		t.Fatal("the unsigned replica never refused the signed stream")
	}
	if s := b.stats(); s.Ready || b.contains("real") {
		t.Fatalf("an unsigned replica read a signed stream: %+v", s)
	}
}
