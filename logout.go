package tokenrevocation

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/jose"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// OpenID Connect Back-Channel Logout 1.0 at the edge. The provider POSTs a
// signed logout token to backchannelLogoutPath when a session ends; the
// edge verifies it (internal/jose: signature by a provider key, iss, aud,
// iat window, events, sid or sub, no nonce, typ) and refuses a jti it has
// seen. A valid logout then rejects every token it can tie to the session:
//
//  1. with trackGrants, the tokens of each grant family whose ID token
//     carried the logout's sid (or, for a subject logout, its sub), as
//     ordinary revocations; the refresh tokens of grants with offline_access
//     survive unless logoutOfflineAccess (§2.7);
//  2. JWT bearer tokens whose session claim is the logout's sid and whose
//     iat is at or before the logout's iat;
//  3. for a logout with sub and no sid, or with logoutMatch sub, every JWT
//     bearer of that subject issued at or before the logout.
//
// Rules 2 and 3 live until logoutRuleTTL after the logout (rules.go). A
// logout is one record, type logoutRecordType (record.go): the rules, the
// seen jti, and which families to revoke, all as SHA-256 digests of the
// claim values. It is persisted and replicated like a grant, so every
// replica enforces it and remembers its jti; the tokens of the families are
// replicated as ordinary revocations by the replica that received the
// logout, so even the previous release enforces those.

const (
	// logoutRecordSize is version, flags, sid, sub, jti, logout time, expiry.
	logoutRecordSize = 2 + 3*sha256.Size + 8 + 8
)

// Flags of a logout record.
const (
	logoutRuleSID    = 1 << iota // reject JWTs whose session claim is sid
	logoutRuleSub                // reject JWTs whose sub is sub
	logoutOffline                // families' offline_access refresh tokens too
	logoutGrantsSID              // revoke the families of sid
	logoutGrantsSub              // revoke the families of sub
	logoutDelete                 // an admin deletion of the rules flagged
	logoutKnownFlags = logoutDelete<<1 - 1
)

// A logoutRecord is one validated logout.
type logoutRecord struct {
	flags         byte
	sid, sub, jti [sha256.Size]byte // digests of the claim values; jti of iss and jti
	at            int64             // the logout token's iat, Unix nanoseconds
	expiry        int64             // when its rules end
}

var errLogoutRecord = errors.New("malformed logout record")

func (rec *logoutRecord) encode() []byte {
	buf := make([]byte, logoutRecordSize)
	buf[0] = record.LogoutVersion
	buf[1] = rec.flags
	copy(buf[2:], rec.sid[:])
	copy(buf[2+sha256.Size:], rec.sub[:])
	copy(buf[2+2*sha256.Size:], rec.jti[:])
	binary.BigEndian.PutUint64(buf[2+3*sha256.Size:], uint64(rec.at))
	binary.BigEndian.PutUint64(buf[2+3*sha256.Size+8:], uint64(rec.expiry))
	return buf
}

// decodeLogout reads an encoded logout record; a later version, or flags
// this release does not know, is an error, which callers skip like any
// unknown record.
func decodeLogout(buf []byte) (*logoutRecord, error) {
	if len(buf) < logoutRecordSize || buf[0] != record.LogoutVersion || buf[1]&^logoutKnownFlags != 0 {
		return nil, errLogoutRecord
	}
	rec := &logoutRecord{flags: buf[1]}
	copy(rec.sid[:], buf[2:])
	copy(rec.sub[:], buf[2+sha256.Size:])
	copy(rec.jti[:], buf[2+2*sha256.Size:])
	rec.at = int64(binary.BigEndian.Uint64(buf[2+3*sha256.Size:]))
	rec.expiry = int64(binary.BigEndian.Uint64(buf[2+3*sha256.Size+8:]))
	return rec, nil
}

// jtiKeep is how long after its iat a logout token's jti is remembered:
// past logoutMaxAge (at most maxLogoutMaxAge) plus the allowed clock skew,
// the token is refused as too old anyway.
const (
	maxLogoutMaxAge = time.Hour
	jtiKeep         = maxLogoutMaxAge + jose.DefaultFutureSkew
)

// jtiExpiry is when the record's jti may be forgotten.
func (rec *logoutRecord) jtiExpiry() int64 {
	return rec.at + int64(jtiKeep)
}

// keepUntil is when the record may be dropped from persistPath: once both
// its rules and its jti have ended.
func (rec *logoutRecord) keepUntil() int64 {
	if j := rec.jtiExpiry(); j > rec.expiry {
		return j
	}
	return rec.expiry
}

// jtiDigest is what the replay store keeps of a logout token's jti: the
// digest of its issuer and jti.
func jtiDigest(iss, jti string) [sha256.Size]byte {
	return sha256.Sum256([]byte(iss + "\n" + jti))
}

// serveLogout answers a POST to backchannelLogoutPath: 200 with
// Cache-Control: no-store once the logout is recorded, 400 with a JSON
// error otherwise (§2.8). It never reaches the upstream.
func (m *middleware) serveLogout(rw http.ResponseWriter, req *http.Request) {
	rw.Header().Set("Cache-Control", "no-store")
	form, ok := m.readForm(rw, req)
	if !ok {
		return
	}
	token := form.Get("logout_token")
	if token == "" {
		writeError(rw, http.StatusBadRequest, "invalid_request", "The logout_token parameter is required")
		return
	}
	// The replay store and the grant families are complete only once the
	// denylist has loaded.
	if !m.list.awaitLoaded() {
		rejectLoading(rw)
		return
	}
	d := m.list
	if d.rules.full() {
		rw.Header().Set("Retry-After", "60")
		writeError(rw, http.StatusServiceUnavailable, "temporarily_unavailable", "The logout rules are full; retry later")
		return
	}
	rec, err := m.validateLogout(token)
	if err != nil {
		writeError(rw, http.StatusBadRequest, "invalid_request", "The logout token is not valid: "+err.Error())
		return
	}
	// The families' tokens are admitted like any revocation: when they do
	// not fit, 503 before anything is applied. The slots go back at once;
	// the store takes them again in whatever lanes have room.
	taken, ok := d.reserveTokens(d.grants.sessionTokens(rec.grantsSID(), rec.grantsSub(), rec.flags&logoutOffline != 0))
	if !ok {
		d.rules.forgetJTI(&rec.jti)
		d.answerFull(rw, d.maxTTL)
		return
	}
	d.unreserveTokens(taken)
	if err := d.logout(rec); err != nil {
		log.Printf("tokenrevocation: ERROR a logout was enforced but not persisted: %v", err)
	}
	rw.WriteHeader(http.StatusOK)
}

// validateLogout verifies token and turns it into a logout record; its
// jti is claimed in the replay store, so a second copy fails. Errors never
// quote the token.
func (m *middleware) validateLogout(token string) (*logoutRecord, error) {
	l := m.settings.logout
	d := m.list
	now := d.now()
	keys := m.keys.current()
	if keys == nil {
		keys = m.keys.refetch()
	}
	if keys == nil {
		return nil, errors.New("the provider's signing keys could not be fetched")
	}
	claims, err := jose.Verify(token, keys, now, jose.VerifyOptions{Leeway: m.settings.leeway})
	if errors.Is(err, jose.ErrUnknownKID) {
		// A rotation: the provider signs with a key published after our
		// last fetch.
		if fresh := m.keys.refetch(); fresh != keys {
			claims, err = jose.Verify(token, fresh, now, jose.VerifyOptions{Leeway: m.settings.leeway})
		}
	}
	if err != nil {
		return nil, err
	}
	var jti [sha256.Size]byte
	err = jose.ValidateLogoutToken(claims, claims.Header, &jose.LogoutOptions{
		Issuer: l.issuer, Audiences: l.audiences, Now: now, MaxAge: l.maxAge,
		SeenJTI: func(iss, id string) bool {
			jti = jtiDigest(iss, id)
			return !d.rules.claimJTI(&jti, now.Add(jtiKeep).UnixNano())
		},
	})
	if err != nil {
		return nil, err
	}
	rec := &logoutRecord{jti: jti, at: claims.IssuedAt.UnixNano()}
	rec.expiry = rec.at + int64(l.ruleTTL)
	if l.includeOffline {
		rec.flags |= logoutOffline
	}
	sid, sub := claims.SID != "", claims.Subject != ""
	if sid {
		rec.sid = sha256.Sum256([]byte(claims.SID))
	}
	if sub {
		rec.sub = sha256.Sum256([]byte(claims.Subject))
	}
	switch {
	case sub && (!sid || l.matchSub):
		// The spec's "every session of this user", or the operator's
		// choice of the subject over the session.
		rec.flags |= logoutRuleSub | logoutGrantsSub
		if sid {
			rec.flags |= logoutRuleSID | logoutGrantsSID
		}
	default:
		rec.flags |= logoutRuleSID | logoutGrantsSID
	}
	return rec, nil
}

// logout records a logout validated here: its rules, then the tokens of its
// grant families as ordinary revocations (persisted and replicated), then
// the record itself, persisted and replicated.
func (d *denylist) logout(rec *logoutRecord) error {
	d.rules.add(rec, rec.flags&logoutDelete == 0)
	d.auditLogout(rec)
	err := d.revokeFamiliesOf(rec)
	payload := rec.encode()
	if d.persist != nil {
		if e := d.persist.appendExtension(record.LogoutType, record.LogoutVersion, payload); e != nil && err == nil {
			err = e
		}
	}
	if d.replica != nil {
		d.replica.enqueueExtension(record.Extension{Type: record.LogoutType, Version: record.LogoutVersion, Payload: payload})
	}
	return err
}

// applyLogout applies a logout record loaded from persistPath or the
// stream: its rules and jti always; once loaded, its families too. The
// replica that received the logout replicated their tokens before the
// record, so they are normally held already; a family it did not know yet
// (its grant record was still on its way) is revoked here, persisted and
// replicated, so that no restart forgets it.
func (d *denylist) applyLogout(rec *logoutRecord) {
	if rec.keepUntil() <= d.now().UnixNano() {
		return
	}
	d.rules.add(rec, !d.rules.seen(&rec.jti))
	if !d.isLoaded() {
		return
	}
	if err := d.revokeFamiliesOf(rec); err != nil {
		log.Printf("tokenrevocation: ERROR a logged-out grant's token was enforced but not persisted: %v", err)
	}
}

// revokeFamiliesOf revokes the tokens a logout takes from the grant
// families of its session or subject, as revocations of this replica's own
// (persisted and replicated); it returns the first persistence error.
func (d *denylist) revokeFamiliesOf(rec *logoutRecord) error {
	var err error
	tokens := d.grants.revokeSession(rec.grantsSID(), rec.grantsSub(), rec.flags&logoutOffline != 0)
	for i := range tokens {
		if e := d.addKeyed(&tokens[i].digest, tokens[i].key, time.Unix(0, tokens[i].expiry), sourceLogout); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func (rec *logoutRecord) grantsSID() *[sha256.Size]byte {
	if rec.flags&logoutGrantsSID == 0 {
		return nil
	}
	return &rec.sid
}

func (rec *logoutRecord) grantsSub() *[sha256.Size]byte {
	if rec.flags&logoutGrantsSub == 0 {
		return nil
	}
	return &rec.sub
}

// revokeIfLoggedOut revokes a new grant of a session or subject a live
// logout rule covers: an authorization code issued before the logout and
// redeemed after it (Ory Hydra still honors it) carries the dead session's
// sid. The tokens of a refresh grant are not checked: an offline_access
// grant survives a logout by design.
func (d *denylist) revokeIfLoggedOut(rec *grantRecord, includeOffline bool) {
	if !d.rules.covers(&rec.sid, &rec.sub) {
		return
	}
	for i := range rec.tokens {
		t := rec.tokens[i]
		if t.refresh && rec.offline && !includeOffline {
			continue
		}
		if err := d.addKeyed(&t.digest, t.key, time.Unix(0, t.expiry), sourceLogout); err != nil {
			log.Printf("tokenrevocation: ERROR a logged-out session's new grant was enforced but not persisted: %v", err)
		}
	}
}
