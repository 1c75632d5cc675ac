package tokenrevocation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/replica"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// The lifetime and ordering rules of lifetime.go.

// deliverFrom hands d a revocation of digest until expiry, confirmed now
// (local sources) or at at (Redis and the file), as source delivers it.
func deliverFrom(d *denylist, source byte, digest *[sha256.Size]byte, expiry time.Time, at int64) {
	switch source {
	case sourceRedis, sourceFile:
		d.loadDirect([]record.Revocation{{Digest: *digest, Expiry: expiry.UnixNano(), At: at}}, source)
	default:
		_, _, _ = d.record(digest, "", expiry, -1, source, nil)
	}
}

// liveSlots is the slots every lane counts for digest's shard.
func liveSlots(d *denylist, digest *[sha256.Size]byte) int32 {
	n := int32(0)
	for i := range d.store.LaneWindows() {
		n += atomic.LoadInt32(d.store.Slots(i, store.ShardOf(digest)))
	}
	return n
}

func TestLaterExpiryWinsInEveryOrderOfSources(t *testing.T) {
	sources := []byte{sourceRevoke, sourceAdmin, sourceGrant, sourceLogout, sourceRedis, sourceFile}
	for _, first := range sources {
		for _, second := range sources {
			for _, shortFirst := range []bool{true, false} {
				// given a denylist holding a revocation from one source
				clock := newFakeClock()
				d := newTestDenylist(t, denylistOptions{now: clock.now})
				digest := digestOf("token")
				short, long := clock.now().Add(2*time.Second), clock.now().Add(time.Hour)
				a, b := short, long
				if !shortFirst {
					a, b = long, short
				}
				deliverFrom(d, first, digest, a, clock.now().UnixNano())
				// when another source delivers a revocation of the same digest
				clock.advance(time.Millisecond)
				deliverFrom(d, second, digest, b, clock.now().UnixNano())

				// then the later expiry is held, and still rejects after the shorter one
				h := d.store.Held(digest)
				if !h.Found || h.Expiry != long.UnixNano() {
					t.Errorf("%s then %s (short first %t): held expiry %v, want %v", sourceNames[first], sourceNames[second], shortFirst, time.Unix(0, h.Expiry), long)
				}
				clock.advance(3 * time.Second)
				if !d.store.Has(digest) {
					t.Errorf("%s then %s (short first %t): passes after the shorter expiry", sourceNames[first], sourceNames[second], shortFirst)
				}
			}
		}
	}
}

func TestLaterExpiryWinsWhileLoading(t *testing.T) {
	// given a denylist loading a short revocation from a source, while a
	// longer one of the same token is confirmed here
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	d.startLoading(1)
	digest := digestOf("token")
	long := clock.now().Add(time.Hour)
	if _, _, err := d.record(digest, "", long, -1, sourceRevoke, nil); err != nil {
		t.Fatal(err)
	}
	d.stage([]record.Revocation{{Digest: *digest, Expiry: clock.now().Add(2 * time.Second).UnixNano()}}, sourceFile)
	d.sourceLoaded()
	// then the later expiry holds once loaded
	clock.advance(3 * time.Second)
	if !d.store.Has(digest) || d.store.Held(digest).Expiry != long.UnixNano() {
		t.Fatalf("held %+v", d.store.Held(digest))
	}
}

func TestHeldRevokeCostsNoSlotUnlessItExtends(t *testing.T) {
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	digest := digestOf("token")
	expiry := clock.now().Add(time.Minute)
	if _, _, err := d.record(digest, "", expiry, -1, sourceRevoke, nil); err != nil {
		t.Fatal(err)
	}
	before := liveSlots(d, digest)
	// when the same revocation is confirmed again, later, and a shorter one
	clock.advance(time.Second)
	_, recorded, _ := d.record(digest, "", expiry, -1, sourceRevoke, nil)
	_, shorter, _ := d.record(digest, "", expiry.Add(-time.Second), -1, sourceAdmin, nil)
	// then neither takes a slot; the later confirmation is recorded
	if got := liveSlots(d, digest); got != before {
		t.Fatalf("slots: %d, want %d", got, before)
	}
	if recorded || shorter || d.store.Held(digest).At != clock.now().UnixNano() {
		t.Fatalf("recorded %t %t, held %+v", recorded, shorter, d.store.Held(digest))
	}
	// and an extension in the same lane takes over the entry's slot
	if _, extended, _ := d.record(digest, "", expiry.Add(5*time.Second), -1, sourceAdmin, nil); !extended {
		t.Fatal("an extension was not recorded")
	}
	if got := liveSlots(d, digest); got != before {
		t.Fatalf("slots after an extension in the same lane: %d, want %d", got, before)
	}
}

// tombAt is a tombstone of digest confirmed at at, naming held.
func tombAt(digest *[sha256.Size]byte, at, held time.Time) *record.Extension {
	h := int64(0)
	if !held.IsZero() {
		h = held.UnixNano()
	}
	t := record.Tombstone{Digest: *digest, At: at.UnixNano(), Held: h, Until: at.Add(24 * time.Hour).UnixNano()}
	return &record.Extension{Type: record.TombstoneType, Version: record.TombstoneVersion, Payload: record.EncodeTombstone(&t)}
}

func TestTombstoneAndRevocationInEitherOrder(t *testing.T) {
	base := newFakeClock().now()
	r1 := base                         // the revocation the un-revoke undoes
	un := base.Add(10 * time.Minute)   // the un-revoke
	r2 := un.Add(time.Second)          // a revocation confirmed after it
	skewed := un.Add(-2 * time.Minute) // after it, on a replica whose clock is 2 min behind (leeway 5m)
	old := un.Add(-7 * time.Minute)    // before it by more than leeway, unseen by the un-revoking replica
	cases := []struct {
		desc    string
		revoked time.Time
		want    bool
	}{
		{"the revocation it names", r1, false},
		{"a revocation confirmed after it", r2, true},
		{"a later revocation from a replica 2 min behind", skewed, true},
		{"an older revocation it had not seen", old, false},
		{"a revocation at the same millisecond", un, true},
	}
	for _, c := range cases {
		for _, tombFirst := range []bool{false, true} {
			clock := newFakeClock()
			clock.advance(11 * time.Minute)
			d := newTestDenylist(t, denylistOptions{now: clock.now, leeway: 5 * time.Minute})
			digest := digestOf("token")
			rec := record.Revocation{Digest: *digest, Expiry: base.Add(time.Hour).UnixNano(), At: c.revoked.UnixNano()}
			tomb := tombAt(digest, un, r1)
			if tombFirst {
				d.applyTombstone(tomb, sourceRedis)
				d.loadDirect([]record.Revocation{rec}, sourceRedis)
			} else {
				d.loadDirect([]record.Revocation{rec}, sourceRedis)
				d.applyTombstone(tomb, sourceRedis)
			}
			if got := d.store.Has(digest); got != c.want {
				t.Errorf("%s, tombstone first %t: revoked %t, want %t", c.desc, tombFirst, got, c.want)
			}
		}
	}
}

func TestTombstoneAndRevocationThroughTheFile(t *testing.T) {
	// given files holding a revocation r1, its un-revoke and a later
	// revocation r2, in every order, written before and after a compaction
	base := newFakeClock().now()
	digest := digestOf("token")
	r1 := record.EncodeRevocation(&record.Revocation{Digest: *digest, Expiry: base.Add(time.Hour).UnixNano(), At: base.UnixNano()})
	r2 := record.EncodeRevocation(&record.Revocation{Digest: *digest, Expiry: base.Add(time.Hour).UnixNano(), At: base.Add(2 * time.Second).UnixNano()})
	ext := tombAt(digest, base.Add(time.Second), base)
	tomb := record.EncodeExtension(ext.Type, ext.Version, ext.Payload)
	orders := map[string][][]byte{
		"r1 tomb r2": {r1, tomb, r2}, "r2 tomb r1": {r2, tomb, r1}, "tomb r1 r2": {tomb, r1, r2},
		"r1 r2 tomb": {r1, r2, tomb}, "tomb r2 r1": {tomb, r2, r1}, "r2 r1 tomb": {r2, r1, tomb},
	}
	for name, frames := range orders {
		for _, only := range []bool{false, true} {
			clock := newFakeClock()
			clock.advance(3 * time.Second)
			path := filepath.Join(t.TempDir(), "denylist.bin")
			var file []byte
			for _, f := range frames {
				if only && string(f) == string(r2) {
					continue
				}
				file = append(file, f...)
			}
			if err := os.WriteFile(path, file, 0o600); err != nil {
				t.Fatal(err)
			}
			want := !only
			// when a replica loads it, and again after a compaction
			d := restartFromFile(t, path, clock)
			if d.store.Has(digest) != want {
				t.Errorf("%s (r2 in the file: %t): revoked %t, want %t", name, !only, !want, want)
			}
			d.persist.Compact()
			if got := restartFromFile(t, path, clock).store.Has(digest); got != want {
				t.Errorf("%s (r2 in the file: %t) after a compaction: revoked %t, want %t", name, !only, got, want)
			}
		}
	}
}

func TestTombstoneCancelsAStreamRecordArrivingLate(t *testing.T) {
	// given a replica that applied an un-revoke and then restarted
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	d := restartFromFile(t, path, clock)
	digest := digestOf("token")
	if _, _, err := d.record(digest, "", clock.now().Add(time.Hour), -1, sourceRevoke, nil); err != nil {
		t.Fatal(err)
	}
	confirmed := d.store.Held(digest).At
	clock.advance(time.Second)
	if _, err := d.unrevoke(digest); err != nil {
		t.Fatal(err)
	}
	again := restartFromFile(t, path, clock)
	// when the stream then delivers the revocation it undid
	again.loadDirect([]record.Revocation{{Digest: *digest, Expiry: clock.now().Add(time.Hour).UnixNano(), At: confirmed}}, sourceRedis)
	// then it stays undone
	if again.store.Has(digest) {
		t.Fatal("a revocation its tombstone canceled came back from the stream")
	}
}

func TestRecordsOfThePreviousRelease(t *testing.T) {
	// given the persistPath file the release before confirmation times wrote
	clock := newFakeClock()
	raw, err := os.ReadFile(filepath.Join("testdata", "records-v0", "persist.bin"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "denylist.bin")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// when this release loads it, and again after it compacted it
	for _, when := range []string{"loaded", "compacted"} {
		d := restartFromFile(t, path, clock)
		// then it means what it meant: token-c un-revoked, token-d revoked again after its un-revoke
		for token, want := range map[string]bool{"token-a": true, "token-b": true, "token-c": false, "token-d": true} {
			if got := d.store.Has(digestOf(token)); got != want {
				t.Errorf("%s: %s revoked %t, want %t", when, token, got, want)
			}
			if h := d.store.Held(digestOf(token)); h.Found && h.At != 0 {
				t.Errorf("%s: %s loads confirmed at %d, want time zero", when, token, h.At)
			}
		}
		if len(d.grants.FamilyOf(digestOf("refresh-g"))) == 0 {
			t.Errorf("%s: the grant family was not loaded", when)
		}
		d.persist.Compact()
	}
}

func TestStreamEntriesOfThePreviousRelease(t *testing.T) {
	// given the XREAD reply of the stream the previous release wrote
	raw, err := os.ReadFile(filepath.Join("testdata", "records-v0", "xread.resp"))
	if err != nil {
		t.Fatal(err)
	}
	recs, exts := xreadReply(t, string(raw))
	// when a replica applies it
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	d.loadDirect(recs, sourceRedis)
	for i := range exts {
		d.applyExtension(&exts[i])
	}
	// then the records mean what they meant, confirmed at time zero
	for token, want := range map[string]bool{"token-a": true, "token-b": true, "token-c": false} {
		if got := d.store.Has(digestOf(token)); got != want {
			t.Errorf("%s revoked %t, want %t", token, got, want)
		}
	}
	for i := range recs {
		if recs[i].At != 0 {
			t.Errorf("record %d loads confirmed at %d, want 0", i, recs[i].At)
		}
	}
	if len(d.grants.FamilyOf(digestOf("refresh-g"))) == 0 {
		t.Error("the grant family was not loaded")
	}
}

func TestJWTOutlivesMaxTTL(t *testing.T) {
	// given maxTTL 5s and a JWT with 60 s left
	clock := newFakeClock()
	m := newTestMiddleware(t, &upstream{}, clock, func(c *Config) { c.MaxTTL = "5s" })
	token := makeJWT(clock.now().Add(time.Minute).Unix())
	revoke(t, m, token, "")
	// then it is still rejected after 7 s, and until exp plus leeway
	clock.advance(7 * time.Second)
	if rw := serve(m, apiRequest(token)); rw.Code != http.StatusUnauthorized {
		t.Fatalf("after 7 s: %d", rw.Code)
	}
	clock.advance(time.Minute + 4*time.Minute)
	if rw := serve(m, apiRequest(token)); rw.Code != http.StatusUnauthorized {
		t.Fatalf("within the leeway after exp: %d", rw.Code)
	}
	// and an opaque token still lives maxTTL
	revoke(t, m, "opaque-token", "")
	clock.advance(6 * time.Second)
	if rw := serve(m, apiRequest("opaque-token")); rw.Code != http.StatusOK {
		t.Fatalf("an opaque token outlived maxTTL: %d", rw.Code)
	}
}

func TestRevokeBeyondMaxLifetimeIsRefused(t *testing.T) {
	// given maxLifetime 1h and a JWT with 2 h left
	clock := newFakeClock()
	up := &upstream{}
	m := newTestMiddleware(t, up, clock, func(c *Config) { c.MaxTTL = "10m"; c.MaxLifetime = "1h" })
	token := makeJWT(clock.now().Add(2 * time.Hour).Unix())
	rw := serve(m, revokeRequest("token="+token))
	// then the revoke gets 503 before the identity service, and is counted
	if rw.Code != http.StatusServiceUnavailable || up.calls() != 0 {
		t.Fatalf("revoke: %d, %d calls upstream", rw.Code, up.calls())
	}
	if got := m.list.stats().Refused.Lifetime; got != 1 {
		t.Fatalf("refused.lifetime: %d", got)
	}
}

func TestLeewayCoversClockSkew(t *testing.T) {
	// given the default leeway and a JWT whose exp passed 2 minutes ago
	if CreateConfig().Leeway != "5m" {
		t.Fatalf("default leeway %q", CreateConfig().Leeway)
	}
	clock := newFakeClock()
	m := newTestMiddleware(t, &upstream{}, clock, nil)
	token := makeJWT(clock.now().Add(-2 * time.Minute).Unix())
	revoke(t, m, token, "")
	// then its revocation is recorded, and lasts until exp plus 5 minutes
	if rw := serve(m, apiRequest(token)); rw.Code != http.StatusUnauthorized {
		t.Fatalf("a JWT revoked 2 min past exp: %d", rw.Code)
	}
	clock.advance(3*time.Minute + time.Second)
	if m.list.contains(token) {
		t.Fatal("still held past exp plus leeway")
	}
}

func TestLaneWindows(t *testing.T) {
	got := store.Windows(10*time.Second, 720*time.Hour, 8760*time.Hour)
	if got[len(got)-1] != 8760*time.Hour {
		t.Fatalf("last lane %s", got[len(got)-1])
	}
	ttl := false
	for i, w := range got {
		if w == 720*time.Hour {
			ttl = true
		}
		if i > 0 && w <= got[i-1] {
			t.Fatalf("not increasing: %v", got)
		}
	}
	if !ttl {
		t.Fatalf("no rung at maxTTL: %v", got)
	}
	if got := store.Windows(10*time.Second, 5*time.Second, 5*time.Second); len(got) != 1 || got[0] != 5*time.Second {
		t.Fatalf("maxTTL = maxLifetime: %v", got)
	}
}

func TestTombstoneAndRevocationThroughTheStream(t *testing.T) {
	// given streams holding a revocation r1, its un-revoke and (or not) a
	// later revocation r2, in every order
	srv := startRedis(t)
	now := time.Now()
	digest := digestOf("token")
	hexDigest := fmt.Sprintf("%x", digest[:])
	exp := fmt.Sprint(now.Add(time.Hour).UnixMilli())
	r1 := []string{"d", hexDigest, "e", exp, "a", fmt.Sprint(now.Add(-3 * time.Second).UnixMilli())}
	r2 := []string{"d", hexDigest, "e", exp, "a", fmt.Sprint(now.Add(-time.Second).UnixMilli())}
	un := tombAt(digest, now.Add(-2*time.Second), now.Add(-3*time.Second))
	tomb := []string{"t", strconv.Itoa(record.TombstoneType), "v", strconv.Itoa(record.TombstoneVersion), "x", hex.EncodeToString(un.Payload)}
	orders := [][][]string{{r1, tomb, r2}, {r2, tomb, r1}, {tomb, r1, r2}, {tomb, r2, r1}, {r1, r2, tomb}, {r1, tomb}, {tomb, r1}}
	for i, entries := range orders {
		want := len(entries) == 3
		name := fmt.Sprintf("order%d", i)
		seedStream(t, srv, "test:"+name, entries)
		// when a replica starts and loads it
		d := newReplica(t, name, srv.addr())
		if !waitFor(t, 5*time.Second, func() bool { return d.stats().Ready }) {
			t.Fatalf("%s: never ready", name)
		}
		// then only a revocation confirmed after the un-revoke stands
		if got := d.store.Has(digest); got != want {
			t.Errorf("%s (%d entries): revoked %t, want %t", name, len(entries), got, want)
		}
		// and a running replica that reads the entries again (as when
		// they arrive late) keeps that outcome
		seedStream(t, srv, "test:"+name, entries)
		time.Sleep(100 * time.Millisecond)
		if got := d.store.Has(digest); got != want {
			t.Errorf("%s, entries delivered again: revoked %t, want %t", name, got, want)
		}
	}
}

func TestLaterExpiryWinsThroughTheFile(t *testing.T) {
	for _, shortFirst := range []bool{true, false} {
		// given a persisted denylist that recorded a short and a long
		// revocation of one token, in either order
		clock := newFakeClock()
		path := filepath.Join(t.TempDir(), "denylist.bin")
		d := restartFromFile(t, path, clock)
		digest := digestOf("token")
		short, long := clock.now().Add(time.Minute), clock.now().Add(time.Hour)
		first, second := short, long
		if !shortFirst {
			first, second = long, short
		}
		_, _, _ = d.record(digest, "", first, -1, sourceAdmin, nil)
		clock.advance(time.Millisecond)
		_, _, _ = d.record(digest, "", second, -1, sourceRevoke, nil)
		// when it restarts after the short one expired, and after a compaction
		clock.advance(2 * time.Minute)
		again := restartFromFile(t, path, clock)
		if !again.store.Has(digest) || again.store.Held(digest).Expiry != long.UnixNano() {
			t.Errorf("short first %t, after a restart: held %+v", shortFirst, again.store.Held(digest))
		}
		again.persist.Compact()
		if h := restartFromFile(t, path, clock).store.Held(digest); !h.Found || h.Expiry != long.UnixNano() {
			t.Errorf("short first %t, after a compaction: held %+v", shortFirst, h)
		}
	}
}

// legacyTomb is a tombstone as the release before confirmation times wrote
// it: version, digest and the time of the un-revoke (41 bytes).
func legacyTomb(digest *[sha256.Size]byte, at time.Time) []byte {
	t := record.Tombstone{Digest: *digest, At: at.UnixNano()}
	return record.EncodeExtension(record.TombstoneType, record.TombstoneVersion, record.EncodeTombstone(&t)[:record.TombstoneSize])
}

func TestLegacyReRevokeAfterALegacyTombstoneInTheFile(t *testing.T) {
	// given a file of the previous release: a revocation, its un-revoke a
	// second ago, and the token revoked again after it (no confirmation times)
	clock := newFakeClock()
	digest := digestOf("token")
	rec := record.EncodeRevocation(&record.Revocation{Digest: *digest, Expiry: clock.now().Add(time.Hour).UnixNano()})
	tomb := legacyTomb(digest, clock.now().Add(-time.Second))
	path := filepath.Join(t.TempDir(), "denylist.bin")
	if err := os.WriteFile(path, append(append(append([]byte{}, rec...), tomb...), rec...), 0o600); err != nil {
		t.Fatal(err)
	}
	// when this release loads it
	d := restartFromFile(t, path, clock)
	// then the re-revocation stands, as it did for that release
	if !d.store.Has(digest) {
		t.Fatal("a re-revocation written after a legacy tombstone was canceled by it")
	}
	// and a file holding only the revocation and its un-revoke cancels it
	if err := os.WriteFile(path, append(append([]byte{}, rec...), tomb...), 0o600); err != nil {
		t.Fatal(err)
	}
	if restartFromFile(t, path, clock).store.Has(digest) {
		t.Fatal("a legacy tombstone did not cancel the revocation before it")
	}
}

func TestLegacyTombstoneOrdersByStreamPosition(t *testing.T) {
	// given one XREAD batch of the previous release: a revocation, its
	// un-revoke, and the token revoked again
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	digest := digestOf("token")
	hexDigest := fmt.Sprintf("%x", digest[:])
	exp := fmt.Sprint(clock.now().Add(time.Hour).UnixMilli())
	t0 := record.Tombstone{Digest: *digest, At: clock.now().Add(-time.Second).UnixNano()}
	tomb := hex.EncodeToString(record.EncodeTombstone(&t0)[:record.TombstoneSize])
	reply := "*1\r\n*2\r\n$6\r\nstream\r\n*3\r\n" +
		entryRESP("1-1", "d", hexDigest, "e", exp) +
		entryRESP("1-2", "t", strconv.Itoa(record.TombstoneType), "v", strconv.Itoa(record.TombstoneVersion), "x", tomb) +
		entryRESP("1-3", "d", hexDigest, "e", exp)
	recs, exts := xreadReply(t, reply)
	if len(recs) != 2 || len(exts) != 1 || exts[0].Pos != 1 {
		t.Fatalf("parsed %d revocations, %d extensions (%+v)", len(recs), len(exts), exts)
	}
	// when the reader applies the batch
	(&streamSink{d: d}).Apply(recs, exts)
	// then the re-revocation after the tombstone stands
	if !d.store.Has(digest) {
		t.Fatal("a re-revocation after a legacy tombstone in one batch was canceled by it")
	}
}

func TestFarFutureJWTExpiryIsRefused(t *testing.T) {
	// given JWTs whose exp lies past maxLifetime, one past what UnixNano counts
	clock := newFakeClock()
	for _, exp := range []int64{clock.now().Add(2 * 8760 * time.Hour).Unix(), 9999999999} {
		up := &upstream{}
		m := newTestMiddleware(t, up, clock, nil)
		token := makeJWT(exp)
		// when it is revoked
		rw := serve(m, revokeRequest("token="+token))
		// then it is refused with 503, never recorded shorter
		if rw.Code != http.StatusServiceUnavailable || up.calls() != 0 {
			t.Errorf("exp %d: %d (upstream saw %d calls), want 503 before the upstream", exp, rw.Code, up.calls())
		}
		if m.list.store.Has(digestOf(token)) {
			t.Errorf("exp %d: recorded", exp)
		}
	}
}

func TestUpdateDuringTheFillIsKept(t *testing.T) {
	for _, when := range []string{"while staging", "while served from the segment", "after the fill took it", "after the fill"} {
		// given a denylist loading a record, serving it from the loaded
		// segment, then draining the segment into its lanes
		clock := newFakeClock()
		d := newTestDenylist(t, denylistOptions{now: clock.now})
		d.startLoading(1)
		digest := digestOf("token")
		short := clock.now().Add(2 * time.Second)
		long := clock.now().Add(3 * time.Second) // the same lane
		update := func() {
			d.stage([]record.Revocation{{Digest: *digest, Expiry: long.UnixNano(), At: clock.now().Add(time.Millisecond).UnixNano()}}, sourceRedis)
		}
		d.stage([]record.Revocation{{Digest: *digest, Expiry: short.UnixNano(), At: clock.now().UnixNano()}}, sourceFile)
		// when the stream delivers a longer one of the same digest
		if when == "while staging" {
			update()
		}
		d.store.SetFillTaken(func() {
			d.store.SetFillTaken(nil)
			if when == "after the fill took it" {
				// (before the fill wrote it)
				update()
			}
		})
		d.sourceLoaded()
		if when == "while served from the segment" {
			update()
		}
		d.store.Drain()
		filled := func() bool { return !d.store.Overlaid() }
		if !waitFor(t, 5*time.Second, filled) {
			t.Fatal("the fill never ended")
		}
		if when == "after the fill" {
			update()
		}
		// then the longer one holds, in one slot
		clock.advance(2500 * time.Millisecond)
		if !d.store.Has(digest) || d.store.Held(digest).Expiry != long.UnixNano() {
			t.Errorf("%s: held %+v", when, d.store.Held(digest))
		}
		if n := liveSlots(d, digest); n != 1 {
			t.Errorf("%s: %d slots, want 1", when, n)
		}
	}
}

// xreadReply parses reply as the answer to an XREAD.
func xreadReply(t *testing.T, reply string) ([]record.Revocation, []record.Extension) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		buf := make([]byte, 4096)
		_, _ = server.Read(buf)
		_, _ = server.Write([]byte(reply))
	}()
	c := resp.NewConn(client, &resp.Options{ReadTimeout: time.Second, WriteTimeout: time.Second})
	recs, exts, err := replica.ReadEntries(c, []string{"XREAD", "COUNT", "100", "STREAMS", "stream", "0-0"})
	if err != nil {
		t.Fatal(err)
	}
	return recs, exts
}

func TestConcurrentRecordsOfOneDigestKeepTheLongest(t *testing.T) {
	for round := 0; round < 20; round++ {
		// given a denylist, and one digest revoked from many places at once
		clock := newFakeClock()
		d := newTestDenylist(t, denylistOptions{now: clock.now})
		digest := digestOf(fmt.Sprintf("token-%d", round))
		var wg sync.WaitGroup
		longest := int64(0)
		for i := 0; i < 8; i++ {
			expiry := clock.now().Add(2*time.Second + time.Duration(i)*100*time.Millisecond) // one lane
			if expiry.UnixNano() > longest {
				longest = expiry.UnixNano()
			}
			wg.Add(1)
			// expiry as an argument, not captured by the closure: one full
			// Yaegi run panicked in this test (issue 22's notes), and Yaegi
			// keeps a function's locals in one frame.
			go func(source byte, expiry time.Time) {
				defer wg.Done()
				if source == sourceRedis {
					d.loadDirect([]record.Revocation{{Digest: *digest, Expiry: expiry.UnixNano(), At: clock.now().UnixNano()}}, source)
					return
				}
				_, _, _ = d.record(digest, "", expiry, -1, source, nil)
			}([]byte{sourceRevoke, sourceRedis}[i%2], expiry)
		}
		wg.Wait()
		// then the longest expiry is held, in one slot
		if h := d.store.Held(digest); h.Expiry != longest {
			t.Fatalf("round %d: held %+v, want expiry %d", round, h, longest)
		}
		if n := liveSlots(d, digest); n != 1 {
			t.Fatalf("round %d: %d slots, want 1", round, n)
		}
	}
}

func TestLocalRevokeDuringTheFillIsKept(t *testing.T) {
	for _, taken := range []bool{false, true} {
		// given a denylist filling a loaded record into its lanes
		clock := newFakeClock()
		d := newTestDenylist(t, denylistOptions{now: clock.now})
		d.startLoading(1)
		digest := digestOf("token")
		d.stage([]record.Revocation{{Digest: *digest, Expiry: clock.now().Add(2 * time.Second).UnixNano(), At: clock.now().UnixNano()}}, sourceFile)
		long := clock.now().Add(3 * time.Second) // the same lane
		revokeHere := func() {
			if _, _, err := d.record(digest, "", long, -1, sourceRevoke, nil); err != nil {
				t.Error(err)
			}
		}
		// when this replica revokes it for longer, before or after the
		// drain of the loaded segment takes it
		d.store.SetFillTaken(func() {
			d.store.SetFillTaken(nil)
			if taken {
				revokeHere()
			}
		})
		if !taken {
			revokeHere()
		}
		d.sourceLoaded()
		d.store.Drain()
		if !waitFor(t, 5*time.Second, func() bool { return !d.store.Overlaid() }) {
			t.Fatal("the fill never ended")
		}
		// then the longer one holds after the fill
		clock.advance(2500 * time.Millisecond)
		if !d.store.Has(digest) || d.store.Held(digest).Expiry != long.UnixNano() {
			t.Errorf("revoked after the fill took it %t: held %+v", taken, d.store.Held(digest))
		}
	}
}

func TestAFarFutureTombstoneDoesNotPinTheClock(t *testing.T) {
	// given a tombstone stamped years ahead (a broken clock, or forged)
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now})
	digest := digestOf("token")
	far := clock.now().Add(5 * 365 * 24 * time.Hour)
	d.applyTombstone(tombAt(digest, far, time.Time{}), sourceRedis)
	// then this replica's stamps stay within leeway and a minute of its clock
	if got := time.Duration(d.stamp() - clock.now().UnixNano()); got > d.opts.leeway+time.Minute {
		t.Fatalf("stamp %s ahead of the clock", got)
	}
}

func TestATombstoneThatCancelsNothingHereStillBoundsTheTrim(t *testing.T) {
	// given a replica that holds nothing of a digest, and only short-lived
	// revocations of others
	clock := newFakeClock()
	d := newTestDenylist(t, denylistOptions{now: clock.now, maxTTL: time.Hour})
	_, _, _ = d.record(digestOf("other"), "", clock.now().Add(time.Minute), -1, sourceRevoke, nil)
	// when an un-revoke of that digest arrives from the stream
	tomb := tombAt(digestOf("token"), clock.now(), time.Time{})
	d.applyTombstone(tomb, sourceRedis)
	// then the stream is kept at least as long as the tombstone can cancel,
	// so that a revocation it cancels, arriving late, still meets it
	if got, want := time.Duration(atomic.LoadInt64(&d.order.longestLife)), 24*time.Hour; got < want {
		t.Fatalf("longest life %s, want at least the tombstone's %s", got, want)
	}
}

func TestRecordsOfTheReleaseBeforeInternalPackages(t *testing.T) {
	// given the persistPath file and the stream that the release before
	// internal/record wrote (testdata/records-v1)
	clock := newFakeClock()
	raw, err := os.ReadFile(filepath.Join("testdata", "records-v1", "persist.bin"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "denylist.bin")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	reply, err := os.ReadFile(filepath.Join("testdata", "records-v1", "xread.resp"))
	if err != nil {
		t.Fatal(err)
	}
	recs, exts := xreadReply(t, string(reply))
	fromStream := newTestDenylist(t, denylistOptions{now: clock.now})
	fromStream.loadDirect(recs, sourceRedis)
	for i := range exts {
		fromStream.applyExtension(&exts[i])
	}
	// when this release loads them
	for where, d := range map[string]*denylist{"file": restartFromFile(t, path, clock), "stream": fromStream} {
		// then they mean what they meant: token-c un-revoked, the others
		// revoked with their confirmation times, the grant and the logout rule kept
		for token, at := range map[string]int64{"token-a": 1767225600000000000, "token-b": 1767225601000000000, "token-c": 0} {
			if got := d.store.Has(digestOf(token)); got != (at != 0) {
				t.Errorf("%s: %s revoked %t", where, token, got)
			}
			if h := d.store.Held(digestOf(token)); at != 0 && h.At != at {
				t.Errorf("%s: %s confirmed at %d, want %d", where, token, h.At, at)
			}
		}
		if len(d.grants.FamilyOf(digestOf("refresh-g"))) != 1 {
			t.Errorf("%s: the grant family was not loaded", where)
		}
		if !d.rules.Covers(digestOf("sid-l"), &[sha256.Size]byte{}) || !d.rules.Seen(digestOf("jti-l")) {
			t.Errorf("%s: the logout rule or its jti was not loaded", where)
		}
	}
	if recs[0].Client != [16]byte{1, 2, 3} || string(recs[0].Key[:recs[0].KeyN]) != "keyAAAAA" {
		t.Errorf("stream: token-a's client %x and key %q", recs[0].Client[:4], recs[0].Key[:recs[0].KeyN])
	}
}
