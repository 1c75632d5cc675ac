package replica

import (
	"strings"
	"testing"
	"time"
)

func TestStreamSignerVerifies(t *testing.T) {
	// given a record signed with the current secret at a known time
	old := &Signer{secrets: [][]byte{[]byte("old-secret-0123456789")}}
	cur := &Signer{secrets: [][]byte{[]byte("new-secret-0123456789"), []byte("old-secret-0123456789")}}
	at := time.UnixMilli(1700000000000)
	fields := []string{"d", strings.Repeat("ab", 32), "e", "1800000000000"}
	sig := []byte(cur.Sign("s", at, fields))
	id := "1700000000000-0"
	asBytes := func(f []string) [][]byte {
		var b [][]byte
		for _, s := range f {
			b = append(b, []byte(s))
		}
		return b
	}
	tests := []struct {
		desc   string
		signer *Signer
		stream string
		id     string
		fields []string
		sig    []byte
		exp    bool
	}{
		{"as signed", cur, "s", id, fields, sig, true},
		{"by a replica that only knows the new secret", &Signer{secrets: cur.secrets[:1]}, "s", id, fields, sig, true},
		{"signed with the previous secret, during rotation", cur, "s", id, fields, []byte(old.Sign("s", at, fields)), true},
		{"by a replica that only knows the old secret", old, "s", id, fields, sig, false},
		{"another stream", cur, "t", id, fields, sig, false},
		{"a field changed", cur, "s", id, []string{"d", strings.Repeat("ab", 32), "e", "1900000000000"}, sig, false},
		{"a field added", cur, "s", id, append(append([]string{}, fields...), "k", "00"), sig, false},
		{"copied to the stream's end an hour later", cur, "s", "1700003600000-0", fields, sig, false},
		{"no signature", cur, "s", id, fields, nil, false},
		{"garbage", cur, "s", id, fields, []byte("1700000000000.zz"), false},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := test.signer.Verify(test.stream, test.id, asBytes(test.fields), test.sig); got != test.exp {
				t.Fatalf("verify = %t, want %t", got, test.exp)
			}
		})
	}
}
