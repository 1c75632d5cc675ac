package record

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// A grant record (GrantType) is what one token response adds to a grant
// family (trackGrants): the family, the session and subject of its ID token
// as digests, and its tokens. It replicates in the stream (hex) and persists
// in persistPath (extension frames) in the same binary form.

// A GrantToken is one token of a family: its digest, expiry and kind.
type GrantToken struct {
	Digest  [sha256.Size]byte
	Expiry  int64 // Unix nanoseconds
	Refresh bool
	Key     string // the token's pre-check key (the root's precheck.go); "" when unknown
}

// A Grant is what one token response adds to a family; it is what
// replicates and persists.
type Grant struct {
	Family   [sha256.Size]byte
	SID, Sub [sha256.Size]byte
	Tokens   []GrantToken
	Offline  bool
}

const (
	// grantTokenSize is one encoded token: digest, expiry, kind.
	grantTokenSize = sha256.Size + 8 + 1
	// grantHeaderSize is an encoded record before its tokens: version,
	// flags, family, sid, sub, token count.
	grantHeaderSize = 1 + 1 + 3*sha256.Size + 1
	// grantOffline is the flag of a grant whose scope holds offline_access.
	// Records from before it have no flags: their refresh tokens are
	// revoked by a logout, the safe way.
	grantOffline = 1
	// grantKeys is the flag of a record whose tokens' pre-check keys follow
	// them, KeyLen bytes each (a zero byte first for a key unknown). A
	// release that does not know it reads the tokens and ignores the rest.
	grantKeys = 2
	// maxGrantTokens bounds the tokens of one record.
	maxGrantTokens = 16
)

// ErrGrant is a grant record that does not decode.
var ErrGrant = errors.New("malformed grant record")

// Live reports whether rec still has a live token, so that compaction keeps it.
func (rec *Grant) Live(now int64) bool {
	for i := range rec.Tokens {
		if rec.Tokens[i].Expiry > now {
			return true
		}
	}
	return false
}

// Encode is the record's binary form, the same in the stream (hex) and in
// persistPath (extension frames).
func (rec *Grant) Encode() []byte {
	n := len(rec.Tokens)
	if n > maxGrantTokens {
		n = maxGrantTokens
	}
	buf := make([]byte, grantHeaderSize, grantHeaderSize+n*grantTokenSize)
	buf[0] = GrantVersion
	if rec.Offline {
		buf[1] = grantOffline
	}
	copy(buf[2:], rec.Family[:])
	copy(buf[2+sha256.Size:], rec.SID[:])
	copy(buf[2+2*sha256.Size:], rec.Sub[:])
	buf[grantHeaderSize-1] = byte(n)
	var tok [grantTokenSize]byte
	for i := 0; i < n; i++ {
		copy(tok[:], rec.Tokens[i].Digest[:])
		binary.BigEndian.PutUint64(tok[sha256.Size:], uint64(rec.Tokens[i].Expiry))
		tok[grantTokenSize-1] = 0
		if rec.Tokens[i].Refresh {
			tok[grantTokenSize-1] = 1
		}
		buf = append(buf, tok[:]...)
	}
	buf[1] |= grantKeys
	for i := 0; i < n; i++ {
		var key [1 + KeyLen]byte
		if len(rec.Tokens[i].Key) == KeyLen {
			key[0] = 1
			copy(key[1:], rec.Tokens[i].Key)
		}
		buf = append(buf, key[:]...)
	}
	return buf
}

// DecodeGrant reads an encoded grant record; a later version is an error,
// which callers skip like any unknown record.
func DecodeGrant(buf []byte) (*Grant, error) {
	if len(buf) < grantHeaderSize || buf[0] != GrantVersion {
		return nil, ErrGrant
	}
	n := int(buf[grantHeaderSize-1])
	if n > maxGrantTokens || len(buf) < grantHeaderSize+n*grantTokenSize {
		return nil, ErrGrant
	}
	rec := &Grant{Tokens: make([]GrantToken, n), Offline: buf[1]&grantOffline != 0}
	copy(rec.Family[:], buf[2:])
	copy(rec.SID[:], buf[2+sha256.Size:])
	copy(rec.Sub[:], buf[2+2*sha256.Size:])
	for i := 0; i < n; i++ {
		tok := buf[grantHeaderSize+i*grantTokenSize:]
		copy(rec.Tokens[i].Digest[:], tok[:sha256.Size])
		rec.Tokens[i].Expiry = int64(binary.BigEndian.Uint64(tok[sha256.Size:]))
		rec.Tokens[i].Refresh = tok[grantTokenSize-1] == 1
	}
	keys := buf[grantHeaderSize+n*grantTokenSize:]
	if buf[1]&grantKeys != 0 && len(keys) >= n*(1+KeyLen) {
		for i := 0; i < n; i++ {
			if k := keys[i*(1+KeyLen):]; k[0] == 1 {
				rec.Tokens[i].Key = string(k[1 : 1+KeyLen])
			}
		}
	}
	return rec, nil
}
