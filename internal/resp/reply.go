package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// maxBulk bounds one bulk string or array read from the server.
const maxBulk = 512 << 20

// What readReply allocates before the data has arrived: a longer bulk
// string is read as it arrives, a longer array grows as its elements do, so
// that a length header alone never allocates more.
const (
	eagerBulk  = BufferSize
	eagerItems = 64
)

// readReply decodes one RESP2 reply: simple strings and bulk strings as
// string, integers as int64, arrays as []interface{}, null as ErrNil, and an
// error line as *Error.
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
		return nil, &Error{msg: body}
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: malformed integer %q", body)
		}
		return n, nil
	case '$', '*':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			what := "bulk"
			if kind == '*' {
				what = "array"
			}
			return nil, fmt.Errorf("redis: malformed %s length %q", what, body)
		}
		if n < 0 {
			return nil, ErrNil
		}
		if kind == '*' {
			size := n
			if size > eagerItems {
				size = eagerItems
			}
			items := make([]interface{}, 0, size)
			for i := 0; i < n; i++ {
				v, err := readReply(r)
				if err != nil && err != ErrNil { //nolint:errorlint // ErrNil is a sentinel returned as is
					return nil, err
				}
				items = append(items, v)
			}
			return items, nil
		}
		if n+2 <= eagerBulk {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("redis: read: %w", err)
			}
			return string(buf[:n]), nil
		}
		var big bytes.Buffer
		read, err := io.CopyN(&big, r, int64(n+2))
		if err == io.EOF && read > 0 { //nolint:errorlint // io.CopyN returns io.EOF unwrapped
			err = io.ErrUnexpectedEOF // as io.ReadFull says it
		}
		if err != nil {
			return nil, fmt.Errorf("redis: read: %w", err)
		}
		return string(big.Bytes()[:n]), nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", kind)
}
