package tokenrevocation

import (
	"fmt"
	"sort"
	"strings"
)

// Traefik decodes a middleware's options into Config with mapstructure,
// which drops keys that name no field. A misspelled option would then be
// silently ignored: a typo in `redis.address` runs without Redis. Config and
// RedisConfig therefore keep what the decoder could not place (the
// `,remain` field), and New refuses it, naming the nearest valid option.

// configOptions and redisOptionNames are the option names, Config's and
// RedisConfig's json tags (TestOptionNamesMatchConfig checks them against
// the structs; a list, not reflection, since New runs under Yaegi).
var configOptions = []string{
	"revokePath", "tokenPath", "accessTokenTTL", "refreshTokenTTL", "maxTTL", "maxLifetime", "leeway",
	"cacheSizeMB", "maxBodyBytes", "requireClientAuth", "tokenSources", "loadWait", "failClosed",
	"clientRate", "clientBurst", "clientSharePercent", "denylist", "statsPath", "realm", "persistPath",
	"trackGrants", "revokeOnRefresh", "maxGrants", "backchannelLogoutPath", "issuer", "jwksURL",
	"audiences", "logoutMatch", "sessionClaim", "logoutOfflineAccess", "logoutRuleTTL", "logoutMaxAge",
	"jwksRefresh", "metricsPath", "auditLog", "adminPath", "adminToken", "adminTokenFile", "redis",
}

var redisOptionNames = []string{
	"address", "username", "password", "passwordFile", "db", "tls", "caFile", "insecureSkipVerify",
	"keyPrefix", "dialTimeout", "readTimeout", "writeTimeout", "signingSecret", "previousSigningSecret",
	"signingSecretFile", "sentinels", "masterName", "sentinelUsername", "sentinelPassword", "sentinelPasswordFile",
	"cluster", "waitReplicas", "waitTimeout",
}

// checkUnknown refuses the options the decoder could not place, top level
// and inside redis, with the nearest valid name.
func (c *Config) checkUnknown() error {
	if err := unknownOptions("", c.Unknown, configOptions); err != nil {
		return err
	}
	if c.Redis != nil {
		return unknownOptions("redis.", c.Redis.Unknown, redisOptionNames)
	}
	return nil
}

// unknownOptions reports the keys of extra, sorted, each with a suggestion
// when one is near enough to be a typo.
func unknownOptions(prefix string, extra map[string]interface{}, valid []string) error {
	if len(extra) == 0 {
		return nil
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		part := fmt.Sprintf("%q", prefix+k)
		if near := nearestOption(k, valid); near != "" {
			part += fmt.Sprintf(": did you mean %q?", prefix+near)
		}
		parts = append(parts, part)
	}
	word := "option"
	if len(parts) > 1 {
		word = "options"
	}
	return fmt.Errorf("tokenrevocation: unknown %s %s (the README's options reference lists them)", word, strings.Join(parts, "; "))
}

// nearestOption is the valid name closest to key, ignoring case, if it is
// within a typo's distance: at most 1 edit for names of up to 4 characters,
// 2 up to 10, else 3; or one that key contains or is contained in.
func nearestOption(key string, valid []string) string {
	k := strings.ToLower(key)
	best, bestDist := "", 1<<30
	for _, name := range valid {
		n := strings.ToLower(name)
		d := editDistance(k, n)
		if d < bestDist {
			best = name
			bestDist = d
		}
	}
	limit := 3
	switch {
	case len(k) <= 4:
		limit = 1
	case len(k) <= 10:
		limit = 2
	}
	if bestDist <= limit {
		return best
	}
	for _, name := range valid {
		n := strings.ToLower(name)
		if len(k) >= 4 && (strings.Contains(n, k) || strings.Contains(k, n)) {
			return name
		}
	}
	return ""
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance of a and b, in bytes: option names are ASCII. Keys longer than
// 64 bytes are compared by their first 64, which bounds its cost.
func editDistance(a, b string) int {
	if len(a) > 64 {
		a = a[:64]
	}
	if len(b) > 64 {
		b = b[:64]
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := prev[j] + 1
			if cur[j-1]+1 < v {
				v = cur[j-1] + 1
			}
			if prev[j-1]+cost < v {
				v = prev[j-1] + cost
			}
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] && prev2[j-2]+1 < v {
				v = prev2[j-2] + 1
			}
			cur[j] = v
		}
		// One assignment each (Yaegi and multiple assignment).
		t := prev2
		prev2 = prev
		prev = cur
		cur = t
	}
	return prev[len(b)]
}
