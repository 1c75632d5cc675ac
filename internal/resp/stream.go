package resp

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Reading a stream fast. readReply builds a tree of interface values with
// one interpreted call per element, about seven per stream entry: under
// Yaegi that cost more than 30 µs an entry. ReadStream instead hands the
// entries to the caller in the bufio.Reader's own buffer, one call per
// buffer's worth, and the caller parses them in place with Header.

// ErrTooLarge is ReadStream's error for a stream entry larger than the read
// buffer. The entries before it were scanned, and ReadStream returns the
// oversized entry's ID and counts it, so that the caller moves past it; the
// rest of the reply is not read, so the connection must be closed.
var ErrTooLarge = errors.New("redis: stream entry larger than the read buffer")

// A ScanFunc parses whole stream entries, each [id, [field, value, ...]],
// from the start of buf, at most limit of them. It returns the position after
// the last entry it parsed (0 when buf does not hold one whole) and how many
// it parsed; an error ends ReadStream. buf is the connection's read buffer,
// valid only until the ScanFunc returns.
type ScanFunc func(buf []byte, limit int) (int, int, error)

// ReadStream sends args, an XREAD of one stream, and hands its reply's
// entries to scan, as many at a time as the read buffer holds. It returns
// how many entries the reply held, 0 for a nil reply (BLOCK timed out, or
// nothing new), and, with ErrTooLarge, the oversized entry's ID. A reply of
// more than maxEntries entries (XREAD's COUNT) is an error. extraWait
// lengthens the read deadline, for BLOCK.
func (c *Conn) ReadStream(args []string, extraWait time.Duration, maxEntries int, scan ScanFunc) (int, string, error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout)); err != nil {
		return 0, "", err
	}
	writeCommand(c.w, args)
	if err := c.w.Flush(); err != nil {
		return 0, "", fmt.Errorf("redis: write: %w", err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout + extraWait)); err != nil {
		return 0, "", err
	}
	// The outer arrays: one stream, a pair of its name and its entries.
	for _, want := range []int{1, 2} {
		n, err := c.arrayHeader()
		if err != nil || n < 0 {
			return 0, "", err
		}
		if n != want {
			return 0, "", fmt.Errorf("redis: unexpected XREAD reply shape")
		}
	}
	if _, err := readReply(c.r); err != nil { // the stream's name
		return 0, "", err
	}
	total, err := c.arrayHeader()
	if err != nil || total < 0 {
		return 0, "", err
	}
	if total > maxEntries {
		// More than the COUNT asked for: not a reply to this XREAD.
		return 0, "", fmt.Errorf("redis: XREAD returned %d entries", total)
	}
	done := 0
	for done < total {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				return 0, "", fmt.Errorf("redis: read: %w", err)
			}
		}
		buf, _ := c.r.Peek(c.r.Buffered())
		pos, n, err := scan(buf, total-done)
		if err != nil {
			return 0, "", err
		}
		done += n
		_, _ = c.r.Discard(pos)
		if done < total && pos == 0 {
			// Not one whole entry is buffered: read more, unless the
			// buffer is already full.
			if c.r.Buffered() >= c.r.Size() {
				id := entryID(buf)
				if id == "" {
					return 0, "", fmt.Errorf("redis: malformed stream entry")
				}
				return done + 1, id, ErrTooLarge
			}
			if _, err := c.r.Peek(c.r.Buffered() + 1); err != nil {
				return 0, "", fmt.Errorf("redis: read: %w", err)
			}
		}
	}
	return done, "", nil
}

// arrayHeader reads an array header line and returns its length (-1 for a
// null array), or the server's error.
func (c *Conn) arrayHeader() (int, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("redis: read: %w", err)
	}
	if len(line) < 4 || line[len(line)-2] != '\r' {
		return 0, fmt.Errorf("redis: malformed reply line %q", line)
	}
	switch line[0] {
	case '-':
		return 0, &Error{msg: string(line[1 : len(line)-2])}
	case '*':
		n, err := strconv.Atoi(string(line[1 : len(line)-2]))
		if err != nil || n > maxBulk {
			return 0, fmt.Errorf("redis: malformed array length %q", line)
		}
		return n, nil
	}
	return 0, fmt.Errorf("redis: unexpected reply %q", line)
}

// entryID returns the ID of the stream entry at buf[0:], "" when buf does
// not hold it whole.
func entryID(buf []byte) string {
	n, p := Header(buf, 0, '*')
	if p < 0 || n != 2 {
		return ""
	}
	n, p = Header(buf, p, '$')
	if p < 0 || n <= 0 || p+n > len(buf) {
		return ""
	}
	return string(buf[p : p+n])
}

// Positions Header and a ScanFunc's parsers return instead of one in buf.
const (
	Incomplete = -1 // buf ends before the element does: read more
	Malformed  = -2 // the reply cannot be framed
)

// Framing tells, after an element failed to fit, whether it was cut short
// (Incomplete) or is not RESP (Malformed): p is the position Header
// returned and n its length, negative for a null.
func Framing(p, n int) int {
	if p == Malformed || (p >= 0 && n < 0) {
		return Malformed
	}
	return Incomplete
}

// Header reads a RESP header "<kind><int>\r\n" at buf[pos:], such as an
// array's ('*') or a bulk string's ('$'). It returns the integer (-1 for a
// null) and the position after the header, or Incomplete or Malformed.
func Header(buf []byte, pos int, kind byte) (int, int) {
	if pos >= len(buf) {
		return 0, Incomplete
	}
	if buf[pos] != kind {
		return 0, Malformed
	}
	n := 0
	for i := pos + 1; i < len(buf); i++ {
		c := buf[i]
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
			if n > maxBulk {
				return 0, Malformed
			}
		case c == '-' && i == pos+1 && i+1 < len(buf) && buf[i+1] == '1':
			n = -1
			i++
		case c == '\r':
			if i+1 >= len(buf) {
				return 0, Incomplete
			}
			return n, i + 2
		default:
			return 0, Malformed
		}
	}
	return 0, Incomplete
}
