// Package record is the plugin's shared vocabulary: the typed, versioned
// records (a revocation, a grant, a back-channel logout, a tombstone, a
// revocation's pre-check key and confirmation time) and their encoding in a
// persistPath file. It imports nothing of the plugin.
//
// Formats change compatibly: records written by an earlier release load,
// and a record of a type a release does not know is kept by a rewrite and
// otherwise skipped.
package record

import "crypto/sha256"

// KeyLen is the length of a pre-check key.
const KeyLen = 8

// Record types of the extension frames and stream entries. A record's type
// never changes meaning; a new layout of a type gets a new version.
const (
	// GrantType is the record type of a grant.
	GrantType = 1
	// GrantVersion is its encoding's version.
	GrantVersion = 1
	// LogoutType is the record type of a back-channel logout.
	LogoutType = 2
	// LogoutVersion is its encoding's version.
	LogoutVersion = 1
)

// A Revocation is one record: a token's digest and its expiry, and in
// memory where this replica learned it (Source; not persisted).
type Revocation struct {
	Digest [sha256.Size]byte
	Expiry int64 // Unix nanoseconds
	// At is when the revocation was confirmed, in Unix nanoseconds in
	// whole milliseconds; 0 for a record written before confirmation
	// times.
	At     int64
	Source byte
	KeyN   uint8        // the length of Key; 0: no pre-check key known
	Key    [KeyLen]byte // the token's pre-check key
	// Client is the limiter key of the client that revoked it, zero when
	// none: it replicates so that every replica counts the entry against
	// that client's share.
	Client [16]byte
}

// NoClient is a Client of zeros, none: compare and assign with it rather
// than with a literal, which Yaegi v0.16.1 allocates at every evaluation (a
// cold start's load profile had 3.7% in that alone). Never written.
var NoClient [16]byte

// SetKey stores a pre-check key in the record.
func (rec *Revocation) SetKey(key string) {
	rec.KeyN = uint8(copy(rec.Key[:], key))
}

// PrecheckKey is the key the pre-check holds for rec: "" (none, which
// holds the pre-check open until it expires) for a record of a release
// before confirmation times, whose key (a token's last 8 characters) is
// not the key this release reads for a token with a dot.
func (rec *Revocation) PrecheckKey() string {
	if rec.At == 0 {
		return ""
	}
	return string(rec.Key[:rec.KeyN])
}
