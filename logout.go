package tokenrevocation

import (
	"crypto/sha256"
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
// Rules 2 and 3 live until logoutRuleTTL after the logout (internal/rules). A
// logout is one record, type logoutRecordType (record.go): the rules, the
// seen jti, and which families to revoke, all as SHA-256 digests of the
// claim values. It is persisted and replicated like a grant, so every
// replica enforces it and remembers its jti; the tokens of the families are
// replicated as ordinary revocations by the replica that received the
// logout, so even the previous release enforces those.

// jtiKeep is how long after its iat a logout token's jti is remembered:
// past logoutMaxAge (at most maxLogoutMaxAge) plus the allowed clock skew,
// the token is refused as too old anyway.
const (
	maxLogoutMaxAge = time.Hour
	jtiKeep         = maxLogoutMaxAge + jose.DefaultFutureSkew
)

// jtiExpiry is when the record's jti may be forgotten.
func jtiExpiry(rec *record.Logout) int64 {
	return rec.At + int64(jtiKeep)
}

// keepUntil is when the record may be dropped from persistPath: once both
// its rules and its jti have ended.
func keepUntil(rec *record.Logout) int64 {
	if j := jtiExpiry(rec); j > rec.Expiry {
		return j
	}
	return rec.Expiry
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
	_, token, ok := m.readFormWith(rw, req, "logout_token")
	if !ok {
		return
	}
	// The replay store and the grant families are complete only once the
	// denylist has loaded.
	if !m.list.awaitLoaded() {
		rejectLoading(rw)
		return
	}
	d := m.list
	if d.rules.Full() {
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
	taken, ok := d.store.ReserveTokens(d.grants.SessionTokens(rec.GrantsSID(), rec.GrantsSub(), rec.Flags&record.LogoutOffline != 0))
	if !ok {
		d.rules.ForgetJTI(&rec.JTI)
		d.answerFull(rw, d.opts.maxTTL)
		return
	}
	d.store.UnreserveTokens(taken)
	if err := d.logout(rec); err != nil {
		log.Printf("tokenrevocation: ERROR a logout was enforced but not persisted: %v", err)
	}
	rw.WriteHeader(http.StatusOK)
}

// validateLogout verifies token and turns it into a logout record; its
// jti is claimed in the replay store, so a second copy fails. Errors never
// quote the token.
func (m *middleware) validateLogout(token string) (*record.Logout, error) {
	l := m.settings.logout
	d := m.list
	now := d.opts.now()
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
			return !d.rules.ClaimJTI(&jti, now.Add(jtiKeep).UnixNano())
		},
	})
	if err != nil {
		return nil, err
	}
	rec := &record.Logout{JTI: jti, At: claims.IssuedAt.UnixNano()}
	rec.Expiry = rec.At + int64(l.ruleTTL)
	if l.includeOffline {
		rec.Flags |= record.LogoutOffline
	}
	sid, sub := claims.SID != "", claims.Subject != ""
	if sid {
		rec.SID = sha256.Sum256([]byte(claims.SID))
	}
	if sub {
		rec.Sub = sha256.Sum256([]byte(claims.Subject))
	}
	switch {
	case sub && (!sid || l.matchSub):
		// The spec's "every session of this user", or the operator's
		// choice of the subject over the session.
		rec.Flags |= record.LogoutRuleSub | record.LogoutGrantsSub
		if sid {
			rec.Flags |= record.LogoutRuleSID | record.LogoutGrantsSID
		}
	default:
		rec.Flags |= record.LogoutRuleSID | record.LogoutGrantsSID
	}
	return rec, nil
}

// logout records a logout validated here: its rules, then the tokens of its
// grant families as ordinary revocations (persisted and replicated), then
// the record itself, persisted and replicated.
func (d *denylist) logout(rec *record.Logout) error {
	d.rules.Add(rec, rec.Flags&record.LogoutDelete == 0)
	d.auditLogout(rec)
	err := d.revokeFamiliesOf(rec)
	payload := rec.Encode()
	if e := d.journalExtension(record.LogoutType, record.LogoutVersion, payload); e != nil && err == nil {
		err = e
	}
	return err
}

// applyLogout applies a logout record loaded from persistPath or the
// stream: its rules and jti always; once loaded, its families too. The
// replica that received the logout replicated their tokens before the
// record, so they are normally held already; a family it did not know yet
// (its grant record was still on its way) is revoked here, persisted and
// replicated, so that no restart forgets it.
func (d *denylist) applyLogout(rec *record.Logout) {
	if keepUntil(rec) <= d.opts.now().UnixNano() {
		return
	}
	d.rules.Add(rec, !d.rules.Seen(&rec.JTI))
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
func (d *denylist) revokeFamiliesOf(rec *record.Logout) error {
	var err error
	tokens := d.grants.RevokeSession(rec.GrantsSID(), rec.GrantsSub(), rec.Flags&record.LogoutOffline != 0)
	for i := range tokens {
		if e := d.addKeyed(&tokens[i].Digest, tokens[i].Key, time.Unix(0, tokens[i].Expiry), sourceLogout); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// revokeIfLoggedOut revokes a new grant of a session or subject a live
// logout rule covers: an authorization code issued before the logout and
// redeemed after it (Ory Hydra still honors it) carries the dead session's
// sid. The tokens of a refresh grant are not checked: an offline_access
// grant survives a logout by design.
func (d *denylist) revokeIfLoggedOut(rec *record.Grant, includeOffline bool) {
	if !d.rules.Covers(&rec.SID, &rec.Sub) {
		return
	}
	for i := range rec.Tokens {
		t := rec.Tokens[i]
		if t.Refresh && rec.Offline && !includeOffline {
			continue
		}
		if err := d.addKeyed(&t.Digest, t.Key, time.Unix(0, t.Expiry), sourceLogout); err != nil {
			log.Printf("tokenrevocation: ERROR a logged-out session's new grant was enforced but not persisted: %v", err)
		}
	}
}
