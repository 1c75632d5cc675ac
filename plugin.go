// Package tokenrevocation is a Traefik middleware that enforces OAuth token
// revocation at the edge: it watches revoke calls pass through to the
// identity service, remembers each confirmed revocation, and rejects every
// later request that carries a revoked token before it reaches an app.
package tokenrevocation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"sync/atomic"
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
	// PersistPath, when set, keeps the denylist in this append-only file so a restart forgets nothing. Default: "" (off).
	PersistPath string `json:"persistPath,omitempty"`
	// Redis, when its address is set, shares the denylist with every replica through a Redis Stream. Default: nil (off).
	Redis *RedisConfig `json:"redis,omitempty"`
}

// RedisConfig is the connection to Redis or Valkey.
type RedisConfig struct {
	// Address is host:port. Default: "" (Redis off).
	Address string `json:"address,omitempty"`
	// Username is the ACL user for AUTH. Default: "" (default user).
	Username string `json:"username,omitempty"`
	// Password for AUTH. Default: "" (no AUTH).
	Password string `json:"password,omitempty"`
	// DB is the database SELECTed after connecting. Default: 0.
	DB int `json:"db,omitempty"`
	// TLS connects with TLS 1.2 or later. Default: false.
	TLS bool `json:"tls,omitempty"`
	// InsecureSkipVerify skips TLS certificate checks. Default: false.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// KeyPrefix is prepended to the denylist name to make the stream key. Default: tokenrevocation:.
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// DialTimeout bounds connecting. Default: 2s.
	DialTimeout string `json:"dialTimeout,omitempty"`
	// ReadTimeout bounds each reply, beyond XREAD's own block time. Default: 2s.
	ReadTimeout string `json:"readTimeout,omitempty"`
	// WriteTimeout bounds each write. Default: 2s.
	WriteTimeout string `json:"writeTimeout,omitempty"`
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
	settings *settings
	list     *denylist

	// Derived once, for the hot path: slow sends every request to serveSlow
	// (the stats path or query tokens are on, or header tokens are off);
	// filter and mask are the denylist's, one field read away instead of two.
	slow   bool
	filter []uint64
	mask   uint64
}

// revokedChallenge is the RFC 6750 challenge sent with a revoked token.
const revokedChallenge = `Bearer error="invalid_token", error_description="The access token has been revoked"`

// New creates the middleware; its errors name the offending field.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	s, err := config.validate(name)
	if err != nil {
		return nil, err
	}
	list, err := sharedDenylist(s.denylist, denylistOptions{sizeMB: s.cacheSizeMB, maxTTL: s.maxTTL, persistPath: s.persistPath, redis: s.redis})
	if err != nil {
		return nil, err
	}
	return newMiddleware(next, s, list), nil
}

func newMiddleware(next http.Handler, s *settings, list *denylist) *middleware {
	m := &middleware{next: next, settings: s, list: list}
	m.slow = s.statsPath != "" || s.fromQuery || !s.fromHeader
	m.filter = list.filter
	m.mask = list.mask
	return m
}

// ServeHTTP rejects revoked bearer tokens and intercepts revoke and token
// calls. It is the hot path, run by Yaegi for every request through the
// router. Yaegi allocates every local value and temporary of a function on
// each call, and each interpreted statement and call costs far more than the
// compiled standard library it calls. So ServeHTTP itself is as small as it
// can be and settles the commonest case, a request with no Authorization
// header; bearer requests go to serveBearer, everything else to serveSlow.
func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if m.slow || req.Method == http.MethodPost {
		m.serveSlow(rw, req)
		return
	}
	auth := req.Header["Authorization"]
	if len(auth) == 0 {
		m.next.ServeHTTP(rw, req)
		return
	}
	m.serveBearer(rw, req, auth)
}

// serveBearer passes, inline, a request with one "Bearer " credential whose
// bit in the denylist's bitset is clear: the token was never revoked. It is
// kept this small because Yaegi's cost of a call grows with the callee's
// size, executed or not. Everything else, revoked tokens included, goes to
// serveSlow.
func (m *middleware) serveBearer(rw http.ResponseWriter, req *http.Request, auth []string) {
	// The common form, "Bearer " and the token, is matched exactly; any
	// other (another case, more blanks, several headers) goes the slow way.
	if v := auth[0]; len(auth) == 1 && len(v) > 7 && v[:7] == "Bearer " && v[7] != ' ' && v[7] != '\t' {
		sum := sha256.Sum256([]byte(v[7:]))
		i := binary.LittleEndian.Uint64(sum[8:16]) & m.mask
		if atomic.LoadUint64(&m.filter[i>>6])>>(i&63)&1 == 0 {
			m.next.ServeHTTP(rw, req)
			return
		}
	}
	m.serveSlow(rw, req)
}

// serveSlow handles every request the hot path did not settle.
func (m *middleware) serveSlow(rw http.ResponseWriter, req *http.Request) {
	s := m.settings
	path := req.URL.Path
	if req.Method == http.MethodPost {
		if path == s.revokePath {
			m.serveRevoke(rw, req)
			return
		}
		if path == s.tokenPath && s.tokenPath != "" && m.refreshRevoked(rw, req) {
			return
		}
	} else if path == s.statsPath && s.statsPath != "" && req.Method == http.MethodGet {
		m.serveStats(rw)
		return
	}
	if s.fromHeader {
		for _, value := range req.Header["Authorization"] {
			if token := bearerToken(value); token != "" && m.list.contains(token) {
				m.rejectRevoked(rw)
				return
			}
		}
	}
	if s.fromQuery && req.URL.RawQuery != "" && m.queryRevoked(req) {
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
