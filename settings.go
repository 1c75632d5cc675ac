package tokenrevocation

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// settings is a Config checked and parsed once, in New, so that no request
// parses a duration or walks a list.
type settings struct {
	revokePath        string
	tokenPath         string
	statsPath         string
	accessTokenTTL    time.Duration
	refreshTokenTTL   time.Duration
	maxTTL            time.Duration
	maxLifetime       time.Duration
	leeway            time.Duration
	cacheSizeMB       int
	maxBodyBytes      int64
	requireClientAuth bool
	fromHeader        bool
	fromQuery         bool
	fromForm          bool
	tokenHeaders      []string // canonical names of custom headers carrying a raw token
	tokenCookies      []string // names of cookies carrying a token
	loadWait          time.Duration
	failClosed        bool
	clientRate        int
	clientBurst       int
	clientShare       float64 // fraction of a lane; 1 is off
	trackGrants       bool
	revokeOnRefresh   bool
	maxGrants         int
	denylist          string
	realm             string
	basicChallenge    string
	persistPath       string
	redis             *redisOptions
	logout            *logoutSettings // nil when backchannelLogoutPath is off
	metricsPath       string
	auditLog          string
	admin             *adminSettings // nil when adminPath is off
	sessionClaim      []string       // the path of the session claim in a JWT bearer's payload
}

// adminSettings are the admin API's options (admin.go).
type adminSettings struct {
	path      string // without a trailing slash
	token     string
	tokenFile string
}

// logoutSettings are the back-channel logout options (logout.go).
type logoutSettings struct {
	path           string
	issuer         string
	jwksURL        string
	audiences      []string
	matchSub       bool
	includeOffline bool
	ruleTTL        time.Duration
	maxAge         time.Duration
	jwksRefresh    time.Duration
}

// validate checks every field and returns the parsed settings. Its errors
// name the field. name is the middleware's name, the default denylist.
func (c *Config) validate(name string) (*settings, error) {
	if c == nil {
		return nil, fmt.Errorf("tokenrevocation: no configuration")
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	s := &settings{
		revokePath:        c.RevokePath,
		tokenPath:         c.TokenPath,
		statsPath:         c.StatsPath,
		cacheSizeMB:       c.CacheSizeMB,
		maxBodyBytes:      c.MaxBodyBytes,
		requireClientAuth: c.RequireClientAuth,
		failClosed:        c.FailClosed,
		trackGrants:       c.TrackGrants,
		revokeOnRefresh:   c.RevokeOnRefresh,
		maxGrants:         c.MaxGrants,
		clientRate:        c.ClientRate,
		clientBurst:       c.ClientBurst,
		denylist:          c.Denylist,
		realm:             c.Realm,
	}
	if !strings.HasPrefix(s.revokePath, "/") {
		return nil, fieldError("revokePath", "must be a path starting with /, got %q", s.revokePath)
	}
	if s.tokenPath != "" && !strings.HasPrefix(s.tokenPath, "/") {
		return nil, fieldError("tokenPath", "must be empty or a path starting with /, got %q", s.tokenPath)
	}
	if s.tokenPath == s.revokePath {
		return nil, fieldError("tokenPath", "must differ from revokePath %q", s.revokePath)
	}
	if s.statsPath != "" && (!strings.HasPrefix(s.statsPath, "/") || s.statsPath == s.revokePath || s.statsPath == s.tokenPath) {
		return nil, fieldError("statsPath", "must be empty or a path starting with / that differs from revokePath and tokenPath, got %q", s.statsPath)
	}

	var err error
	if s.accessTokenTTL, err = parsePositiveDuration("accessTokenTTL", c.AccessTokenTTL); err != nil {
		return nil, err
	}
	if s.refreshTokenTTL, err = parsePositiveDuration("refreshTokenTTL", c.RefreshTokenTTL); err != nil {
		return nil, err
	}
	if s.maxTTL, err = parsePositiveDuration("maxTTL", c.MaxTTL); err != nil {
		return nil, err
	}
	if s.leeway, err = time.ParseDuration(strings.TrimSpace(c.Leeway)); err != nil || s.leeway < 0 {
		return nil, fieldError("leeway", "must be a duration of 0 or more such as 5m, got %q", c.Leeway)
	}
	s.maxLifetime = defaultMaxLifetime
	if s.maxTTL > s.maxLifetime {
		s.maxLifetime = s.maxTTL
	}
	if strings.TrimSpace(c.MaxLifetime) != "" {
		if s.maxLifetime, err = parsePositiveDuration("maxLifetime", c.MaxLifetime); err != nil {
			return nil, err
		}
	}
	if s.maxLifetime < s.maxTTL {
		return nil, fieldError("maxLifetime", "must be at least maxTTL (%s), got %q", s.maxTTL, c.MaxLifetime)
	}

	if s.cacheSizeMB < 1 || s.cacheSizeMB > 1<<20 {
		return nil, fieldError("cacheSizeMB", "must be between 1 and 1048576, got %d", s.cacheSizeMB)
	}
	if s.maxBodyBytes < 1 || s.maxBodyBytes > 1<<30 {
		return nil, fieldError("maxBodyBytes", "must be between 1 and 1073741824, got %d", s.maxBodyBytes)
	}

	if err := s.parseTokenSources(c.TokenSources); err != nil {
		return nil, err
	}
	if s.loadWait, err = parsePositiveDuration("loadWait", c.LoadWait); err != nil {
		return nil, err
	}
	if s.clientRate < 0 || s.clientRate > 1_000_000 {
		return nil, fieldError("clientRate", "must be between 0 (off) and 1000000 per second, got %d", s.clientRate)
	}
	if s.clientRate > 0 && (s.clientBurst < 1 || s.clientBurst > 1_000_000) {
		return nil, fieldError("clientBurst", "must be between 1 and 1000000, got %d", s.clientBurst)
	}
	if c.ClientSharePercent < 1 || c.ClientSharePercent > 100 {
		return nil, fieldError("clientSharePercent", "must be between 1 and 100 (off), got %d", c.ClientSharePercent)
	}
	s.clientShare = float64(c.ClientSharePercent) / 100
	if s.maxGrants < 1 || s.maxGrants > 100_000_000 {
		return nil, fieldError("maxGrants", "must be between 1 and 100000000, got %d", s.maxGrants)
	}
	if s.trackGrants && s.tokenPath == "" {
		return nil, fieldError("trackGrants", "needs a tokenPath to learn grants from")
	}

	if s.denylist == "" {
		s.denylist = name
	}
	if s.denylist == "" {
		return nil, fieldError("denylist", "must not be empty when the middleware has no name")
	}
	if s.realm == "" {
		s.realm = "tokenrevocation"
	}
	if strings.ContainsAny(s.realm, "\"\\\r\n") {
		return nil, fieldError("realm", "must not contain quotes, backslashes or line breaks, got %q", s.realm)
	}
	s.basicChallenge = `Basic realm="` + s.realm + `"`
	s.persistPath = strings.TrimSpace(c.PersistPath)
	if err := s.parseLogout(c); err != nil {
		return nil, err
	}
	if err := s.parseOperations(c); err != nil {
		return nil, err
	}
	if c.Redis != nil {
		if s.redis, err = c.Redis.validate(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parseLogout reads the back-channel logout options. The session claim is
// read even with backchannelLogoutPath off: rules replicated from another
// router or replica are enforced by every middleware of the denylist.
func (s *settings) parseLogout(c *Config) error {
	claim := strings.TrimSpace(c.SessionClaim)
	if claim == "" {
		claim = "sid"
	}
	s.sessionClaim = strings.Split(claim, ".")
	for _, part := range s.sessionClaim {
		if part == "" {
			return fieldError("sessionClaim", "must be a claim name or a dotted path such as ext.sid, got %q", c.SessionClaim)
		}
	}
	match := strings.ToLower(strings.TrimSpace(c.LogoutMatch))
	if match != "" && match != "sid" && match != "sub" {
		return fieldError("logoutMatch", "must be sid or sub, got %q", c.LogoutMatch)
	}
	path := strings.TrimSpace(c.BackchannelLogoutPath)
	if path == "" {
		return nil
	}
	if !strings.HasPrefix(path, "/") || path == s.revokePath || path == s.tokenPath || path == s.statsPath {
		return fieldError("backchannelLogoutPath", "must be empty or a path starting with / that differs from revokePath, tokenPath and statsPath, got %q", path)
	}
	l := &logoutSettings{path: path, issuer: strings.TrimSpace(c.Issuer), jwksURL: strings.TrimSpace(c.JWKSURL),
		matchSub: match == "sub", includeOffline: c.LogoutOfflineAccess}
	if !isHTTPURL(l.issuer) {
		return fieldError("issuer", "must be the provider's issuer URL (http or https) when backchannelLogoutPath is set, got %q", c.Issuer)
	}
	if l.jwksURL != "" && !isHTTPURL(l.jwksURL) {
		return fieldError("jwksURL", "must be empty or an http or https URL, got %q", c.JWKSURL)
	}
	for _, aud := range c.Audiences {
		if aud = strings.TrimSpace(aud); aud != "" {
			l.audiences = append(l.audiences, aud)
		}
	}
	if len(l.audiences) == 0 {
		return fieldError("audiences", "must list the client ids logout tokens are sent for when backchannelLogoutPath is set")
	}
	var err error
	if l.ruleTTL, err = durationOr("logoutRuleTTL", c.LogoutRuleTTL, s.maxTTL); err != nil {
		return err
	}
	if l.maxAge, err = durationOr("logoutMaxAge", c.LogoutMaxAge, 2*time.Minute); err != nil {
		return err
	}
	if l.maxAge > maxLogoutMaxAge {
		return fieldError("logoutMaxAge", "must be at most %s (the replay store's memory), got %q", maxLogoutMaxAge, c.LogoutMaxAge)
	}
	if l.jwksRefresh, err = durationOr("jwksRefresh", c.JWKSRefresh, 15*time.Minute); err != nil {
		return err
	}
	s.logout = l
	return nil
}

// parseOperations reads metricsPath, auditLog and the admin API's options.
func (s *settings) parseOperations(c *Config) error {
	taken := func(p string) bool {
		return p == s.revokePath || p == s.tokenPath || p == s.statsPath || (s.logout != nil && p == s.logout.path)
	}
	s.metricsPath = strings.TrimSpace(c.MetricsPath)
	if s.metricsPath != "" && (!strings.HasPrefix(s.metricsPath, "/") || taken(s.metricsPath)) {
		return fieldError("metricsPath", "must be empty or a path starting with / that no other option uses, got %q", c.MetricsPath)
	}
	s.auditLog = strings.TrimSpace(c.AuditLog)
	path := strings.TrimRight(strings.TrimSpace(c.AdminPath), "/")
	if strings.TrimSpace(c.AdminPath) == "" {
		return nil
	}
	if !strings.HasPrefix(path, "/") || taken(path) || path == s.metricsPath ||
		strings.HasPrefix(s.revokePath, path+"/") || strings.HasPrefix(s.tokenPath, path+"/") {
		return fieldError("adminPath", "must be a path starting with / (not /) that no other option uses or lies under, got %q", c.AdminPath)
	}
	a := &adminSettings{path: path, token: strings.TrimSpace(c.AdminToken), tokenFile: strings.TrimSpace(c.AdminTokenFile)}
	switch {
	case a.token == "" && a.tokenFile == "":
		return fieldError("adminToken", "or adminTokenFile must be set with adminPath")
	case a.token != "" && a.tokenFile != "":
		return fieldError("adminToken", "and adminTokenFile are exclusive")
	case a.token != "" && len(a.token) < 16:
		return fieldError("adminToken", "must be at least 16 characters")
	}
	s.admin = a
	return nil
}

// isHTTPURL reports whether value is an absolute http or https URL.
func isHTTPURL(value string) bool {
	u, err := url.Parse(value)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// denylistOptions are the settings a denylist is created with.
func (s *settings) denylistOptions() denylistOptions {
	return denylistOptions{
		sizeMB: s.cacheSizeMB, maxTTL: s.maxTTL, persistPath: s.persistPath, redis: s.redis,
		loadWait: s.loadWait, failClosed: s.failClosed,
		clientRate: s.clientRate, clientBurst: s.clientBurst, clientShare: s.clientShare,
		maxGrants: s.maxGrants, leeway: s.leeway, maxLifetime: s.maxLifetime,
	}
}

// parseTokenSources reads tokenSources: header, query, form, header:NAME and
// cookie:NAME, in any case for the keywords.
func (s *settings) parseTokenSources(sources []string) error {
	const use = "use header, query, form, header:NAME or cookie:NAME"
	if len(sources) == 0 {
		return fieldError("tokenSources", "must list at least one source: "+use)
	}
	for _, source := range sources {
		kind, name, named := strings.Cut(strings.TrimSpace(source), ":")
		kind = strings.ToLower(kind)
		name = strings.TrimSpace(name)
		switch {
		case kind == "header" && !named:
			s.fromHeader = true
		case kind == "query" && !named:
			s.fromQuery = true
		case kind == "form" && !named:
			s.fromForm = true
		case kind == "header" && validToken(name):
			s.tokenHeaders = append(s.tokenHeaders, http.CanonicalHeaderKey(name))
		case kind == "cookie" && validToken(name):
			s.tokenCookies = append(s.tokenCookies, name)
		default:
			return fieldError("tokenSources", "unknown source %q: "+use, source)
		}
	}
	return nil
}

// validToken reports whether name is an RFC 7230 token, as header and cookie
// names must be.
func validToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// durationOr parses an optional positive duration, def when empty.
func durationOr(field, value string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(value) == "" {
		return def, nil
	}
	return parsePositiveDuration(field, value)
}

// fieldError formats a configuration error that names its field.
func fieldError(field, format string, args ...interface{}) error {
	return fmt.Errorf("tokenrevocation: invalid "+field+": "+format, args...)
}

// parsePositiveDuration parses a Go duration string that must be above zero.
func parsePositiveDuration(field, value string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(value))
	if err != nil || d <= 0 {
		return 0, fieldError(field, "must be a duration above zero such as 1h, got %q", value)
	}
	return d, nil
}
