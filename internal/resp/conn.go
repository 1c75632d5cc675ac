// Package resp is a small RESP2 client for Redis: dial, one command or a pipeline, and XREAD replies read in place.
package resp

// go-redis v9 does not load under Yaegi (measured: "internal/pool/pool.go:190:1:
// cannot define new methods on non-local type struct {}"), so the plugin
// carries the little it needs: dial with timeouts, AUTH and SELECT, one
// command at a time or pipelined, and replies decoded into plain values.
// Reconnection with backoff lives with the callers, which own the
// connections.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// BufferSize is the size of a connection's read and write buffers. A stream
// entry larger than it cannot be read in place (ErrTooLarge).
const BufferSize = 64 << 10

// Options is how to reach one Redis server.
type Options struct {
	// Address is the server's host:port.
	Address string
	// Username is the ACL user AUTH names; "" for the default user.
	Username string
	// Password is AUTH's password; "" and no PasswordFile: no AUTH.
	Password string
	// PasswordFile, when set, is read at every Dial instead of Password, so
	// that a rotated secret takes effect at the next connect.
	PasswordFile string
	// CAFile, with TLS, is a PEM bundle of the roots that verify the server,
	// read at every Dial; "" for the system's roots.
	CAFile string
	// DB is the database SELECTed after AUTH; 0 sends no SELECT.
	DB int
	// TLS dials with crypto/tls, TLS 1.2 or later.
	TLS bool
	// InsecureSkipVerify, with TLS, accepts any server certificate.
	InsecureSkipVerify bool
	// DialTimeout bounds the TCP (and TLS) connect.
	DialTimeout time.Duration
	// ReadTimeout bounds the wait for a reply.
	ReadTimeout time.Duration
	// WriteTimeout bounds the write of a command.
	WriteTimeout time.Duration
}

// Error is an error reply from the server (a RESP "-" line).
type Error struct{ msg string }

// Error returns the server's message, prefixed with "redis: ".
func (e *Error) Error() string { return "redis: " + e.msg }

// ErrNil is a RESP null reply, such as XREAD's on a BLOCK timeout.
var ErrNil = errors.New("redis: nil reply")

// Conn is one connection to Redis. It is not safe for concurrent use.
type Conn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	opts *Options
}

// Dial connects, authenticates and selects the database. Its errors never
// quote the password.
func Dial(opts *Options) (*Conn, error) {
	dialer := &net.Dialer{Timeout: opts.DialTimeout}
	var conn net.Conn
	var err error
	password := opts.Password
	if opts.PasswordFile != "" {
		if password, err = ReadPasswordFile(opts.PasswordFile); err != nil {
			return nil, err
		}
	}
	if opts.TLS {
		host, _, _ := net.SplitHostPort(opts.Address)
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		cfg.InsecureSkipVerify = opts.InsecureSkipVerify
		if opts.CAFile != "" {
			if cfg.RootCAs, err = ReadCAFile(opts.CAFile); err != nil {
				return nil, err
			}
		}
		conn, err = tls.DialWithDialer(dialer, "tcp", opts.Address, cfg)
	} else {
		conn, err = dialer.Dial("tcp", opts.Address)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: dial %s: %w", opts.Address, err)
	}
	c := NewConn(conn, opts)
	if password != "" {
		args := []string{"AUTH", password}
		if opts.Username != "" {
			args = []string{"AUTH", opts.Username, password}
		}
		if _, err := c.Do(args...); err != nil {
			c.Close()
			return nil, err
		}
	}
	if opts.DB != 0 {
		if _, err := c.Do("SELECT", strconv.Itoa(opts.DB)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// NewConn speaks RESP on conn, already connected (and authenticated), with
// opts's timeouts.
func NewConn(conn net.Conn, opts *Options) *Conn {
	return &Conn{conn: conn, r: bufio.NewReaderSize(conn, BufferSize), w: bufio.NewWriterSize(conn, BufferSize), opts: opts}
}

// ReadPasswordFile reads a password from path, less one trailing newline.
// Its errors never quote the file's content.
func ReadPasswordFile(path string) (string, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the operator's redis.passwordFile
	if err != nil {
		return "", fmt.Errorf("redis: reading passwordFile: %w", err)
	}
	password := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if password == "" {
		return "", fmt.Errorf("redis: passwordFile %s is empty", path)
	}
	return password, nil
}

// ReadCAFile reads a PEM bundle of CA certificates.
func ReadCAFile(path string) (*x509.CertPool, error) {
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

// Close closes the connection.
func (c *Conn) Close() {
	_ = c.conn.Close()
}

// Do sends one command and reads its reply: a string, an int64, an
// []interface{}, or, as the error, ErrNil or an *Error.
func (c *Conn) Do(args ...string) (interface{}, error) {
	replies, err := c.Pipeline([][]string{args}, 0)
	if err != nil {
		return nil, err
	}
	if e, ok := replies[0].(error); ok {
		return nil, e
	}
	return replies[0], nil
}

// Pipeline sends every command in one write and reads every reply. A reply
// that is ErrNil or a server error is returned in place as an error value.
// extraWait lengthens the read deadline, for blocking commands.
func (c *Conn) Pipeline(cmds [][]string, extraWait time.Duration) ([]interface{}, error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout)); err != nil {
		return nil, err
	}
	for _, args := range cmds {
		writeCommand(c.w, args)
	}
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("redis: write: %w", err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout + extraWait)); err != nil {
		return nil, err
	}
	replies := make([]interface{}, len(cmds))
	for i := range cmds {
		v, err := readReply(c.r)
		if err != nil {
			// Type assertion, not errors.As: errors.As on an interpreted
			// error type panics under Yaegi. readReply never wraps these.
			if _, isReply := err.(*Error); !isReply && err != ErrNil { //nolint:errorlint // unwrapped by construction
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
