package replica

import (
	"strings"
	"testing"

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
