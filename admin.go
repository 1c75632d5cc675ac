package tokenrevocation

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
)

// The admin API (adminPath): incident response without waiting for a
// client to call the revoke endpoint. Every call needs
// "Authorization: Bearer <adminToken>" (or the content of adminTokenFile),
// compared in constant time; every call is answered by the edge, never the
// upstream. Each operation is replicated through Redis, kept in
// persistPath, audited and counted like any other change:
//
//	POST   {adminPath}/revoke    {"token"|"digest", "expiresAt"|"ttl"}
//	POST   {adminPath}/lookup    {"token"|"digest"}
//	POST   {adminPath}/unrevoke  {"token"|"digest"}
//	GET    {adminPath}/export    NDJSON {"digest","expiresAt"} lines
//	POST   {adminPath}/import    NDJSON {"digest","expiresAt"} lines
//	GET    {adminPath}/rules
//	POST   {adminPath}/rules     {"sid"|"sub"|"claim"+"digest", "loggedOutAt", "expiresAt"|"ttl"}
//	DELETE {adminPath}/rules     {"sid"|"sub"|"claim"+"digest"}

// Admin operations and outcomes, for the metrics.
const (
	adminRevoke = iota
	adminLookup
	adminUnrevoke
	adminExport
	adminImport
	adminRules
	adminOps
)

const (
	adminOK = iota
	adminUnauthorized
	adminBadRequest
	adminOutcomes
)

var (
	adminOpNames      = [adminOps]string{"revoke", "lookup", "unrevoke", "export", "import", "rules"}
	adminOutcomeNames = [adminOutcomes]string{"ok", "unauthorized", "bad_request"}
)

// maxImportLine bounds one line of an import.
const maxImportLine = 4096

// An adminRequest is the JSON body of the admin operations; each reads the
// fields it needs.
type adminRequest struct {
	Token       string `json:"token"`
	Digest      string `json:"digest"`
	ExpiresAt   string `json:"expiresAt"`
	TTL         string `json:"ttl"`
	SID         string `json:"sid"`
	Sub         string `json:"sub"`
	Claim       string `json:"claim"`
	LoggedOutAt string `json:"loggedOutAt"`
}

// serveAdmin answers every request under adminPath.
func (m *middleware) serveAdmin(rw http.ResponseWriter, req *http.Request) {
	d := m.list
	op := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, m.settings.admin.path), "/")
	index := -1
	for i, name := range adminOpNames {
		if op == name {
			index = i
		}
	}
	if !m.adminAuthorized(req) {
		if index >= 0 {
			atomic.AddInt64(&d.count.adminCalls[index][adminUnauthorized], 1)
		}
		d.emit(&obs.AuditEvent{Event: "admin", Operation: op, Outcome: "unauthorized"})
		rw.Header().Set("WWW-Authenticate", `Bearer realm="`+m.settings.realm+`-admin"`)
		writeError(rw, http.StatusUnauthorized, "invalid_token", "The admin API needs Authorization: Bearer <adminToken>")
		return
	}
	if index < 0 {
		writeError(rw, http.StatusNotFound, "invalid_request", "Unknown admin operation; use revoke, lookup, unrevoke, export, import or rules")
		return
	}
	status, body, digest := m.adminOperation(rw, req, index)
	outcome := adminOK
	if status >= 400 {
		outcome = adminBadRequest
	}
	atomic.AddInt64(&d.count.adminCalls[index][outcome], 1)
	d.emit(&obs.AuditEvent{Event: "admin", Operation: op, Outcome: adminOutcomeNames[outcome], Digest: digest})
	if body != nil {
		writeJSON(rw, status, body)
	}
}

// adminOperation runs one operation. It returns the status and JSON body
// to answer (a nil body: already answered) and the digest prefix to audit.
func (m *middleware) adminOperation(rw http.ResponseWriter, req *http.Request, op int) (int, []byte, string) {
	d := m.list
	switch {
	case op == adminExport && req.Method == http.MethodGet:
		m.adminExport(rw)
		return http.StatusOK, nil, ""
	case op == adminImport && req.Method == http.MethodPost:
		return m.adminImport(req)
	case op == adminRules && req.Method == http.MethodGet:
		return http.StatusOK, mustJSON(map[string]interface{}{"rules": d.rules.List()}), ""
	case op == adminExport || op == adminImport || (op != adminRules && req.Method != http.MethodPost) ||
		(op == adminRules && req.Method != http.MethodPost && req.Method != http.MethodDelete):
		return http.StatusMethodNotAllowed, errorBody("invalid_request", "Method not allowed for this admin operation"), ""
	}
	var in adminRequest
	body, err := io.ReadAll(io.LimitReader(req.Body, m.settings.maxBodyBytes+1))
	if err != nil || int64(len(body)) > m.settings.maxBodyBytes || json.Unmarshal(body, &in) != nil {
		return http.StatusBadRequest, errorBody("invalid_request", "The body must be a JSON object of at most maxBodyBytes"), ""
	}
	if op == adminRules {
		return m.adminRule(req, &in)
	}
	digest, err := in.digest()
	if err != nil {
		return http.StatusBadRequest, errorBody("invalid_request", err.Error()), ""
	}
	prefix := digestPrefix(&digest)
	switch op {
	case adminRevoke:
		expiry, err := m.adminExpiry(&in)
		if err != nil {
			return http.StatusBadRequest, errorBody("invalid_request", err.Error()), prefix
		}
		if !expiry.After(d.opts.now()) {
			return http.StatusBadRequest, errorBody("invalid_request", "The token has already expired"), prefix
		}
		key := ""
		if in.Token != "" {
			// By digest alone no key is known: the pre-check stays open
			// until it expires (keyOf("") would be keyNone, which no
			// bearer token has).
			key = keyOf(in.Token)
		}
		stored, recorded, err := d.record(&digest, key, expiry, -1, sourceAdmin, nil)
		if err != nil {
			log.Printf("tokenrevocation: ERROR an admin revocation was enforced but not persisted: %v", err)
		}
		// The expiry held, which a shorter request never cuts: the later wins.
		out := map[string]interface{}{"digest": prefix, "recorded": recorded}
		out["expiresAt"] = time.Unix(0, stored).UTC().Format(time.RFC3339)
		return http.StatusOK, mustJSON(out), prefix
	case adminLookup:
		out := map[string]interface{}{"digest": prefix, "revoked": false}
		h := d.store.Held(&digest)
		if legacy, isJWS := legacyDigest(in.Token); !h.Found && isJWS {
			// Revoked before identities, by its exact string.
			h = d.store.Held(&legacy)
		}
		if h.Found {
			// One assignment each: Yaegi v0.16.1 can lose a constant in a
			// multiple assignment that also holds a call. The latest
			// expiry held, and the latest confirmation (lifetime.go).
			out["revoked"] = true
			out["expiresAt"] = time.Unix(0, h.Expiry).UTC().Format(time.RFC3339)
			out["source"] = sourceNames[h.Source]
			if h.At > 0 {
				out["confirmedAt"] = time.Unix(0, h.At).UTC().Format(time.RFC3339Nano)
			}
		}
		if in.Token != "" && d.rules.Rejects(in.Token, m.settings.sessionClaim) {
			out["loggedOut"] = true
		}
		return http.StatusOK, mustJSON(out), prefix
	default: // adminUnrevoke
		held, err := d.unrevoke(&digest)
		if err != nil {
			logTombstoneError(err)
		}
		if legacy, isJWS := legacyDigest(in.Token); isJWS && d.store.Has(&legacy) {
			// And the record of its exact string, made before identities.
			was, err := d.unrevoke(&legacy)
			if err != nil {
				logTombstoneError(err)
			}
			held = held || was
		}
		d.emit(&obs.AuditEvent{Event: "unrevocation", Source: "admin", Digest: prefix})
		return http.StatusOK, mustJSON(map[string]interface{}{"digest": prefix, "unrevoked": held}), prefix
	}
}

// adminAuthorized compares the bearer credential with the admin secret in
// constant time (digests of both, so that not even the length leaks).
func (m *middleware) adminAuthorized(req *http.Request) bool {
	secret := m.settings.admin.token
	if file := m.settings.admin.tokenFile; file != "" {
		// Read on every call, so that a rotated Kubernetes secret applies.
		b, err := os.ReadFile(file) //nolint:gosec // the operator's adminTokenFile
		if err != nil {
			log.Printf("tokenrevocation: ERROR reading adminTokenFile: %v", err)
			return false
		}
		secret = strings.TrimSpace(string(b))
	}
	given := bearerToken(req.Header.Get("Authorization"))
	if secret == "" || given == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// digest is the request's token digest: of "token", or "digest" as 64 hex.
func (in *adminRequest) digest() ([sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	switch {
	case in.Token != "" && in.Digest != "":
		return digest, fmt.Errorf("give token or digest, not both")
	case in.Token != "":
		return tokenDigest(in.Token), nil
	case len(in.Digest) == 2*sha256.Size:
		if _, err := hex.Decode(digest[:], []byte(strings.ToLower(in.Digest))); err == nil {
			return digest, nil
		}
	}
	return digest, fmt.Errorf("give token, or digest as the 64 hex characters of the token's SHA-256")
}

// adminExpiry is when an admin revocation ends: expiresAt, else now + ttl,
// else the revoke endpoint's rule for the token (a JWT's exp plus leeway,
// else the longer TTL), else maxTTL. Past maxLifetime it is refused, never
// cut short.
func (m *middleware) adminExpiry(in *adminRequest) (time.Time, error) {
	now := m.list.opts.now()
	limit := now.Add(m.settings.maxLifetime)
	var expiry time.Time
	switch {
	case in.ExpiresAt != "" && in.TTL != "":
		return expiry, fmt.Errorf("give expiresAt or ttl, not both")
	case in.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, in.ExpiresAt)
		if err != nil || !t.After(now) {
			return expiry, fmt.Errorf("expiresAt must be an RFC 3339 time in the future")
		}
		expiry = t
	case in.TTL != "":
		ttl, err := time.ParseDuration(in.TTL)
		if err != nil || ttl <= 0 {
			return expiry, fmt.Errorf("ttl must be a duration above zero such as 1h")
		}
		expiry = now.Add(ttl)
	case in.Token != "":
		expiry = m.expiryFor(in.Token, "")
	default:
		expiry = now.Add(m.settings.maxTTL)
	}
	if expiry.After(limit) {
		return expiry, fmt.Errorf("the revocation would outlive maxLifetime (%s), the longest the revocation list holds", m.settings.maxLifetime)
	}
	return expiry, nil
}

// mustJSON encodes v, which is always encodable.
func mustJSON(v interface{}) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return errorBody("server_error", "internal error")
	}
	return b
}
