package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// coldStart measures a replica starting against n revocations in the Redis
// stream of the bench-redis denylist, from the moment Traefik's process is
// started: when its routers answer, when it first serves an unrelated bearer
// token, when it reports ready, and when the loaded entries have all moved
// into bigcache; and, from its first routed request, how many probes of
// revoked tokens (early, midway and late in the stream) it accepted.
func coldStart(o options, root, bin, dynamic string, rds *harness.Redis) (string, error) {
	exp := time.Now().Add(2 * time.Hour)
	tokens := make([]string, o.coldStart)
	conn, err := harness.DialRedis(rds.Addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	filled := time.Now()
	expiry := strconv.FormatInt(exp.UnixMilli(), 10)
	for lo := 0; lo < len(tokens); lo += 10000 {
		hi := min(lo+10000, len(tokens))
		cmds := make([][]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			tokens[i] = "cold-" + strconv.Itoa(i) + "-" + strconv.FormatInt(exp.UnixNano(), 36)
			sum := sha256.Sum256([]byte(tokens[i]))
			cmds = append(cmds, []string{"XADD", "tokenrevocation:bench-redis", "*", "d", hex.EncodeToString(sum[:]), "e", expiry})
		}
		if _, err := conn.Pipeline(cmds); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d revocations in the stream (%s)\n", len(tokens), time.Since(filled).Round(time.Millisecond))
	probes := []string{tokens[0], tokens[len(tokens)/2], tokens[len(tokens)-1]}
	unrelated := "Authorization: Bearer " + fixtures.NewJWT(exp)

	dir, err := os.MkdirTemp("", "tokenrevocation-bench-cold-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	started := time.Now()
	t, err := harness.Start(harness.Options{
		Binary: bin, Root: root, Dir: dir, Dynamic: dynamic,
		StaticTemplate: filepath.Join(root, "e2e", "testdata", "bench-traefik.yml.tmpl"),
		Prepare:        func(dir string) error { return prepareBenchPlugins(root, dir) },
	})
	if err != nil {
		return "", err
	}
	defer t.Stop()
	if err := harness.WaitStatus(t.URL+"/redis-stats/_stats", nil, http.StatusOK, time.Minute); err != nil {
		return "", err
	}
	live := time.Since(started)

	var probed, accepted atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code := status(t.URL+"/redis/x", "Authorization: Bearer "+probes[i%len(probes)])
				probed.Add(1)
				if code == http.StatusOK {
					accepted.Add(1)
				}
			}
		}()
	}
	var served time.Duration
	for served == 0 && time.Since(started) < 5*time.Minute {
		if status(t.URL+"/redis/x", unrelated) == http.StatusOK {
			served = time.Since(started)
		}
	}
	var ready, settled time.Duration
	for settled == 0 && time.Since(started) < 10*time.Minute {
		st := redisStats(t.URL + "/redis-stats/_stats")
		if ready == 0 && st.Ready {
			ready = time.Since(started)
		}
		if ready != 0 && st.Filling == 0 && st.Entries >= int64(len(tokens)) {
			settled = time.Since(started)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "Cold start against %d revocations in the Redis stream (times from Traefik's process start):\n\n", len(tokens))
	fmt.Fprintf(&b, "| measure | time |\n| --- | ---: |\n")
	fmt.Fprintf(&b, "| routers live (first routed request answered) | %s |\n", live.Round(time.Millisecond))
	fmt.Fprintf(&b, "| unrelated bearer token first served | %s |\n", served.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ready (every source loaded, exact answers) | %s |\n", ready.Round(time.Millisecond))
	fmt.Fprintf(&b, "| every loaded entry moved into bigcache | %s |\n", settled.Round(time.Millisecond))
	fmt.Fprintf(&b, "| probes of revoked tokens from the first routed request | %d, %d accepted |\n", probed.Load(), accepted.Load())
	return b.String(), nil
}

// coldStats is the part of the stats the cold-start run reads.
type coldStats struct {
	Ready   bool  `json:"ready"`
	Filling int64 `json:"filling"`
	Entries int64 `json:"entries"`
}

func redisStats(url string) coldStats {
	var st coldStats
	resp, err := http.Get(url)
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st
}
