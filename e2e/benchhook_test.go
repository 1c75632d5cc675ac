package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// TestBenchHookCompiles builds the plugin with the benchmark's preload hook
// (testdata/benchhook), as make bench does, so that a change to the
// plugin's internals that the hook uses fails here and not in a bench run.
func TestBenchHookCompiles(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cp := exec.Command("sh", "-c", `cp go.mod go.sum *.go "$1"/ && cp -r vendor internal "$1"/ && rm -f "$1"/*_test.go`, "sh", dir)
	cp.Dir = root
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copying the plugin: %v\n%s", err, out)
	}
	hook, err := os.ReadFile(filepath.Join(root, "e2e", "testdata", "benchhook", "preload_bench.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "preload_bench.go"), hook, 0o600); err != nil {
		t.Fatal(err)
	}
	vet := exec.Command("go", "vet", ".")
	vet.Dir = dir
	vet.Env = append(os.Environ(), "GOFLAGS=-mod=vendor", "GOWORK=off")
	if out, err := vet.CombinedOutput(); err != nil {
		t.Fatalf("the plugin with the bench hook does not build: %v\n%s", err, out)
	}
}
