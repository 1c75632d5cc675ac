package tokenrevocation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/url"
	"strings"
	"time"
)

// bearerToken returns the credential of a "Bearer" Authorization value, the
// scheme matched case-insensitively, or "" when value is not one. RFC 6750
// has one space and a b64token; this reads any run of spaces or tabs and any
// characters, so that an app that parses Authorization more loosely than the
// RFC cannot be used to slip a revoked token past the edge. Only a token whose
// digest was revoked is ever rejected, so leniency cannot turn a good one away.
func bearerToken(value string) string {
	// HTTP/2 passes header values untrimmed; the upstream's HTTP/1.1 may not.
	value = strings.Trim(value, " \t")
	if len(value) < 8 || (value[6] != ' ' && value[6] != '\t') || !strings.EqualFold(value[:6], "Bearer") {
		return ""
	}
	return strings.TrimRight(strings.TrimLeft(value[7:], " \t"), " \t")
}

// isFormContentType reports whether the Content-Type header value names
// application/x-www-form-urlencoded, parameters such as charset allowed.
func isFormContentType(value string) bool {
	mediaType, _, err := mime.ParseMediaType(value)
	return err == nil && mediaType == "application/x-www-form-urlencoded"
}

// errDuplicateParam is returned for a form that repeats a parameter: RFC 6749
// §3.2 forbids it, and replaying such a body could let the upstream act on
// one value while the middleware records another.
var errDuplicateParam = errors.New("parameters must not be included more than once")

// parseForm decodes an application/x-www-form-urlencoded body. It fails on
// malformed encoding and on a repeated parameter.
func parseForm(body []byte) (url.Values, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	for _, v := range values {
		if len(v) > 1 {
			return nil, errDuplicateParam
		}
	}
	return values, nil
}

// jwtClaims returns the claims of a token shaped like a JWT (three
// base64url segments whose middle one is a JSON object), unverified. ok is
// false for any other token.
func jwtClaims(token string) (map[string]interface{}, bool) {
	first := strings.IndexByte(token, '.')
	if first <= 0 {
		return nil, false
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || second == len(rest)-1 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return nil, false
	}
	var claims map[string]interface{}
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, false
	}
	return claims, true
}

// jwtExpiry returns the exp claim of a token shaped like a JWT with a
// numeric exp. The payload is not verified: it only sets how long a
// revocation is kept, never which token is revoked. ok is false for any
// other token.
func jwtExpiry(token string) (time.Time, bool) {
	claims, ok := jwtClaims(token)
	if !ok {
		return time.Time{}, false
	}
	exp, isNumber := claims["exp"].(float64)
	if !isNumber || math.IsNaN(exp) || exp <= 0 || exp > 1e12 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(exp)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
