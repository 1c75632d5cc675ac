package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sentinel is one Redis Sentinel process on a loopback port.
type Sentinel struct {
	// Port is the loopback port it listens on.
	Port int

	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartSentinel starts a Sentinel in dir monitoring master (host:port) as
// name with quorum, declaring it down after downAfter and with
// failoverTimeout, and returns once it answers PING. It runs
// redis-sentinel, or redis-server --sentinel when that is missing.
func StartSentinel(dir, master, name string, quorum int, downAfter, failoverTimeout time.Duration) (*Sentinel, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host, masterPort, err := net.SplitHostPort(master)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s %d\n"+
		"sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s %d\n",
		port, dir, name, host, masterPort, quorum, name, downAfter.Milliseconds(), name, failoverTimeout.Milliseconds())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	bin, args := "redis-sentinel", []string{conf}
	if _, err := exec.LookPath(bin); err != nil {
		bin, args = "redis-server", []string{conf, "--sentinel"}
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("harness: redis-sentinel or redis-server is required (scripts/deps.sh): %w", err)
	}
	s := &Sentinel{Port: port, logPath: filepath.Join(dir, "sentinel.log")}
	s.cmd, s.done, err = startLogged(path, args, dir, s.logPath)
	if err != nil {
		return nil, err
	}
	if err := waitPing(s.Addr(), s.done); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, s.Log())
	}
	return s, nil
}

// Addr is the host:port the Sentinel listens on.
func (s *Sentinel) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Log returns what the Sentinel has logged so far.
func (s *Sentinel) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Stop kills the Sentinel and waits for it to exit.
func (s *Sentinel) Stop() {
	if s == nil || s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// startLogged starts bin with args in dir, its output appended to logPath,
// in a process group of its own that dies with the test process.
func startLogged(bin string, args []string, dir, logPath string) (*exec.Cmd, chan struct{}, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("harness: starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	return cmd, done, nil
}

// waitPing waits up to 10 s for addr to answer PING, or done to close.
func waitPing(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return errors.New("harness: the server exited early")
		default:
		}
		if c, err := DialRedis(addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: %s not answering PING after 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Proxy forwards TCP connections from a loopback port to a target, and can
// drop what the target sends: a replica replicating through it then misses
// the writes its master acknowledged, as it would across a failing network.
type Proxy struct {
	ln       net.Listener
	target   string
	dropping int32
	mu       sync.Mutex
	conns    []net.Conn
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target}
	go p.accept()
	return p, nil
}

// Port is the port the proxy listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Drop makes the proxy discard, from now on, what the target sends.
func (p *Proxy) Drop() { atomic.StoreInt32(&p.dropping, 1) }

// Close stops listening and closes every connection, discarding what was
// in flight.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(out, in)
			_ = out.Close()
		}()
		go p.fromTarget(out, in)
	}
}

// fromTarget copies what the target sends, unless dropping.
func (p *Proxy) fromTarget(out, in net.Conn) {
	defer in.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := out.Read(buf)
		if n > 0 && atomic.LoadInt32(&p.dropping) == 0 {
			if _, werr := in.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// CreateCluster makes a Redis Cluster of nodes (cluster-enabled servers),
// masters only, with redis-cli --cluster create, and waits until every node
// reports it ok.
func CreateCluster(nodes ...*Redis) error {
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("harness: redis-cli --cluster create: %w\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			info, err := redisString(n.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("harness: cluster not ok on %s: %s: %w", n.Addr(), info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Reshard moves count slots from the node from to the node to, with
// redis-cli --cluster reshard (the lowest of from's slots first).
func Reshard(from, to *Redis, count int) error {
	fromID, err := redisString(from.Addr(), "CLUSTER", "MYID")
	if err != nil {
		return err
	}
	toID, err := redisString(to.Addr(), "CLUSTER", "MYID")
	if err != nil {
		return err
	}
	out, err := exec.Command("redis-cli", "--cluster", "reshard", from.Addr(), "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(count), "--cluster-yes").CombinedOutput()
	if err != nil {
		return fmt.Errorf("harness: redis-cli --cluster reshard: %w\n%s", err, out)
	}
	return nil
}

// redisString runs one command on addr and returns its string reply.
func redisString(addr string, args ...string) (string, error) {
	c, err := DialRedis(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	v, err := c.Do(args...)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}
