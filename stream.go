package tokenrevocation

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/limit"
)

// Reading the revocation stream fast. A new replica reads the whole stream
// before it can prove any token unrevoked, so this is on the cold-start
// path. readReply builds a tree of interface values with one interpreted
// call per element, about seven per entry: under Yaegi that cost more than
// 30 µs an entry. readXRead instead parses an XREAD reply in place, in the
// bufio.Reader's own buffer, with one interpreted call per entry and one
// compiled call (hex.Decode) per revocation.

// errTooLarge is returned for a stream entry larger than the read buffer,
// with what was read before it and, as the last ID, the oversized entry's
// own: the reader counts it, moves past it and reconnects (the rest of the
// reply is not read), so that one entry no record can be never stops
// replication.
var errTooLarge = errors.New("redis: stream entry larger than the read buffer")

// entryID returns the ID of the stream entry at buf[0:], "" when buf does
// not hold it whole.
func entryID(buf []byte) string {
	n, p := respHeader(buf, 0, '*')
	if p < 0 || n != 2 {
		return ""
	}
	n, p = respHeader(buf, p, '$')
	if p < 0 || n <= 0 || p+n > len(buf) {
		return ""
	}
	return string(buf[p : p+n])
}

// xread sends one XREAD for one stream and parses its reply. It returns the
// revocations read, the last entry ID (or "" when there was none) and the
// number of entries, malformed and other record types included, so the
// reader moves past them. A nil reply (BLOCK timed out, or nothing new) is
// zero entries.
func (c *redisConn) xread(args []string, extraWait time.Duration) ([]revocation, []extension, string, int, error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout)); err != nil {
		return nil, nil, "", 0, err
	}
	writeCommand(c.w, args)
	if err := c.w.Flush(); err != nil {
		return nil, nil, "", 0, fmt.Errorf("redis: write: %w", err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.opts.readTimeout + extraWait)); err != nil {
		return nil, nil, "", 0, err
	}
	// The outer arrays: one stream, a pair of its name and its entries.
	for _, want := range []int{1, 2} {
		n, err := c.arrayHeader()
		if err != nil || n < 0 {
			return nil, nil, "", 0, err
		}
		if n != want {
			return nil, nil, "", 0, fmt.Errorf("redis: unexpected XREAD reply shape")
		}
	}
	if _, err := readReply(c.r); err != nil { // the stream's name
		return nil, nil, "", 0, err
	}
	total, err := c.arrayHeader()
	if err != nil || total < 0 {
		return nil, nil, "", 0, err
	}
	if total > readBatch {
		// More than the COUNT asked for: not a reply to this XREAD.
		return nil, nil, "", 0, fmt.Errorf("redis: XREAD returned %d entries", total)
	}
	// The fast path reads unsigned revocations only: a reader that checks
	// signatures, or that must notice a signed entry, parses every entry.
	// (Without a signer, the fast path's exact layouts never match a
	// signed entry: its s field sends it to parseStreamEntry.)
	fast := c.check == nil || c.check.signer == nil
	recs := make([]revocation, 0, total)
	var exts []extension
	var ext extension
	lastID := ""
	done := 0
	var rec revocation
	for done < total {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				return nil, nil, "", 0, fmt.Errorf("redis: read: %w", err)
			}
		}
		buf, _ := c.r.Peek(c.r.Buffered())
		pos := 0
		idStart, idEnd := 0, 0
		for done < total {
			// The fast path, inline: under Yaegi each interpreted call
			// costs about 5 µs, more than all of this. A revocation as
			// every release writes it is
			// *2 $<n> <id> *4 $1 d $64 <hex> $1 e $<m> <ms>, CRLF after each.
			next := incomplete
			p := pos + 5
			n := 0
			for p < len(buf) && buf[p] >= '0' && buf[p] <= '9' && n < 1<<20 {
				n = n*10 + int(buf[p]-'0')
				p++
			}
			start := p + 2
			p = start + n + 2
			// The layout "*4\r\n$1\r\nd\r\n$64\r\n" is checked at the bytes
			// that tell it from any other: cheaper than a compiled call.
			// *6 or *8 add the confirmation time ($1 a $<m> <ms>) and the
			// pre-check key ($1 k $16 <hex>), in that order.
			extra := 0
			if p+1 < len(buf) && (buf[p+1] == '6' || buf[p+1] == '8') {
				extra = int(buf[p+1]-'4') / 2
			}
			rec.keyN = 0
			rec.at = 0
			rec.client = limit.Key{}
			if fast && pos+5 <= len(buf) && buf[pos] == '*' && buf[pos+1] == '2' && buf[pos+4] == '$' &&
				p+len(revocationLayout)+2*sha256.Size+len(expiryLayout) <= len(buf) &&
				buf[p] == '*' && (buf[p+1] == '4' || extra > 0) && buf[p+2] == '\r' && buf[p+4] == '$' && buf[p+5] == '1' &&
				buf[p+8] == 'd' && buf[p+11] == '$' && buf[p+12] == '6' && buf[p+13] == '4' && buf[p+14] == '\r' {
				p += len(revocationLayout)
				_, err := hex.Decode(rec.digest[:], buf[p:p+2*sha256.Size])
				p += 2 * sha256.Size
				// Then \r\n$1\r\ne\r\n$<m>\r\n<ms>\r\n, checked byte by byte:
				// cheaper here than a compiled call.
				if err == nil && buf[p] == '\r' && buf[p+2] == '$' && buf[p+3] == '1' && buf[p+6] == 'e' && buf[p+9] == '$' {
					p += len(expiryLayout)
					m := 0
					for p < len(buf) && buf[p] >= '0' && buf[p] <= '9' && m < 1<<20 {
						m = m*10 + int(buf[p]-'0')
						p++
					}
					end := p + 2 + m
					if m > 0 && m < 19 && end+2 <= len(buf) && buf[end] == '\r' {
						ms, err := strconv.ParseInt(string(buf[p+2:end]), 10, 64)
						after := end + 2
						// Then, stamped: $1\r\na\r\n$<m>\r\n<ms>\r\n.
						if err == nil && extra > 0 && after+10 <= len(buf) && buf[after] == '$' && buf[after+1] == '1' && buf[after+4] == 'a' && buf[after+7] == '$' {
							q := after + 8
							m := 0
							for q < len(buf) && buf[q] >= '0' && buf[q] <= '9' && m < 1<<20 {
								m = m*10 + int(buf[q]-'0')
								q++
							}
							stop := q + 2 + m
							err = errIncompleteKey
							if m > 0 && m < 19 && stop+2 <= len(buf) && buf[stop] == '\r' {
								var at int64
								at, err = strconv.ParseInt(string(buf[q+2:stop]), 10, 64)
								if at < 0 || at > maxStreamMs {
									err = errIncompleteKey // the full parser skips it
								}
								rec.at = at * int64(time.Millisecond)
								after = stop + 2
								extra--
							}
						}
						// Then, keyed: $1\r\nk\r\n$16\r\n<16 hex>\r\n.
						if err == nil && extra > 1 {
							err = errIncompleteKey
						}
						if err == nil && extra == 1 {
							k := after + len(keyLayout)
							if err == nil && k+2*keyLen+2 <= len(buf) && buf[after] == '$' && buf[after+4] == 'k' && buf[after+7] == '$' &&
								buf[after+8] == '1' && buf[after+9] == '6' && buf[k+2*keyLen] == '\r' {
								_, err = hex.Decode(rec.key[:], buf[k:k+2*keyLen])
								rec.keyN = keyLen
								after = k + 2*keyLen + 2
							} else {
								err = errIncompleteKey
							}
						}
						if err == nil && ms > 0 && ms <= maxStreamMs {
							rec.expiry = ms * int64(time.Millisecond)
							recs = append(recs, rec)
							next = after
							idStart, idEnd = start, start+n
						}
					}
				}
			}
			if next < 0 {
				// Anything else: another record type, a malformed one, or
				// an entry cut short by the end of the buffer.
				var id string
				var status int
				next, id, status = parseStreamEntry(buf, pos, &rec, &ext, c.check)
				if next == malformed {
					return nil, nil, "", 0, fmt.Errorf("redis: malformed stream entry")
				}
				if next == incomplete {
					break
				}
				if status == entrySigned {
					return nil, nil, "", 0, errSignedStream
				}
				if status == entryUnverified && c.skipped != nil {
					atomic.AddInt64(&c.skipped.Unverified, 1)
				}
				if status == entryMalformed && c.skipped != nil {
					atomic.AddInt64(&c.skipped.Malformed, 1)
				}
				if status == entryRevocation {
					recs = append(recs, rec)
				}
				if status == entryExtension {
					ext.pos = len(recs)
					exts = append(exts, ext)
				}
				lastID = id
				idStart, idEnd = 0, 0
			}
			pos = next
			done++
		}
		if idEnd > idStart {
			lastID = string(buf[idStart:idEnd])
		}
		_, _ = c.r.Discard(pos)
		if done < total && pos == 0 {
			// Not one whole entry is buffered: read more, unless the
			// buffer is already full.
			if c.r.Buffered() >= c.r.Size() {
				buf, _ := c.r.Peek(c.r.Buffered())
				id := entryID(buf)
				if id == "" {
					return nil, nil, "", 0, fmt.Errorf("redis: malformed stream entry")
				}
				return recs, exts, id, done + 1, errTooLarge
			}
			if _, err := c.r.Peek(c.r.Buffered() + 1); err != nil {
				return nil, nil, "", 0, fmt.Errorf("redis: read: %w", err)
			}
		}
	}
	return recs, exts, lastID, done, nil
}

// The fixed parts of a revocation entry after its ID: the fields array, d
// and the digest's length; then, after the digest, e and the start of the
// expiry's length.
var (
	revocationLayout = []byte("*4\r\n$1\r\nd\r\n$64\r\n")
	expiryLayout     = []byte("\r\n$1\r\ne\r\n$")
	keyLayout        = []byte("$1\r\nk\r\n$16\r\n")
	// errIncompleteKey sends a keyed entry the fast path cannot read whole
	// to parseStreamEntry.
	errIncompleteKey = errors.New("incomplete key")
)

// arrayHeader reads an array header line and returns its length (-1 for a
// null array), or the server's error.
func (c *redisConn) arrayHeader() (int, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("redis: read: %w", err)
	}
	if len(line) < 4 || line[len(line)-2] != '\r' {
		return 0, fmt.Errorf("redis: malformed reply line %q", line)
	}
	switch line[0] {
	case '-':
		return 0, &redisError{msg: string(line[1 : len(line)-2])}
	case '*':
		n, err := strconv.Atoi(string(line[1 : len(line)-2]))
		if err != nil || n > maxBulk {
			return 0, fmt.Errorf("redis: malformed array length %q", line)
		}
		return n, nil
	}
	return 0, fmt.Errorf("redis: unexpected reply %q", line)
}

// What parseStreamEntry found.
const (
	entryRevocation = iota // a revocation, decoded into rec
	entryExtension         // a record of a known type, decoded into ext
	entryOther             // a well-formed entry of a type this release does not know, skipped
	entryMalformed         // an entry whose fields are not a valid record, skipped
	entryUnverified        // with a signer: an entry whose signature does not verify, skipped
	entrySigned            // without a signer: a signed entry, which stops the reader
)

// An entryCheck is what parseStreamEntry verifies entries with: the
// stream's key and its signer, nil when records are not signed.
type entryCheck struct {
	stream string
	signer *streamSigner
}

// parseStreamEntry parses one stream entry, [id, [field, value, ...]], at
// buf[pos:]. It returns the position after it (incomplete when buf ends
// first, malformed when the reply cannot be framed), the entry's ID and what
// it found. An entry with fields d (64 hex digits) and e (Unix ms) and no t
// is a revocation; record.go describes the format. With check's signer, an
// entry whose s field does not verify is entryUnverified; without one, an
// entry with an s field is entrySigned (streamsign.go). check nil is
// neither.
func parseStreamEntry(buf []byte, pos int, rec *revocation, ext *extension, check *entryCheck) (int, string, int) {
	n, p := respHeader(buf, pos, '*')
	if p < 0 {
		return p, "", entryMalformed
	}
	if n != 2 {
		return malformed, "", entryMalformed
	}
	n, p = respHeader(buf, p, '$')
	if p < 0 || n < 0 || p+n+2 > len(buf) {
		return framing(p, n), "", entryMalformed
	}
	id := string(buf[p : p+n])
	p += n + 2
	fields, p := respHeader(buf, p, '*')
	if p < 0 || fields%2 == 1 {
		return framing(p, -1), "", entryMalformed
	}
	haveDigest, haveExpiry, typed := false, false, false
	badStamp := false // an a field that is not a time in range
	rec.keyN = 0
	rec.at = 0
	rec.client = limit.Key{}
	var typ, version, payload, sig []byte
	var signed [][]byte
	for f := 0; f < fields; f += 2 {
		n, p = respHeader(buf, p, '$')
		if p < 0 || n < 0 || p+n+2 > len(buf) {
			return framing(p, n), "", entryMalformed
		}
		name := buf[p : p+n]
		p += n + 2
		n, p = respHeader(buf, p, '$')
		if p < 0 || n < 0 || p+n+2 > len(buf) {
			return framing(p, n), "", entryMalformed
		}
		value := buf[p : p+n]
		p += n + 2
		if len(name) == 1 && name[0] == 's' {
			sig = value
			continue
		}
		if check != nil && check.signer != nil {
			signed = append(signed, name, value)
		}
		if len(name) != 1 {
			continue
		}
		switch name[0] {
		case 'd':
			haveDigest = len(value) == 2*len(rec.digest)
			if haveDigest {
				_, err := hex.Decode(rec.digest[:], value)
				haveDigest = err == nil
			}
		case 'e':
			ms := int64(0)
			haveExpiry = len(value) > 0 && len(value) < 19
			for i := 0; haveExpiry && i < len(value); i++ {
				c := value[i]
				haveExpiry = c >= '0' && c <= '9'
				ms = ms*10 + int64(c-'0')
			}
			haveExpiry = haveExpiry && ms > 0 && ms <= maxStreamMs
			rec.expiry = ms * int64(time.Millisecond)
		case 't':
			typed = true
			typ = value
		case 'v':
			version = value
		case 'x':
			payload = value
		case 'c':
			if len(value) == 2*len(rec.client) {
				if _, err := hex.Decode(rec.client[:], value); err != nil {
					rec.client = limit.Key{}
				}
			}
		case 'a':
			ms := int64(0)
			ok := len(value) > 0 && len(value) < 19
			for i := 0; ok && i < len(value); i++ {
				c := value[i]
				ok = c >= '0' && c <= '9'
				ms = ms*10 + int64(c-'0')
			}
			if ok && ms <= maxStreamMs {
				rec.at = ms * int64(time.Millisecond)
			} else {
				badStamp = true
			}
		case 'k':
			rec.keyN = 0
			if len(value) == 2*keyLen {
				if _, err := hex.Decode(rec.key[:], value); err == nil {
					rec.keyN = keyLen
				}
			}
		}
	}
	if check != nil && check.signer != nil && !check.signer.verify(check.stream, id, signed, sig) {
		return p, id, entryUnverified
	}
	if check != nil && check.signer == nil && sig != nil {
		return p, id, entrySigned
	}
	status := entryMalformed
	switch {
	case typed && len(typ) == 1 && len(version) == 1 && knownExtension(typ[0]-'0'):
		status = entryOther
		if decoded, err := hex.DecodeString(string(payload)); err == nil {
			ext.typ, ext.version, ext.payload = typ[0]-'0', version[0]-'0', decoded
			status = entryExtension
		}
	case typed:
		status = entryOther
	case haveDigest && haveExpiry && !badStamp:
		status = entryRevocation
	}
	return p, id, status
}

// maxStreamMs is the largest time in milliseconds a stream field may carry:
// past it, the time in nanoseconds would overflow an int64 (year 2262).
const maxStreamMs = int64(1<<63-1) / int64(time.Millisecond)

// Positions parseStreamEntry and respHeader return instead of one in buf.
const (
	incomplete = -1 // buf ends before the element does: read more
	malformed  = -2 // the reply cannot be framed
)

// framing tells, after an element failed to fit, whether it was cut short
// (incomplete) or is not RESP (malformed): p is the position respHeader
// returned and n its length, negative for a null.
func framing(p, n int) int {
	if p == malformed || (p >= 0 && n < 0) {
		return malformed
	}
	return incomplete
}

// respHeader reads a RESP header "<kind><int>\r\n" at buf[pos:]. It returns
// the integer (-1 for a null) and the position after the header, or
// incomplete or malformed.
func respHeader(buf []byte, pos int, kind byte) (int, int) {
	if pos >= len(buf) {
		return 0, incomplete
	}
	if buf[pos] != kind {
		return 0, malformed
	}
	n := 0
	for i := pos + 1; i < len(buf); i++ {
		c := buf[i]
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
			if n > maxBulk {
				return 0, malformed
			}
		case c == '-' && i == pos+1 && i+1 < len(buf) && buf[i+1] == '1':
			n = -1
			i++
		case c == '\r':
			if i+1 >= len(buf) {
				return 0, incomplete
			}
			return n, i + 2
		default:
			return 0, malformed
		}
	}
	return 0, incomplete
}
