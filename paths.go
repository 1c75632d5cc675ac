package tokenrevocation

import (
	"net/http"
	"path"
	"strings"
)

// The path rule: identity services route more paths to an endpoint than
// its exact one. Express, Koa and Duende IdentityServer match paths without
// regard to case or a trailing slash, servlet containers drop ";" path
// parameters, and every server decodes percent-escapes (Go has decoded
// req.URL.Path already). The edge handles revokePath, tokenPath and
// backchannelLogoutPath only as POST to the exact path, and refuses with
// 400 invalid_request every request that only a lenient router would send
// there: a variant of the path, or the method in another case. So no
// revoke, token or logout call reaches the identity service unseen.

// routedPath is p as a lenient router reads it: lower case, "\" read as
// "/", ";" parameters dropped from each segment, dot segments and repeated
// or trailing slashes removed.
func routedPath(p string) string {
	p = strings.ToLower(strings.ReplaceAll(p, "\\", "/"))
	if strings.IndexByte(p, ';') >= 0 {
		segments := strings.Split(p, "/")
		for i := range segments {
			segments[i], _, _ = strings.Cut(segments[i], ";")
		}
		p = strings.Join(segments, "/")
	}
	return path.Clean("/" + p)
}

// endpointPaths are the routed forms of the endpoints the edge intercepts.
func endpointPaths(s *settings) []string {
	out := []string{routedPath(s.revokePath)}
	if s.tokenPath != "" {
		out = append(out, routedPath(s.tokenPath))
	}
	if s.logout != nil {
		out = append(out, routedPath(s.logout.path))
	}
	return out
}

// endpointTails are the last segments of endpointPaths.
func endpointTails(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		out = append(out, p[strings.LastIndexByte(p, '/')+1:])
	}
	return out
}

// endpointVariant reports whether req is one an identity service could
// route to an intercepted endpoint that the edge would not handle as it: a
// POST in another case, or a POST to a variant of the endpoint's path.
func (m *middleware) endpointVariant(req *http.Request) bool {
	if !strings.EqualFold(req.Method, http.MethodPost) {
		return false
	}
	s := m.settings
	p := req.URL.Path
	exact := p == s.revokePath || (s.tokenPath != "" && p == s.tokenPath) || (s.logout != nil && p == s.logout.path)
	if exact && req.Method == http.MethodPost {
		return false
	}
	if exact {
		return true
	}
	// A variant holds its endpoint's last segment, in any case: routing
	// drops and folds characters, it never joins segments. Most paths
	// hold none (plainPath), and skip routedPath (a dozen compiled calls
	// under Yaegi).
	if m.plainPath(p) {
		return false
	}
	routed := routedPath(p)
	for _, e := range m.endpoints {
		if routed == e {
			return true
		}
	}
	return false
}
