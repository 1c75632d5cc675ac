package replica

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Authenticated stream records (redis.signingSecret, redis.signingSecretFile).
// Without them, anyone who can XADD to the stream can revoke any digest on
// every replica, or un-revoke one with a tombstone. With a secret, every
// record written carries a field s = "<Unix ms>.<hex HMAC-SHA256>" over the
// stream key, that time and every other field, length-prefixed in order.
// Readers apply only records that verify under one of the secrets (the
// first signs, any verifies: rotation), and whose signed time is within
// signSkew of the entry ID's time, which Redis sets at XADD: a signed
// record copied to the end of the stream later is not applied. Everything
// else is skipped and counted (stream.unverified).
//
// A replica without a secret must not read a signed stream as if it were
// not: it would apply forged records the others skip. Signing writers set
// the marker key <stream>:signed, and a reader without a secret that finds
// the marker, or a signed entry, stops reading with errSignedStream: it
// never becomes ready (or, once ready, reports not ready) and logs why.

// signSkew is how far a record's signed time may be from its entry ID's.
const signSkew = 5 * time.Minute

// signedMarker is the suffix of the key that marks a stream as signed.
const signedMarker = ":signed"

// errSignedStream stops a reader without a secret at a signed stream.
var errSignedStream = errors.New("the stream is signed (redis.signingSecret is set on another replica) and this replica has no redis.signingSecret or redis.signingSecretFile: it does not read it")

// A Signer signs and verifies the records of a stream.
type Signer struct {
	secrets [][]byte // the first signs; any verifies
}

// NewSigner returns a Signer of secrets: the first signs, any verifies
// (rotation). secrets must not be empty.
func NewSigner(secrets []string) *Signer {
	k := &Signer{}
	for _, secret := range secrets {
		k.secrets = append(k.secrets, []byte(secret))
	}
	return k
}

// Len is how many secrets k holds.
func (k *Signer) Len() int {
	return len(k.secrets)
}

// Same reports whether k and o hold the same secrets in the same order.
func (k *Signer) Same(o *Signer) bool {
	if len(k.secrets) != len(o.secrets) {
		return false
	}
	for i := range k.secrets {
		if string(k.secrets[i]) != string(o.secrets[i]) {
			return false
		}
	}
	return true
}

// Sign returns the s field of a record of stream with fields (name, value,
// ...), signed at now.
func (k *Signer) Sign(stream string, now time.Time, fields []string) string {
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	mac := hmac.New(sha256.New, k.secrets[0])
	writeSigned(mac, stream, ts)
	for _, f := range fields {
		writeSigned(mac, f)
	}
	return ts + "." + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether sig, the s field of a record of stream with
// fields (name, value, ...; s left out) and entry ID id, verifies under one
// of the secrets within signSkew of the ID's time.
func (k *Signer) Verify(stream, id string, fields [][]byte, sig []byte) bool {
	dot := -1
	for i := range sig {
		if sig[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 1 || len(sig)-dot-1 != 2*sha256.Size {
		return false
	}
	signedMs, err := strconv.ParseInt(string(sig[:dot]), 10, 64)
	if err != nil {
		return false
	}
	skew := idMillis(id) - signedMs
	if skew < 0 {
		skew = -skew
	}
	if skew > signSkew.Milliseconds() {
		return false
	}
	want := make([]byte, sha256.Size)
	if _, err := hex.Decode(want, sig[dot+1:]); err != nil {
		return false
	}
	ts := string(sig[:dot])
	for _, secret := range k.secrets {
		mac := hmac.New(sha256.New, secret)
		writeSigned(mac, stream, ts)
		for _, f := range fields {
			writeSigned(mac, string(f))
		}
		if hmac.Equal(mac.Sum(nil), want) {
			return true
		}
	}
	return false
}

// writeSigned feeds parts to mac, each length-prefixed so that no two
// field lists sign alike.
func writeSigned(mac interface{ Write([]byte) (int, error) }, parts ...string) {
	for _, p := range parts {
		_, _ = mac.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
}

// idMillis is the milliseconds part of a stream entry ID, 0 when none.
func idMillis(id string) int64 {
	ms := int64(0)
	for i := 0; i < len(id) && id[i] >= '0' && id[i] <= '9'; i++ {
		ms = ms*10 + int64(id[i]-'0')
	}
	return ms
}
