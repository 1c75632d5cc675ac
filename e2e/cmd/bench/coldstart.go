package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
// stream of the bench-redis denylist, in the current stream format with
// confirmation times and pre-check keys (fields a and k), from the moment
// Traefik's process is started: when its routers answer, when it first
// serves an unrelated bearer token, when it reports ready, and when the
// loaded entries are settled (none left to move); and, from its first routed
// request, how many probes of revoked tokens (early, midway and late in the
// stream) it accepted. Two quiet starts, without probes, measure what
// loading costs: Traefik's CPU time and RSS against the empty stream, then
// against the full one, once settled. BENCH_LOADPROFILE=path saves a CPU
// profile of the full one's first 20 s.
func coldStart(o options, root, bin, dynamic string, rds *harness.Redis) (string, error) {
	exp := time.Now().Add(2 * time.Hour)
	tokens := make([]string, o.coldStart)
	conn, err := harness.DialRedis(rds.Addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	start := func() (*harness.Traefik, func(), error) {
		dir, err := os.MkdirTemp("", "tokenrevocation-bench-cold-")
		if err != nil {
			return nil, nil, err
		}
		t, err := harness.Start(harness.Options{
			Binary: bin, Root: root, Dir: dir, Dynamic: dynamic,
			StaticTemplate: filepath.Join(root, "e2e", "testdata", "bench-traefik.yml.tmpl"),
			Prepare:        func(dir string) error { return prepareBenchPlugins(root, dir) },
		})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, err
		}
		stop := func() { t.Stop(); _ = os.RemoveAll(dir) }
		if err := harness.WaitStatus(t.URL+"/redis-stats/_stats", nil, http.StatusOK, time.Minute); err != nil {
			stop()
			return nil, nil, err
		}
		return t, stop, nil
	}
	empty, err := quietStart(start, 0)
	if err != nil {
		return "", err
	}

	filled := time.Now()
	expiry := strconv.FormatInt(exp.UnixMilli(), 10)
	confirmed := strconv.FormatInt(time.Now().UnixMilli(), 10)
	suffix := strconv.FormatInt(exp.UnixNano(), 36)
	for lo := 0; lo < len(tokens); lo += 10000 {
		hi := min(lo+10000, len(tokens))
		cmds := make([][]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			// Opaque tokens whose last 8 characters, their pre-check key,
			// differ, as a real token's do.
			tokens[i] = fmt.Sprintf("cold-%s-%08d", suffix, i)
			sum := sha256.Sum256([]byte(tokens[i]))
			key := tokens[i][len(tokens[i])-8:]
			cmds = append(cmds, []string{"XADD", "tokenrevocation:bench-redis", "*", "d", hex.EncodeToString(sum[:]), "e", expiry,
				"a", confirmed, "k", hex.EncodeToString([]byte(key))})
		}
		if _, err := conn.Pipeline(cmds); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d revocations in the stream (%s)\n", len(tokens), time.Since(filled).Round(time.Millisecond))
	loaded, err := quietStart(start, int64(len(tokens)))
	if err != nil {
		return "", err
	}
	probes := []string{tokens[0], tokens[len(tokens)/2], tokens[len(tokens)-1]}
	unrelated := "Authorization: Bearer " + fixtures.NewJWT(exp)

	started := time.Now()
	t, stopT, err := start()
	if err != nil {
		return "", err
	}
	defer stopT()
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
	// The probes go on 5 s past settling, answered from what loading left.
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "Cold start against %d revocations in the Redis stream (times from Traefik's process start):\n\n", len(tokens))
	fmt.Fprintf(&b, "| measure | time |\n| --- | ---: |\n")
	fmt.Fprintf(&b, "| routers live (first routed request answered) | %s |\n", live.Round(time.Millisecond))
	fmt.Fprintf(&b, "| unrelated bearer token first served | %s |\n", served.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ready (every source loaded, exact answers) | %s |\n", ready.Round(time.Millisecond))
	fmt.Fprintf(&b, "| settled (stats: nothing left to fill, every entry counted) | %s |\n", settled.Round(time.Millisecond))
	fmt.Fprintf(&b, "| probes of revoked tokens from the first routed request to 5 s after settling | %d, %d accepted |\n", probed.Load(), accepted.Load())
	fmt.Fprintf(&b, "\nQuiet starts, without probes (Traefik's CPU time from process start, RSS 5 s after settling):\n\n")
	fmt.Fprintf(&b, "| start | ready at | settled at | CPU at ready | CPU at settled | RSS |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, q := range []struct {
		name string
		r    quietRun
	}{{"empty stream", empty}, {fmt.Sprintf("%d in the stream", len(tokens)), loaded}} {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f s | %.2f s | %.1f MiB |\n", q.name, q.r.ready.Round(time.Millisecond), q.r.settled.Round(time.Millisecond),
			q.r.cpuReady.Seconds(), q.r.cpuSettled.Seconds(), float64(q.r.rss)/(1<<20))
	}
	fmt.Fprintf(&b, "\nLoading %d entries: **%.2f s of CPU** to ready, **%.2f s** to settled (over the empty start); RSS **%.0f B per entry**.\n",
		len(tokens), (loaded.cpuReady - empty.cpuReady).Seconds(), (loaded.cpuSettled - empty.cpuSettled).Seconds(),
		float64(loaded.rss-empty.rss)/float64(len(tokens)))
	return b.String(), nil
}

// A quietRun is one start without probes: times from the process start,
// Traefik's CPU time at ready and once settled, and RSS 5 s after settling.
type quietRun struct {
	ready, settled, cpuReady, cpuSettled time.Duration
	rss                                  int64
}

// quietStart starts Traefik, polls the bench-redis denylist's stats every
// 100 ms until it is ready and settled with at least want entries, and
// reads its CPU time and RSS.
func quietStart(start func() (*harness.Traefik, func(), error), want int64) (quietRun, error) {
	var q quietRun
	began := time.Now()
	t, stop, err := start()
	if err != nil {
		return q, err
	}
	defer stop()
	profiled := make(chan struct{})
	if path := os.Getenv("BENCH_LOADPROFILE"); path != "" && want > 0 {
		// A CPU profile of the first 20 s, which loading fills at 1,000,000.
		go func() {
			defer close(profiled)
			resp, err := (&http.Client{Timeout: time.Minute}).Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=20", t.PingPort))
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: load profile: %v\n", err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "bench: load profile: %v\n", err)
			}
		}()
	} else {
		close(profiled)
	}
	defer func() { <-profiled }()
	var st coldStats
	lastLog := time.Now()
	for time.Since(began) < 10*time.Minute {
		st = redisStats(t.URL + "/redis-stats/_stats")
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			fmt.Fprintf(os.Stderr, "bench: %s: %+v, CPU %s, RSS %d MiB\n", time.Since(began).Round(time.Second), st, cpuTime(t.Pid()), rss(t.Pid())>>20)
		}
		if q.ready == 0 && st.Ready {
			q.ready = time.Since(began)
			q.cpuReady = cpuTime(t.Pid())
		}
		if q.ready != 0 && st.Filling == 0 && st.Entries >= want {
			q.settled = time.Since(began)
			q.cpuSettled = cpuTime(t.Pid())
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if q.settled == 0 {
		log := t.Log()
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return q, fmt.Errorf("cold start: not settled with %d entries in 10 minutes: %+v; Traefik's log ends:\n%s", want, st, log)
	}
	time.Sleep(5 * time.Second)
	q.rss = rss(t.Pid())
	return q, nil
}

// coldStats is the part of the stats the cold-start run reads.
type coldStats struct {
	Ready   bool   `json:"ready"`
	State   string `json:"state"`
	Filling int64  `json:"filling"`
	Entries int64  `json:"entries"`
	Loaded  int64  `json:"loaded"`
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
