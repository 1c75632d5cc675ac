package tokenrevocation

import (
	"net/http"
	"net/url"
	"strings"
)

// requestTokens returns every token req carries in the configured sources:
// each Authorization header, each access_token query parameter, each
// access_token of an application/x-www-form-urlencoded body, and each
// configured custom header and cookie. RFC 6750 says a client uses one
// method, but an app may read any of them, so every one is checked: a
// revoked token in one place and a good one in another is still refused.
//
// The form body is read within maxBodyBytes and put back byte-identical for
// the upstream. A body over the limit gets 413: an unread body could carry a
// revoked token past the edge. ok is false when it has answered the request.
func (m *middleware) requestTokens(rw http.ResponseWriter, req *http.Request) ([]string, bool) {
	s := m.settings
	var tokens []string
	if s.fromHeader {
		for _, value := range req.Header["Authorization"] {
			if token := bearerToken(value); token != "" {
				tokens = append(tokens, token)
			}
		}
	}
	if s.fromQuery && mayCarryQueryToken(req.URL.RawQuery) {
		tokens = appendAccessTokens(tokens, req.URL.RawQuery)
	}
	if s.fromForm && req.ContentLength != 0 && isFormContentType(req.Header.Get("Content-Type")) {
		body, ok := m.readBody(rw, req)
		if !ok {
			return nil, false
		}
		if len(body) > 0 {
			tokens = appendAccessTokens(tokens, string(body))
		}
	}
	for _, name := range s.tokenHeaders {
		for _, value := range req.Header[name] {
			tokens = appendHeaderToken(tokens, value)
		}
	}
	if len(s.tokenCookies) > 0 {
		for _, c := range req.Cookies() {
			if containsString(s.tokenCookies, c.Name) && c.Value != "" {
				tokens = append(tokens, c.Value)
			}
		}
	}
	return tokens, true
}

// mayCarryQueryToken is a cheap test that spares the query parser the
// queries that cannot hold an access_token parameter. A '%' may encode any
// part of the name, so any escape sends the query to the parser. ServeHTTP
// repeats it inline, on purpose: an interpreted call costs more there.
func mayCarryQueryToken(rawQuery string) bool {
	return rawQuery != "" && (strings.IndexByte(rawQuery, '%') >= 0 || strings.Contains(strings.ToLower(rawQuery), "access"))
}

// appendAccessTokens adds the values of every access_token parameter of an
// application/x-www-form-urlencoded string, as lenient apps read them:
// pairs split on '&' and ';' (Rack), names compared case-insensitively
// (ASP.NET) with '.', ' ' and '[' read as '_' (PHP), and a value or name
// that does not decode taken as it is. Reading more names than RFC 6750's
// one costs nothing: only a revoked token's digest is ever rejected.
func appendAccessTokens(tokens []string, encoded string) []string {
	for encoded != "" {
		var pair string
		if i := strings.IndexAny(encoded, "&;"); i >= 0 {
			pair, encoded = encoded[:i], encoded[i+1:]
		} else {
			pair, encoded = encoded, ""
		}
		name, value, _ := strings.Cut(pair, "=")
		if decoded, err := url.QueryUnescape(name); err == nil {
			name = decoded
		}
		if !isAccessTokenName(name) || value == "" {
			continue
		}
		if decoded, err := url.QueryUnescape(value); err == nil {
			value = decoded
		}
		tokens = append(tokens, value)
	}
	return tokens
}

// isAccessTokenName reports whether name reads as access_token: in any
// case, with '.', ' ' or '[' in place of the '_'.
func isAccessTokenName(name string) bool {
	if len(name) != len("access_token") || !strings.EqualFold(name[:6], "access") || !strings.EqualFold(name[7:], "token") {
		return false
	}
	c := name[6]
	return c == '_' || c == '.' || c == ' ' || c == '['
}

// appendHeaderToken adds a custom header's value: the raw token, and also
// the credential after "Bearer " when the value has that form, so that an
// app that accepts either cannot be used to slip past.
func appendHeaderToken(tokens []string, value string) []string {
	value = strings.TrimSpace(value)
	if value == "" {
		return tokens
	}
	tokens = append(tokens, value)
	if bearer := bearerToken(value); bearer != "" {
		tokens = append(tokens, bearer)
	}
	return tokens
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
