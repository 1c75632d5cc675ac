package tokenrevocation

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/edgerevoke/tokenrevocation/internal/basicauth"
)

// requestTokens returns every token req carries in the configured sources:
// every blank-separated word of each Authorization header, whatever its
// scheme (and the user and password of a Basic credential), each
// access_token query parameter, each access_token of a body an app may read
// it from (bodies.go), and each configured custom header and cookie. RFC
// 6750 says a client uses one method and one scheme, but an app may read
// any of them, so every one is checked: a revoked token in one place and a
// good one in another is still refused. Only a revoked identity can match,
// so a word that was never revoked costs nothing but the check.
//
// A body is read within maxBodyBytes and put back byte-identical for the
// upstream; a body it cannot read with certainty is refused (413, 415). A
// multipart body too large to read whole comes back as scan, checked as it
// streams. ok is false when it has answered the request.
func (m *middleware) requestTokens(rw http.ResponseWriter, req *http.Request) (tokens []string, scan *streamScan, ok bool) {
	s := m.settings
	if s.fromHeader {
		for _, value := range req.Header["Authorization"] {
			tokens = appendCredentialWords(tokens, value)
		}
	}
	if s.fromQuery && mayCarryQueryToken(req.URL.RawQuery) {
		tokens = appendAccessTokens(tokens, req.URL.RawQuery)
	}
	if s.fromForm && req.ContentLength != 0 && req.Body != nil && req.Body != http.NoBody {
		if tokens, scan, ok = m.bodyTokens(rw, req, tokens); !ok {
			return nil, nil, false
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
	return tokens, scan, true
}

// appendCredentialWords adds every word of an Authorization value, split on
// blanks and commas (apps split on a blank, strip a prefix such as
// "Bearer ", "Token " or "JWT ", or take the bare value), and the user and
// password of a Basic credential, which some apps take a token in. Words
// split on any Unicode space too, which only checks more.
func appendCredentialWords(tokens []string, value string) []string {
	if len(value) > 7 && value[:7] == "Bearer " && !strings.ContainsAny(value[7:], " \t\n\v\f\r,") &&
		utf8.RuneCountInString(value) == len(value) {
		// The common "Bearer <token>", ASCII with no separator: the words
		// strings.Fields would give, for less.
		return append(tokens, value[:6], value[7:])
	}
	// strings.Fields, not FieldsFunc: under Yaegi, FieldsFunc calls an
	// interpreted function per character (about 5 µs each).
	words := strings.Fields(strings.ReplaceAll(value, ",", " "))
	tokens = append(tokens, words...)
	if len(words) == 2 && strings.EqualFold(words[0], "Basic") {
		if user, password, ok := basicauth.Decode(words[1]); ok {
			tokens = append(tokens, user, password)
		}
	}
	return tokens
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
// each of its words, as for Authorization, so that an app that accepts
// either cannot be used to slip past.
func appendHeaderToken(tokens []string, value string) []string {
	value = strings.TrimSpace(value)
	if value == "" {
		return tokens
	}
	tokens = append(tokens, value)
	return appendCredentialWords(tokens, value)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
