package tokenrevocation

import (
	"crypto/sha256"
	"log"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Grant tracking (trackGrants). RFC 7009 §2.1: revoking a refresh token
// SHOULD invalidate the access tokens of the same grant, and identity
// services do so. The edge learns the grants from the token responses that
// cross it on tokenPath: the identity service's own answers, from the
// upstream, so no signature needs checking. Each answer adds its tokens to a
// grant family: a new one for a new grant, the family of the presented
// refresh token for a refresh grant. When the identity service confirms the
// revocation of a family's refresh token, every live token of the family is
// revoked at the edge as an ordinary revocation: in the same denylist,
// persisted and replicated like any other (so even the previous release
// enforces it), at no cost on the hot path.
//
// Families live in memory, in internal/grants, capped at maxGrants: past
// the cap new grants are not tracked (counted, and warned about), and
// nothing already recorded is dropped. A family is forgotten once its last
// token has expired. Grant records replicate through the Redis stream and
// persist in persistPath as record type record.GrantType
// (internal/record).

// revokeGrantOf revokes, when digest is the refresh token of a tracked
// family, every live token of that family, as ordinary revocations:
// persisted and replicated like any other, so every replica enforces them.
// who is the revoke call's client when it came from one: the family's
// tokens replicate under its tag, so every replica counts them against its
// share.
func (d *denylist) revokeGrantOf(digest *[sha256.Size]byte, who *revokeInfo) {
	tokens := d.grants.RevokeFamily(digest)
	var tagged *revokeInfo
	if who != nil {
		tagged = &revokeInfo{tag: who.tag}
	}
	for i := range tokens {
		if tokens[i].Digest == *digest || d.store.Has(&tokens[i].Digest) {
			continue
		}
		if err := d.addReserved(&tokens[i].Digest, tokens[i].Key, time.Unix(0, tokens[i].Expiry), -1, sourceGrant, tagged); err != nil {
			log.Printf("tokenrevocation: ERROR a revoked grant's token was enforced but not persisted: %v", err)
		}
	}
}

// revokeIfRevoked revokes the family of rec at once when one of its refresh
// tokens is already revoked: the grant record arrived (from another
// replica, the file, or a refresh answered while the revocation went
// through) after the revocation it belongs to.
func (d *denylist) revokeIfRevoked(rec *record.Grant) {
	for i := range rec.Tokens {
		if rec.Tokens[i].Refresh && d.store.Has(&rec.Tokens[i].Digest) {
			d.revokeGrantOf(&rec.Tokens[i].Digest, nil)
			return
		}
	}
}
