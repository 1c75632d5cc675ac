package tokenrevocation

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestRedisCommands(t *testing.T) {
	srv := startRedis(t)
	c, err := dialRedis(testRedisOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

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
			v, err := c.do(test.args...)
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
	c, err := dialRedis(testRedisOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	cmds := make([][]string, 0, 2000)
	for i := 0; i < 2000; i++ {
		cmds = append(cmds, []string{"RPUSH", "list", strconv.Itoa(i)})
	}
	replies, err := c.pipeline(cmds, 0)
	if err != nil || len(replies) != 2000 || replies[1999] != int64(2000) {
		t.Fatalf("pipeline: %v, %d replies, last %v", err, len(replies), replies[len(replies)-1])
	}
}

func TestRedisAuthAndSelect(t *testing.T) {
	srv := startRedis(t, "--requirepass", "s3cret")
	opts := testRedisOptions(srv.addr())

	if c, err := dialRedis(opts); err == nil {
		_, err = c.do("PING")
		c.close()
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("no password: got %v, want NOAUTH", err)
		}
	}
	opts.password = "wrong"
	if _, err := dialRedis(opts); err == nil {
		t.Fatal("wrong password accepted")
	}
	opts.password = "s3cret"
	opts.db = 3
	c, err := dialRedis(opts)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	defer c.close()
	if _, err := c.do("SET", "in-db-3", "x"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.do("SELECT", "0"); err != nil || v != "OK" {
		t.Fatal(err)
	}
	if _, err := c.do("GET", "in-db-3"); err != errNil { //nolint:errorlint // sentinel
		t.Fatalf("SELECT did not apply: %v", err)
	}
}

func TestRedisServerKilledMidRead(t *testing.T) {
	srv := startRedis(t)
	c, err := dialRedis(testRedisOptions(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	done := make(chan error, 1)
	go func() {
		_, err := c.pipeline([][]string{{"XREAD", "BLOCK", "10000", "STREAMS", "nothing", "$"}}, 10*time.Second)
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
	if _, err := dialRedis(testRedisOptions(srv.addr())); err == nil {
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

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redis-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
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

func TestRedisTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir())
	srv := startTLSRedis(t, certFile, keyFile, "--requirepass", "s3cret")
	opts := testRedisOptions(srv.addr())
	opts.password = "s3cret"
	opts.tls = true

	// A certificate no system root vouches for is refused by default.
	if _, err := dialRedis(opts); err == nil {
		t.Fatal("self-signed certificate accepted without insecureSkipVerify")
	}

	opts.tlsSkipCheck = true
	c, err := dialRedis(opts)
	if err != nil {
		t.Fatalf("TLS with insecureSkipVerify: %v", err)
	}
	defer c.close()
	if v, err := c.do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING over TLS: %v %v", v, err)
	}
}
