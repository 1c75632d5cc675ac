package record

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// A logout record (LogoutType) is one validated back-channel logout: the
// rules it adds, the seen jti, and which grant families to revoke, all as
// SHA-256 digests of the claim values.

const (
	// LogoutSize is version, flags, sid, sub, jti, logout time, expiry.
	LogoutSize = 2 + 3*sha256.Size + 8 + 8
)

// Flags of a logout record.
const (
	LogoutRuleSID    = 1 << iota // reject JWTs whose session claim is sid
	LogoutRuleSub                // reject JWTs whose sub is sub
	LogoutOffline                // families' offline_access refresh tokens too
	LogoutGrantsSID              // revoke the families of sid
	LogoutGrantsSub              // revoke the families of sub
	LogoutDelete                 // an admin deletion of the rules flagged
	LogoutKnownFlags = LogoutDelete<<1 - 1
)

// A Logout is one validated logout.
type Logout struct {
	Flags         byte
	SID, Sub, JTI [sha256.Size]byte // digests of the claim values; jti of iss and jti
	At            int64             // the logout token's iat, Unix nanoseconds
	Expiry        int64             // when its rules end
}

// ErrLogout is a logout record that does not decode.
var ErrLogout = errors.New("malformed logout record")

// Encode is the record's binary form, the same in the stream (hex) and in
// persistPath (extension frames).
func (rec *Logout) Encode() []byte {
	buf := make([]byte, LogoutSize)
	buf[0] = LogoutVersion
	buf[1] = rec.Flags
	copy(buf[2:], rec.SID[:])
	copy(buf[2+sha256.Size:], rec.Sub[:])
	copy(buf[2+2*sha256.Size:], rec.JTI[:])
	binary.BigEndian.PutUint64(buf[2+3*sha256.Size:], uint64(rec.At))
	binary.BigEndian.PutUint64(buf[2+3*sha256.Size+8:], uint64(rec.Expiry))
	return buf
}

// DecodeLogout reads an encoded logout record; a later version, or flags
// this release does not know, is an error, which callers skip like any
// unknown record.
func DecodeLogout(buf []byte) (*Logout, error) {
	if len(buf) < LogoutSize || buf[0] != LogoutVersion || buf[1]&^LogoutKnownFlags != 0 {
		return nil, ErrLogout
	}
	rec := &Logout{Flags: buf[1]}
	copy(rec.SID[:], buf[2:])
	copy(rec.Sub[:], buf[2+sha256.Size:])
	copy(rec.JTI[:], buf[2+2*sha256.Size:])
	rec.At = int64(binary.BigEndian.Uint64(buf[2+3*sha256.Size:]))
	rec.Expiry = int64(binary.BigEndian.Uint64(buf[2+3*sha256.Size+8:]))
	return rec, nil
}

// GrantsSID is the session whose grant families the logout revokes, nil
// when none.
func (rec *Logout) GrantsSID() *[sha256.Size]byte {
	if rec.Flags&LogoutGrantsSID == 0 {
		return nil
	}
	return &rec.SID
}

// GrantsSub is the subject whose grant families the logout revokes, nil
// when none.
func (rec *Logout) GrantsSub() *[sha256.Size]byte {
	if rec.Flags&LogoutGrantsSub == 0 {
		return nil
	}
	return &rec.Sub
}
