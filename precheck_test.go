package tokenrevocation

import (
	"crypto/sha256"
	"math/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// setOf is the pre-check set the hot path reads.
func setOf(m *middleware) *store.PrecheckSet {
	return m.pre.Load().(*store.PrecheckSet)
}

// randomToken is a token of 8 to 300 characters; with a fixed tail when
// suffix is set (a checksum or a constant suffix, the pre-check's worst case).
func randomToken(r *rand.Rand, suffix string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/="
	n := 8 + r.Intn(293)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	token := string(b)
	if suffix != "" && len(token) > len(suffix) {
		token = token[:len(token)-len(suffix)] + suffix
	}
	return token
}

// TestPrecheckNeverHidesARevocation is a property test: whatever the
// tokens and their tails, and whichever way a revocation arrives (the revoke
// endpoint, the admin API, a bulk load with keys; then keyless records of
// the previous release), every revoked token is rejected and every other
// passes, first with the pre-check closed, then open.
func TestPrecheckNeverHidesARevocation(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, suffix := range []string{"", "CRC32sum", "==", "_v1"} {
		t.Run("suffix="+suffix, func(t *testing.T) {
			m := newTestMiddleware(t, &upstream{}, nil, func(c *Config) { c.ClientRate = 0; c.ClientSharePercent = 100 })
			revoked := map[string]bool{}
			var tokens []string
			for i := 0; i < 600; i++ {
				tokens = append(tokens, randomToken(r, suffix))
			}
			check := func(phase string) {
				t.Helper()
				for _, token := range tokens {
					want := 200
					if revoked[token] {
						want = 401
					}
					if got := status(m, token); got != want {
						t.Fatalf("%s: token %q: %d, want %d", phase, token, got, want)
					}
				}
			}
			expiry := time.Now().Add(time.Hour)
			var bulk []record.Revocation
			for i, token := range tokens {
				digest := sha256.Sum256([]byte(token))
				switch i % 6 {
				case 0:
					revoke(t, m, url.QueryEscape(token), "")
				case 1:
					if err := m.list.addKeyed(&digest, keyOf(token), expiry, sourceAdmin); err != nil {
						t.Fatal(err)
					}
				case 2:
					rec := record.Revocation{Digest: digest, Expiry: expiry.UnixNano(), At: time.Now().UnixNano()}
					rec.SetKey(keyOf(token))
					bulk = append(bulk, rec)
				default:
					continue
				}
				revoked[token] = true
			}
			m.list.stage(bulk, sourceRedis)
			if setOf(m).Open {
				t.Fatal("the pre-check is open though every revocation had its key")
			}
			check("keyed, pre-check closed")
			for i, token := range tokens {
				digest := sha256.Sum256([]byte(token))
				if i%6 == 3 {
					if err := m.list.add(&digest, expiry, sourceRedis); err != nil {
						t.Fatal(err)
					}
					revoked[token] = true
				}
				if i%6 == 4 {
					m.list.stage([]record.Revocation{{Digest: digest, Expiry: expiry.UnixNano()}}, sourceFile)
					revoked[token] = true
				}
			}
			check("with keyless records, pre-check open")
		})
	}
}

func TestPrecheckSettlesUnknownTokens(t *testing.T) {
	// given revocations that all came with their keys
	m := newTestMiddleware(t, &upstream{}, nil, func(c *Config) { c.ClientRate = 0; c.ClientSharePercent = 100 })
	for i := 0; i < 3000; i++ {
		revoke(t, m, "revoked-token-number-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('A'+i/26%26))+string(rune('0'+i/676%10)), "")
	}
	// then the pre-check is closed (their keys in the map or the delta,
	// as the background tick may have merged some), and settles an unknown
	// token
	set := setOf(m)
	if set.Open {
		t.Fatal("the pre-check is open")
	}
	if status(m, "a-token-nobody-revoked") != 200 || status(m, "revoked-token-number-aA0") != 401 {
		t.Fatal("wrong answers with the delta")
	}
	// and once the delta is folded into the map
	m.list.store.Precheck().Merge()
	set = setOf(m)
	if set.Delta != nil || len(set.Keys) == 0 {
		t.Fatal("the delta was not merged")
	}
	if status(m, "revoked-token-number-aA0") != 401 {
		t.Fatal("a revocation lost in the merge")
	}
	// and an unknown token is settled by it
	if set.Keys[pkeyOf("a-token-nobody-revoked")] != 0 {
		t.Fatal("unexpected key")
	}
	if status(m, "a-token-nobody-revoked") != 200 {
		t.Fatal("unknown token refused")
	}
}

func TestPrecheckOpenWhileKeylessRecordsLive(t *testing.T) {
	// given a revocation whose source knew only the digest (the previous
	// release's stream entry, or an admin revocation by digest)
	clock := newFakeClock()
	m := newTestMiddleware(t, &upstream{}, clock, nil)
	digest := sha256.Sum256([]byte("old-release-token"))
	if err := m.list.add(&digest, clock.now().Add(time.Minute), sourceRedis); err != nil {
		t.Fatal(err)
	}
	// then the pre-check is open, and the token is rejected
	if !setOf(m).Open || status(m, "old-release-token") != 401 {
		t.Fatal("a keyless revocation is not enforced through an open pre-check")
	}
	// when it has expired, then the pre-check closes again
	clock.advance(time.Minute + time.Second)
	m.list.store.Precheck().Tick()
	if setOf(m).Open {
		t.Fatal("the pre-check stays open after the last keyless revocation expired")
	}
}

func TestPrecheckOpenWhileLoadingAndWithRules(t *testing.T) {
	d := newTestDenylist(t, denylistOptions{})
	d.startLoading(1)
	if !d.store.Precheck().Current().Load().(*store.PrecheckSet).Open {
		t.Fatal("closed while loading")
	}
	d.finishLoad(stateReady)
	if d.store.Precheck().Current().Load().(*store.PrecheckSet).Open {
		t.Fatal("open after loading")
	}
	rec := &record.Logout{Flags: record.LogoutRuleSID, At: time.Now().UnixNano(), Expiry: time.Now().Add(time.Hour).UnixNano()}
	d.rules.Add(rec, true)
	if !d.store.Precheck().Current().Load().(*store.PrecheckSet).Rules {
		t.Fatal("the hot path does not see a live logout rule")
	}
}

func TestPrecheckKeysInTheFile(t *testing.T) {
	// given a file written by this release (keys after their revocations)
	// and revocations in the previous release's format (no keys)
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "denylist.bin")
	first := restartFromFile(t, path, clock)
	keyed := sha256.Sum256([]byte("keyed-token-0001"))
	if err := first.addKeyed(&keyed, keyOf("keyed-token-0001"), clock.now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	// when it restarts, then the key is back and the pre-check is closed
	second := restartFromFile(t, path, clock)
	if set := second.store.Precheck().Current().Load().(*store.PrecheckSet); set.Open || set.Keys[pkeyOf("keyed-token-0001")] == 0 {
		t.Fatalf("key not loaded: open %t, %d keys", set.Open, len(set.Keys))
	}
	// and an old-format frame loads keyless: open until it expires
	old := sha256.Sum256([]byte("old-format-token"))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(record.EncodeRevocation(&record.Revocation{Digest: old, Expiry: clock.now().Add(time.Hour).UnixNano()}))
	_ = f.Close()
	third := restartFromFile(t, path, clock)
	if !third.store.Precheck().Current().Load().(*store.PrecheckSet).Open || !third.store.Has(&old) || !third.store.Has(&keyed) {
		t.Fatal("an old-format revocation is not kept behind an open pre-check")
	}
}

func TestPrecheckKeyFrameOnlyAfterItsRevocation(t *testing.T) {
	// A key frame moved away from its revocation (a rewrite by a release
	// that does not know it) attaches to nothing.
	a := record.Revocation{Digest: sha256.Sum256([]byte("a")), Expiry: 10}
	a.SetKey("aaaaaaaa")
	b := record.Revocation{Digest: sha256.Sum256([]byte("b")), Expiry: 10}
	frames := record.EncodeRevocation(&a)
	var file []byte
	file = append(file, frames[:record.FrameSize]...)   // a's revocation
	file = append(file, record.EncodeRevocation(&b)...) // b's, keyless
	file = append(file, frames[record.FrameSize:]...)   // a's key, moved after b
	set := record.DecodeFrames(file, 0)
	if len(set.Recs) != 2 || set.Recs[0].KeyN != 0 || set.Recs[1].KeyN != 0 {
		t.Fatalf("a moved key frame was attached: %+v", set.Recs)
	}
	set = record.DecodeFrames(frames, 0)
	if len(set.Recs) != 1 || string(set.Recs[0].Key[:set.Recs[0].KeyN]) != "aaaaaaaa" {
		t.Fatalf("a key frame was not attached: %+v", set.Recs)
	}
}

func TestPrecheckKeysThroughTheStream(t *testing.T) {
	// given two replicas, a revocation with its key on A
	srv := startRedis(t)
	a, b := newReplica(t, "precheck", srv.addr()), newReplica(t, "precheck", srv.addr())
	onB := newMiddleware(&upstream{}, grantSettings(t), b)
	digest := sha256.Sum256([]byte("replicated-token-1"))
	if err := a.addKeyed(&digest, keyOf("replicated-token-1"), time.Now().Add(time.Hour), sourceRevoke); err != nil {
		t.Fatal(err)
	}
	// then B rejects it with its pre-check closed: the key came along
	if !waitFor(t, 5*time.Second, func() bool { return status(onB, "replicated-token-1") == 401 }) {
		t.Fatal("B accepts the token")
	}
	if setOf(onB).Open {
		t.Fatal("B's pre-check is open: the key did not come through the stream")
	}
	// and an old-format entry (no k) keeps B's pre-check open
	conn, err := dialRedis(testRedisOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	old := sha256.Sum256([]byte("old-entry-token"))
	if _, err := conn.Pipeline([][]string{{"XADD", "test:precheck", "*", "d", hexOf(old[:]), "e", "4102444800000"}}, 0); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return status(onB, "old-entry-token") == 401 }) || !setOf(onB).Open {
		t.Fatal("an old-format entry is not enforced behind an open pre-check")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// pkeyOf is a token's pre-check key as the maps hold it.
func pkeyOf(token string) store.Key {
	var k store.Key
	copy(k[:], keyOf(token))
	return k
}

func TestPrecheckOpenForKeysOfThePreviousRelease(t *testing.T) {
	// given a JWT revoked by the previous release: its record keyed by the
	// token's last 8 characters, with no confirmation time
	m := newTestMiddleware(t, &upstream{}, nil, nil)
	token := makeJWT(time.Now().Add(time.Hour).Unix())
	legacy := sha256.Sum256([]byte(token))
	rec := record.Revocation{Digest: legacy, Expiry: time.Now().Add(time.Hour).UnixNano()}
	rec.SetKey(token[len(token)-keyLen:])
	// when it loads from the stream or the file
	m.list.stage([]record.Revocation{rec}, sourceRedis)
	// then the pre-check does not clear the token by this release's key
	if !setOf(m).Open || status(m, token) != 401 {
		t.Fatal("a JWT revoked by the previous release passed the pre-check")
	}
}

func TestALegacyKeyNeverKeysThePrecheckAfterAMerge(t *testing.T) {
	for _, loading := range []bool{false, true} {
		// given a JWT's exact-string digest held with a confirmation time
		// and no key (an admin revoke by digest), for a short while
		clock := newFakeClock()
		d := newTestDenylist(t, denylistOptions{now: clock.now})
		token := makeJWT(clock.now().Add(2 * time.Hour).Unix())
		digest := sha256.Sum256([]byte(token))
		first := record.Revocation{Digest: digest, Expiry: clock.now().Add(time.Minute).UnixNano(), At: clock.now().UnixNano()}
		if loading {
			d.startLoading(1)
			d.stage([]record.Revocation{first}, sourceRedis)
		} else {
			d.loadDirect([]record.Revocation{first}, sourceRedis)
		}
		// when the previous release's record of it arrives, longer, keyed
		// by that release's rule (the token's last 8 characters)
		legacy := record.Revocation{Digest: digest, Expiry: clock.now().Add(time.Hour).UnixNano()}
		legacy.SetKey(token[len(token)-keyLen:])
		if loading {
			d.stage([]record.Revocation{legacy}, sourceFile)
			held, _ := d.store.Overlay(&digest)
			// then the merged record keys the pre-check by nothing (held open)
			if held.Expiry != legacy.Expiry || held.PrecheckKey() != "" {
				t.Errorf("loading: merged %+v keys the pre-check by %q", held, held.PrecheckKey())
			}
			continue
		}
		h := d.store.Held(&digest)
		rec := legacy
		if !d.store.MergeSync(&rec, &h, -1) || rec.At == 0 || rec.PrecheckKey() != "" {
			t.Errorf("merged %+v keys the pre-check by %q", rec, rec.PrecheckKey())
		}
	}
}
