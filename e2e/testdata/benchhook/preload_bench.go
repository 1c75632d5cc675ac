package tokenrevocation

// This file exists for the benchmark harness only (make bench). It is not
// part of the plugin: it lives under e2e/testdata, and the harness copies it
// into its own copy of the plugin, where it sets benchPreload. (A build
// constraint is not enough: Yaegi v0.16.1 reads only "// +build" lines and
// loaded a "//go:build" file anyway, as TestYaegiBenchHookUnreachable showed.)

import (
	"crypto/sha256"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

func init() {
	benchPreload = preloadForBench
}

// preloadForBench fills each denylist named in TOKENREVOCATION_BENCH_DENYLIST
// (comma-separated) with TOKENREVOCATION_BENCH_PRELOAD revoked tokens
// "bench-revoked-<i>", using two goroutines, and logs how long it took.
func preloadForBench(d *denylist) {
	n, _ := strconv.Atoi(os.Getenv("TOKENREVOCATION_BENCH_PRELOAD"))
	named := false
	for _, name := range strings.Split(os.Getenv("TOKENREVOCATION_BENCH_DENYLIST"), ",") {
		named = named || name == d.name
	}
	if d.name == "bench-rules" {
		preloadRules(d)
	}
	if n <= 0 || !named {
		return
	}
	const workers = 2
	expiry := time.Now().Add(24 * time.Hour)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				token := "bench-revoked-" + strconv.Itoa(i)
				sum := sha256.Sum256([]byte(token))
				// With its pre-check key, as the revoke endpoint records it.
				if err := d.addKeyed(&sum, keyOf(token), expiry, sourceRevoke); err != nil {
					log.Printf("tokenrevocation: bench preload: %v", err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	store.ReleaseLoadGarbage()
	st := d.stats()
	log.Printf("tokenrevocation: bench preload: %d entries in %d ms (denylist %q holds %d, evictions %d)",
		n, time.Since(start).Milliseconds(), d.name, st.Entries, st.Evictions)
}

// preloadRules adds TOKENREVOCATION_BENCH_RULES session rules, as that many
// back-channel logouts of the sessions "bench-session-<i>" would, an hour
// after which every token of theirs issued before now is rejected.
func preloadRules(d *denylist) {
	n, _ := strconv.Atoi(os.Getenv("TOKENREVOCATION_BENCH_RULES"))
	now := time.Now()
	for i := 0; i < n; i++ {
		rec := &record.Logout{Flags: record.LogoutRuleSID, SID: sha256.Sum256([]byte("bench-session-" + strconv.Itoa(i))),
			JTI: sha256.Sum256([]byte("bench-jti-" + strconv.Itoa(i))), At: now.UnixNano(), Expiry: now.Add(24 * time.Hour).UnixNano()}
		d.rules.Add(rec, true)
	}
	log.Printf("tokenrevocation: bench preload: %d logout rules in denylist %q", n, d.name)
}
