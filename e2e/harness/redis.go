package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Redis is one redis-server process on a loopback port. Its data lives in an
// append-only file in Dir, fsynced on every write, so a restart with Start
// keeps everything it had acknowledged.
type Redis struct {
	// Dir is its working directory: the append-only file and redis.log.
	Dir string
	// Port is the loopback port it listens on, the same across restarts.
	Port int

	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartRedis starts redis-server on a free loopback port with its data in
// dir and returns once it answers PING. extraArgs are added to its command
// line. A missing redis-server is an error: callers fail, they never skip.
func StartRedis(dir string, extraArgs ...string) (*Redis, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Dir: dir, Port: port, logPath: filepath.Join(dir, "redis.log")}
	r.args = append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
	}, extraArgs...)
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Addr is the host:port Redis listens on.
func (r *Redis) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
}

// Log returns what redis-server has logged so far, across restarts.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// Start starts the server on its port and directory, the first time or
// again after Stop, and returns once it answers PING (not LOADING).
func (r *Redis) Start() error {
	if r.cmd != nil {
		return errors.New("harness: redis-server is already running")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("harness: redis-server is required (apt-get install redis-server): %w", err)
	}
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, r.args...)
	cmd.Dir = r.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("harness: starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("harness: redis-server exited early\n%s", r.Log())
		default:
		}
		if c, err := DialRedis(r.Addr()); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("harness: redis-server not answering on %s after 10s\n%s", r.Addr(), r.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: nothing is flushed on the way out, the
// append-only file already holds every acknowledged write) and waits for it
// to exit. Stopping a stopped server does nothing.
func (r *Redis) Stop() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// RedisClient is the least RESP2 client the tests need to write to Redis
// directly: commands sent pipelined in one write, every reply read back.
// It is not safe for concurrent use.
type RedisClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// DialRedis connects to addr.
func DialRedis(addr string) (*RedisClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &RedisClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}, nil
}

// Close closes the connection.
func (c *RedisClient) Close() error { return c.conn.Close() }

// Do sends one command and returns its reply.
func (c *RedisClient) Do(args ...string) (any, error) {
	replies, err := c.Pipeline([][]string{args})
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// Pipeline sends every command in one write, then reads every reply: a
// simple or bulk string as string, an integer as int64, an array as []any, a
// null as nil. The first error reply is returned as the error, after all
// replies have been read.
func (c *RedisClient) Pipeline(cmds [][]string) ([]any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	for _, args := range cmds {
		_, _ = c.w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
		for _, a := range args {
			_, _ = c.w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	replies := make([]any, len(cmds))
	var firstErr error
	for i := range cmds {
		v, err := readReply(c.r)
		var replyErr redisReplyError
		switch {
		case errors.As(err, &replyErr):
			if firstErr == nil {
				firstErr = fmt.Errorf("harness: %s: %w", cmds[i][0], err)
			}
		case err != nil:
			return nil, err
		}
		replies[i] = v
	}
	return replies, firstErr
}

// redisReplyError is an error reply ("-ERR ...") from the server.
type redisReplyError string

func (e redisReplyError) Error() string { return "redis: " + string(e) }

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, redisReplyError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$', '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("redis: malformed length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		if line[0] == '$' {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, err
			}
			return string(buf[:n]), nil
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", line[0])
}
