package tokenrevocation

import (
	"fmt"
	"net"
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
	leeway            time.Duration
	cacheSizeMB       int
	maxBodyBytes      int64
	requireClientAuth bool
	fromHeader        bool
	fromQuery         bool
	denylist          string
	realm             string
	basicChallenge    string
	persistPath       string
	redis             *redisOptions
}

// validate checks every field and returns the parsed settings. Its errors
// name the field. name is the middleware's name, the default denylist.
func (c *Config) validate(name string) (*settings, error) {
	if c == nil {
		return nil, fmt.Errorf("tokenrevocation: no configuration")
	}
	s := &settings{
		revokePath:        c.RevokePath,
		tokenPath:         c.TokenPath,
		statsPath:         c.StatsPath,
		cacheSizeMB:       c.CacheSizeMB,
		maxBodyBytes:      c.MaxBodyBytes,
		requireClientAuth: c.RequireClientAuth,
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
		return nil, fieldError("leeway", "must be a duration of 0 or more such as 60s, got %q", c.Leeway)
	}

	if s.cacheSizeMB < 1 || s.cacheSizeMB > 1<<20 {
		return nil, fieldError("cacheSizeMB", "must be between 1 and 1048576, got %d", s.cacheSizeMB)
	}
	if s.maxBodyBytes < 1 || s.maxBodyBytes > 1<<30 {
		return nil, fieldError("maxBodyBytes", "must be between 1 and 1073741824, got %d", s.maxBodyBytes)
	}

	if len(c.TokenSources) == 0 {
		return nil, fieldError("tokenSources", "must list at least one of header, query")
	}
	for _, source := range c.TokenSources {
		switch strings.ToLower(strings.TrimSpace(source)) {
		case "header":
			s.fromHeader = true
		case "query":
			s.fromQuery = true
		default:
			return nil, fieldError("tokenSources", "unknown source %q: use header or query", source)
		}
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
	if c.Redis != nil && strings.TrimSpace(c.Redis.Address) != "" {
		if s.redis, err = c.Redis.validate(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// validate checks the Redis settings; its errors name the field.
func (r *RedisConfig) validate() (*redisOptions, error) {
	o := &redisOptions{
		address:      strings.TrimSpace(r.Address),
		username:     r.Username,
		password:     r.Password,
		db:           r.DB,
		tls:          r.TLS,
		tlsSkipCheck: r.InsecureSkipVerify,
		keyPrefix:    r.KeyPrefix,
	}
	if _, port, err := net.SplitHostPort(o.address); err != nil || port == "" {
		return nil, fieldError("redis.address", "must be host:port, got %q", r.Address)
	}
	if o.db < 0 {
		return nil, fieldError("redis.db", "must be 0 or more, got %d", o.db)
	}
	if o.keyPrefix == "" {
		o.keyPrefix = "tokenrevocation:"
	}
	var err error
	if o.dialTimeout, err = durationOr("redis.dialTimeout", r.DialTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	if o.readTimeout, err = durationOr("redis.readTimeout", r.ReadTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	if o.writeTimeout, err = durationOr("redis.writeTimeout", r.WriteTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	return o, nil
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
