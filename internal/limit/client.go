package limit

import (
	"crypto/sha256"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/edgerevoke/tokenrevocation/internal/basicauth"
)

// A Key is what the limiter keeps of a client, and what a stream record
// carries of it: the first 16 bytes of a SHA-256 (KeyOf). Ids are
// attacker-controlled and unbounded; 16 bytes each is what the table holds
// whatever they send. The zero Key is no client.
type Key [16]byte

// KeyOf returns the limiter's key for a revoke call's client. A
// confidential client (HTTP Basic, or client_secret or client_assertion in
// the form) is known by its id alone: the identity service checks its
// secret, and only a confirmed call spends. A public client (client_id
// alone) can be claimed by anyone who knows its id, every user of it
// included, so it is known by its id and the caller's address (the host of
// RemoteAddr, as Traefik's rateLimit middleware sees callers by default):
// a flood from one address spends that address's limits, not the client's
// everywhere.
func KeyOf(client string, confidential bool, remoteAddr string) Key {
	h := sha256.New()
	h.Write([]byte(client))
	if !confidential {
		host := remoteAddr
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		h.Write([]byte{0})
		h.Write([]byte(host))
	}
	var key Key
	copy(key[:], h.Sum(nil))
	return key
}

// ClientID returns the client a revoke call is from: the user of an HTTP
// Basic Authorization value (basicauth.Parse), else the form's client_id.
// The user is form-urlencoded (RFC 6749 §2.3.1) and decoded here; one that
// does not decode is kept as sent. The password is never returned.
func ClientID(authorization string, form url.Values) string {
	if user, _, ok := basicauth.Parse(authorization); ok {
		if unescaped, err := url.QueryUnescape(user); err == nil {
			return unescaped
		}
		return user
	}
	return form.Get("client_id")
}

// IsConfidential reports whether a revoke call authenticates its client
// with a secret the identity service checks: an HTTP Basic Authorization
// value (basicauth.Parse), or client_secret or client_assertion in the form.
func IsConfidential(authorization string, form url.Values) bool {
	if _, _, ok := basicauth.Parse(authorization); ok {
		return true
	}
	return form.Get("client_secret") != "" || form.Get("client_assertion") != ""
}

// MaxAuditClient bounds the client id an audit line carries, in bytes.
const MaxAuditClient = 128

// AuditClient is a client id as the audit trail shows it: at most
// MaxAuditClient bytes, cut on a rune boundary, with "…" when cut.
func AuditClient(client string) string {
	if len(client) <= MaxAuditClient {
		return client
	}
	cut := MaxAuditClient
	for cut > 0 && !utf8.RuneStart(client[cut]) {
		cut--
	}
	return client[:cut] + "…"
}
