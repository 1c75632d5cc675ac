package replica

import (
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// FuzzParseStreamEntry: whatever the buffer holds, parseStreamEntry never
// panics, never points outside it, and decodes a revocation only with an
// expiry. The seed corpus lives in testdata/fuzz/FuzzParseStreamEntry.
func FuzzParseStreamEntry(f *testing.F) {
	f.Add([]byte(entryRESP("1-1", "d", strings.Repeat("ab", 32), "e", "4102444800000")))
	f.Fuzz(func(t *testing.T, buf []byte) {
		var rec record.Revocation
		next, _, status := parseStreamEntry(buf, 0, &rec, &record.Extension{}, nil)
		if next != resp.Incomplete && next != resp.Malformed && (next < 0 || next > len(buf)) {
			t.Fatalf("next %d outside a %d-byte buffer", next, len(buf))
		}
		if status == entryRevocation && (next < 0 || rec.Expiry <= 0) {
			t.Fatalf("a revocation with next %d, expiry %d", next, rec.Expiry)
		}
	})
}

// FuzzStreamID: whatever a server sends as an XADD reply, the ledger's ID
// parsers never panic, and an ID validID accepts orders against itself.
// The seed corpus lives in testdata/fuzz/FuzzStreamID.
func FuzzStreamID(f *testing.F) {
	f.Add("1700000000000-0", "1700000000000-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		_ = idAtMost(a, b)
		_ = rewind(a)
		if validID(a) && !idAtMost(a, a) {
			t.Fatalf("%q is not at most itself", a)
		}
		l := &ledger{}
		l.add([]interface{}{a, b}, [][]string{nil, nil}, false)
		l.read(b)
		l.forget(time.Now())
	})
}
