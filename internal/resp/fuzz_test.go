package resp

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, as go test expects.

// allocBound is what a parse of input may allocate: what readReply allocates
// ahead of the data (eagerBulk once, a few bytes per array header byte),
// never what a length header alone claims.
func allocBound(input []byte) uint64 {
	return eagerBulk + 1<<20 + 1024*uint64(len(input))
}

// allocated runs f and returns how many bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzReadReply: whatever the server sends, readReply never panics, returns
// only the value types it documents, and allocates in proportion to what
// was sent, whatever the length headers claim.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("+OK\r\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		n := allocated(func() {
			r := bufio.NewReader(bytes.NewReader(input))
			for i := 0; i < 64; i++ {
				v, err := readReply(r)
				if err != nil {
					// A type assertion: errors.As on an interpreted
					// error type panics under Yaegi.
					if _, isReply := err.(*Error); !isReply && err != ErrNil { //nolint:errorlint // unwrapped by construction
						return // malformed or cut short: the reply ends here
					}
					continue
				}
				checkValue(t, v)
			}
		})
		if n > allocBound(input) {
			t.Fatalf("%d bytes allocated for a %d-byte reply", n, len(input))
		}
	})
}

// checkValue fails unless v is a string, an int64 or an array of them.
func checkValue(t *testing.T, v interface{}) {
	t.Helper()
	switch v := v.(type) {
	case string, int64, nil:
	case []interface{}:
		for _, item := range v {
			checkValue(t, item)
		}
	default:
		t.Fatalf("readReply returned a %T", v)
	}
}

// FuzzReadStream: whatever the server sends as an XREAD reply, ReadStream
// never panics, never hands scan more than the read buffer or more entries
// than asked for, and allocates in proportion to what was sent.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nd\r\n$2\r\nab\r\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		const size, maxEntries = 64, 8
		c := &Conn{conn: replayConn{bytes.NewReader(input)}, r: bufio.NewReaderSize(bytes.NewReader(input), size), w: bufio.NewWriter(replayConn{}), opts: &Options{}}
		scanned := 0
		scan := func(buf []byte, limit int) (int, int, error) {
			if len(buf) > size || limit <= 0 || limit > maxEntries {
				t.Fatalf("scan given %d bytes, a limit of %d", len(buf), limit)
			}
			pos, n := 0, 0
			for n < limit {
				next := scanEntry(buf, pos)
				if next == Malformed {
					return 0, 0, errors.New("malformed")
				}
				if next == Incomplete {
					break
				}
				pos = next
				n++
			}
			scanned += n
			return pos, n, nil
		}
		var count int
		var id string
		var err error
		n := allocated(func() { count, id, err = c.ReadStream([]string{"XREAD"}, 0, maxEntries, scan) })
		if n > allocBound(input) {
			t.Fatalf("%d bytes allocated for a %d-byte reply", n, len(input))
		}
		switch {
		case errors.Is(err, ErrTooLarge):
			if id == "" || count != scanned+1 {
				t.Fatalf("an oversized entry with ID %q, counted %d after %d", id, count, scanned)
			}
		case err == nil && (count != scanned || count > maxEntries):
			t.Fatalf("%d entries, %d scanned", count, scanned)
		}
	})
}

// scanEntry frames one stream entry, [id, [field, value, ...]], at
// buf[pos:] and returns the position after it, Incomplete or Malformed.
func scanEntry(buf []byte, pos int) int {
	n, p := Header(buf, pos, '*')
	if p < 0 || n != 2 {
		return Framing(p, -1)
	}
	n, p = Header(buf, p, '$')
	if p < 0 || n < 0 || p+n+2 > len(buf) {
		return Framing(p, n)
	}
	fields, p := Header(buf, p+n+2, '*')
	if p < 0 || fields < 0 {
		return Framing(p, -1)
	}
	for f := 0; f < fields; f++ {
		n, p = Header(buf, p, '$')
		if p < 0 || n < 0 || p+n+2 > len(buf) {
			return Framing(p, n)
		}
		p += n + 2
	}
	return p
}

// replayConn is a net.Conn that reads what a server sent and discards
// what is written to it.
type replayConn struct{ r *bytes.Reader }

func (c replayConn) Read(b []byte) (int, error)     { return c.r.Read(b) }
func (replayConn) Write(b []byte) (int, error)      { return len(b), nil }
func (replayConn) Close() error                     { return nil }
func (replayConn) LocalAddr() net.Addr              { return nil }
func (replayConn) RemoteAddr() net.Addr             { return nil }
func (replayConn) SetDeadline(time.Time) error      { return nil }
func (replayConn) SetReadDeadline(time.Time) error  { return nil }
func (replayConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzTopologyReplies: whatever a server sends where a Sentinel's master
// address, ROLE's reply or a MOVED/ASK error is expected, the parsers never
// panic, and a redirect they accept names a slot in range and a host:port.
func FuzzTopologyReplies(f *testing.F) {
	for _, seed := range []string{
		"-MOVED 3999 127.0.0.1:6381\r\n", "-ASK 3999 :6381\r\n", "-READONLY You can't write against a read only replica.\r\n",
		"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", "*-1\r\n", "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n",
		"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:10\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		v, err := readReply(bufio.NewReader(bytes.NewReader(input)))
		if addr, merr := MasterAddr(v, err); merr == nil {
			if _, _, serr := net.SplitHostPort(addr); serr != nil {
				t.Fatalf("MasterAddr accepted %q", addr)
			}
		}
		_, _ = Role(v)
		_ = Code(err)
		if r, ok := ParseRedirect(err, "127.0.0.1:7000"); ok {
			if _, _, serr := net.SplitHostPort(r.Addr); serr != nil || r.Slot < 0 || r.Slot >= Slots {
				t.Fatalf("ParseRedirect accepted %+v", r)
			}
		}
		if s := KeySlot(string(input)); s < 0 || s >= Slots {
			t.Fatalf("KeySlot = %d", s)
		}
	})
}
