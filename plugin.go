// Package tokenrevocation is a Traefik middleware that enforces OAuth token
// revocation at the edge: it watches revoke calls pass through to the
// identity service, remembers each confirmed revocation, and rejects every
// later request that carries a revoked token before it reaches an app.
package tokenrevocation

import (
	"context"
	"net/http"
)

// Config is the middleware's dynamic configuration.
type Config struct {
	// RevokePath is the identity service's revoke endpoint, intercepted on POST. Default: /api/id/v1/auth/token/revoke.
	RevokePath string `json:"revokePath,omitempty"`
	// TokenPath is the token endpoint where refresh grants are checked; empty turns the check off. Default: /api/id/v1/auth/token.
	TokenPath string `json:"tokenPath,omitempty"`
	// AccessTokenTTL is how long an opaque token revoked with hint access_token is kept. Default: 1h.
	AccessTokenTTL string `json:"accessTokenTTL,omitempty"`
	// RefreshTokenTTL is how long an opaque token revoked with hint refresh_token, or with no hint, is kept (the longer TTL applies without a hint). Default: 720h.
	RefreshTokenTTL string `json:"refreshTokenTTL,omitempty"`
	// MaxTTL caps the lifetime of every entry, JWT or not. Default: 720h.
	MaxTTL string `json:"maxTTL,omitempty"`
	// Leeway is added to a JWT's exp claim. Default: 60s.
	Leeway string `json:"leeway,omitempty"`
	// CacheSizeMB is bigcache's HardMaxCacheSize for each lifetime lane of the denylist. Default: 64.
	CacheSizeMB int `json:"cacheSizeMB,omitempty"`
	// MaxBodyBytes is the largest revoke or token request body read. Default: 65536.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// RequireClientAuth answers 401 to revoke calls with no client credentials. Default: true.
	RequireClientAuth bool `json:"requireClientAuth,omitempty"`
	// TokenSources lists where bearer tokens are read: header, query. Default: [header].
	TokenSources []string `json:"tokenSources,omitempty"`
	// Denylist names the denylist shared by every instance with the same name. Default: the middleware's name.
	Denylist string `json:"denylist,omitempty"`
	// StatsPath, when set, answers GET with the denylist's counters as JSON; route it internally only. Default: "" (off).
	StatsPath string `json:"statsPath,omitempty"`
	// Realm is the realm of the WWW-Authenticate challenges. Default: tokenrevocation.
	Realm string `json:"realm,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{
		RevokePath:        "/api/id/v1/auth/token/revoke",
		TokenPath:         "/api/id/v1/auth/token",
		AccessTokenTTL:    "1h",
		RefreshTokenTTL:   "720h",
		MaxTTL:            "720h",
		Leeway:            "60s",
		CacheSizeMB:       64,
		MaxBodyBytes:      65536,
		RequireClientAuth: true,
		TokenSources:      []string{"header"},
		Realm:             "tokenrevocation",
	}
}

// middleware is one instance of the plugin, as Traefik builds it per router.
type middleware struct {
	next     http.Handler
	name     string
	settings *settings
	list     *denylist

	// Copied out of settings so the hot path reads one field, not two.
	revokePath string
	tokenPath  string
	statsPath  string
	fromQuery  bool
	fromHeader bool
}

// revokedChallenge is the RFC 6750 challenge sent with a revoked token.
const revokedChallenge = `Bearer error="invalid_token", error_description="The access token has been revoked"`

// New creates the middleware; its errors name the offending field.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	s, err := config.validate(name)
	if err != nil {
		return nil, err
	}
	list, err := sharedDenylist(s.denylist, denylistOptions{sizeMB: s.cacheSizeMB, maxTTL: s.maxTTL})
	if err != nil {
		return nil, err
	}
	return newMiddleware(next, name, s, list), nil
}

func newMiddleware(next http.Handler, name string, s *settings, list *denylist) *middleware {
	m := &middleware{next: next, name: name, settings: s, list: list}
	m.revokePath = s.revokePath
	m.tokenPath = s.tokenPath
	m.statsPath = s.statsPath
	m.fromHeader = s.fromHeader
	m.fromQuery = s.fromQuery
	return m
}

// ServeHTTP intercepts revoke and token calls and rejects revoked bearer
// tokens. It is the hot path: every request through the router pays for it.
func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	if req.Method == http.MethodPost {
		if path == m.revokePath {
			m.serveRevoke(rw, req)
			return
		}
		if path == m.tokenPath && m.tokenPath != "" && m.refreshRevoked(rw, req) {
			return
		}
	} else if path == m.statsPath && m.statsPath != "" && req.Method == http.MethodGet {
		m.serveStats(rw)
		return
	}
	if m.fromHeader {
		if auth := req.Header["Authorization"]; len(auth) != 0 {
			for _, value := range auth {
				if token := bearerToken(value); token != "" && m.list.contains(token) {
					m.rejectRevoked(rw)
					return
				}
			}
		}
	}
	if m.fromQuery && req.URL.RawQuery != "" && m.queryRevoked(req) {
		m.rejectRevoked(rw)
		return
	}
	m.next.ServeHTTP(rw, req)
}

// queryRevoked checks every RFC 6750 access_token query parameter.
func (m *middleware) queryRevoked(req *http.Request) bool {
	for _, token := range req.URL.Query()["access_token"] {
		if token != "" && m.list.contains(token) {
			return true
		}
	}
	return false
}

// rejectRevoked answers a request that carries a revoked token.
func (m *middleware) rejectRevoked(rw http.ResponseWriter) {
	rw.Header().Set("WWW-Authenticate", revokedChallenge)
	writeJSON(rw, http.StatusUnauthorized, revokedBody)
}
