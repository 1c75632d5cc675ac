package resp

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/testcert"
)

// redisServer is a real redis-server on a loopback port, owned by one test.
// A missing redis-server fails the test: .ci/run installs it. (The root
// package's tests have a fuller one, with restarts and an append-only file.)
type redisServer struct {
	port int
	cmd  *exec.Cmd
}

// startRedis starts redis-server with args, and stops it when the test ends.
func startRedis(t *testing.T, args ...string) *redisServer {
	t.Helper()
	return serveRedis(t, []string{"--port"}, args)
}

// startTLSRedis starts a redis-server that serves TLS only, with the
// certificate certFile (its own CA), stopped when the test ends.
func startTLSRedis(t *testing.T, certFile, keyFile string, extra ...string) *redisServer {
	t.Helper()
	return serveRedis(t, []string{"--port", "0", "--tls-port"}, append([]string{"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}, extra...))
}

// serveRedis starts redis-server on a free port, named by the last of
// portFlags, with args.
func serveRedis(t *testing.T, portFlags, args []string) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{port: ln.Addr().(*net.TCPAddr).Port}
	_ = ln.Close()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	all := append(append([]string{}, portFlags...), strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--daemonize", "no")
	s.cmd = exec.Command(bin, append(all, args...)...)
	s.cmd.Stdout, _ = os.Create(filepath.Join(dir, "redis.log"))
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server did not start on %s", s.addr())
	return nil
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// stop kills the server and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func testOptions(addr string) *Options {
	return &Options{Address: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
}

func TestRedisCommands(t *testing.T) {
	srv := startRedis(t)
	c, err := Dial(testOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tests := []struct {
		desc string
		args []string
		exp  string
	}{
		{desc: "simple string", args: []string{"PING"}, exp: "PONG"},
		{desc: "set", args: []string{"SET", "k", "v\r\nwith crlf"}, exp: "OK"},
		{desc: "bulk string", args: []string{"GET", "k"}, exp: "v\r\nwith crlf"},
		{desc: "integer", args: []string{"INCR", "n"}, exp: "1"},
		{desc: "null", args: []string{"GET", "missing"}, exp: "redis: nil reply"},
		{desc: "error", args: []string{"NOSUCHCOMMAND"}, exp: "redis: ERR unknown command"},
		{desc: "array", args: []string{"XADD", "s", "1-1", "d", "ab"}, exp: "1-1"},
		{desc: "nested arrays", args: []string{"XRANGE", "s", "-", "+"}, exp: "[[1-1 [d ab]]]"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			v, err := c.Do(test.args...)
			got := fmt.Sprint(v)
			if err != nil {
				got = err.Error()
			}
			if !strings.HasPrefix(got, test.exp) {
				t.Fatalf("got %q, want %q", got, test.exp)
			}
		})
	}
}

func TestRedisPipeline(t *testing.T) {
	srv := startRedis(t)
	c, err := Dial(testOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmds := make([][]string, 0, 2000)
	for i := 0; i < 2000; i++ {
		cmds = append(cmds, []string{"RPUSH", "list", strconv.Itoa(i)})
	}
	replies, err := c.Pipeline(cmds, 0)
	if err != nil || len(replies) != 2000 || replies[1999] != int64(2000) {
		t.Fatalf("pipeline: %v, %d replies, last %v", err, len(replies), replies[len(replies)-1])
	}
}

func TestRedisAuthAndSelect(t *testing.T) {
	srv := startRedis(t, "--requirepass", "s3cret")
	opts := testOptions(srv.addr())

	if c, err := Dial(opts); err == nil {
		_, err = c.Do("PING")
		c.Close()
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("no password: got %v, want NOAUTH", err)
		}
	}
	opts.Password = "wrong"
	if _, err := Dial(opts); err == nil {
		t.Fatal("wrong password accepted")
	}
	opts.Password = "s3cret"
	opts.DB = 3
	c, err := Dial(opts)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "in-db-3", "x"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Do("SELECT", "0"); err != nil || v != "OK" {
		t.Fatal(err)
	}
	if _, err := c.Do("GET", "in-db-3"); err != ErrNil { //nolint:errorlint // sentinel
		t.Fatalf("SELECT did not apply: %v", err)
	}
}

func TestRedisServerKilledMidRead(t *testing.T) {
	srv := startRedis(t)
	c, err := Dial(testOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Pipeline([][]string{{"XREAD", "BLOCK", "10000", "STREAMS", "nothing", "$"}}, 10*time.Second)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)

	srv.stop()

	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read from a killed server returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read from a killed server still blocked after 5s")
	}
	if _, err := Dial(testOptions(srv.addr())); err == nil {
		t.Fatal("dial to a stopped server succeeded")
	}
}

func TestReadReplyMalformed(t *testing.T) {
	for _, in := range []string{"?x\r\n", "$abc\r\n", ":12x\r\n", "+no-crlf\n", "$5\r\nab", "*2\r\n:1\r\n"} {
		if _, err := readReply(bufioReader(in)); err == nil {
			t.Errorf("readReply(%q): no error", in)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestRedisTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir())
	srv := startTLSRedis(t, certFile, keyFile, "--requirepass", "s3cret")
	opts := testOptions(srv.addr())
	opts.Password = "s3cret"
	opts.TLS = true

	// A certificate no system root vouches for is refused by default.
	if _, err := Dial(opts); err == nil {
		t.Fatal("self-signed certificate accepted without insecureSkipVerify")
	}

	opts.InsecureSkipVerify = true
	c, err := Dial(opts)
	if err != nil {
		t.Fatalf("TLS with insecureSkipVerify: %v", err)
	}
	defer c.Close()
	if v, err := c.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING over TLS: %v %v", v, err)
	}
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
