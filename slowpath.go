package tokenrevocation

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// Requests the hot path (plugin.go) does not settle: requests with a body
// (serveBody), and everything else (serveSlow), which finds every token a
// request carries and checks each exactly.

// serveBody settles, for less than serveSlow, a request with a body (case
// (f)) whose only credential is one clean "Bearer <token>" the pre-check
// clears, on a path no intercepted endpoint could be routed from, with no
// query: a body of a kind that holds no token passes unread, and a JSON or
// form body of known length, with no Content-Encoding, in which no
// access_token can be, passes once read. Anything else goes to serveSlow,
// the body put back when read.
func (m *middleware) serveBody(rw http.ResponseWriter, req *http.Request) {
	s := m.settings
	auth := req.Header["Authorization"]
	// plainPath, the bearer's pre-check (neverRevoked, by serveHot's key
	// rule), bodyKind for JSON and mayHoldAccessToken are repeated inline
	// here, on purpose: each interpreted call costs about 5 µs under Yaegi,
	// and case (f) made ten of them.
	ok := len(auth) == 1 && len(req.Header["Content-Encoding"]) == 0 && req.ContentLength > 0 &&
		req.ContentLength <= s.maxBodyBytes && atomic.LoadInt32(m.rules) == 0
	if ok {
		lower := strings.ToLower(req.URL.Path)
		for _, tail := range m.endpointTails {
			ok = ok && !strings.Contains(lower, tail)
		}
	}
	// One clean, ASCII "Bearer <token>" whose pre-check key (serveHot's
	// rule; a token it cannot key goes to serveSlow) no revocation has, nor
	// keyNone, the key of the word "Bearer" itself (appendCredentialWords).
	v := ""
	if ok {
		v = auth[0]
		ok = len(v) > 7+keyLen && v[:7] == "Bearer " && !strings.ContainsAny(v[7:], " \t\n\v\f\r,") && utf8.RuneCountInString(v) == len(v)
	}
	if ok {
		dot := strings.LastIndexByte(v, '.')
		if dot < 0 {
			dot = len(v) - keyLen - 1
		} else if len(v)-dot < keyLen+2 || strings.Trim(v[dot+1:dot+2+keyLen], b64url) != "" {
			dot = -1
		}
		var k, none store.Key
		if dot >= 0 {
			copy(k[:], v[dot+1:])
		}
		p := m.pre.Load().(*store.PrecheckSet)
		ok = dot >= 0 && !p.Open && p.Keys[k] == 0 && p.Keys[none] == 0
		if ok && p.Delta != nil {
			_, maybe := p.Delta.Load(k)
			_, maybeNone := p.Delta.Load(none)
			ok = !maybe && !maybeNone
		}
	}
	if !ok {
		m.serveSlow(rw, req)
		return
	}
	kind := bodyJSON
	if ct := req.Header["Content-Type"]; len(ct) == 0 || ct[0] != "application/json" {
		first := ""
		if len(ct) > 0 {
			first = ct[0]
		}
		kind, _ = bodyKind(first)
	}
	if !s.fromForm || kind == bodyOther {
		m.next.ServeHTTP(rw, req)
		return
	}
	if kind == bodyMultipart {
		m.serveSlow(rw, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, s.maxBodyBytes+1))
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(body))
	text := string(body)
	if err != nil || int64(len(body)) != req.ContentLength ||
		(kind == bodyJSON && (strings.IndexByte(text, '\\') >= 0 || strings.IndexByte(text, '%') >= 0 || strings.Contains(strings.ToLower(text), "access"))) ||
		(kind == bodyForm && mayCarryQueryToken(text)) {
		m.serveSlow(rw, req)
		return
	}
	m.next.ServeHTTP(rw, req)
}

// plainPath reports whether no intercepted endpoint could be routed from p:
// it holds none of their last segments, in any case (endpointVariant).
func (m *middleware) plainPath(p string) bool {
	lower := strings.ToLower(p)
	for _, tail := range m.endpointTails {
		if strings.Contains(lower, tail) {
			return false
		}
	}
	return true
}

// serveSlow handles every request the hot path did not settle.
func (m *middleware) serveSlow(rw http.ResponseWriter, req *http.Request) {
	s := m.settings
	path := req.URL.Path
	if m.intercept {
		if path == m.metricsPath {
			m.serveMetrics(rw, req)
			return
		}
		if m.adminPath != "" && (path == m.adminPath || strings.HasPrefix(path, m.adminPrefix)) {
			m.serveAdmin(rw, req)
			return
		}
	}
	if m.endpointVariant(req) {
		writeError(rw, http.StatusBadRequest, "invalid_request", "Send this endpoint's calls as POST to its exact path")
		return
	}
	var grantForm url.Values
	if req.Method == http.MethodPost {
		if s.logout != nil && path == s.logout.path {
			m.serveLogout(rw, req)
			return
		}
		if path == s.revokePath {
			m.serveRevoke(rw, req)
			return
		}
		if path == s.tokenPath && s.tokenPath != "" {
			form, answered := m.checkTokenRequest(rw, req)
			if answered {
				return
			}
			if s.trackGrants && form == nil {
				// A token request the edge cannot read could refresh a
				// grant it never learns of (RFC 6749 §3.2 asks for this type).
				writeError(rw, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
				return
			}
			if s.trackGrants {
				grantForm = form
			}
		}
	} else if path == s.statsPath && s.statsPath != "" && req.Method == http.MethodGet {
		m.serveStats(rw)
		return
	}
	tokens, scan, ok := m.requestTokens(rw, req)
	if !ok {
		return
	}
	if scan != nil {
		rw = &streamWriter{passWriter: passWriter{rw: rw}, m: m, scan: scan}
	}
	if len(tokens) == 0 && grantForm == nil {
		m.next.ServeHTTP(rw, req)
		return
	}
	// Until the denylist has loaded what was revoked before this replica
	// started, no token can be proven unrevoked: hold the request.
	if len(tokens) > 0 && !m.list.awaitLoaded() {
		rejectLoading(rw)
		return
	}
	ruled := atomic.LoadInt32(m.rules) != 0
	for _, token := range tokens {
		if !m.neverRevoked(token) && m.list.contains(token) {
			atomic.AddInt64(&m.list.count.rejected[rejectRevoked], 1)
			m.rejectRevoked(rw)
			return
		}
		if ruled && m.list.rules.Rejects(token, s.sessionClaim) {
			atomic.AddInt64(&m.list.count.rejected[rejectLogoutRule], 1)
			m.rejectRevoked(rw)
			return
		}
	}
	if grantForm != nil {
		m.passTokenRequest(rw, req, grantForm)
		return
	}
	m.next.ServeHTTP(rw, req)
}

// rejectLoading answers a request carrying a token that the denylist,
// still loading, cannot yet prove unrevoked.
func rejectLoading(rw http.ResponseWriter) {
	rw.Header().Set("Retry-After", retryAfterLoading)
	writeError(rw, http.StatusServiceUnavailable, "temporarily_unavailable", "The revocation list is still loading; retry shortly")
}

// rejectRevoked answers a request that carries a revoked token.
func (m *middleware) rejectRevoked(rw http.ResponseWriter) {
	rw.Header().Set("WWW-Authenticate", revokedChallenge)
	writeJSON(rw, http.StatusUnauthorized, revokedBody)
}
