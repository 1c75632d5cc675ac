package tokenrevocation

import (
	"errors"
	"math"
	"mime"
	"net/url"
	"strings"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/jwtpayload"
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

// jwtExpiry returns the exp claim of a token shaped like a JWT with a
// numeric exp. The payload is not verified: it only sets how long a
// revocation is kept, never which token is revoked. ok is false for any
// other token.
func jwtExpiry(token string) (time.Time, bool) {
	claims, ok := jwtpayload.Claims(token)
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
