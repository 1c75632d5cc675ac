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
		// Parse errors are ignored as Go's own parsers ignore them: the
		// pairs that parse are exactly those an app reading them would see.
		values, _ := url.ParseQuery(req.URL.RawQuery)
		tokens = appendNonEmpty(tokens, values["access_token"])
	}
	if s.fromForm && req.ContentLength != 0 && isFormContentType(req.Header.Get("Content-Type")) {
		body, ok := m.readBody(rw, req)
		if !ok {
			return nil, false
		}
		if len(body) > 0 {
			values, _ := url.ParseQuery(string(body))
			tokens = appendNonEmpty(tokens, values["access_token"])
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
	return rawQuery != "" && (strings.Contains(rawQuery, "access_token") || strings.IndexByte(rawQuery, '%') >= 0)
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

func appendNonEmpty(tokens, values []string) []string {
	for _, v := range values {
		if v != "" {
			tokens = append(tokens, v)
		}
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
