package tokenrevocation

// A small RESP2 client on net.Conn and crypto/tls. go-redis v9 does not load
// under Yaegi (measured: "internal/pool/pool.go:190:1: cannot define new
// methods on non-local type struct {}"), so the plugin carries the little it
// needs: dial with timeouts, AUTH and SELECT, one command at a time or
// pipelined, and replies decoded into plain values. Reconnection with backoff
// lives with its callers (replicate.go), which own the connections.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// redisOptions is a parsed Redis configuration.
type redisOptions struct {
	address      string
	username     string
	password     string
	passwordFile string // read at every dial, instead of password
	caFile       string // read at every dial: the roots that verify the server
	db           int
	tls          bool
	tlsSkipCheck bool
	keyPrefix    string
	dialTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	// signer signs and verifies stream records; nil when
	// redis.signingSecret is not set (streamsign.go).
	signer *streamSigner
}

// redisError is an error reply from the server (a RESP "-" line).
type redisError struct{ msg string }

func (e *redisError) Error() string { return "redis: " + e.msg }

// errNil is a RESP null reply, such as XREAD's on a BLOCK timeout.
var errNil = errors.New("redis: nil reply")

// redisConn is one connection to Redis. It is not safe for concurrent use.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	opts *redisOptions
	// skipped counts the stream entries xread skips; nil: not counted.
	skipped *streamSkips
	// check is how xread verifies entries; nil: not at all (tests).
	check *entryCheck
}

// dialRedis connects, authenticates and selects the database.
func dialRedis(opts *redisOptions) (*redisConn, error) {
	dialer := &net.Dialer{Timeout: opts.dialTimeout}
	var conn net.Conn
	var err error
	password, err := opts.readPassword()
	if err != nil {
		return nil, err
	}
	if opts.tls {
		host, _, _ := net.SplitHostPort(opts.address)
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		cfg.InsecureSkipVerify = opts.tlsSkipCheck
		if opts.caFile != "" {
			if cfg.RootCAs, err = readCAFile(opts.caFile); err != nil {
				return nil, err
			}
		}
		conn, err = tls.DialWithDialer(dialer, "tcp", opts.address, cfg)
	} else {
		conn, err = dialer.Dial("tcp", opts.address)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: dial %s: %w", opts.address, err)
	}
	c := &redisConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10), opts: opts}
	if password != "" {
		args := []string{"AUTH", password}
		if opts.username != "" {
			args = []string{"AUTH", opts.username, password}
		}
		if _, err := c.do(args...); err != nil {
			c.close()
			return nil, err
		}
	}
	if opts.db != 0 {
		if _, err := c.do("SELECT", strconv.Itoa(opts.db)); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// readPassword is the password for AUTH: passwordFile's content, read now
// (a rotated secret takes effect at the next connect), else password. Its
// errors never quote the file's content.
func (opts *redisOptions) readPassword() (string, error) {
	if opts.passwordFile == "" {
		return opts.password, nil
	}
	raw, err := os.ReadFile(opts.passwordFile)
	if err != nil {
		return "", fmt.Errorf("redis: reading passwordFile: %w", err)
	}
	password := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if password == "" {
		return "", fmt.Errorf("redis: passwordFile %s is empty", opts.passwordFile)
	}
	return password, nil
}

// readCAFile reads a PEM bundle of CA certificates.
func readCAFile(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the operator's redis.caFile
	if err != nil {
		return nil, fmt.Errorf("redis: reading caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("redis: caFile %s holds no PEM certificate", path)
	}
	return pool, nil
}

func (c *redisConn) close() {
	_ = c.conn.Close()
}

// do sends one command and reads its reply.
func (c *redisConn) do(args ...string) (interface{}, error) {
	replies, err := c.pipeline([][]string{args}, 0)
	if err != nil {
		return nil, err
	}
	if e, ok := replies[0].(error); ok {
		return nil, e
	}
	return replies[0], nil
}

// pipeline sends every command in one write and reads every reply. A reply
// that is a server error is returned in place as an error value. extraWait
// lengthens the read deadline, for blocking commands.
func (c *redisConn) pipeline(cmds [][]string, extraWait time.Duration) ([]interface{}, error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout)); err != nil {
		return nil, err
	}
	for _, args := range cmds {
		writeCommand(c.w, args)
	}
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("redis: write: %w", err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.opts.readTimeout + extraWait)); err != nil {
		return nil, err
	}
	replies := make([]interface{}, len(cmds))
	for i := range cmds {
		v, err := readReply(c.r)
		if err != nil {
			// Type assertion, not errors.As: errors.As on an interpreted
			// error type panics under Yaegi. readReply never wraps these.
			if _, isReply := err.(*redisError); !isReply && err != errNil { //nolint:errorlint // unwrapped by construction
				return nil, err
			}
			replies[i] = err
			continue
		}
		replies[i] = v
	}
	return replies, nil
}

// writeCommand encodes a command as a RESP array of bulk strings.
func writeCommand(w *bufio.Writer, args []string) {
	_, _ = w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		_, _ = w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n")
		_, _ = w.WriteString(a)
		_, _ = w.WriteString("\r\n")
	}
}

// maxBulk bounds one bulk string or array read from the server.
const maxBulk = 512 << 20

// readReply decodes one RESP2 reply: simple strings and bulk strings as
// string, integers as int64, arrays as []interface{}, null as errNil, and an
// error line as *redisError.
func readReply(r *bufio.Reader) (interface{}, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("redis: read: %w", err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, &redisError{msg: body}
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: malformed integer %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("redis: malformed bulk length %q", body)
		}
		if n < 0 {
			return nil, errNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("redis: read: %w", err)
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("redis: malformed array length %q", body)
		}
		if n < 0 {
			return nil, errNil
		}
		items := make([]interface{}, n)
		for i := range items {
			v, err := readReply(r)
			if err != nil && err != errNil { //nolint:errorlint // errNil is a sentinel returned as is
				return nil, err
			}
			items[i] = v
		}
		return items, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", kind)
}
