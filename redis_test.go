package tokenrevocation

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/testcert"
)

// redisServer is a real redis-server on a loopback port, owned by one test.
// A missing redis-server fails the test: .ci/run installs it.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRedis starts redis-server with an append-only file, so a restart
// keeps the data, and stops it when the test ends.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	s := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	s.args = append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"}, extra...)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redis-server is required (apt-get install redis-server): %v", err)
	}
	s.cmd = exec.Command(bin, s.args...)
	s.cmd.Stdout, _ = os.Create(filepath.Join(s.dir, "redis.log"))
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not start on %s", s.addr())
}

// stop kills the server and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func testRedisOptions(addr string) *redisOptions {
	return &redisOptions{address: addr, keyPrefix: "test:", dialTimeout: time.Second, readTimeout: time.Second, writeTimeout: time.Second}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startTLSRedis starts a redis-server that serves TLS only, with the
// certificate certFile (its own CA), stopped when the test ends.
func startTLSRedis(t *testing.T, certFile, keyFile string, extra ...string) *redisServer {
	t.Helper()
	srv := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	srv.args = append([]string{"--port", "0", "--tls-port", strconv.Itoa(srv.port), "--bind", "127.0.0.1", "--dir", srv.dir,
		"--save", "", "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", certFile,
		"--tls-auth-clients", "no", "--daemonize", "no"}, extra...)
	srv.start()
	t.Cleanup(srv.stop)
	return srv
}
