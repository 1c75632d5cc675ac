// Package tokenrevocation is a Traefik middleware that enforces OAuth token
// revocation at the edge: it watches revoke calls pass through to the
// identity service, remembers each confirmed revocation, and rejects every
// later request that carries a revoked token before it reaches an app.
package tokenrevocation

import (
	"context"
	"encoding/binary"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/rules"
	"github.com/edgerevoke/tokenrevocation/internal/store"
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
	// MaxTTL caps the lifetimes the edge has to guess: opaque tokens and JWTs without exp. A JWT's revocation lives until its exp plus leeway. Default: 720h.
	MaxTTL string `json:"maxTTL,omitempty"`
	// MaxLifetime is the longest revocation the store holds: a revoke whose revocation would outlive it gets 503 before the identity service is called. At least maxTTL. Default: 8760h.
	MaxLifetime string `json:"maxLifetime,omitempty"`
	// Leeway is added to a JWT's exp claim, and is the clock skew tolerated between replicas. Default: 5m, ASP.NET Core's and Microsoft.IdentityModel's default clock skew.
	Leeway string `json:"leeway,omitempty"`
	// CacheSizeMB is bigcache's HardMaxCacheSize for each lifetime lane of the denylist. Default: 64.
	CacheSizeMB int `json:"cacheSizeMB,omitempty"`
	// MaxBodyBytes is the largest revoke or token request body read. Default: 65536.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// RequireClientAuth answers 401 to revoke calls with no client credentials. Default: true.
	RequireClientAuth bool `json:"requireClientAuth,omitempty"`
	// TokenSources lists where tokens are read: header (every Authorization
	// header), query (the access_token query parameter), form (access_token in
	// an application/x-www-form-urlencoded body of at most maxBodyBytes),
	// header:NAME (a header carrying the raw token) and cookie:NAME (a cookie
	// carrying the token). Default: [header, query, form], every place RFC 6750 defines.
	TokenSources []string `json:"tokenSources,omitempty"`
	// LoadWait bounds how long a request carrying a token is held while the
	// denylist loads at start; past it the request gets 503. It is also how long
	// an unreachable Redis or unreadable persistPath may keep a starting replica
	// closed before it serves with what it has (see FailClosed). Default: 10s.
	LoadWait string `json:"loadWait,omitempty"`
	// FailClosed keeps answering 503 to requests carrying a token for as long as
	// Redis or persistPath cannot be loaded at start, instead of serving with
	// what was loaded once LoadWait has passed. Default: false.
	FailClosed bool `json:"failClosed,omitempty"`
	// ClientRate is how many revoke calls per second one client (HTTP Basic user,
	// else client_id) may make; 0 turns the limit off. Default: 100.
	ClientRate int `json:"clientRate,omitempty"`
	// ClientBurst is how many revoke calls one client may make at once above
	// ClientRate. Default: 200.
	ClientBurst int `json:"clientBurst,omitempty"`
	// ClientSharePercent caps one client's live revocations at this percent of a
	// denylist lane's capacity; 100 turns the limit off. Default: 50.
	ClientSharePercent int `json:"clientSharePercent,omitempty"`
	// Denylist names the denylist shared by every instance with the same name. Default: the middleware's name.
	Denylist string `json:"denylist,omitempty"`
	// StatsPath, when set, answers GET with the denylist's counters as JSON; route it internally only. Default: "" (off).
	StatsPath string `json:"statsPath,omitempty"`
	// Realm is the realm of the WWW-Authenticate challenges. Default: tokenrevocation.
	Realm string `json:"realm,omitempty"`
	// PersistPath, when set, keeps the denylist in this append-only file so a restart forgets nothing. Default: "" (off).
	PersistPath string `json:"persistPath,omitempty"`
	// TrackGrants learns grant families from the token responses on
	// tokenPath, so that a confirmed revocation of a refresh token also
	// revokes every live token of its grant (RFC 7009 §2.1). Default: false.
	TrackGrants bool `json:"trackGrants,omitempty"`
	// RevokeOnRefresh, with trackGrants, revokes a grant's previous access
	// tokens when it is refreshed, as providers such as Ory Hydra do. Default: false.
	RevokeOnRefresh bool `json:"revokeOnRefresh,omitempty"`
	// MaxGrants caps the grant families tracked; past it new grants are not
	// tracked (counted and warned about). Default: 100000.
	MaxGrants int `json:"maxGrants,omitempty"`
	// BackchannelLogoutPath, when set, is answered by the edge itself: a POST
	// with the form parameter logout_token, an OpenID Connect Back-Channel
	// Logout 1.0 logout token, which is verified and then rejects the tokens
	// of the session or subject it names (logout.go). Default: "" (off).
	BackchannelLogoutPath string `json:"backchannelLogoutPath,omitempty"`
	// Issuer is the OpenID provider's issuer, the iss a logout token must
	// carry; with no jwksURL, OIDC discovery at Issuer +
	// /.well-known/openid-configuration finds the keys. Default: "".
	Issuer string `json:"issuer,omitempty"`
	// JWKSURL is the provider's JWK Set, the keys logout tokens are signed
	// with. Default: "" (from the issuer's discovery document).
	JWKSURL string `json:"jwksURL,omitempty"`
	// Audiences are the accepted aud values of a logout token: the client
	// ids the provider sends logouts for. Default: [] (required with
	// backchannelLogoutPath).
	Audiences []string `json:"audiences,omitempty"`
	// LogoutMatch is what a logout carrying both sid and sub rejects: sid,
	// that session's tokens, or sub, every token of the user. A logout with
	// only sub always rejects every token of the user. Default: sid.
	LogoutMatch string `json:"logoutMatch,omitempty"`
	// SessionClaim is the claim of JWT bearer tokens that holds the session
	// id, a dotted path for a nested claim such as ext.sid. Default: sid.
	SessionClaim string `json:"sessionClaim,omitempty"`
	// LogoutOfflineAccess makes a logout also revoke the refresh tokens of
	// tracked grants whose scope holds offline_access, which Back-Channel
	// Logout §2.7 says normally survive a logout. Default: false.
	LogoutOfflineAccess bool `json:"logoutOfflineAccess,omitempty"`
	// LogoutRuleTTL is how long a logout's session or subject rule rejects
	// JWT bearer tokens issued before it: set it to your longest JWT access
	// token lifetime. Default: maxTTL.
	LogoutRuleTTL string `json:"logoutRuleTTL,omitempty"`
	// LogoutMaxAge is how old a logout token's iat may be. Default: 2m.
	LogoutMaxAge string `json:"logoutMaxAge,omitempty"`
	// JWKSRefresh is how often the provider's keys are fetched again; an
	// unknown kid also fetches them, at most once every 5 s. Default: 15m.
	JWKSRefresh string `json:"jwksRefresh,omitempty"`
	// MetricsPath, when set, answers GET with Prometheus metrics of every
	// denylist (text exposition format); route it from an internal
	// entrypoint only. Default: "" (off).
	MetricsPath string `json:"metricsPath,omitempty"`
	// AuditLog, when set, writes one JSON line per state change (revocation,
	// un-revocation, refusal, logout, admin call) to this file path, or to
	// stdout or stderr. Writing never holds a request: lines the sink cannot
	// take are dropped and counted. Default: "" (off).
	AuditLog string `json:"auditLog,omitempty"`
	// AdminPath, when set, serves the admin API under this path (revoke,
	// lookup, unrevoke, export, import, rules), answered by the edge and
	// authenticated by adminToken; route it from an internal entrypoint
	// only. Default: "" (off).
	AdminPath string `json:"adminPath,omitempty"`
	// AdminToken is the admin API's bearer secret. Default: "".
	AdminToken string `json:"adminToken,omitempty"`
	// AdminTokenFile is a file holding the admin API's bearer secret, read
	// on every admin call (a mounted Kubernetes secret). Default: "".
	AdminTokenFile string `json:"adminTokenFile,omitempty"`
	// Redis, when its address is set, shares the denylist with every replica through a Redis Stream. Default: nil (off).
	Redis *RedisConfig `json:"redis,omitempty"`
	// Unknown holds the options Traefik's decoder could not place (a
	// misspelled name): New refuses them (options.go). Not an option.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{
		RevokePath:         "/api/id/v1/auth/token/revoke",
		TokenPath:          "/api/id/v1/auth/token",
		AccessTokenTTL:     "1h",
		RefreshTokenTTL:    "720h",
		MaxTTL:             "720h",
		MaxLifetime:        "8760h",
		Leeway:             "5m",
		CacheSizeMB:        64,
		MaxBodyBytes:       65536,
		RequireClientAuth:  true,
		TokenSources:       []string{"header", "query", "form"},
		LoadWait:           "10s",
		ClientRate:         100,
		ClientBurst:        200,
		ClientSharePercent: 50,
		MaxGrants:          100000,
		LogoutMatch:        "sid",
		SessionClaim:       "sid",
		LogoutMaxAge:       "2m",
		JWKSRefresh:        "15m",
		Realm:              "tokenrevocation",
	}
}

// middleware is one instance of the plugin, as Traefik builds it per router.
type middleware struct {
	next     http.Handler
	settings *settings
	list     *denylist

	// Derived once, for the hot path: slow sends every request to serveSlow
	// (the stats path, custom header or cookie sources are on, or
	// Authorization is not read); filter and mask are the denylist's, one
	// field read away instead of two.
	slow   bool
	plain  bool // neither slow nor intercept: ServeHTTP may pass a request with no credential at once
	query  bool
	filter []uint64
	mask   uint64
	// rules is the count of live logout rules (internal/rules): while it is 0,
	// a clear bit settles a bearer token.
	rules     *int32
	ruleStore *rules.Store
	// sessionClaim is the settings' session claim path, one field away.
	sessionClaim []string
	// pre is the denylist's pre-check set (internal/store).
	pre *atomic.Value
	// keys are the OpenID provider's keys, when backchannelLogoutPath is set.
	keys *keySource
	// intercept is set when metricsPath or adminPath is: the requests to
	// them, with or without a token, go to serveSlow, which answers them.
	intercept   bool
	metricsPath string
	adminPath   string // adminPath, and adminPrefix the paths under it
	adminPrefix string
	// endpoints are the intercepted endpoints' paths as an identity
	// service may route them (paths.go).
	endpoints     []string
	endpointTails []string // their last segments (endpointVariant's prefilter)
}

// retryAfterLoading is the Retry-After, in seconds, of a request turned away
// while the denylist loads.
const retryAfterLoading = "2"

// revokedChallenge is the RFC 6750 challenge sent with a revoked token.
const revokedChallenge = `Bearer error="invalid_token", error_description="The access token has been revoked"`

// namespaceWarned holds the middleware names warnNamespacedDenylist has
// warned about, once each: New runs per router and on every reload.
var namespaceWarned sync.Map

// warnNamespacedDenylist warns, once per name, when the denylist defaults
// to a Kubernetes provider's qualified middleware name
// (<namespace>-<name>@kubernetescrd): the same middleware referenced from
// another namespace is then another denylist, and revocations seen on the
// identity service's routes would not reach an API's.
func warnNamespacedDenylist(configured, name string) {
	if strings.TrimSpace(configured) != "" || !strings.Contains(name, "@kubernetes") {
		return
	}
	if _, seen := namespaceWarned.LoadOrStore(name, true); seen {
		return
	}
	log.Printf("tokenrevocation: WARN middleware %q has no denylist option, so its denylist is named after it; "+
		"a middleware of another namespace gets another denylist, and revocations do not carry over: set the same denylist on every one", name)
}

// New creates the middleware; its errors name the offending field.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	s, err := config.validate(name)
	if err != nil {
		return nil, err
	}
	list, err := sharedDenylist(s.denylist, s.denylistOptions())
	if err != nil {
		return nil, err
	}
	warnNamespacedDenylist(config.Denylist, name)
	m := newMiddleware(next, s, list)
	if s.auditLog != "" {
		list.audit.Store(obs.SharedAuditor(s.auditLog))
	}
	if l := s.logout; l != nil {
		// Fetched in the background: New never touches the network.
		m.keys = sharedKeySource(l.issuer, l.jwksURL, l.jwksRefresh)
		list.mu.Lock()
		list.keys = m.keys
		list.mu.Unlock()
	}
	return m, nil
}

func newMiddleware(next http.Handler, s *settings, list *denylist) *middleware {
	m := &middleware{next: next, settings: s, list: list, rules: list.rules.Live(), ruleStore: list.rules, pre: list.store.Precheck().Current()}
	m.slow = s.statsPath != "" || !s.fromHeader || len(s.tokenHeaders) > 0 || len(s.tokenCookies) > 0
	m.query = s.fromQuery
	m.sessionClaim = s.sessionClaim
	m.metricsPath = s.metricsPath
	if s.admin != nil {
		m.adminPath = s.admin.path
		m.adminPrefix = s.admin.path + "/"
	}
	m.intercept = m.metricsPath != "" || m.adminPath != ""
	m.plain = !m.slow && !m.intercept
	m.endpoints = endpointPaths(s)
	m.endpointTails = endpointTails(m.endpoints)
	m.filter, m.mask = list.store.Filter()
	return m
}

// ServeHTTP rejects revoked tokens and intercepts revoke and token calls. It
// is the hot path, run by Yaegi for every request through the router. Yaegi
// allocates every local value and temporary of a function on each call, and
// its cost of a call grows with the function's size, executed or not. So
// ServeHTTP is one test: a request with no Authorization header, no query,
// no body and not a POST carries no token and goes straight on (when no
// custom source or intercepted path is configured). Everything else goes to
// serveHot.
func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if m.plain && req.ContentLength == 0 && req.URL.RawQuery == "" && req.Method != http.MethodPost && req.Header["Authorization"] == nil {
		m.next.ServeHTTP(rw, req)
		return
	}
	m.serveHot(rw, req)
}

// serveHot settles, inline, a request whose only credential is one
// "Bearer <token>" header with no blank or comma in the token, whose pre-check key
// (precheck.go) no revocation has: it was never revoked. Requests that may
// carry a token elsewhere (a body, access_token in the query, an
// intercepted path) go to serveSlow, every "maybe" to serveBearer. The
// query test and the key are inline, compiled calls only: an interpreted
// call costs more. keyOf repeats the key rule; the two must agree.
func (m *middleware) serveHot(rw http.ResponseWriter, req *http.Request) {
	if m.slow || req.Method == http.MethodPost || req.ContentLength != 0 ||
		(m.query && req.URL.RawQuery != "" && (strings.IndexByte(req.URL.RawQuery, '%') >= 0 || strings.Contains(strings.ToLower(req.URL.RawQuery), "access"))) ||
		(m.intercept && (req.URL.Path == m.metricsPath || req.URL.Path == m.adminPath ||
			(len(req.URL.Path) >= len(m.adminPrefix) && m.adminPrefix != "" && req.URL.Path[:len(m.adminPrefix)] == m.adminPrefix))) {
		if m.plain && req.URL.RawQuery == "" {
			m.serveBody(rw, req)
			return
		}
		m.serveSlow(rw, req)
		return
	}
	auth := req.Header["Authorization"]
	if len(auth) == 0 {
		m.next.ServeHTTP(rw, req)
		return
	}
	// The key: the 8 characters after the last dot when 9 base64url
	// characters follow it (a JWS signature's prefix), else, with no dot,
	// the last 8. Any other token takes serveBearer's exact path.
	if v := auth[0]; len(auth) == 1 && len(v) > 7+keyLen && v[:7] == "Bearer " && !strings.ContainsAny(v[7:], " \t,") {
		dot := strings.LastIndexByte(v, '.')
		if dot < 0 {
			dot = len(v) - keyLen - 1
		} else if len(v)-dot < keyLen+2 || strings.Trim(v[dot+1:dot+2+keyLen], b64url) != "" {
			dot = -1
		}
		if dot >= 0 {
			var k store.Key
			copy(k[:], v[dot+1:])
			if p := m.pre.Load().(*store.PrecheckSet); !p.Open && p.Keys[k] == 0 {
				maybe := false
				if p.Delta != nil {
					_, maybe = p.Delta.Load(k)
				}
				// Never revoked; with logout rules live, it must pass them too.
				if !maybe && (!p.Rules || !m.ruleStore.Rejects(v[7:], m.sessionClaim)) {
					m.next.ServeHTTP(rw, req)
					return
				}
			}
		}
	}
	m.serveBearer(rw, req, auth)
}

// serveBearer passes a request with one "Bearer " credential, with no
// blank in it, whose identities' bits in the denylist's bitset are clear:
// the token was never revoked. While a back-channel logout rule is live
// (internal/rules) such a token must also pass the rules; while none is, that
// costs one atomic load. Everything else, revoked tokens included, goes to
// serveSlow.
func (m *middleware) serveBearer(rw http.ResponseWriter, req *http.Request, auth []string) {
	if v := auth[0]; len(auth) == 1 && len(v) > 7 && v[:7] == "Bearer " && !strings.ContainsAny(v[7:], " \t,") {
		sums, n := tokenDigests(v[7:])
		i := binary.LittleEndian.Uint64(sums[0][8:16]) & m.mask
		j := binary.LittleEndian.Uint64(sums[n-1][8:16]) & m.mask
		if atomic.LoadUint64(&m.filter[i>>6])>>(i&63)&1 == 0 && atomic.LoadUint64(&m.filter[j>>6])>>(j&63)&1 == 0 &&
			(atomic.LoadInt32(m.rules) == 0 || !m.ruleStore.Rejects(v[7:], m.settings.sessionClaim)) {
			m.next.ServeHTTP(rw, req)
			return
		}
	}
	m.serveSlow(rw, req)
}
