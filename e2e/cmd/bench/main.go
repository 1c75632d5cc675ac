// Command bench measures the plugin's hot path in a real Traefik, as
// throughput ratios within one run (make bench). It alternates the setups in
// interleaved rounds with identical wrk settings: bare Traefik, a no-op Yaegi
// plugin, this plugin with a preloaded denylist (no token, unknown token,
// revoked token), and ForwardAuth to a minimal local service. It also reports
// Traefik's RSS with and without the preloaded entries, the time to load
// them, and the revoke endpoint's throughput. Everything runs on loopback.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

type options struct {
	rounds      int
	duration    time.Duration
	connections int
	threads     int
	preload     int
	out         string
	profile     string
	profileCase int
	coldStart   int
	rules       int
	// only runs one part: "memory" (the memory probe at -preload) or
	// "coldstart" (the cold start against -coldstart); "" runs everything.
	only string
}

// setup is one wrk target.
type setup struct {
	name   string
	path   string
	header string
	body   string // a JSON body: the requests are POSTs (case (f))
	runs   []result
}

// result is one wrk run.
type result struct {
	rps      float64
	p50, p99 time.Duration
	// ratio is rps over bare Traefik's in the same round.
	ratio float64
	// cpuPerReq is Traefik's CPU time (user+system) per request.
	cpuPerReq time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds of every setup")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "wrk duration of each run")
	flag.IntVar(&o.connections, "c", 32, "wrk connections")
	flag.IntVar(&o.threads, "t", 1, "wrk threads")
	flag.IntVar(&o.preload, "preload", 1000000, "revoked entries preloaded into the plugin's denylist")
	flag.StringVar(&o.out, "out", "", "also write the report to this file")
	flag.IntVar(&o.coldStart, "coldstart", 1000000, "revocations in the Redis stream for the cold-start measurement; 0 skips it")
	flag.IntVar(&o.rules, "rules", 10000, "live back-channel logout rules in case (d)'s denylist")
	flag.StringVar(&o.profile, "profile", "", "instead of the rounds, write a CPU profile of Traefik under case (b) load to this file")
	flag.IntVar(&o.profileCase, "profile-case", 3, "the setup -profile loads, by its index in the report's table (3: case (b), 14: case (f))")
	flag.StringVar(&o.only, "only", "", `run one part only: "memory" (the memory probe at -preload entries) or "coldstart" (the cold start against -coldstart revocations)`)
	flag.Parse()
	if o.only != "" && o.only != "memory" && o.only != "coldstart" {
		log.Fatalf("-only: %q is neither memory nor coldstart", o.only)
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: make bench installs it (apt-get install wrk)")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	bin, err := harness.TraefikBinary(root)
	if err != nil {
		return err
	}
	backend, err := serve(func(rw http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(rw, "ok") })
	if err != nil {
		return err
	}
	defer backend.Close()
	auth, err := serve(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })
	if err != nil {
		return err
	}
	defer auth.Close()
	redisDir, err := os.MkdirTemp("", "tokenrevocation-bench-redis-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(redisDir)
	redis, err := harness.StartRedis(redisDir)
	if err != nil {
		return err
	}
	defer redis.Stop()
	dynamic, err := harness.Render(filepath.Join(root, "e2e", "testdata", "bench-dynamic.yml.tmpl"), map[string]string{
		"BackendURL": "http://" + backend.Addr().String(),
		"AuthURL":    "http://" + auth.Addr().String(),
		"RedisAddr":  redis.Addr(),
		"AuditLog":   filepath.Join(redisDir, "audit.log"),
	})
	if err != nil {
		return err
	}
	coldReport := ""
	if o.only == "coldstart" && o.coldStart <= 0 {
		return errors.New("-only coldstart needs -coldstart above 0")
	}
	if o.coldStart > 0 && o.profile == "" && o.only != "memory" {
		fmt.Printf("cold start: a replica starting against %d revocations in Redis\n", o.coldStart)
		if coldReport, err = coldStart(o, root, bin, dynamic, redis); err != nil {
			return err
		}
		fmt.Print(coldReport)
		conn, err := harness.DialRedis(redis.Addr())
		if err != nil {
			return err
		}
		_, err = conn.Do("DEL", "tokenrevocation:bench-redis")
		conn.Close()
		if err != nil {
			return err
		}
		if o.only == "coldstart" {
			return writeReport(o, coldReport)
		}
	}
	start := func(preload int, denylists string) (*harness.Traefik, error) {
		dir, err := os.MkdirTemp("", "tokenrevocation-bench-")
		if err != nil {
			return nil, err
		}
		t, err := harness.Start(harness.Options{
			Binary:         bin,
			Root:           root,
			Dir:            dir,
			StaticTemplate: filepath.Join(root, "e2e", "testdata", "bench-traefik.yml.tmpl"),
			Dynamic:        dynamic,
			Env: []string{"TOKENREVOCATION_BENCH_PRELOAD=" + strconv.Itoa(preload), "TOKENREVOCATION_BENCH_DENYLIST=" + denylists,
				"TOKENREVOCATION_BENCH_RULES=" + strconv.Itoa(o.rules)},
			Prepare: func(dir string) error { return prepareBenchPlugins(root, dir) },
			// Preloading blocks Traefik's start: about 30 s per million
			// entries per denylist under Yaegi.
			ReadyTimeout: 10 * time.Minute,
		})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if err := harness.WaitStatus(t.URL+"/plugin/ready", nil, http.StatusOK, 10*time.Minute); err != nil {
			t.Stop()
			_ = os.RemoveAll(dir)
			return nil, err
		}
		return t, nil
	}
	stop := func(t *harness.Traefik) {
		t.Stop()
		_ = os.RemoveAll(t.Dir)
	}

	unknown := fixtures.NewJWT(time.Now().Add(time.Hour))
	setups := []*setup{
		{name: "bare Traefik", path: "/bare/x"},
		{name: "no-op Yaegi plugin", path: "/noop/x"},
		{name: "(a) plugin, no Authorization", path: "/plugin/x"},
		{name: "(b) plugin, unknown bearer token", path: "/plugin/x", header: "Authorization: Bearer " + unknown},
		{name: "(c) plugin, revoked bearer token", path: "/plugin/x", header: "Authorization: Bearer bench-revoked-42"},
		{name: "ForwardAuth to a local service", path: "/fa/x"},
		{name: "(b) with Redis replication on", path: "/redis/x", header: "Authorization: Bearer " + unknown},
		{name: "(e) plugin, query string, no token", path: "/plugin/x?page=2&sort=name"},
		{name: fmt.Sprintf("(d) plugin, unknown JWT bearer, %d logout rules", o.rules), path: "/rules/x", header: "Authorization: Bearer " + sessionJWT("bench-session-unknown", time.Now())},
		{name: "(a) with metricsPath, adminPath and auditLog on", path: "/ops/x"},
		{name: "(b) with metricsPath, adminPath and auditLog on", path: "/ops/x", header: "Authorization: Bearer " + unknown},
		{name: "header-only fixture plugin, unknown bearer token", path: "/header/x", header: "Authorization: Bearer " + unknown},
		// The pre-check's worst case: a token whose last 8 characters are a
		// revoked token's (a fixed suffix, a checksum): "maybe", then the
		// exact path.
		{name: "(b) unknown bearer ending like a revoked token", path: "/plugin/x", header: "Authorization: Bearer " + unknown[:len(unknown)-8] + "voked-42"},
		// Case (f): a POST with a 200-byte JSON body and an unknown bearer
		// token, beside the no-op plugin's same POST.
		{name: "no-op Yaegi plugin, JSON POST", path: "/noop/x", header: "Authorization: Bearer " + unknown, body: jsonBody200},
		{name: "(f) plugin, JSON POST, unknown bearer token", path: "/plugin/x", header: "Authorization: Bearer " + unknown, body: jsonBody200},
		// Issue 18: (b) in a denylist where the short token "abc" is revoked.
		{name: "(b) unknown bearer, token=abc revoked", path: "/short/x", header: "Authorization: Bearer " + unknown},
	}
	// A token of a logged-out session, to check that the rules are live.
	loggedOut := "Authorization: Bearer " + sessionJWT("bench-session-7", time.Now().Add(-time.Hour))

	// Memory: a Traefik whose in-memory denylist is empty, then one whose
	// in-memory denylist holds the preload. Each is read idle (5 s after
	// its routers are up) and again after the same 2 s of load, which
	// leaves request garbage up to the Go GC's headroom (GOGC=100).
	measureMem := func(preload int) (memSample, string, error) {
		t, err := start(preload, "bench")
		if err != nil {
			return memSample{}, "", err
		}
		defer stop(t)
		time.Sleep(5 * time.Second)
		var m memSample
		m.idleRSS = rss(t.Pid())
		m.heap = heapAlloc(t.PingPort)
		if _, err := runWrk(o, t.URL+"/plugin/x", setups[3].header, "", 2*time.Second); err != nil {
			return memSample{}, "", err
		}
		m.loadedRSS = rss(t.Pid())
		return m, t.Log(), nil
	}
	var alone [2]int64 // the no-op plugin alone, this plugin alone with one empty denylist
	if o.only == "memory" {
		for i, plugin := range []string{"noop", "tokenrevocation"} {
			fmt.Printf("memory: Traefik with the %s plugin alone\n", plugin)
			if alone[i], err = aloneRSS(root, bin, backend.Addr().String(), plugin); err != nil {
				return err
			}
		}
	}
	fmt.Printf("memory: Traefik with the plugin and an empty denylist\n")
	memBefore, _, err := measureMem(0)
	if err != nil {
		return err
	}
	fmt.Printf("memory: Traefik with %d entries preloaded\n", o.preload)
	memAfter, preloadLog, err := measureMem(o.preload)
	if err != nil {
		return err
	}
	loadMs, err := preloadMillis(preloadLog, o.preload)
	if err != nil {
		return err
	}
	stats := preloadStats(preloadLog)
	if o.only == "memory" {
		report := renderMemory(o, alone, memBefore, memAfter, loadMs, stats)
		fmt.Print("\n" + report)
		return writeReport(o, report)
	}

	fmt.Printf("throughput: Traefik with %d entries in the in-memory and in the Redis-backed denylist\n", o.preload)
	t, err := start(o.preload, "bench,bench-redis")
	if err != nil {
		return err
	}
	defer stop(t)
	// The Redis-backed denylist echoes its preload through the stream: wait
	// until it has written and read back everything before timing anything.
	settle := time.Now()
	if err := waitSettled(t.URL+"/redis-stats/_stats", o.preload, 15*time.Minute); err != nil {
		return err
	}
	fmt.Printf("Redis-backed denylist settled in %s\n", time.Since(settle).Round(time.Second))
	// Every case must answer as expected before it is timed.
	for _, c := range []struct {
		s    *setup
		want int
	}{{setups[0], 200}, {setups[1], 200}, {setups[2], 200}, {setups[3], 200}, {setups[4], 401}, {setups[5], 200}, {setups[6], 200}, {setups[7], 200}, {setups[8], 200}, {setups[9], 200}, {setups[10], 200}, {setups[11], 200}, {setups[12], 200}} {
		if got := status(t.URL+c.s.path, c.s.header); got != c.want {
			return fmt.Errorf("%s answered %d, not %d", c.s.name, got, c.want)
		}
	}
	if got := status(t.URL+"/rules/x", loggedOut); o.rules > 7 && got != 401 {
		return fmt.Errorf("a logged-out session's token answered %d on /rules/, not 401", got)
	}
	for _, s := range setups[13:15] {
		if got := postStatus(t.URL+s.path, s.header, s.body); got != 200 {
			return fmt.Errorf("%s answered %d, not 200", s.name, got)
		}
	}
	if got := formStatus(t.URL+"/short/revoke", "client_id=bench&token=abc"); got != 200 {
		return fmt.Errorf("revoking abc answered %d, not 200", got)
	}
	if got := status(t.URL+"/short/x", "Authorization: Bearer abc"); got != 401 {
		return fmt.Errorf("the revoked abc answered %d, not 401", got)
	}
	if got := status(t.URL+setups[15].path, setups[15].header); got != 200 {
		return fmt.Errorf("%s answered %d, not 200", setups[15].name, got)
	}
	for _, s := range setups { // warm-up
		if _, err := runWrk(o, t.URL+s.path, s.header, postScript(t.Dir, s), time.Second); err != nil {
			return err
		}
	}
	if o.profile != "" {
		return profile(o, t, setups[o.profileCase])
	}

	for r := 0; r < o.rounds; r++ {
		var round []*result
		var bareRPS float64
		for i := range setups {
			s := setups[(i+r)%len(setups)]
			cpu0 := cpuTime(t.Pid())
			res, err := runWrk(o, t.URL+s.path, s.header, postScript(t.Dir, s), o.duration)
			if err != nil {
				return err
			}
			if n := res.rps * o.duration.Seconds(); n > 0 {
				res.cpuPerReq = time.Duration(float64(cpuTime(t.Pid())-cpu0) / n)
			}
			s.runs = append(s.runs, res)
			round = append(round, &s.runs[len(s.runs)-1])
			if s == setups[0] {
				bareRPS = res.rps
			}
			fmt.Printf("round %d  %-40s %9.0f req/s  p50 %-8s p99 %-8s Traefik CPU/req %s\n", r+1, s.name, res.rps, res.p50, res.p99, res.cpuPerReq)
		}
		for _, res := range round {
			res.ratio = res.rps / bareRPS
		}
	}

	revokeScript := filepath.Join(t.Dir, "revoke.lua")
	if err := os.WriteFile(revokeScript, []byte(revokeLua), 0o644); err != nil {
		return err
	}
	revoke, err := runWrk(o, t.URL+"/plugin/revoke", "", revokeScript, o.duration)
	if err != nil {
		return err
	}

	report := render(o, setups, revoke, memBefore, memAfter, loadMs, stats) + "\n" + coldReport
	fmt.Print("\n" + report)
	return writeReport(o, report)
}

// renderMemory is the report of -only memory.
func renderMemory(o options, alone [2]int64, memBefore, memAfter memSample, loadMs int64, stats map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Memory probe of %s: one Traefik with the plugin and empty denylists, then one with %d entries preloaded into the in-memory denylist.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), o.preload)
	b.WriteString(memoryTables(o, memBefore, memAfter, loadMs, stats))
	perEntry := float64(memAfter.idleRSS-memBefore.idleRSS) / float64(o.preload)
	fmt.Fprintf(&b, "\n| target | measured | |\n| --- | ---: | --- |\n")
	fmt.Fprintf(&b, "| at most 100 bytes of RSS per entry (idle) | %.0f | %s |\n", perEntry, map[bool]string{true: "met", false: "MISSED"}[perEntry <= 100])
	over := float64(alone[1]-alone[0]) / (1 << 20)
	fmt.Fprintf(&b, "| the plugin with an empty denylist at most 30 MB of RSS over a Traefik with the no-op plugin (one router each, idle: %.1f and %.1f MiB) | %+.1f MiB | %s |\n",
		float64(alone[1])/(1<<20), float64(alone[0])/(1<<20), over, map[bool]string{true: "met", false: "MISSED"}[over <= 30])
	return b.String()
}

// memoryTables are the memory figures: RSS and Go heap, idle and after 2 s
// of load, empty and preloaded, and the preload's time and result.
func memoryTables(o options, memBefore, memAfter memSample, loadMs int64, stats map[string]string) string {
	var b strings.Builder
	n := float64(o.preload)
	perEntry := float64(memAfter.idleRSS-memBefore.idleRSS) / n
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	fmt.Fprintf(&b, "\n| measure | empty denylist | %d entries | per entry |\n| --- | ---: | ---: | ---: |\n", o.preload)
	fmt.Fprintf(&b, "| Traefik RSS, idle | %.1f MiB | %.1f MiB | %.0f bytes |\n", mib(memBefore.idleRSS), mib(memAfter.idleRSS), perEntry)
	fmt.Fprintf(&b, "| Go heap in use, idle | %.1f MiB | %.1f MiB | %.0f bytes |\n", mib(memBefore.heap), mib(memAfter.heap), float64(memAfter.heap-memBefore.heap)/n)
	fmt.Fprintf(&b, "| Traefik RSS after 2 s of load | %.1f MiB | %.1f MiB | %.0f bytes |\n", mib(memBefore.loadedRSS), mib(memAfter.loadedRSS), float64(memAfter.loadedRSS-memBefore.loadedRSS)/n)
	fmt.Fprintf(&b, "\n| measure | value |\n| --- | ---: |\n")
	fmt.Fprintf(&b, "| time to load %d entries (2 goroutines, under Yaegi) | %.1f s |\n", o.preload, float64(loadMs)/1000)
	fmt.Fprintf(&b, "| denylist after load | entries %v, evictions %v |\n", stats["entries"], stats["evictions"])
	return b.String()
}

// aloneRSS is the idle RSS of a Traefik that loads one plugin alone, on one
// router (with one empty denylist for this plugin), 5 s after the router
// first answers, as measureMem reads the others.
func aloneRSS(root, bin, backend, plugin string) (int64, error) {
	dir, err := os.MkdirTemp("", "tokenrevocation-bench-alone-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	data := map[string]string{"BackendURL": "http://" + backend, "Plugin": plugin}
	dynamic, err := harness.Render(filepath.Join(root, "e2e", "testdata", "bench-dynamic-one.yml.tmpl"), data)
	if err != nil {
		return 0, err
	}
	// The static template is rendered twice: here for the plugin, keeping
	// the harness's fields as they are, then by the harness for the ports.
	static, err := harness.Render(filepath.Join(root, "e2e", "testdata", "bench-traefik-one.yml.tmpl"),
		map[string]string{"Plugin": plugin, "Port": "{{.Port}}", "PingPort": "{{.PingPort}}", "Dir": "{{.Dir}}", "LogLevel": "{{.LogLevel}}"})
	if err != nil {
		return 0, err
	}
	staticPath := filepath.Join(dir, "static.yml.tmpl")
	if err := os.WriteFile(staticPath, []byte(static), 0o644); err != nil {
		return 0, err
	}
	t, err := harness.Start(harness.Options{
		Binary: bin, Root: root, Dir: filepath.Join(dir, "traefik"), Dynamic: dynamic, StaticTemplate: staticPath,
		Prepare: func(dir string) error { return prepareBenchPlugins(root, dir) },
	})
	if err != nil {
		return 0, err
	}
	defer t.Stop()
	if err := harness.WaitStatus(t.URL+"/one/x", nil, http.StatusOK, time.Minute); err != nil {
		return 0, err
	}
	time.Sleep(5 * time.Second)
	if prefix := os.Getenv("BENCH_HEAPPROFILE"); prefix != "" {
		// A heap profile of each, to see what the plugin's RSS is made of.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", t.PingPort))
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(prefix+"-"+plugin+".pprof", b, 0o644); err != nil {
			return 0, err
		}
	}
	return rss(t.Pid()), nil
}

// writeReport writes report to -out, when set.
func writeReport(o options, report string) error {
	if o.out == "" {
		return nil
	}
	return os.WriteFile(o.out, []byte(report), 0o644)
}

// profile captures Traefik's CPU profile while wrk loads one setup.
func profile(o options, t *harness.Traefik, s *setup) error {
	done := make(chan error, 1)
	go func() {
		_, err := runWrk(o, t.URL+s.path, s.header, postScript(t.Dir, s), o.duration+2*time.Second)
		done <- err
	}()
	time.Sleep(time.Second)
	secs := int(o.duration.Seconds())
	resp, err := (&http.Client{Timeout: o.duration + 30*time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", t.PingPort, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.profile, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("CPU profile of %s written to %s\n", s.name, o.profile)
	return <-done
}

// jsonBody200 is case (f)'s body: 200 bytes of JSON with no token in it.
var jsonBody200 = func() string {
	b := `{"order":{"id":12345,"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"`
	return b + strings.Repeat("x", 200-len(b)-3) + `"}}`
}()

// postScript writes, for a setup with a body, the wrk script that POSTs it,
// and returns its path; "" for a GET setup.
func postScript(dir string, s *setup) string {
	if s.body == "" {
		return ""
	}
	path := filepath.Join(dir, "post.lua")
	script := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", s.body)
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return ""
	}
	return path
}

// postStatus is the status of a JSON POST.
func postStatus(url, header, body string) int {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if k, v, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// formStatus POSTs a form body to url and returns the status.
func formStatus(url, body string) int {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// revokeLua makes every wrk request a revoke of a new token.
const revokeLua = `
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/plugin/revoke",
    {["Content-Type"] = "application/x-www-form-urlencoded"},
    "client_id=bench&token_type_hint=access_token&token=rv-" .. counter)
end
`

// prepareBenchPlugins puts the no-op plugin beside this one, and the preload
// hook (e2e/testdata/benchhook) into the bench's own copy of this plugin:
// the hook is no part of the plugin, and exists nowhere else.
func prepareBenchPlugins(root, dir string) error {
	src := filepath.Join(dir, "plugins-local", "src")
	hook := filepath.Join(src, filepath.FromSlash(harness.ModuleName), "preload_bench.go")
	code, err := os.ReadFile(filepath.Join(root, "e2e", "testdata", "benchhook", "preload_bench.go"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(hook, code, 0o644); err != nil {
		return err
	}
	// The fixture plugins: no-op, and header-only (the floor of any bearer check).
	for _, name := range []string{"noop", "headeronly"} {
		dst := filepath.Join(src, "github.com", "edgerevoke", name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		fixture := filepath.Join(root, "e2e", "testdata", name)
		for from, to := range map[string]string{name + ".go": name + ".go", "go.mod.txt": "go.mod", ".traefik.yml": ".traefik.yml"} {
			b, err := os.ReadFile(filepath.Join(fixture, from))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, to), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func serve(h http.HandlerFunc) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

func status(url, header string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if k, v, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

var (
	rpsLine     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	latencyLine = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk runs wrk once against url and parses throughput and latency.
func runWrk(o options, url, header, script string, d time.Duration) (result, error) {
	args := []string{"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.connections), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	var r result
	m := rpsLine.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("wrk: no throughput in\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, l := range latencyLine.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(l[3])]
		lat := time.Duration(v * float64(unit))
		if string(l[1]) == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	if strings.Contains(string(out), "Non-2xx or 3xx responses") && !strings.Contains(url, "/plugin/x") {
		return result{}, fmt.Errorf("wrk: unexpected error responses from %s\n%s", url, out)
	}
	return r, nil
}

// cpuTime returns a process's user plus system CPU time.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// memSample is one Traefik's memory: RSS idle and after load, Go heap idle.
type memSample struct {
	idleRSS, loadedRSS, heap int64
}

// heapAlloc reads Traefik's Go heap in use from expvar (api.debug).
func heapAlloc(port int) int64 {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/debug/vars", port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct{ HeapAlloc int64 } `json:"memstats"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0
	}
	return v.Memstats.HeapAlloc
}

// rss returns a process's resident set size in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

var preloadLine = regexp.MustCompile(`bench preload: (\d+) entries in (\d+) ms`)

func preloadMillis(traefikLog string, want int) (int64, error) {
	m := preloadLine.FindStringSubmatch(traefikLog)
	if m == nil {
		return 0, fmt.Errorf("no preload report in Traefik's log:\n%s", traefikLog)
	}
	if n, _ := strconv.Atoi(m[1]); n != want {
		return 0, fmt.Errorf("preloaded %d entries, not %d", n, want)
	}
	return strconv.ParseInt(m[2], 10, 64)
}

var statsLine = regexp.MustCompile(`holds (\d+), evictions (\d+)`)

// preloadStats reads the denylist's size after the preload from its log
// line; the bench config leaves statsPath off, as production does.
func preloadStats(traefikLog string) map[string]string {
	m := statsLine.FindStringSubmatch(traefikLog)
	if m == nil {
		return map[string]string{"entries": "?", "evictions": "?"}
	}
	return map[string]string{"entries": m[1], "evictions": m[2]}
}

// waitSettled polls a stats path until nothing is queued for Redis and the
// stream has been read back.
func waitSettled(url string, preload int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var st struct {
		Queued int   `json:"queued"`
		Loaded int64 `json:"loaded"`
		Ready  bool  `json:"ready"`
	}
	for time.Now().Before(deadline) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Ready && st.Queued == 0 && st.Loaded >= int64(preload) {
				return nil
			}
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the Redis-backed denylist is not settled after %s: %+v", timeout, st)
}

// median returns the run with the median throughput, and the median
// latencies taken separately.
func median(runs []result) result {
	pick := func(less func(a, b result) bool) result {
		c := append([]result(nil), runs...)
		sort.Slice(c, func(i, j int) bool { return less(c[i], c[j]) })
		return c[len(c)/2]
	}
	return result{
		rps:       pick(func(a, b result) bool { return a.rps < b.rps }).rps,
		p50:       pick(func(a, b result) bool { return a.p50 < b.p50 }).p50,
		p99:       pick(func(a, b result) bool { return a.p99 < b.p99 }).p99,
		ratio:     pick(func(a, b result) bool { return a.ratio < b.ratio }).ratio,
		cpuPerReq: pick(func(a, b result) bool { return a.cpuPerReq < b.cpuPerReq }).cpuPerReq,
	}
}

func render(o options, setups []*setup, revoke result, memBefore, memAfter memSample, loadMs int64, stats map[string]string) string {
	var b strings.Builder
	med := map[string]result{}
	for _, s := range setups {
		med[s.name] = median(s.runs)
	}
	// Ratios are medians of per-round ratios: each run is compared with
	// bare Traefik's run of the same round, minutes apart at most.
	r := func(i int) float64 { return med[setups[i].name].ratio }
	a, bb, c, noop, fa := r(2), r(3), r(4), r(1), r(5)
	fmt.Fprintf(&b, "Run of %s: wrk -t%d -c%d -d%s --latency, %d interleaved rounds; medians of each round's figures; %d entries preloaded.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), o.threads, o.connections, o.duration, o.rounds, o.preload)
	fmt.Fprintf(&b, "| setup | req/s | p50 | p99 | ratio to bare | ratio to no-op | Traefik CPU per request |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range setups {
		m := med[s.name]
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.2f | %.2f | %s |\n", s.name, m.rps, m.p50.Round(10*time.Microsecond), m.p99.Round(10*time.Microsecond), m.ratio, m.ratio/noop, m.cpuPerReq.Round(time.Microsecond))
	}
	b.WriteString(memoryTables(o, memBefore, memAfter, loadMs, stats))
	fmt.Fprintf(&b, "| revoke endpoint throughput (new token per request) | %.0f req/s, p50 %s, p99 %s |\n", revoke.rps, revoke.p50, revoke.p99)

	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(&b, "\n| target | measured | |\n| --- | ---: | --- |\n")
	fmt.Fprintf(&b, "| (b) ≥ 0.80 of bare | %.2f | %s |\n", bb, check(bb >= 0.80))
	fmt.Fprintf(&b, "| (b) ≥ 0.95 of no-op | %.2f | %s |\n", bb/noop, check(bb/noop >= 0.95))
	fmt.Fprintf(&b, "| (a) ≥ 0.98 of no-op | %.2f | %s |\n", a/noop, check(a/noop >= 0.98))
	fmt.Fprintf(&b, "| (b) ≥ 2.2× ForwardAuth | %.2f× | %s |\n", bb/fa, check(bb/fa >= 2.2))
	fmt.Fprintf(&b, "| (c) no slower than (b) | %.2f | %s |\n", c/bb, check(c/bb >= 1.0))
	withRedis := r(6)
	fmt.Fprintf(&b, "| (b) with Redis within 2%% of (b) in memory | %.3f | %s |\n", withRedis/bb, check(withRedis/bb >= 0.98))
	cpu := func(i int) float64 { return float64(med[setups[i].name].cpuPerReq) }
	// CPU per request is the primary hot-path figure (far steadier than
	// req/s on a shared machine); over the no-op plugin, it is the
	// plugin's own cost.
	over := func(i int) float64 { return (cpu(i) - cpu(1)) / 1e3 }
	fmt.Fprintf(&b, "| (b) ≥ 0.95 of no-op by CPU per request | %.2f | %s |\n", cpu(1)/cpu(3), check(cpu(1)/cpu(3) >= 0.95))
	fmt.Fprintf(&b, "| (b) within 2 µs of the header-only fixture, CPU per request | %+.1f µs (plugin +%.1f µs, header-only +%.1f µs over no-op) | %s |\n", over(3)-over(11), over(3), over(11), check(over(3)-over(11) <= 2))
	fmt.Fprintf(&b, "| (a) by CPU per request, over no-op | %+.1f µs | |\n", over(2))
	fmt.Fprintf(&b, "| (c) by CPU per request, over no-op | %+.1f µs | |\n", over(4))
	fmt.Fprintf(&b, "| (f) JSON POST by CPU per request, over the no-op plugin's POST | %+.1f µs | |\n", (cpu(14)-cpu(13))/1e3)
	fmt.Fprintf(&b, "| (b) with Redis within 2%% of (b) in memory, CPU per request | %.3f | %s |\n", cpu(6)/cpu(3), check(cpu(6)/cpu(3) <= 1.02))
	fmt.Fprintf(&b, "| (d) ≥ 0.75 of no-op by CPU per request | %.2f | %s |\n", cpu(1)/cpu(8), check(cpu(1)/cpu(8) >= 0.75))
	fmt.Fprintf(&b, "| (a) with metrics, admin and audit on within 3%% of (a), CPU per request | %.3f | %s |\n", cpu(9)/cpu(2), check(cpu(9)/cpu(2) <= 1.03))
	fmt.Fprintf(&b, "| (b) with metrics, admin and audit on within 3%% of (b), CPU per request | %.3f | %s |\n", cpu(10)/cpu(3), check(cpu(10)/cpu(3) <= 1.03))
	perEntry := float64(memAfter.idleRSS-memBefore.idleRSS) / float64(o.preload)
	status := check(perEntry <= 100)
	if o.preload < 1000000 {
		// RSS moves by tens of MiB with the collector's timing: below a
		// million entries that swamps the entries (it read -232 B once).
		status = "not judged below 1,000,000 entries"
	}
	fmt.Fprintf(&b, "| ≤ 100 bytes RSS per entry (idle) | %.0f | %s |\n", perEntry, status)
	fmt.Fprintf(&b, "| %d entries loaded in ≤ 10 s | %.1f s | %s |\n", o.preload, float64(loadMs)/1000, check(loadMs <= 10000))
	return b.String()
}

// sessionJWT is an access token of a session, as case (d) sends it: the
// plugin reads its payload (sid, sub, iat) and never its signature.
func sessionJWT(sid string, iat time.Time) string {
	enc := base64.RawURLEncoding
	payload := fmt.Sprintf(`{"iss":"https://op.example","sub":"user-1","sid":%q,"iat":%d,"exp":%d,"jti":"%d"}`, sid, iat.Unix(), iat.Add(time.Hour).Unix(), iat.UnixNano())
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(make([]byte, 256))
}
