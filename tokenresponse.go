package tokenrevocation

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/grants"
	"github.com/edgerevoke/tokenrevocation/internal/jwtpayload"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// maxTokenResponse bounds the token response body kept to learn a grant
// from; a larger one passes through untracked.
const maxTokenResponse = 64 << 10

// passTokenRequest forwards a token request and learns its grant from the
// answer (trackGrants): the response reaches the client unchanged while a
// copy is kept, and the request body was already put back byte-identical.
func (m *middleware) passTokenRequest(rw http.ResponseWriter, req *http.Request, form url.Values) {
	d := m.list
	if m.settings.revokeOnRefresh && form.Get("grant_type") == "refresh_token" {
		// The refresh will revoke the family's previous access tokens:
		// admitted like any revocation, so 503 before the identity service
		// when they do not fit. The slots go back once it has answered.
		taken, ok := d.store.ReserveTokens(previousAccess(d.grants, form.Get("refresh_token")))
		if !ok {
			d.answerFull(rw, m.settings.accessTokenTTL)
			return
		}
		defer d.store.UnreserveTokens(taken)
	}
	rec := &tokenResponseRecorder{passWriter: passWriter{rw: rw}}
	m.next.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code < 200 || rec.code >= 300 || rec.overflow {
		return
	}
	body := rec.body.Bytes()
	if strings.EqualFold(rec.rw.Header().Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return
		}
		body, err = io.ReadAll(io.LimitReader(zr, maxTokenResponse))
		if err != nil {
			return
		}
	}
	m.learnGrant(form, body)
}

// previousAccess returns the live access tokens of the family of the
// refresh token presented: what a refresh revokes with revokeOnRefresh.
func previousAccess(g *grants.Store, presented string) []record.GrantToken {
	if presented == "" {
		return nil
	}
	digest := sha256.Sum256([]byte(presented))
	var access []record.GrantToken
	family := g.FamilyOf(&digest)
	for i := range family {
		if !family[i].Refresh {
			access = append(access, family[i])
		}
	}
	return access
}

// tokenResponse is the part of an RFC 6749 §5.1 answer a grant is learned from.
type tokenResponse struct {
	AccessToken  string      `json:"access_token"`
	RefreshToken string      `json:"refresh_token"`
	IDToken      string      `json:"id_token"`
	ExpiresIn    json.Number `json:"expires_in"`
	Scope        string      `json:"scope"`
}

// hasScope reports whether the space-separated scope list holds want.
func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

// learnGrant records the grant of a successful token response: a new
// family, or for a refresh grant the family of the presented refresh token.
// With revokeOnRefresh, the family's previous access tokens are revoked.
func (m *middleware) learnGrant(form url.Values, body []byte) {
	var resp tokenResponse
	if err := json.Unmarshal(body, &resp); err != nil || resp.AccessToken == "" {
		return
	}
	s := m.settings
	d := m.list
	now := d.opts.now()
	rec := &record.Grant{}
	access := record.GrantToken{Digest: tokenDigest(resp.AccessToken), Key: keyOf(resp.AccessToken)}
	access.Expiry = m.issuedExpiry(resp.AccessToken, resp.ExpiresIn, s.accessTokenTTL, now)
	rec.Tokens = append(rec.Tokens, access)
	if resp.RefreshToken != "" {
		refresh := record.GrantToken{Digest: tokenDigest(resp.RefreshToken), Refresh: true, Key: keyOf(resp.RefreshToken)}
		refresh.Expiry = m.issuedExpiry(resp.RefreshToken, "", s.refreshTokenTTL, now)
		rec.Tokens = append(rec.Tokens, refresh)
	}
	presented := form.Get("refresh_token")
	switch {
	case form.Get("grant_type") == "refresh_token" && presented != "":
		digest := tokenDigest(presented)
		rec.Family = d.grants.FamilyID(&digest)
		// The presented token stays in the family: revoking it revokes the
		// family, whether or not the identity service rotated it.
		rec.Tokens = append(rec.Tokens, record.GrantToken{Digest: digest, Refresh: true, Expiry: m.issuedExpiry(presented, "", s.refreshTokenTTL, now), Key: keyOf(presented)})
	case resp.RefreshToken != "":
		rec.Family = rec.Tokens[1].Digest
	default:
		rec.Family = access.Digest
	}
	rec.Offline = hasScope(resp.Scope, "offline_access") || (resp.Scope == "" && hasScope(form.Get("scope"), "offline_access"))
	if resp.IDToken != "" {
		if claims, ok := jwtpayload.Claims(resp.IDToken); ok {
			if sid, _ := claims["sid"].(string); sid != "" {
				rec.SID = sha256.Sum256([]byte(sid))
			}
			if sub, _ := claims["sub"].(string); sub != "" {
				rec.Sub = sha256.Sum256([]byte(sub))
			}
		}
	}
	previous, tracked := d.grants.Add(rec, s.revokeOnRefresh && form.Get("grant_type") == "refresh_token")
	if !tracked {
		return
	}
	d.shareGrant(rec)
	d.revokeIfRevoked(rec)
	if form.Get("grant_type") != "refresh_token" {
		d.revokeIfLoggedOut(rec, s.logout != nil && s.logout.includeOffline)
	}
	if s.revokeOnRefresh && form.Get("grant_type") == "refresh_token" {
		for i := range previous {
			if err := d.addKeyed(&previous[i].Digest, previous[i].Key, time.Unix(0, previous[i].Expiry), sourceGrant); err != nil {
				log.Printf("tokenrevocation: ERROR a refreshed grant's access token was enforced but not persisted: %v", err)
			}
		}
	}
}

// issuedExpiry is how long an issued token can be used: a JWT's exp plus
// leeway, whatever maxTTL (lifetime.go); else expires_in, else ttl, never
// past maxTTL.
func (m *middleware) issuedExpiry(token string, expiresIn json.Number, ttl time.Duration, now time.Time) int64 {
	s := m.settings
	if exp, ok := jwtExpiry(token); ok {
		if limit := now.Add(s.maxLifetime); exp.Add(s.leeway).After(limit) {
			// Past what the store holds (and past what UnixNano can
			// count, for exp 9999999999): just beyond maxLifetime, so that
			// admission refuses it with 503, never records it shorter.
			return limit.Add(time.Second).UnixNano()
		}
		return exp.Add(s.leeway).UnixNano()
	}
	expiry := now.Add(ttl)
	if secs, err := expiresIn.Int64(); err == nil && secs > 0 {
		expiry = now.Add(time.Duration(secs)*time.Second + s.leeway)
	}
	if limit := now.Add(s.maxTTL); expiry.After(limit) {
		expiry = limit
	}
	return expiry.UnixNano()
}

// tokenResponseRecorder passes a token response through unchanged and keeps
// a copy of its body, up to maxTokenResponse.
type tokenResponseRecorder struct {
	passWriter
	code     int
	body     bytes.Buffer
	overflow bool
}

// WriteHeader notes the first final status and passes it on.
func (r *tokenResponseRecorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.rw.WriteHeader(code)
}

// Write keeps a copy of b and writes it through.
func (r *tokenResponseRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if !r.overflow {
		if r.body.Len()+len(b) > maxTokenResponse {
			r.overflow = true
			r.body.Reset()
		} else {
			r.body.Write(b)
		}
	}
	return r.rw.Write(b)
}
