// Package harness runs a real Traefik with the plugin loaded from the working
// copy, for the end-to-end suite, the demo and the benchmarks. Everything
// listens on loopback only.
package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// ModuleName is the plugin's module path.
const ModuleName = "github.com/edgerevoke/tokenrevocation"

// RepoRoot finds the repository root by walking up from the working
// directory to the folder that holds .traefik.yml.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".traefik.yml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: no .traefik.yml above the working directory")
		}
		dir = parent
	}
}

// TraefikBinary returns the pinned Traefik binary, building it on first use
// through scripts/build-traefik.sh. TRAEFIK_BIN overrides it. A failed build
// is an error: callers fail, they never skip.
func TraefikBinary(root string) (string, error) {
	return scriptBinary(root, "TRAEFIK_BIN", "build-traefik.sh")
}

// PluginTree copies the plugin's sources (non-test Go files, go.mod,
// .traefik.yml, vendor/ and the Go files of internal/) from root into gopath's src tree, where Traefik's
// local-plugin loader and Yaegi's GoPath look for them.
func PluginTree(root, gopath string) (string, error) {
	dst := filepath.Join(gopath, "src", filepath.FromSlash(ModuleName))
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		keep := name == "go.mod" || name == "go.sum" || name == ".traefik.yml" ||
			(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"))
		if e.Type().IsRegular() && keep {
			if err := copyFile(filepath.Join(root, name), filepath.Join(dst, name)); err != nil {
				return "", err
			}
		}
	}
	for _, dir := range []string{"vendor", "internal"} {
		if err := copyTree(root, dst, dir, dir == "internal"); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// copyTree copies root/dir into dst/dir; sourcesOnly leaves out everything
// but non-test Go files (the plugin's internal/ packages).
func copyTree(root, dst, dir string, sourcesOnly bool) error {
	return filepath.Walk(filepath.Join(root, dir), func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if info.IsDir() {
			if sourcesOnly && info.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if sourcesOnly && (!strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Render fills the template file at path with data.
func Render(path string, data any) (string, error) {
	tpl, err := template.ParseFiles(path)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Traefik is one running Traefik process.
type Traefik struct {
	// Dir is its working directory: static and dynamic config, plugins-local, log.
	Dir string
	// URL is the web entry point, http://127.0.0.1:port.
	URL string
	// Port is the web entry point's port.
	Port int
	// PingPort is the port of the entry point that serves /ping.
	PingPort int

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	mu      sync.Mutex
	exitErr error
}

// Options describe a Traefik to start.
type Options struct {
	Binary string
	Root   string // repository root: the plugin comes from here
	Dir    string // working directory to create
	// Static and Dynamic are rendered configs; Static may use {{.Port}},
	// {{.PingPort}} and {{.Dir}} which Start fills in.
	StaticTemplate string
	Dynamic        string
	Port           int // 0: pick a free one
	Env            []string
	// Prepare, when set, runs after the plugin tree is laid out in
	// Dir/plugins-local and before Traefik starts.
	Prepare func(dir string) error
	// ReadyTimeout bounds the wait for /ping; 0 means 60 s.
	ReadyTimeout time.Duration
}

// StaticData is what a static configuration template is given.
type StaticData struct {
	Port     int
	PingPort int
	Dir      string
	LogLevel string
}

// Start writes the configs, lays out plugins-local from the working copy and
// starts Traefik. It returns once the ping endpoint answers.
func Start(o Options) (*Traefik, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := PluginTree(o.Root, filepath.Join(o.Dir, "plugins-local")); err != nil {
		return nil, fmt.Errorf("harness: plugin tree: %w", err)
	}
	if o.Prepare != nil {
		if err := o.Prepare(o.Dir); err != nil {
			return nil, fmt.Errorf("harness: prepare: %w", err)
		}
	}
	port := o.Port
	var err error
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	pingPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	level := os.Getenv("TRAEFIK_LOG_LEVEL")
	if level == "" {
		level = "INFO"
	}
	static, err := Render(o.StaticTemplate, StaticData{Port: port, PingPort: pingPort, Dir: o.Dir, LogLevel: level})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "traefik.yml"), []byte(static), 0o644); err != nil {
		return nil, err
	}
	t := &Traefik{Dir: o.Dir, Port: port, PingPort: pingPort, URL: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	if err := t.WriteDynamic(o.Dynamic); err != nil {
		return nil, err
	}
	t.logPath = filepath.Join(o.Dir, "traefik.log")
	logFile, err := os.OpenFile(t.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	t.cmd = exec.Command(o.Binary, "--configFile="+filepath.Join(o.Dir, "traefik.yml"))
	t.cmd.Dir = o.Dir
	t.cmd.Stdout = logFile
	t.cmd.Stderr = logFile
	t.cmd.Env = append(os.Environ(), o.Env...)
	// Its own process group, so Stop reaches every child; and killed with
	// its parent, so a harness that dies never leaves Traefik behind.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		err := t.cmd.Wait()
		logFile.Close()
		t.mu.Lock()
		t.exitErr = err
		t.mu.Unlock()
		close(t.done)
	}()
	pingURL := fmt.Sprintf("http://127.0.0.1:%d/ping", pingPort)
	client := &http.Client{Timeout: 2 * time.Second}
	readyTimeout := o.ReadyTimeout
	if readyTimeout == 0 {
		readyTimeout = 60 * time.Second
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-t.done:
			return nil, fmt.Errorf("harness: Traefik exited early: %w\n%s", t.exitErr, t.Log())
		default:
		}
		if resp, err := client.Get(pingURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Stop()
			return nil, fmt.Errorf("harness: Traefik not ready after %s\n%s", readyTimeout, t.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return t, nil
}

// WriteDynamic replaces the dynamic configuration file atomically; the file
// provider's watch picks the change up.
func (t *Traefik) WriteDynamic(content string) error {
	tmp := filepath.Join(t.Dir, ".dynamic.yml.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(t.Dir, "dynamic.yml"))
}

// Pid is the Traefik process's ID.
func (t *Traefik) Pid() int { return t.cmd.Process.Pid }

// Done is closed when the Traefik process has exited.
func (t *Traefik) Done() <-chan struct{} { return t.done }

// Log returns what Traefik has logged so far.
func (t *Traefik) Log() string {
	b, _ := os.ReadFile(t.logPath)
	return string(b)
}

// Stop ends Traefik: SIGTERM, then SIGKILL after five seconds.
func (t *Traefik) Stop() {
	if t == nil {
		return
	}
	stopGroup(t.cmd, t.done)
}

// stopGroup ends the process group cmd leads: SIGTERM, then SIGKILL after
// five seconds. done is closed when cmd has exited; stopping a process that
// has exited, or never started, does nothing.
func stopGroup(cmd *exec.Cmd, done <-chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// WaitStatus polls url until it answers want, for at most timeout.
func WaitStatus(url string, header http.Header, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	last := 0
	var lastBody string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last, lastBody = resp.StatusCode, string(b)
			if last == want {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("harness: %s answered %d %q, not %d, within %s", url, last, lastBody, want, timeout)
}
