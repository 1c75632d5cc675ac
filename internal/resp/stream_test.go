package resp

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// entry is one stream entry as XREAD sends it.
func entry(id string, fields ...string) string {
	s := "*2\r\n$" + strconv.Itoa(len(id)) + "\r\n" + id + "\r\n*" + strconv.Itoa(len(fields)) + "\r\n"
	for _, f := range fields {
		s += "$" + strconv.Itoa(len(f)) + "\r\n" + f + "\r\n"
	}
	return s
}

// xreadReply is XREAD's reply for entries of one stream.
func xreadReply(entries ...string) string {
	return "*1\r\n*2\r\n$6\r\nstream\r\n*" + strconv.Itoa(len(entries)) + "\r\n" + strings.Join(entries, "")
}

func TestReadStream(t *testing.T) {
	tests := []struct {
		desc  string
		reply string
		ids   string // the IDs scanned, in order
		count int
		last  string // with ErrTooLarge: the oversized entry's ID
		err   string
	}{
		{desc: "entries", reply: xreadReply(entry("1-1", "d", "ab"), entry("1-2", "t", "1")), ids: "1-1 1-2", count: 2},
		{desc: "nil reply", reply: "*-1\r\n"},
		{desc: "server error", reply: "-ERR boom\r\n", err: "redis: ERR boom"},
		{desc: "more than asked for", reply: "*1\r\n*2\r\n$6\r\nstream\r\n*9\r\n", err: "redis: XREAD returned 9 entries"},
		{desc: "wrong shape", reply: "*2\r\n", err: "redis: unexpected XREAD reply shape"},
		{desc: "across buffer fills", reply: xreadReply(entry("1-1", "x", strings.Repeat("a", 20)), entry("1-2", "x", strings.Repeat("b", 20)), entry("1-3", "x", "c")), ids: "1-1 1-2 1-3", count: 3},
		{desc: "oversized", reply: xreadReply(entry("1-1", "x", "y"), entry("1-2", "x", strings.Repeat("z", 100)), entry("1-3", "x", "y")), ids: "1-1", count: 2, last: "1-2", err: ErrTooLarge.Error()},
		{desc: "cut short", reply: xreadReply(entry("1-1", "x", "y"))[:40], err: "redis: read: EOF"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a server that sends reply, and a 64-byte read buffer
			c := &Conn{conn: replayConn{}, r: bufio.NewReaderSize(bytes.NewReader([]byte(test.reply)), 64), w: bufio.NewWriter(replayConn{}), opts: &Options{}}
			var ids []string
			scan := func(buf []byte, limit int) (int, int, error) {
				pos, n := 0, 0
				for n < limit {
					next := scanEntry(buf, pos)
					if next < 0 {
						break
					}
					_, p := Header(buf, pos, '*')
					size, p := Header(buf, p, '$')
					ids = append(ids, string(buf[p:p+size]))
					pos = next
					n++
				}
				return pos, n, nil
			}
			// when it is read
			count, last, err := c.ReadStream([]string{"XREAD", "COUNT", "8", "STREAMS", "stream", "0-0"}, 0, 8, scan)
			// then every entry is scanned once, in order, and counted
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != test.err || count != test.count || last != test.last || strings.Join(ids, " ") != test.ids {
				t.Fatalf("got %d %q %q, IDs %q; want %d %q %q, IDs %q", count, last, got, ids, test.count, test.last, test.err, test.ids)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		in   string
		kind byte
		n    int
		next int
	}{
		{"*2\r\n", '*', 2, 4},
		{"$-1\r\n", '$', -1, 5},
		{"$12", '$', 0, Incomplete},
		{"$12\r", '$', 0, Incomplete},
		{"", '$', 0, Incomplete},
		{"+OK\r\n", '$', 0, Malformed},
		{"$1x\r\n", '$', 0, Malformed},
		{"$536870913\r\n", '$', 0, Malformed},
	}
	for _, test := range tests {
		if n, next := Header([]byte(test.in), 0, test.kind); n != test.n || next != test.next {
			t.Errorf("Header(%q, %q) = %d, %d; want %d, %d", test.in, test.kind, n, next, test.n, test.next)
		}
	}
}
