package replica

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// entryRESP encodes one stream entry as XREAD returns it.
func entryRESP(id string, fields ...string) string {
	out := fmt.Sprintf("*2\r\n$%d\r\n%s\r\n*%d\r\n", len(id), id, len(fields))
	for _, f := range fields {
		out += fmt.Sprintf("$%d\r\n%s\r\n", len(f), f)
	}
	return out
}

// xreadReply parses reply as the answer to an XREAD.
func xreadReply(t *testing.T, reply string) ([]record.Revocation, []record.Extension) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		buf := make([]byte, 4096)
		_, _ = server.Read(buf)
		_, _ = server.Write([]byte(reply))
	}()
	c := resp.NewConn(client, &resp.Options{ReadTimeout: time.Second, WriteTimeout: time.Second})
	recs, exts, err := ReadEntries(c, []string{"XREAD", "COUNT", "100", "STREAMS", "stream", "0-0"})
	if err != nil {
		t.Fatal(err)
	}
	return recs, exts
}

func TestParseStreamEntry(t *testing.T) {
	good := fmt.Sprintf("%x", sha256.Sum256([]byte("x")))
	cases := []struct {
		name   string
		raw    string
		next   int // 0: the whole entry
		status int
	}{
		{"revocation", entryRESP("1-1", "d", good, "e", "4102444800000"), 0, entryRevocation},
		{"extra fields", entryRESP("1-1", "x", "y", "d", good, "e", "4102444800000"), 0, entryRevocation},
		{"another record type", entryRESP("1-2", "t", "grant", "v", "1", "d", good, "e", "4102444800000"), 0, entryOther},
		{"bad hex", entryRESP("1-3", "d", "zz", "e", "1"), 0, entryMalformed},
		{"bad expiry", entryRESP("1-3", "d", good, "e", "-5"), 0, entryMalformed},
		{"no fields", "*2\r\n$3\r\n1-4\r\n*-1\r\n", 0, entryMalformed},
		{"cut short", entryRESP("1-1", "d", good, "e", "4102444800000")[:50], resp.Incomplete, entryMalformed},
		{"header cut short", "*2\r", resp.Incomplete, entryMalformed},
		{"not an array", "+OK\r\n", resp.Malformed, entryMalformed},
		{"odd fields", "*2\r\n$3\r\n1-5\r\n*1\r\n$1\r\nd\r\n", resp.Malformed, entryMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec record.Revocation
			next, _, status := parseStreamEntry([]byte(c.raw), 0, &rec, &record.Extension{}, nil)
			want := c.next
			if want == 0 {
				want = len(c.raw)
			}
			if next != want || status != c.status {
				t.Fatalf("next %d status %d, want %d %d", next, status, want, c.status)
			}
			if status == entryRevocation && (rec.Digest != sha256.Sum256([]byte("x")) || rec.Expiry != 4102444800000*int64(time.Millisecond)) {
				t.Fatalf("decoded %+v", rec)
			}
		})
	}
}

// Under Yaegi, named results once piled up across calls from one call site
// in a loop; xread calls parseStreamEntry that way.
func TestParseStreamEntryInALoop(t *testing.T) {
	raw := ""
	for i := 0; i < 3; i++ {
		raw += entryRESP(fmt.Sprintf("1-%d", i), "d", fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)})), "e", "4102444800000")
	}
	pos := 0
	for i := 0; i < 3; i++ {
		var rec record.Revocation
		next, id, status := parseStreamEntry([]byte(raw), pos, &rec, &record.Extension{}, nil)
		if status != entryRevocation || id != fmt.Sprintf("1-%d", i) || rec.Digest != sha256.Sum256([]byte{byte(i)}) {
			t.Fatalf("entry %d: status %d id %q", i, status, id)
		}
		pos = next
	}
	if pos != len(raw) {
		t.Fatalf("stopped at %d of %d", pos, len(raw))
	}
}

func TestParseStreamEntryChecksSignatures(t *testing.T) {
	// given a signed revocation entry
	signer := &Signer{secrets: [][]byte{[]byte("a-shared-secret-0123456789")}}
	fields := []string{"d", strings.Repeat("ab", 32), "e", strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)}
	id := strconv.FormatInt(time.Now().UnixMilli(), 10) + "-0"
	raw := []byte(entryRESP(id, append(fields, "s", signer.Sign("st", time.Now(), fields))...))
	var rec record.Revocation
	for _, test := range []struct {
		desc  string
		check *entryCheck
		exp   int
	}{
		{"no check (tests, the file)", nil, entryRevocation},
		{"with the secret", &entryCheck{stream: "st", signer: signer}, entryRevocation},
		{"on another stream", &entryCheck{stream: "other", signer: signer}, entryUnverified},
		{"by a replica without a secret", &entryCheck{stream: "st"}, entrySigned},
	} {
		if _, _, status := parseStreamEntry(raw, 0, &rec, &record.Extension{}, test.check); status != test.exp {
			t.Errorf("%s: status %d, want %d", test.desc, status, test.exp)
		}
	}
}

func TestStreamEntryCarriesItsConfirmation(t *testing.T) {
	// given the entries this release writes: stamped, keyed or both
	at := int64(1767225600123) * int64(time.Millisecond)
	digest := "a70bf50e531ce1a817561f2f5d5b6645d4e806becf58ccc5e8cf6b8045a090a8"
	entries := [][]string{
		{"d", digest, "e", "4102444800000", "a", "1767225600123"},
		{"d", digest, "e", "4102444800000", "a", "1767225600123", "k", "0102030405060708"},
		{"d", digest, "e", "4102444800000", "a", "1767225600123", "k", "0102030405060708", "c", "000102030405060708090a0b0c0d0e0f"},
	}
	for i, fields := range entries {
		var rec record.Revocation
		var ext record.Extension
		_, _, status := parseStreamEntry([]byte(entryRESP("1-1", fields...)), 0, &rec, &ext, nil)
		if status != entryRevocation || rec.At != at {
			t.Errorf("entry %d: status %d, at %d, want %d", i, status, rec.At, at)
		}
	}
}

func TestStreamTimesOutOfRangeAreSkipped(t *testing.T) {
	// given stream entries whose times overflow nanoseconds
	digest := "a70bf50e531ce1a817561f2f5d5b6645d4e806becf58ccc5e8cf6b8045a090a8"
	for _, fields := range [][]string{
		{"d", digest, "e", "999999999999999999"},
		{"d", digest, "e", "4102444800000", "a", "999999999999999999"},
		{"d", digest, "e", "4102444800000", "a", "999999999999999999", "k", "0102030405060708"},
	} {
		// when they are read, by the inline parser and the full one
		recs, _ := xreadReply(t, "*1\r\n*2\r\n$6\r\nstream\r\n*1\r\n"+entryRESP("1-1", fields...))
		var rec record.Revocation
		var ext record.Extension
		_, _, status := parseStreamEntry([]byte(entryRESP("1-1", fields...)), 0, &rec, &ext, nil)
		// then they are skipped as malformed, never applied with a wrapped time
		if len(recs) != 0 || status != entryMalformed {
			t.Errorf("%v: %d revocations read (%+v), status %d", fields, len(recs), recs, status)
		}
	}
}

// BenchmarkScan parses 10,000 keyed, stamped revocation entries per op, as
// an XRANGE reply hands them to scan: the stream's share of a cold start's
// CPU, per record. Run it under Yaegi, where that share is measured:
//
//	yaegi test -unsafe -unrestricted -run XXX -bench Scan github.com/edgerevoke/tokenrevocation/internal/replica
func BenchmarkScan(b *testing.B) {
	const n = 10000
	var buf []byte
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("1796595296153-%d", i)
		digest := fmt.Sprintf("%064x", i)
		buf = append(buf, fmt.Sprintf("*2\r\n$%d\r\n%s\r\n*8\r\n$1\r\nd\r\n$64\r\n%s\r\n$1\r\ne\r\n$13\r\n4102444800000\r\n$1\r\na\r\n$13\r\n1767225600123\r\n$1\r\nk\r\n$16\r\n%016x\r\n",
			len(id), id, digest, i)...)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &entryReader{}
		pos, done, err := e.scan(buf, n)
		if err != nil || done != n || pos != len(buf) || len(e.recs) != n || e.recs[n-1].KeyN != record.KeyLen {
			b.Fatalf("scan: %d entries, %d records to %d of %d: %v", done, len(e.recs), pos, len(buf), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
