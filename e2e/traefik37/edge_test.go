package traefik37

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/traefik/paerser/file"
	"github.com/traefik/traefik/v3/pkg/config/dynamic"
	"github.com/traefik/traefik/v3/pkg/plugins"
)

// staticUnsafe is the static configuration every test loads the plugin
// with: a local plugin allowed unsafe, as the README's quick start says.
const staticUnsafe = `
experimental:
  localPlugins:
    tokenrevocation:
      moduleName: github.com/edgerevoke/tokenrevocation
      settings:
        useUnsafe: true
`

// staticConfig is the part of Traefik's static configuration
// (pkg/config/static.Configuration.Experimental) the plugin loader reads,
// decoded by the same decoder (paerser's file.DecodeContent) into the
// loader's own descriptor type.
type staticConfig struct {
	Experimental *experimental `json:"experimental,omitempty" yaml:"experimental,omitempty"`
}

type experimental struct {
	LocalPlugins map[string]plugins.LocalDescriptor `json:"localPlugins,omitempty" yaml:"localPlugins,omitempty"`
}

// newBuilder does what Traefik v3.7.13's cmd/traefik/plugins.go does at
// start for local plugins: decode the static configuration, check the
// local plugins (plugins.SetupLocalPlugins reads and checks the manifest,
// .traefik.yml), then plugins.NewBuilder(manager, plugins, localPlugins),
// which creates the Yaegi interpreter and imports the plugin's source from
// ./plugins-local/src/<moduleName>. With no remote plugins Traefik passes a
// nil manager and an empty plugin map. The working directory must hold
// plugins-local (TestMain sees to it).
func newBuilder(staticYAML string) (*plugins.Builder, error) {
	static := &staticConfig{}
	if err := file.DecodeContent(staticYAML, ".yml", static); err != nil {
		return nil, fmt.Errorf("static configuration: %w", err)
	}
	if static.Experimental == nil || len(static.Experimental.LocalPlugins) == 0 {
		return nil, errors.New("static configuration: no experimental.localPlugins")
	}
	local := static.Experimental.LocalPlugins
	if err := plugins.SetupLocalPlugins(local); err != nil {
		return nil, fmt.Errorf("plugins.SetupLocalPlugins: %w", err)
	}
	return plugins.NewBuilder(nil, map[string]plugins.Descriptor{}, local)
}

// decodeDynamic decodes a dynamic configuration as Traefik's file provider
// does (pkg/provider/file: file.DecodeContent into a dynamic.Configuration),
// then deep-copies it as the configuration watcher does before building
// (which also proves the plugin options are of the types PluginConf's deep
// copy accepts).
func decodeDynamic(content string) (*dynamic.Configuration, error) {
	conf := &dynamic.Configuration{}
	if err := file.DecodeContent(content, ".yml", conf); err != nil {
		return nil, fmt.Errorf("dynamic configuration: %w", err)
	}
	if conf.HTTP == nil {
		return nil, errors.New("dynamic configuration: no http section")
	}
	return conf.DeepCopy(), nil
}

// pluginOptions returns the raw options of middleware name's plugin, as
// pkg/server/middleware.findPluginConfig does: exactly one plugin per
// middleware.
func pluginOptions(conf *dynamic.Configuration, name string) (string, map[string]any, error) {
	mw, ok := conf.HTTP.Middlewares[name]
	if !ok || mw == nil {
		return "", nil, fmt.Errorf("middleware %q does not exist", name)
	}
	if len(mw.Plugin) != 1 {
		return "", nil, errors.New("invalid configuration: no configuration or too many plugin definition")
	}
	for pType, pConf := range mw.Plugin {
		return pType, pConf, nil
	}
	return "", nil, errors.New("missing plugin type")
}

// buildMiddleware builds middleware name of conf in front of next, as
// pkg/server/middleware.Builder.buildConstructor does for a plugin: per
// router, Builder.Build(pluginType, options, qualifiedName), then the
// Constructor with the router's context and next. The qualified name is
// what Traefik passes as the middleware's name ("revocation@file").
func buildMiddleware(ctx context.Context, b *plugins.Builder, conf *dynamic.Configuration, name string, next http.Handler) (http.Handler, error) {
	pType, options, err := pluginOptions(conf, name)
	if err != nil {
		return nil, err
	}
	constructor, err := b.Build(pType, options, qualified(name))
	if err != nil {
		return nil, fmt.Errorf("plugin: %w", err)
	}
	return constructor(ctx, next)
}

// qualified names a middleware of the file provider as Traefik does
// (provider.GetQualifiedName).
func qualified(name string) string {
	if strings.Contains(name, "@") {
		return name
	}
	return name + "@file"
}

var pathPrefixRule = regexp.MustCompile("^PathPrefix\\(`([^`]*)`\\)$")

// route is one router of the edge: its path prefix and priority, and its
// handler, the middleware chain in front of the service.
type route struct {
	name     string
	prefix   string
	priority int
	handler  http.Handler
}

// buildEdge is the part of Traefik around the plugin loader that the tests
// stand in for: every router of the dynamic configuration (PathPrefix
// rules only, the highest priority first, as Traefik orders them) gets its
// own middleware chain, each plugin middleware built for it through the
// loader (Build and Constructor per router, as Traefik does), in front of a
// reverse proxy to its load balancer's first server.
func buildEdge(ctx context.Context, b *plugins.Builder, dynamicYAML string) (http.Handler, error) {
	conf, err := decodeDynamic(dynamicYAML)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(conf.HTTP.Routers))
	for name := range conf.HTTP.Routers {
		names = append(names, name)
	}
	sort.Strings(names)
	routes := make([]route, 0, len(names))
	for _, name := range names {
		r := conf.HTTP.Routers[name]
		m := pathPrefixRule.FindStringSubmatch(r.Rule)
		if m == nil {
			return nil, fmt.Errorf("router %q: only PathPrefix rules are supported here, not %q", name, r.Rule)
		}
		svc := conf.HTTP.Services[r.Service]
		if svc == nil || svc.LoadBalancer == nil || len(svc.LoadBalancer.Servers) == 0 {
			return nil, fmt.Errorf("router %q: service %q has no load balancer server", name, r.Service)
		}
		target, err := url.Parse(svc.LoadBalancer.Servers[0].URL)
		if err != nil {
			return nil, fmt.Errorf("router %q: %w", name, err)
		}
		var h http.Handler = httputil.NewSingleHostReverseProxy(target)
		for i := len(r.Middlewares) - 1; i >= 0; i-- {
			if h, err = buildMiddleware(ctx, b, conf, r.Middlewares[i], h); err != nil {
				return nil, fmt.Errorf("router %q: middleware %q: %w", name, r.Middlewares[i], err)
			}
		}
		routes = append(routes, route{name: name, prefix: m[1], priority: r.Priority, handler: h})
	}
	sort.SliceStable(routes, func(i, j int) bool {
		if routes[i].priority != routes[j].priority {
			return routes[i].priority > routes[j].priority
		}
		return len(routes[i].prefix) > len(routes[j].prefix)
	})
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		for _, r := range routes {
			if strings.HasPrefix(req.URL.Path, r.prefix) {
				r.handler.ServeHTTP(rw, req)
				return
			}
		}
		http.NotFound(rw, req)
	}), nil
}

// dynamicYAML is the dynamic configuration of the tests, in the README's
// shape: the identity service's router and the API's router both use the
// "revocation" middleware. options are the plugin's options as YAML, at
// the left margin; they are indented into place.
func dynamicYAML(identityURL, apiURL, options string) string {
	var opts strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(options), "\n") {
		if strings.TrimSpace(line) != "" {
			opts.WriteString("          " + line + "\n")
		}
	}
	block := "{}\n"
	if opts.Len() > 0 {
		block = "\n" + opts.String()
	}
	return `http:
  routers:
    identity:
      entryPoints: [web]
      rule: "PathPrefix(` + "`/api/id/`" + `)"
      priority: 100
      service: identity
      middlewares: [revocation]
    api:
      entryPoints: [web]
      rule: "PathPrefix(` + "`/api/`" + `)"
      priority: 10
      service: api
      middlewares: [revocation]
  middlewares:
    revocation:
      plugin:
        tokenrevocation: ` + block + `
  services:
    identity:
      loadBalancer:
        servers:
          - url: "` + identityURL + `"
    api:
      loadBalancer:
        servers:
          - url: "` + apiURL + `"
`
}
