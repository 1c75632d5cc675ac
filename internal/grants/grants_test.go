package grants

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/fakeclock"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// digestOf is the SHA-256 digest of token.
func digestOf(token string) *[sha256.Size]byte {
	sum := sha256.Sum256([]byte(token))
	return &sum
}

func TestGrantStoreCountsWhatItRefuses(t *testing.T) {
	// given a store with room for one family
	clock := fakeclock.New()
	g := New(1, clock.Now)
	exp := clock.Now().Add(time.Hour).UnixNano()
	for _, name := range []string{"f", "g", "h"} {
		g.Add(&record.Grant{Family: *digestOf(name), Tokens: []record.GrantToken{{Digest: *digestOf(name + "-a"), Expiry: exp}}}, false)
	}

	// then the first is tracked, the two others are counted untracked
	if n, tokens := g.Size(); n != 1 || tokens != 1 || g.Untracked() != 2 || g.Dropped() != 0 {
		t.Fatalf("size %d/%d, untracked %d, dropped %d", n, tokens, g.Untracked(), g.Dropped())
	}
}

func TestGrantForgottenWhenItsTokensExpire(t *testing.T) {
	clock := fakeclock.New()
	g := New(10, clock.Now)
	rec := &record.Grant{Family: *digestOf("f"), Tokens: []record.GrantToken{{Digest: *digestOf("a"), Expiry: clock.Now().Add(time.Hour).UnixNano()}}}
	if _, ok := g.Add(rec, false); !ok || familyCount(g) != 1 {
		t.Fatal("not added")
	}
	clock.Advance(2 * time.Hour)
	other := &record.Grant{Family: *digestOf("g"), Tokens: []record.GrantToken{{Digest: *digestOf("b"), Expiry: clock.Now().Add(time.Hour).UnixNano()}}}
	g.Add(other, false)
	if familyCount(g) != 1 {
		t.Fatalf("%d families, want the expired one forgotten", familyCount(g))
	}
}

// BenchmarkGrantMemory reports the heap a tracked family of an access and a
// refresh token costs, its index entries included.
func BenchmarkGrantMemory(b *testing.B) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		g := New(n, time.Now)
		recs := make([]*record.Grant, n)
		for j := range recs {
			recs[j] = &record.Grant{Family: *digestOf(fmt.Sprint("r", j)), Tokens: []record.GrantToken{
				{Digest: *digestOf(fmt.Sprint("a", j)), Expiry: time.Now().Add(time.Hour).UnixNano()},
				{Digest: *digestOf(fmt.Sprint("r", j)), Expiry: time.Now().Add(time.Hour).UnixNano(), Refresh: true},
			}}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for j := range recs {
			g.Add(recs[j], false)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/grant")
		if familyCount(g) != n {
			b.Fatal("not every grant tracked")
		}
	}
}

func TestGrantStoreFamilyStaysBounded(t *testing.T) {
	// given a grant whose tokens live an hour
	clock := fakeclock.New()
	g := New(10, clock.Now)
	tok := func(i int, refresh bool) record.GrantToken {
		return record.GrantToken{Digest: sha256.Sum256([]byte(fmt.Sprint(i, refresh))), Refresh: refresh, Expiry: clock.Now().Add(time.Hour).UnixNano()}
	}
	family := tok(0, true).Digest

	// when it is refreshed 3,000 times, a second apart, each answer adding
	// an access and a refresh token
	for i := 1; i <= 3000; i++ {
		clock.Advance(time.Second)
		rec := &record.Grant{Family: family, Tokens: []record.GrantToken{tok(i, false), tok(i, true)}}
		if _, ok := g.Add(rec, false); !ok {
			t.Fatalf("refresh %d not tracked", i)
		}
	}

	// then the family and the index hold at most MaxFamilyTokens, the
	// newest tokens are the ones kept, and the drops are counted
	f := g.families[string(family[:])]
	if len(f.tokens) > MaxFamilyTokens || len(g.byToken) > MaxFamilyTokens {
		t.Fatalf("family of %d tokens, index of %d", len(f.tokens), len(g.byToken))
	}
	newest := tok(3000, true).Digest
	if g.byToken[string(newest[:])] != f || atomic.LoadInt64(&g.dropped) == 0 {
		t.Fatalf("newest token not kept, or drops not counted (%d)", g.dropped)
	}
}

func TestGrantStoreTakePreviousRemovesThem(t *testing.T) {
	// given a family with one access token
	clock := fakeclock.New()
	g := New(10, clock.Now)
	exp := clock.Now().Add(time.Hour).UnixNano()
	a1 := record.GrantToken{Digest: sha256.Sum256([]byte("a1")), Expiry: exp}
	a2 := record.GrantToken{Digest: sha256.Sum256([]byte("a2")), Expiry: exp}
	r := record.GrantToken{Digest: sha256.Sum256([]byte("r")), Expiry: exp, Refresh: true}
	g.Add(&record.Grant{Family: r.Digest, Tokens: []record.GrantToken{a1, r}}, false)

	// when a refresh takes the previous access tokens
	previous, _ := g.Add(&record.Grant{Family: r.Digest, Tokens: []record.GrantToken{a2, r}}, true)

	// then a1 is returned once and no longer tracked
	if len(previous) != 1 || previous[0].Digest != a1.Digest {
		t.Fatalf("previous %v", previous)
	}
	if _, ok := g.byToken[string(a1.Digest[:])]; ok {
		t.Fatal("a taken token is still indexed")
	}
	if again, _ := g.Add(&record.Grant{Family: r.Digest, Tokens: []record.GrantToken{r}}, true); len(again) != 1 || again[0].Digest != a2.Digest {
		t.Fatalf("second refresh returned %v", again)
	}
}

// familyCount is the number of families g tracks, swept as size sweeps.
func familyCount(g *Store) int {
	n, _ := g.Size()
	return n
}
