package replica

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// The stream's entry format, written (appendRevocation, appendExtension)
// and read (entryReader.scan, parseStreamEntry) here, side by side. Each
// entry's fields, as XADD gets them and XREAD returns them:
//
//   - a revocation: d, the token's SHA-256 digest in hex (64 digits), and
//     e, its expiry in Unix milliseconds; then, when known, a, the
//     confirmation time in Unix milliseconds (lifetime.go at the root), k,
//     the pre-check key in hex (16 digits), and c, the client's limiter
//     tag in hex (32 digits). A release that does not know a, k or c reads
//     d and e and ignores them.
//   - a record of another type (internal/record: a grant, a logout, a
//     tombstone): t and v, its type and version as decimal digits, and x,
//     the record's encoding in hex. A release skips a type it does not know.
//   - with a signing secret, every entry ends with s, its signature (sign.go).
//
// Times are in milliseconds up to maxStreamMs; anything else is skipped and
// counted as malformed.

// appendRevocation appends the XADD fields of rec to cmd.
func appendRevocation(cmd []string, rec *record.Revocation) []string {
	cmd = append(cmd, "d", hex.EncodeToString(rec.Digest[:]), "e", strconv.FormatInt(rec.Expiry/int64(time.Millisecond), 10))
	if rec.At > 0 {
		// The confirmation time; the previous release reads d and e and
		// ignores a.
		cmd = append(cmd, "a", strconv.FormatInt(rec.At/int64(time.Millisecond), 10))
	}
	if rec.KeyN == record.KeyLen {
		// The pre-check key; the previous release reads d and e and
		// ignores k.
		cmd = append(cmd, "k", hex.EncodeToString(rec.Key[:]))
	}
	if rec.Client != record.NoClient {
		// The client's limiter tag: every replica counts the entry
		// against the client's share (internal/limit). Older releases
		// ignore it.
		cmd = append(cmd, "c", hex.EncodeToString(rec.Client[:]))
	}
	return cmd
}

// appendExtension appends the XADD fields of ext, a typed record, to cmd:
// t and v name the type and version, x carries the record, hex-encoded.
func appendExtension(cmd []string, ext *record.Extension) []string {
	return append(cmd, "t", strconv.Itoa(int(ext.Type)), "v", strconv.Itoa(int(ext.Version)), "x", hex.EncodeToString(ext.Payload))
}

// Reading the revocation stream fast. A new replica reads the whole stream
// before it can prove any token unrevoked, so this is on the cold-start
// path. resp.ReadStream hands the reply's entries over in the read buffer,
// and scan parses them in place, with one interpreted call per entry and one
// compiled call (hex.Decode) per revocation.

// ReadEntries sends args, an XREAD of one stream, on c and decodes its
// reply as the reader does, without checking signatures or counting what
// it skips: the revocations, and the records of other types.
func ReadEntries(c *resp.Conn, args []string) ([]record.Revocation, []record.Extension, error) {
	recs, exts, _, _, err := (&entryReader{}).xread(c, args, 0)
	return recs, exts, err
}

// An entryReader decodes the entries of XREAD replies into records.
type entryReader struct {
	// check is how entries are verified; nil: not at all (tests).
	check *entryCheck
	// skipped counts the entries skipped; nil: not counted.
	skipped *Skips

	// Of the read in progress.
	recs   []record.Revocation
	exts   []record.Extension
	lastID string
}

// xread sends one XREAD for one stream and parses its reply. It returns the
// revocations read, the last entry ID (or "" when there was none) and the
// number of entries, malformed and other record types included, so the
// reader moves past them. A nil reply (BLOCK timed out, or nothing new) is
// zero entries. With resp.ErrTooLarge, it returns what was read before the
// oversized entry and, as the last ID, the oversized entry's own: the
// reader counts it, moves past it and reconnects, so that one entry no
// record can be never stops replication.
func (e *entryReader) xread(c *resp.Conn, args []string, extraWait time.Duration) ([]record.Revocation, []record.Extension, string, int, error) {
	e.recs = nil
	e.exts = nil
	e.lastID = ""
	count, oversized, err := c.ReadStream(args, extraWait, readBatch, e.scan)
	if err == resp.ErrTooLarge { //nolint:errorlint // a sentinel returned as is
		return e.recs, e.exts, oversized, count, err
	}
	if err != nil {
		return nil, nil, "", 0, err
	}
	return e.recs, e.exts, e.lastID, count, nil
}

// scan is xread's resp.ScanFunc: it parses up to limit entries at buf[0:].
func (e *entryReader) scan(buf []byte, limit int) (int, int, error) {
	if e.recs == nil {
		e.recs = make([]record.Revocation, 0, limit)
	}
	// The fast path reads unsigned revocations only: a reader that checks
	// signatures, or that must notice a signed entry, parses every entry.
	// (Without a signer, the fast path's exact layouts never match a
	// signed entry: its s field sends it to parseStreamEntry.)
	fast := e.check == nil || e.check.signer == nil
	recs := e.recs
	var rec record.Revocation
	var ext record.Extension
	pos := 0
	done := 0
	idStart, idEnd := 0, 0
	for done < limit {
		// The fast path, inline: under Yaegi each interpreted call
		// costs about 5 µs, more than all of this. A revocation as
		// every release writes it is
		// *2 $<n> <id> *4 $1 d $64 <hex> $1 e $<m> <ms>, CRLF after each.
		next := resp.Incomplete
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
		rec.KeyN = 0
		rec.At = 0
		rec.Client = record.NoClient
		if fast && pos+5 <= len(buf) && buf[pos] == '*' && buf[pos+1] == '2' && buf[pos+4] == '$' &&
			p+len(revocationLayout)+2*sha256.Size+len(expiryLayout) <= len(buf) &&
			buf[p] == '*' && (buf[p+1] == '4' || extra > 0) && buf[p+2] == '\r' && buf[p+4] == '$' && buf[p+5] == '1' &&
			buf[p+8] == 'd' && buf[p+11] == '$' && buf[p+12] == '6' && buf[p+13] == '4' && buf[p+14] == '\r' {
			p += len(revocationLayout)
			_, err := hex.Decode(rec.Digest[:], buf[p:p+2*sha256.Size])
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
							rec.At = at * int64(time.Millisecond)
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
						if err == nil && k+2*record.KeyLen+2 <= len(buf) && buf[after] == '$' && buf[after+4] == 'k' && buf[after+7] == '$' &&
							buf[after+8] == '1' && buf[after+9] == '6' && buf[k+2*record.KeyLen] == '\r' {
							_, err = hex.Decode(rec.Key[:], buf[k:k+2*record.KeyLen])
							rec.KeyN = record.KeyLen
							after = k + 2*record.KeyLen + 2
						} else {
							err = errIncompleteKey
						}
					}
					if err == nil && ms > 0 && ms <= maxStreamMs {
						rec.Expiry = ms * int64(time.Millisecond)
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
			next, id, status = parseStreamEntry(buf, pos, &rec, &ext, e.check)
			if next == resp.Malformed {
				return 0, 0, fmt.Errorf("redis: malformed stream entry")
			}
			if next == resp.Incomplete {
				break
			}
			if status == entrySigned {
				return 0, 0, errSignedStream
			}
			if status == entryUnverified && e.skipped != nil {
				atomic.AddInt64(&e.skipped.Unverified, 1)
			}
			if status == entryMalformed && e.skipped != nil {
				atomic.AddInt64(&e.skipped.Malformed, 1)
			}
			if status == entryRevocation {
				recs = append(recs, rec)
			}
			if status == entryExtension {
				ext.Pos = len(recs)
				e.exts = append(e.exts, ext)
			}
			e.lastID = id
			idStart, idEnd = 0, 0
		}
		pos = next
		done++
	}
	if idEnd > idStart {
		e.lastID = string(buf[idStart:idEnd])
	}
	e.recs = recs
	return pos, done, nil
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
	signer *Signer
}

// parseStreamEntry parses one stream entry, [id, [field, value, ...]], at
// buf[pos:]. It returns the position after it (resp.Incomplete when buf
// ends first, resp.Malformed when the reply cannot be framed), the entry's ID and what
// it found. An entry with fields d (64 hex digits) and e (Unix ms) and no t
// is a revocation; the top of this file describes the format. With check's signer, an
// entry whose s field does not verify is entryUnverified; without one, an
// entry with an s field is entrySigned (sign.go). check nil is
// neither.
func parseStreamEntry(buf []byte, pos int, rec *record.Revocation, ext *record.Extension, check *entryCheck) (int, string, int) {
	n, p := resp.Header(buf, pos, '*')
	if p < 0 {
		return p, "", entryMalformed
	}
	if n != 2 {
		return resp.Malformed, "", entryMalformed
	}
	n, p = resp.Header(buf, p, '$')
	if p < 0 || n < 0 || p+n+2 > len(buf) {
		return resp.Framing(p, n), "", entryMalformed
	}
	id := string(buf[p : p+n])
	p += n + 2
	fields, p := resp.Header(buf, p, '*')
	if p < 0 || fields%2 == 1 {
		return resp.Framing(p, -1), "", entryMalformed
	}
	haveDigest, haveExpiry, typed := false, false, false
	badStamp := false // an a field that is not a time in range
	rec.KeyN = 0
	rec.At = 0
	rec.Client = record.NoClient
	var typ, version, payload, sig []byte
	var signed [][]byte
	for f := 0; f < fields; f += 2 {
		n, p = resp.Header(buf, p, '$')
		if p < 0 || n < 0 || p+n+2 > len(buf) {
			return resp.Framing(p, n), "", entryMalformed
		}
		name := buf[p : p+n]
		p += n + 2
		n, p = resp.Header(buf, p, '$')
		if p < 0 || n < 0 || p+n+2 > len(buf) {
			return resp.Framing(p, n), "", entryMalformed
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
			haveDigest = len(value) == 2*len(rec.Digest)
			if haveDigest {
				_, err := hex.Decode(rec.Digest[:], value)
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
			rec.Expiry = ms * int64(time.Millisecond)
		case 't':
			typed = true
			typ = value
		case 'v':
			version = value
		case 'x':
			payload = value
		case 'c':
			if len(value) == 2*len(rec.Client) {
				if _, err := hex.Decode(rec.Client[:], value); err != nil {
					rec.Client = record.NoClient
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
				rec.At = ms * int64(time.Millisecond)
			} else {
				badStamp = true
			}
		case 'k':
			rec.KeyN = 0
			if len(value) == 2*record.KeyLen {
				if _, err := hex.Decode(rec.Key[:], value); err == nil {
					rec.KeyN = record.KeyLen
				}
			}
		}
	}
	if check != nil && check.signer != nil && !check.signer.Verify(check.stream, id, signed, sig) {
		return p, id, entryUnverified
	}
	if check != nil && check.signer == nil && sig != nil {
		return p, id, entrySigned
	}
	status := entryMalformed
	switch {
	case typed && len(typ) == 1 && len(version) == 1 && record.KnownExtension(typ[0]-'0'):
		status = entryOther
		if decoded, err := hex.DecodeString(string(payload)); err == nil {
			ext.Type, ext.Version, ext.Payload = typ[0]-'0', version[0]-'0', decoded
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
