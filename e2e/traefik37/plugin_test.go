package traefik37

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestLoaderNeedsUseUnsafe: the manifest says useUnsafe (bigcache imports
// unsafe), so v3.7.13's loader refuses the plugin unless the static
// configuration's settings allow it too, as the README says.
func TestLoaderNeedsUseUnsafe(t *testing.T) {
	_, err := newBuilder(`
experimental:
  localPlugins:
    tokenrevocation:
      moduleName: github.com/edgerevoke/tokenrevocation
`)
	if err == nil || !strings.Contains(err.Error(), "useUnsafe") {
		t.Fatalf("NewBuilder without settings.useUnsafe: got %v, want the loader's useUnsafe refusal", err)
	}
}

// TestRevokeThenReject is the core behavior: a revoke the identity
// service confirms makes every later request carrying the token get 401,
// without reaching the API; unknown tokens pass; a revoke the identity
// service refuses records nothing.
func TestRevokeThenReject(t *testing.T) {
	e := newEnv(t, `
cacheSizeMB: 8
statsPath: `+statsPath)
	base := e.edge.URL

	wantPassed(t, "unknown token before any revoke", bearer(t, base, "token-a"))

	if r := revoke(t, base, clientSecret, "token=token-a&token_type_hint=access_token"); r.status != http.StatusOK {
		t.Fatalf("confirmed revoke: %s", r)
	}
	if got := e.id.confirmed.Load(); got != 1 {
		t.Fatalf("the identity service confirmed %d revokes, want 1: the call did not pass through", got)
	}
	hits := e.api.hits.Load()
	wantRejected(t, "revoked token", bearer(t, base, "token-a"))
	wantRejected(t, "revoked token, again", bearer(t, base, "token-a"))
	if got := e.api.hits.Load(); got != hits {
		t.Fatalf("a request with a revoked token reached the API (%d hits, want %d)", got, hits)
	}
	wantPassed(t, "an unknown token", bearer(t, base, "token-unknown"))
	wantPassed(t, "no token at all", do(t, http.MethodGet, base+apiPath, nil))

	// Refused by the identity service: wrong client secret (401), an
	// unsupported token type (400). Neither records anything.
	if r := revoke(t, base, "wrong-secret", "token=token-b"); r.status != http.StatusUnauthorized {
		t.Fatalf("revoke with a wrong client secret: %s, want the identity service's 401", r)
	}
	if r := revoke(t, base, clientSecret, "token=token-c&token_type_hint=id_token"); r.status != http.StatusBadRequest {
		t.Fatalf("revoke with an unsupported hint: %s, want the identity service's 400", r)
	}
	calls := e.id.calls.Load()
	// No client credentials at all: the plugin answers itself
	// (requireClientAuth), the identity service is not called.
	if r := revoke(t, base, "", "token=token-d"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "invalid_client") {
		t.Fatalf("revoke without client credentials: %s, want 401 invalid_client", r)
	}
	if got := e.id.calls.Load(); got != calls {
		t.Fatalf("a revoke without client credentials reached the identity service")
	}
	for _, tok := range []string{"token-b", "token-c", "token-d"} {
		wantPassed(t, "token of a refused revoke "+tok, bearer(t, base, tok))
	}
	if s := readStats(t, base); s.Revokes != 1 || s.Entries != 1 || s.Denylist != "revocation@file" {
		t.Fatalf("stats: %+v, want 1 revoke and 1 entry in denylist revocation@file", s)
	}
	wantRejected(t, "revoked token, after the refused revokes", bearer(t, base, "token-a"))
}

// TestTokenLocations: a revoked token is found wherever tokenSources says
// a token may be: the Authorization header, the access_token query
// parameter, an access_token form body, a named header and a named cookie;
// the same places with an unknown token pass, a form body byte-identical.
func TestTokenLocations(t *testing.T) {
	e := newEnv(t, `
cacheSizeMB: 8
tokenSources: [header, query, form, "header:X-Access-Token", "cookie:access_token"]`)
	base := e.edge.URL

	type location struct {
		name string
		send func(token string) reply
	}
	formBody := func(token string) string { return "item=1&access_token=" + token + "&note=x" }
	locations := []location{
		{"Authorization header", func(tok string) reply { return bearer(t, base, tok) }},
		{"access_token query parameter", func(tok string) reply {
			return do(t, http.MethodGet, base+apiPath+"?page=2&access_token="+tok, nil)
		}},
		{"form body", func(tok string) reply {
			return do(t, http.MethodPost, base+apiPath, strings.NewReader(formBody(tok)), "Content-Type", "application/x-www-form-urlencoded")
		}},
		{"header:X-Access-Token", func(tok string) reply {
			return do(t, http.MethodGet, base+apiPath, nil, "X-Access-Token", tok)
		}},
		{"cookie:access_token", func(tok string) reply {
			return do(t, http.MethodGet, base+apiPath, nil, "Cookie", "theme=dark; access_token="+tok)
		}},
	}
	for i, loc := range locations {
		t.Run(loc.name, func(t *testing.T) {
			revoked := "revoked-in-location-" + string(rune('a'+i))
			unknown := "unknown-in-location-" + string(rune('a'+i))
			wantPassed(t, "unknown token", loc.send(unknown))
			if loc.name == "form body" && e.api.lastBody() != formBody(unknown) {
				t.Fatalf("the form body reached the API as %q, want it unchanged", e.api.lastBody())
			}
			mustRevoke(t, base, revoked)
			hits := e.api.hits.Load()
			wantRejected(t, "revoked token", loc.send(revoked))
			if e.api.hits.Load() != hits {
				t.Fatalf("a request with a revoked token reached the API")
			}
			wantPassed(t, "unknown token after the revoke", loc.send(unknown))
		})
	}

	// A place left out of tokenSources is not read: with header only, a
	// revoked token in the query passes.
	t.Run("only listed sources", func(t *testing.T) {
		headerOnly := newEnv(t, `
cacheSizeMB: 8
tokenSources: [header]`)
		mustRevoke(t, headerOnly.edge.URL, "revoked-header-only")
		wantRejected(t, "revoked token in the header", bearer(t, headerOnly.edge.URL, "revoked-header-only"))
		wantPassed(t, "revoked token in an unlisted source",
			do(t, http.MethodGet, headerOnly.edge.URL+apiPath+"?access_token=revoked-header-only", nil))
	})
}

// TestReloadSharesDenylist: Traefik builds the middleware again on every
// configuration reload (Builder.Build and the Constructor per router, with
// the Builder it made at start), while the routers of the previous
// configuration may still serve. Both generations share one denylist: a
// revocation through the first is enforced by the second, and one through
// the second by the first.
func TestReloadSharesDenylist(t *testing.T) {
	e := newEnv(t, `
cacheSizeMB: 8
statsPath: `+statsPath)
	first := e.edge.URL

	mustRevoke(t, first, "revoked-before-reload")
	wantRejected(t, "first generation, its own revocation", bearer(t, first, "revoked-before-reload"))

	second := serveEdge(t, e.builder, e.dynamic).URL
	wantRejected(t, "second generation, a revocation made through the first", bearer(t, second, "revoked-before-reload"))
	wantPassed(t, "second generation, an unknown token", bearer(t, second, "unknown-after-reload"))

	mustRevoke(t, second, "revoked-after-reload")
	wantRejected(t, "second generation, its own revocation", bearer(t, second, "revoked-after-reload"))
	wantRejected(t, "first generation, a revocation made through the second", bearer(t, first, "revoked-after-reload"))

	// A third build, with the denylist named explicitly as the README asks
	// on Kubernetes, is another denylist: it holds none of these.
	named := serveEdge(t, e.builder, dynamicYAML(e.id.srv.URL, e.api.srv.URL, `
cacheSizeMB: 8
denylist: other`)).URL
	wantPassed(t, "a denylist of another name", bearer(t, named, "revoked-after-reload"))

	if s1, s2 := readStats(t, first), readStats(t, second); s1.Entries != 2 || s2.Entries != 2 || s1.Revokes != 2 || s2.Revokes != 2 {
		t.Fatalf("stats of the two generations: %+v and %+v, want one denylist of 2 entries and 2 revokes", s1, s2)
	}
}

// TestMisspelledOptionRefused: a misspelled option fails the middleware's
// build with the nearest valid name (Traefik then reports the router as
// broken) instead of being silently ignored, top level and inside redis.
func TestMisspelledOptionRefused(t *testing.T) {
	b, err := newBuilder(staticUnsafe)
	if err != nil {
		t.Fatalf("loading the plugin: %v", err)
	}
	for _, tc := range []struct {
		name, options, want string
	}{
		{"top level", "revokePth: /api/id/v1/auth/token/revoke", `did you mean "revokePath"`},
		{"inside redis", "redis:\n  adress: 127.0.0.1:6379", `did you mean "redis.address"`}, //nolint:misspell // the typo under test
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := decodeDynamic(dynamicYAML("http://127.0.0.1:1", "http://127.0.0.1:1", tc.options))
			if err != nil {
				t.Fatal(err)
			}
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
			_, err = buildMiddleware(context.Background(), b, conf, "revocation", next)
			if err == nil {
				t.Fatalf("options %q: the middleware was built, want an error with %s", tc.options, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("options %q: error %q, want it to contain %s", tc.options, err, tc.want)
			}
		})
	}
}
