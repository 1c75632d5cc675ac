package traefik37

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// Environment of the helper process (replica_test.go): the test binary run
// again as a second Traefik replica.
const (
	// envReplica names the folder holding the replica's static.yml and
	// dynamic.yml; set, TestMain runs a replica instead of the tests.
	envReplica = "TOKENREVOCATION_T37_REPLICA"
	// envWork is the folder holding plugins-local, the parent's.
	envWork = "TOKENREVOCATION_T37_WORK"
	// listenPrefix starts the line the replica prints once it serves.
	listenPrefix = "TRAEFIK37-LISTEN "
)

// workDir is the folder TestMain made, holding plugins-local; it is the
// working directory while the tests run, as Traefik's is.
var workDir string

// TestMain lays the plugin out as a local plugin in a temporary folder and
// makes it the working directory: Traefik's loader reads local plugins
// from ./plugins-local/ (pkg/plugins.localGoPath), the plugin's at
// ./plugins-local/src/<moduleName>. harness.PluginTree copies the manifest,
// go.mod and go.sum, the non-test Go files of the root package and of
// internal/, and vendor/ there. A copy, not a symlink: every build of a run
// sees the same sources, even while the working tree is being edited.
func TestMain(m *testing.M) {
	if dir := os.Getenv(envReplica); dir != "" {
		os.Exit(runReplica(dir, os.Getenv(envWork)))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "traefik37:", err)
		return 1
	}
	work, err := os.MkdirTemp("", "traefik37-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "traefik37:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if _, err := harness.PluginTree(root, filepath.Join(work, "plugins-local")); err != nil {
		fmt.Fprintln(os.Stderr, "traefik37: plugin tree:", err)
		return 1
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "traefik37:", err)
		return 1
	}
	if err := os.Chdir(work); err != nil {
		fmt.Fprintln(os.Stderr, "traefik37:", err)
		return 1
	}
	defer func() { _ = os.Chdir(wd) }()
	workDir = work
	return m.Run()
}

// runReplica is the helper process: a second Traefik replica, in a process
// of its own so that it shares no in-process denylist with the tests. It
// builds the plugin through the loader from the parent's plugins-local
// with the configurations in dir, serves on a loopback port, prints that
// port's URL and serves until its standard input closes (the parent
// stopping it, or dying).
func runReplica(dir, work string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "traefik37 replica:", err)
		return 2
	}
	if err := os.Chdir(work); err != nil {
		return fail(err)
	}
	static, err := os.ReadFile(filepath.Join(dir, "static.yml"))
	if err != nil {
		return fail(err)
	}
	dyn, err := os.ReadFile(filepath.Join(dir, "dynamic.yml"))
	if err != nil {
		return fail(err)
	}
	b, err := newBuilder(string(static))
	if err != nil {
		return fail(err)
	}
	h, err := buildEdge(context.Background(), b, string(dyn))
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: defaultTimeout}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("%shttp://%s\n", listenPrefix, ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	return 0
}
