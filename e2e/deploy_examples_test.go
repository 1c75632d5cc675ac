package e2e

// Checks of the deployment examples: examples/helm/values.yaml against the
// Traefik Helm chart's defaults and templates (an excerpt in testdata/helm,
// since neither helm nor the chart can be installed from the registries the
// project's machines reach), examples/kubernetes/ decoded strictly into the
// real Kubernetes and Traefik CRD types, and examples/compose/ parsed and
// cross-checked (no Docker engine runs here). Every plugin block is decoded as
// Traefik decodes it and given to the plugin's New. Nothing here reaches the
// network beyond loopback, and nothing skips.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	posixpath "path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/edgerevoke/tokenrevocation"
	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"github.com/mitchellh/mapstructure"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	paerserfile "github.com/traefik/paerser/file"
	"github.com/traefik/traefik/v3/pkg/config/dynamic"
	httpmuxer "github.com/traefik/traefik/v3/pkg/muxer/http"
	traefikv1 "github.com/traefik/traefik/v3/pkg/provider/kubernetes/crd/traefikio/v1alpha1"
	traefiktls "github.com/traefik/traefik/v3/pkg/tls"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	// deployPluginKey is the plugin's name in every example's static and
	// dynamic configuration.
	deployPluginKey = "tokenrevocation"
	// helmChartMinimum is the first chart that passes settings.useUnsafe.
	helmChartMinimum = "37.1.0"
	// helmDefaultsFile is the excerpt of the pinned chart's defaults.
	helmDefaultsFile = "traefik-37.3.0-defaults.yaml"
	// composeIdentityPkg is where the Compose identity stand-in is built,
	// inside the e2e module (its Dockerfile copies main.go there).
	composeIdentityPkg = "cmd/compose-identity"
)

// The Traefik Helm chart, 37.3.0, as its templates use the values
// (traefik/templates/_podtemplate.tpl and _helpers.tpl).
var (
	// helmPortExtraKeys are port keys the templates read that the defaults
	// only show in comments.
	helmPortExtraKeys = []string{"asDefault"}
	// helmPluginKeys and helmLocalPluginKeys are what the templates read of
	// an experimental.plugins and an experimental.localPlugins entry; of
	// settings, only useUnsafe is passed on.
	helmPluginKeys      = []string{"moduleName", "version", "hash", "settings"}
	helmLocalPluginKeys = []string{"moduleName", "mountPath", "hostPath", "settings"}
	// helmTypedSections hold Kubernetes objects, decoded into k8s.io/api
	// types instead of checked against the defaults' keys.
	helmTypedSections = []string{"deployment.additionalVolumes", "additionalVolumeMounts", "podSecurityContext", "securityContext", "extraObjects"}
	// helmCompleteSections are the top-level keys whose every default the
	// excerpt holds.
	helmCompleteSections = []string{"experimental", "ports", "deployment", "volumes", "additionalVolumeMounts", "podSecurityContext", "securityContext", "extraObjects"}
)

// ---------------------------------------------------------------- helpers

func deployRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func deployRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deployYAMLMap(t *testing.T, p string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(deployRead(t, p), &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return m
}

// deployStrict decodes a value (a YAML-decoded tree, or YAML or JSON bytes)
// into into, refusing unknown and duplicate fields, as the API server's
// strict field validation does.
func deployStrict(v any, into any) error {
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	return sigsyaml.UnmarshalStrict(b, into)
}

var (
	deployRedisOnce sync.Once
	deployRedisAddr string
	deployRedisErr  error
)

// deployRedis is the Redis address New is given in place of the example's
// (a cluster or Compose host name, which must not be looked up here): a
// loopback listener, kept for the whole test binary so that no other test's
// Redis can take its port, that closes every connection. The plugin's
// replicator retries it with its backoff in the background.
func deployRedis(t *testing.T) string {
	t.Helper()
	deployRedisOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			deployRedisErr = err
			return
		}
		deployRedisAddr = ln.Addr().String()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
	})
	if deployRedisErr != nil {
		t.Fatal(deployRedisErr)
	}
	return deployRedisAddr
}

// deployBuildPlugin decodes one plugin block the way Traefik's plugin
// builder does (pkg/plugins/middlewareyaegi.go: mapstructure, weakly typed,
// comma-separated strings to slices) into CreateConfig's result, and builds
// the middleware with New, which must accept it. It returns the decoded
// config, or nil after reporting a failure.
func deployBuildPlugin(t *testing.T, where string, conf map[string]any, name string) *tokenrevocation.Config {
	t.Helper()
	cfg := tokenrevocation.CreateConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(conf); err != nil {
		t.Errorf("%s: decoding the plugin options as Traefik does: %v", where, err)
		return nil
	}
	built := *cfg
	if cfg.Redis != nil {
		host, port, err := net.SplitHostPort(cfg.Redis.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			t.Errorf("%s: redis.address %q is not host:port", where, cfg.Redis.Address)
		}
		r := *cfg.Redis
		r.Address = deployRedis(t)
		built.Redis = &r
	}
	if _, err := tokenrevocation.New(context.Background(), http.NotFoundHandler(), &built, name); err != nil {
		t.Errorf("%s: New refused the plugin options: %v", where, err)
		return nil
	}
	if cfg.Denylist == "" {
		t.Errorf("%s: no explicit denylist: the middleware's own name would be its denylist, not shared", where)
	}
	return cfg
}

// deployPluginBlock returns the tokenrevocation options of a middleware's
// plugin map, failing when it names another plugin or none.
func deployPluginBlock(t *testing.T, where string, plugins map[string]map[string]any) (map[string]any, bool) {
	t.Helper()
	if len(plugins) != 1 {
		t.Errorf("%s: want one plugin, %q, got %d", where, deployPluginKey, len(plugins))
		return nil, false
	}
	conf, ok := plugins[deployPluginKey]
	if !ok {
		t.Errorf("%s: the plugin is not named %q (the static configuration's key)", where, deployPluginKey)
	}
	return conf, ok
}

// deploySharedSettings checks what a denylist fixes at creation: every
// middleware of one denylist must agree on it, or the first one built wins.
func deploySharedSettings(t *testing.T, where string, cfgs map[string]*tokenrevocation.Config) {
	t.Helper()
	var names []string
	for n := range cfgs {
		names = append(names, n)
	}
	sort.Strings(names)
	type fixed struct {
		denylist, maxTTL, maxLifetime, leeway, loadWait, persist string
		cache, rate, burst, share                                int
		failClosed                                               bool
		redis                                                    string
	}
	key := func(c *tokenrevocation.Config) fixed {
		f := fixed{c.Denylist, c.MaxTTL, c.MaxLifetime, c.Leeway, c.LoadWait, c.PersistPath,
			c.CacheSizeMB, c.ClientRate, c.ClientBurst, c.ClientSharePercent, c.FailClosed, ""}
		if c.Redis != nil {
			b, _ := json.Marshal(c.Redis)
			f.redis = string(b)
		}
		return f
	}
	first := key(cfgs[names[0]])
	for _, n := range names[1:] {
		if got := key(cfgs[n]); got != first {
			t.Errorf("%s: %s and %s differ in the settings a shared denylist fixes at creation:\n %+v\n %+v", where, names[0], n, first, got)
		}
	}
	if first.redis == "" {
		t.Errorf("%s: no redis block: the replicas would not share revocations", where)
	}
}

// deployRoute is one router of an example, as Traefik's HTTP muxer sees it.
type deployRoute struct {
	id          string // namespace/name or router name
	entryPoints []string
	rule        string
	priority    int
	plugins     []*tokenrevocation.Config // its tokenrevocation middlewares
}

// deployRouter routes requests through Traefik's own rule parser and muxer
// (pkg/muxer/http), one muxer per entrypoint, with Traefik's default
// priority (the rule's length) where none is set.
type deployRouter struct {
	muxers map[string]*httpmuxer.Muxer
	routes map[string]*deployRoute
}

func deployNewRouter(t *testing.T, where string, routes []*deployRoute) *deployRouter {
	t.Helper()
	parser, err := httpmuxer.NewSyntaxParser()
	if err != nil {
		t.Fatal(err)
	}
	r := &deployRouter{muxers: map[string]*httpmuxer.Muxer{}, routes: map[string]*deployRoute{}}
	for _, rt := range routes {
		r.routes[rt.id] = rt
		prio := rt.priority
		if prio == 0 {
			prio = httpmuxer.GetRulePriority(rt.rule)
		}
		id := rt.id
		for _, ep := range rt.entryPoints {
			m := r.muxers[ep]
			if m == nil {
				m = httpmuxer.NewMuxer(parser)
				r.muxers[ep] = m
			}
			h := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.Header().Set("X-Deploy-Route", id) })
			if err := m.AddRoute(rt.rule, "", prio, h); err != nil {
				t.Errorf("%s: router %s: Traefik refuses its rule: %v", where, rt.id, err)
			}
		}
	}
	return r
}

// route returns the router a request reaches on an entrypoint, or nil.
func (r *deployRouter) route(ep, method, target string) *deployRoute {
	m := r.muxers[ep]
	if m == nil {
		return nil
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return r.routes[rec.Header().Get("X-Deploy-Route")]
}

// checkRouting requires the identity service's revoke and token calls and
// the API's requests to reach routers that carry the plugin, the plugin's
// metrics and admin API on the internal entrypoint, and never on a public
// one.
func (r *deployRouter) checkRouting(t *testing.T, where string, public []string, internal, apiPath string) {
	t.Helper()
	serves := func(rt *deployRoute, f func(*tokenrevocation.Config) bool) bool {
		return rt != nil && slices.ContainsFunc(rt.plugins, f)
	}
	var revokePath, tokenPath, metricsPath, adminPath string
	for _, rt := range r.routes {
		for _, c := range rt.plugins {
			if c.MetricsPath != "" {
				metricsPath, adminPath = c.MetricsPath, c.AdminPath
			}
			revokePath, tokenPath = c.RevokePath, c.TokenPath
		}
	}
	if metricsPath == "" || adminPath == "" {
		t.Errorf("%s: no middleware serves metricsPath and adminPath", where)
	}
	for _, ep := range public {
		if rt := r.route(ep, http.MethodPost, revokePath); !serves(rt, func(c *tokenrevocation.Config) bool { return c.RevokePath == revokePath }) {
			t.Errorf("%s: POST %s on %s reaches %v, not a router whose middleware watches it", where, revokePath, ep, rt)
		}
		if rt := r.route(ep, http.MethodPost, tokenPath); !serves(rt, func(c *tokenrevocation.Config) bool { return c.TokenPath == tokenPath }) {
			t.Errorf("%s: POST %s on %s reaches %v, not a router whose middleware checks it", where, tokenPath, ep, rt)
		}
		rt := r.route(ep, http.MethodGet, apiPath)
		if !serves(rt, func(*tokenrevocation.Config) bool { return true }) {
			t.Errorf("%s: GET %s on %s reaches %v, not a router with the plugin", where, apiPath, ep, rt)
		} else if id := r.route(ep, http.MethodPost, revokePath); id == rt {
			t.Errorf("%s: the API path and the revoke path reach the same router %s", where, rt.id)
		}
		for _, p := range []string{metricsPath, adminPath + "/lookup"} {
			if rt := r.route(ep, http.MethodGet, p); serves(rt, func(c *tokenrevocation.Config) bool { return c.MetricsPath != "" || c.AdminPath != "" }) {
				t.Errorf("%s: %s is served on the public entrypoint %s (router %s)", where, p, ep, rt.id)
			}
		}
	}
	for _, p := range []string{metricsPath, adminPath + "/lookup"} {
		if rt := r.route(internal, http.MethodGet, p); !serves(rt, func(c *tokenrevocation.Config) bool { return c.MetricsPath == metricsPath && c.AdminPath == adminPath }) {
			t.Errorf("%s: GET %s on %s reaches %v, not the router of the ops middleware", where, p, internal, rt)
		}
	}
	for _, rt := range r.routes {
		for _, c := range rt.plugins {
			if (c.MetricsPath != "" || c.AdminPath != "") && slices.ContainsFunc(rt.entryPoints, func(ep string) bool { return slices.Contains(public, ep) }) {
				t.Errorf("%s: router %s carries metricsPath/adminPath on a public entrypoint %v", where, rt.id, rt.entryPoints)
			}
		}
	}
}

func (rt *deployRoute) String() string {
	if rt == nil {
		return "no router"
	}
	return "router " + rt.id
}

// semverAtLeast compares dotted numeric versions ("37.3.0", "v3.6", "1.25").
func semverAtLeast(have, want string) bool {
	parse := func(v string) []int {
		var out []int
		for _, f := range strings.Split(strings.TrimPrefix(v, "v"), ".") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	h, w := parse(have), parse(want)
	if h == nil || w == nil {
		return false
	}
	for i := range w {
		if i >= len(h) {
			return false
		}
		if h[i] != w[i] {
			return h[i] > w[i]
		}
	}
	return true
}

func deployValidName(t *testing.T, where, name string) {
	t.Helper()
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		t.Errorf("%s: name %q: %v", where, name, errs)
	}
}

func deployValidLabels(t *testing.T, where string, m map[string]string) {
	t.Helper()
	for k, v := range m {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			t.Errorf("%s: label %s=%s: %v", where, k, v, errs)
		}
	}
}

func deploySelector(t *testing.T, where string, sel *metav1.LabelSelector) labels.Selector {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: selector: %v", where, err)
		return labels.Nothing()
	}
	return s
}

// ------------------------------------------------------------- Helm chart

// helmChart is the Traefik pod the chart renders from the examples' values,
// emulated from the pinned chart's templates.
type helmChart struct {
	version, release, namespace string
	values                      map[string]any // the chart's defaults, merged with the example
	podLabels                   map[string]string
	podAnnotations              map[string]string
	args                        []string
	ports                       []corev1.ContainerPort
	servicePorts                []corev1.ServicePort
	volumes                     []corev1.Volume
	mounts                      []corev1.VolumeMount
	security                    corev1.PodSecurityContext
	problems                    []string // what the chart would refuse or silently drop
}

func (c *helmChart) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// helmMerge merges values into defaults as Helm does: maps merge, lists and
// scalars replace, null deletes a default.
func helmMerge(def, over map[string]any) map[string]any {
	out := make(map[string]any, len(def))
	for k, v := range def {
		out[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(out, k)
			continue
		}
		if vm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = helmMerge(dm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func helmMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func helmAt(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		v = helmMap(v)[k]
	}
	return v
}

func helmInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

func helmStr(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func helmSorted(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// helmPortName is the chart's traefik.portname helper.
func helmPortName(name string) string {
	n := strings.TrimPrefix(strings.ToLower(name), "-")
	if len(n) > 15 {
		n = n[:15]
	}
	return strings.TrimSuffix(n, "-")
}

// helmCheckKeys reports every key of the example's values that the chart's
// defaults do not have.
func helmCheckKeys(p string, v, def any, problems *[]string) {
	if slices.Contains(helmTypedSections, p) {
		return
	}
	vm, ok := v.(map[string]any)
	if !ok {
		return
	}
	switch p {
	case "experimental.plugins", "experimental.localPlugins":
		allowed := helmPluginKeys
		if p == "experimental.localPlugins" {
			allowed = helmLocalPluginKeys
		}
		for name, entry := range vm {
			for k, sub := range helmMap(entry) {
				if !slices.Contains(allowed, k) {
					*problems = append(*problems, fmt.Sprintf("%s.%s.%s: the chart does not read it", p, name, k))
				}
				if k == "settings" {
					for s := range helmMap(sub) {
						if s != "useUnsafe" {
							*problems = append(*problems, fmt.Sprintf("%s.%s.settings.%s: the chart passes only settings.useUnsafe", p, name, s))
						}
					}
				}
			}
		}
		return
	case "ports":
		union := map[string]any{}
		for _, entry := range helmMap(def) {
			union = helmUnion(union, helmMap(entry))
		}
		for _, k := range helmPortExtraKeys {
			union[k] = nil
		}
		for name, entry := range vm {
			d, known := helmMap(def)[name]
			if !known {
				d = union
			}
			helmCheckKeys("ports."+name, entry, helmUnion(helmMap(d), union), problems)
		}
		return
	}
	dm, ok := def.(map[string]any)
	if !ok {
		*problems = append(*problems, fmt.Sprintf("%s: a map where the chart's default is %v", p, def))
		return
	}
	for k, sub := range vm {
		kp := strings.TrimPrefix(p+"."+k, ".")
		if p == "" && !slices.Contains(helmCompleteSections, k) {
			*problems = append(*problems, fmt.Sprintf("%s: not in the chart excerpt's complete sections %v (extend testdata/helm/%s from the chart)", kp, helmCompleteSections, helmDefaultsFile))
			continue
		}
		d, ok := dm[k]
		if !ok {
			*problems = append(*problems, fmt.Sprintf("%s: the chart has no such value", kp))
			continue
		}
		helmCheckKeys(kp, sub, d, problems)
	}
}

// helmUnion merges the key trees of a and b (values of a win).
func helmUnion(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range b {
		out[k] = v
	}
	for k, v := range a {
		if am, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = helmUnion(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// helmRender emulates the parts of the chart's _podtemplate.tpl (37.3.0)
// the examples touch: pod labels and annotations, container ports and the
// Service's, entrypoint and plugin arguments, volumes and mounts.
func helmRender(values map[string]any, defaults map[string]any, version, release, namespace string) *helmChart {
	c := &helmChart{version: version, release: release, namespace: namespace, values: helmMerge(defaults, values)}
	v := c.values
	c.podLabels = map[string]string{
		"app.kubernetes.io/name":     "traefik",
		"app.kubernetes.io/instance": release + "-" + namespace,
	}
	for k, val := range helmMap(helmAt(v, "deployment", "podLabels")) {
		c.podLabels[k] = helmStr(val)
	}
	c.podAnnotations = map[string]string{}
	for k, val := range helmMap(helmAt(v, "deployment", "podAnnotations")) {
		c.podAnnotations[k] = helmStr(val)
	}
	if prom := helmMap(helmAt(v, "metrics", "prometheus")); prom != nil && helmAt(prom, "serviceMonitor", "enabled") != true {
		ep := helmStr(prom["entryPoint"])
		for k, val := range map[string]string{
			"prometheus.io/scrape": "true",
			"prometheus.io/path":   "/metrics",
			"prometheus.io/port":   strconv.Itoa(helmInt(helmAt(v, "ports", ep, "port"))),
		} {
			if old, set := c.podAnnotations[k]; set && old != val {
				c.problem("deployment.podAnnotations.%s=%s: the chart writes it too (%s), a duplicate key", k, old, val)
			}
			c.podAnnotations[k] = val
		}
	}

	ports := helmMap(v["ports"])
	for _, name := range helmSorted(ports) {
		p := helmMap(ports[name])
		if p == nil {
			continue
		}
		port := helmInt(p["port"])
		container := port
		if cp := helmInt(p["containerPort"]); cp != 0 {
			container = cp
		}
		proto := helmStr(p["protocol"])
		if proto == "" {
			proto = "TCP"
		}
		c.ports = append(c.ports, corev1.ContainerPort{Name: helmPortName(name), ContainerPort: int32(container), Protocol: corev1.Protocol(proto)})
		if helmAt(p, "http3", "enabled") == true {
			c.ports = append(c.ports, corev1.ContainerPort{Name: helmPortName(name + "-http3"), ContainerPort: int32(port), Protocol: corev1.ProtocolUDP})
		}
		c.args = append(c.args, fmt.Sprintf("--entryPoints.%s.address=%s:%d/%s", name, helmStr(p["hostIP"]), port, strings.ToLower(proto)))
		if helmAt(p, "expose", "default") == true {
			exposed := helmInt(p["exposedPort"])
			if exposed == 0 {
				exposed = port
			}
			c.servicePorts = append(c.servicePorts, corev1.ServicePort{Name: helmPortName(name), Port: int32(exposed), Protocol: corev1.Protocol(proto)})
		}
	}

	plugins := helmMap(helmAt(v, "experimental", "plugins"))
	for _, name := range helmSorted(plugins) {
		p := helmMap(plugins[name])
		if _, ok := p["moduleName"]; !ok {
			c.problem("experimental.plugins.%s: the chart fails: no moduleName", name)
		}
		if _, ok := p["version"]; !ok {
			c.problem("experimental.plugins.%s: the chart fails: no version", name)
		}
		c.args = append(c.args, "--experimental.plugins."+name+".moduleName="+helmStr(p["moduleName"]),
			"--experimental.plugins."+name+".version="+helmStr(p["version"]))
		if h, ok := p["hash"]; ok {
			c.args = append(c.args, "--experimental.plugins."+name+".hash="+helmStr(h))
		}
		if helmAt(p, "settings", "useUnsafe") == true {
			c.args = append(c.args, "--experimental.plugins."+name+".settings.useUnsafe=true")
		}
	}
	locals := helmMap(helmAt(v, "experimental", "localPlugins"))
	for _, name := range helmSorted(locals) {
		p := helmMap(locals[name])
		if _, ok := p["moduleName"]; !ok {
			c.problem("experimental.localPlugins.%s: the chart fails: no moduleName", name)
		}
		c.args = append(c.args, "--experimental.localPlugins."+name+".moduleName="+helmStr(p["moduleName"]))
		if helmAt(p, "settings", "useUnsafe") == true {
			c.args = append(c.args, "--experimental.localPlugins."+name+".settings.useUnsafe=true")
		}
	}

	// Volumes and mounts: the chart's own, then the values'.
	c.volumes = append(c.volumes,
		corev1.Volume{Name: helmStr(helmAt(v, "persistence", "name")), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	c.mounts = append(c.mounts,
		corev1.VolumeMount{Name: helmStr(helmAt(v, "persistence", "name")), MountPath: helmStr(helmAt(v, "persistence", "path"))},
		corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	var additional []corev1.Volume
	for i, raw := range asList(helmAt(v, "deployment", "additionalVolumes")) {
		var vol corev1.Volume
		if err := deployStrict(raw, &vol); err != nil {
			c.problem("deployment.additionalVolumes[%d]: not a Kubernetes Volume: %v", i, err)
		}
		additional = append(additional, vol)
	}
	// traefik.hasPluginsVolume: a `plugins` volume of the values replaces
	// the chart's, and its mount.
	ownPlugins := len(plugins) > 0 && !slices.ContainsFunc(additional, func(vol corev1.Volume) bool { return vol.Name == "plugins" })
	if ownPlugins {
		c.mounts = append(c.mounts, corev1.VolumeMount{Name: "plugins", MountPath: "/plugins-storage"})
	}
	c.volumes = append(c.volumes, additional...)
	for i, raw := range asList(v["additionalVolumeMounts"]) {
		var m corev1.VolumeMount
		if err := deployStrict(raw, &m); err != nil {
			c.problem("additionalVolumeMounts[%d]: not a Kubernetes VolumeMount: %v", i, err)
		}
		c.mounts = append(c.mounts, m)
	}
	for _, name := range helmSorted(locals) {
		p := helmMap(locals[name])
		vname := strings.ReplaceAll(name, ".", "-")
		c.mounts = append(c.mounts, corev1.VolumeMount{Name: vname, MountPath: helmStr(p["mountPath"])})
		c.volumes = append(c.volumes, corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: helmStr(p["hostPath"])}}})
	}
	if ownPlugins {
		c.volumes = append(c.volumes, corev1.Volume{Name: "plugins", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	if err := deployStrict(v["podSecurityContext"], &c.security); err != nil {
		c.problem("podSecurityContext: not a Kubernetes PodSecurityContext: %v", err)
	}
	var sc corev1.SecurityContext
	if err := deployStrict(v["securityContext"], &sc); err != nil {
		c.problem("securityContext: not a Kubernetes SecurityContext: %v", err)
	}

	// What the API server or the kubelet would refuse.
	seenPort := map[string]string{}
	for _, p := range c.ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			c.problem("port %s: %v", p.Name, errs)
		}
		if errs := validation.IsValidPortNum(int(p.ContainerPort)); len(errs) > 0 {
			c.problem("port %s: %v", p.Name, errs)
		}
		key := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
		if other, dup := seenPort[key]; dup {
			c.problem("ports %s and %s both listen on %s", other, p.Name, key)
		}
		seenPort[key] = p.Name
		if other, dup := seenPort["name:"+p.Name]; dup {
			c.problem("ports %s and %s have the same container port name", other, p.Name)
		}
		seenPort["name:"+p.Name] = p.Name
	}
	seenSvc := map[string]string{}
	for _, p := range c.servicePorts {
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if other, dup := seenSvc[key]; dup {
			c.problem("the Service exposes ports %s and %s both on %s", other, p.Name, key)
		}
		seenSvc[key] = p.Name
	}
	vols := map[string]bool{}
	for _, vol := range c.volumes {
		if vols[vol.Name] {
			c.problem("two volumes named %q", vol.Name)
		}
		vols[vol.Name] = true
	}
	paths := map[string]string{}
	for _, m := range c.mounts {
		if !vols[m.Name] {
			c.problem("mount %s: no volume named %q", m.MountPath, m.Name)
		}
		if other, dup := paths[m.MountPath]; dup {
			c.problem("volumes %s and %s both mount at %s", other, m.Name, m.MountPath)
		}
		paths[m.MountPath] = m.Name
	}
	return c
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// helmExample loads examples/helm/values.yaml, the chart excerpt, and the
// install command in the values' header (release, namespace, version).
func helmExample(t *testing.T, root string) (values, defaults map[string]any, version, release, namespace string) {
	t.Helper()
	valuesPath := filepath.Join(root, "examples", "helm", "values.yaml")
	values = deployYAMLMap(t, valuesPath)
	defaults = deployYAMLMap(t, filepath.Join(root, "e2e", "testdata", "helm", helmDefaultsFile))
	header := string(deployRead(t, valuesPath))
	m := regexp.MustCompile(`helm install (\S+) traefik/traefik --version (\S+)\s*\\?\s*#?\s*--namespace (\S+)`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("%s: no `helm install <release> traefik/traefik --version <v> --namespace <ns>` in its header", valuesPath)
	}
	return values, defaults, m[2], m[1], m[3]
}

// helmTemplateContext is what a string in extraObjects sees: the chart runs
// it through tpl with the root context.
type helmCapabilities struct{ present bool }

// Has reports whether the cluster serves an API version (or version/kind).
func (c helmCapabilities) Has(string) bool { return c.present }

func helmRenderExtra(src string, present bool, release, namespace string) (string, error) {
	tpl, err := template.New("extraObjects").Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = tpl.Execute(&out, map[string]any{
		"Capabilities": map[string]any{"APIVersions": helmCapabilities{present}},
		"Release":      map[string]any{"Name": release, "Namespace": namespace},
	})
	return strings.TrimSpace(out.String()), err
}

func TestHelmValuesExample(t *testing.T) {
	root := deployRoot(t)
	values, defaults, version, release, namespace := helmExample(t, root)
	header := string(deployRead(t, filepath.Join(root, "examples", "helm", "values.yaml")))

	if !strings.Contains(header, "Minimum chart version: "+helmChartMinimum) {
		t.Errorf("values.yaml does not state the minimum chart version %s", helmChartMinimum)
	}
	excerptVersion := strings.TrimSuffix(strings.TrimPrefix(helmDefaultsFile, "traefik-"), "-defaults.yaml")
	if version != excerptVersion {
		t.Errorf("values.yaml installs chart %s, the test checks against %s", version, excerptVersion)
	}
	if !semverAtLeast(version, helmChartMinimum) {
		t.Errorf("chart %s is older than %s, which first passes settings.useUnsafe", version, helmChartMinimum)
	}
	if helmInt(helmAt(defaults, "ports", "metrics", "port")) != 9100 {
		t.Fatalf("the excerpt lost the chart's metrics port 9100")
	}

	var problems []string
	helmCheckKeys("", values, defaults, &problems)
	chart := helmRender(values, defaults, version, release, namespace)
	problems = append(problems, chart.problems...)
	for _, p := range problems {
		t.Errorf("values.yaml against chart %s: %s", version, p)
	}

	// The plugin, with useUnsafe, under the name the Middlewares use.
	for _, want := range []string{
		"--experimental.plugins." + deployPluginKey + ".moduleName=" + harness.ModuleName,
		"--experimental.plugins." + deployPluginKey + ".settings.useUnsafe=true",
	} {
		if !slices.Contains(chart.args, want) {
			t.Errorf("the chart would not pass %s; it passes %q", want, chart.args)
		}
	}
	if v := helmStr(helmAt(chart.values, "experimental", "plugins", deployPluginKey, "version")); !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("experimental.plugins.%s.version %q is not a release tag", deployPluginKey, v)
	}

	// The internal entrypoint: 9200, on no Service, clear of the chart's ports.
	internal := helmMap(helmAt(chart.values, "ports", "internal"))
	if internal == nil {
		t.Fatal("values.yaml adds no ports.internal")
	}
	if p := helmInt(internal["port"]); p != 9200 || p == helmInt(helmAt(defaults, "ports", "metrics", "port")) {
		t.Errorf("ports.internal.port is %d, want 9200 (9100 is the chart's metrics entrypoint)", p)
	}
	if slices.ContainsFunc(chart.servicePorts, func(p corev1.ServicePort) bool { return p.Name == "internal" }) {
		t.Error("the internal entrypoint is exposed on the chart's Service")
	}
	if !slices.Contains(chart.args, "--entryPoints.internal.address=:9200/tcp") {
		t.Errorf("no internal entrypoint on :9200 in %q", chart.args)
	}
	if helmMap(helmAt(chart.values, "ports", "metrics")) == nil {
		t.Error("the chart's own metrics entrypoint was removed")
	}
	for name, def := range helmMap(defaults["ports"]) {
		if helmInt(helmAt(chart.values, "ports", name, "port")) != helmInt(helmMap(def)["port"]) {
			t.Errorf("values.yaml moves the chart's %s entrypoint", name)
		}
	}

	// The admin token Secret, mounted where the ops Middleware reads it, and
	// readable by Traefik's user.
	kube := kubeLoad(t, root, false)
	ops := kube.opsConfig(t)
	if ops == nil {
		t.Fatal("no ops Middleware (with adminTokenFile) in examples/kubernetes/middlewares.yaml")
	}
	var secretVol *corev1.Volume
	for i := range chart.volumes {
		if s := chart.volumes[i].Secret; s != nil && s.SecretName == kube.adminSecret.Name {
			secretVol = &chart.volumes[i]
		}
	}
	if secretVol == nil {
		t.Fatalf("no volume of Secret %s", kube.adminSecret.Name)
	}
	if kube.adminSecret.Namespace != namespace {
		t.Errorf("Secret %s is in namespace %s, Traefik in %s", kube.adminSecret.Name, kube.adminSecret.Namespace, namespace)
	}
	mounted := false
	for _, m := range chart.mounts {
		if m.Name == secretVol.Name {
			mounted = true
			if m.MountPath != posixpath.Dir(ops.AdminTokenFile) || !m.ReadOnly {
				t.Errorf("Secret mounted at %s (readOnly %v), the Middleware reads %s", m.MountPath, m.ReadOnly, ops.AdminTokenFile)
			}
		}
	}
	if !mounted {
		t.Error("the Secret's volume is not mounted")
	}
	if _, ok := kube.adminSecret.StringData[posixpath.Base(ops.AdminTokenFile)]; !ok {
		t.Errorf("Secret %s has no key %s", kube.adminSecret.Name, posixpath.Base(ops.AdminTokenFile))
	}
	mode := int32(0o644)
	if m := secretVol.Secret.DefaultMode; m != nil {
		mode = *m
	}
	sec := chart.security
	readable := mode&0o004 != 0 || (sec.RunAsUser != nil && *sec.RunAsUser == 0) ||
		(mode&0o040 != 0 && sec.FSGroup != nil && sec.RunAsGroup != nil && *sec.FSGroup == *sec.RunAsGroup)
	if !readable {
		t.Errorf("the Secret's files (mode %o) are not readable by Traefik (podSecurityContext %+v)", mode, sec)
	}

	// Prometheus: the PodMonitor in extraObjects, only where its CRD exists,
	// scraping the internal port at the ops Middleware's metricsPath.
	monitors := 0
	for i, raw := range asList(values["extraObjects"]) {
		src, isString := raw.(string)
		if !isString {
			b, err := yaml.Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			src = string(b)
		}
		absent, err := helmRenderExtra(src, false, release, namespace)
		if err != nil {
			t.Errorf("extraObjects[%d]: %v", i, err)
			continue
		}
		doc, err := helmRenderExtra(src, true, release, namespace)
		if err != nil {
			t.Errorf("extraObjects[%d]: %v", i, err)
			continue
		}
		var meta metav1.TypeMeta
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Errorf("extraObjects[%d]: %v", i, err)
			continue
		}
		switch meta.Kind {
		case "PodMonitor":
			monitors++
			if absent != "" {
				t.Errorf("extraObjects[%d]: the PodMonitor renders without the Prometheus Operator's CRD, and the install would fail", i)
			}
			var pm monitoringv1.PodMonitor
			if err := deployStrict([]byte(doc), &pm); err != nil {
				t.Errorf("extraObjects[%d]: not a PodMonitor: %v", i, err)
				continue
			}
			if meta.APIVersion != "monitoring.coreos.com/v1" {
				t.Errorf("extraObjects[%d]: apiVersion %s", i, meta.APIVersion)
			}
			deployValidName(t, "PodMonitor", pm.Name)
			if sel := deploySelector(t, "PodMonitor", &pm.Spec.Selector); !sel.Matches(labels.Set(chart.podLabels)) || sel.Empty() {
				t.Errorf("the PodMonitor's selector %v does not select the chart's pods %v", sel, chart.podLabels)
			}
			if len(pm.Spec.PodMetricsEndpoints) != 1 {
				t.Fatalf("PodMonitor: want one endpoint, got %d", len(pm.Spec.PodMetricsEndpoints))
			}
			ep := pm.Spec.PodMetricsEndpoints[0]
			if ep.Port == nil || *ep.Port != helmPortName("internal") || ep.Path != ops.MetricsPath {
				t.Errorf("PodMonitor scrapes port %v path %q, want %q %q", ep.Port, ep.Path, helmPortName("internal"), ops.MetricsPath)
			}
		case "Middleware":
			var mw traefikv1.Middleware
			if err := deployStrict([]byte(doc), &mw); err != nil {
				t.Errorf("extraObjects[%d]: not a Middleware: %v", i, err)
				continue
			}
			kubeMiddlewareConfig(t, &mw)
		default:
			t.Errorf("extraObjects[%d]: kind %q: extend the test to check it", i, meta.Kind)
		}
	}
	if monitors != 1 {
		t.Errorf("want one PodMonitor in extraObjects, got %d", monitors)
	}
	if _, set := chart.podAnnotations["prometheus.io/port"]; !set {
		t.Error("the chart's Prometheus annotations are gone")
	}

	// The local-plugin alternative in the comments must work as written too.
	block := helmCommentedBlock(header, "  # localPlugins:")
	if block == "" {
		t.Fatal("values.yaml has no commented localPlugins alternative")
	}
	var alt map[string]any
	if err := yaml.Unmarshal([]byte(block), &alt); err != nil {
		t.Fatalf("the commented localPlugins block: %v", err)
	}
	altValues := helmMerge(values, map[string]any{"experimental": map[string]any{"plugins": nil, "localPlugins": alt["localPlugins"]}})
	problems = nil
	helmCheckKeys("", altValues, defaults, &problems)
	altChart := helmRender(altValues, defaults, version, release, namespace)
	for _, p := range append(problems, altChart.problems...) {
		t.Errorf("values.yaml with its localPlugins alternative: %s", p)
	}
	if !slices.Contains(altChart.args, "--experimental.localPlugins."+deployPluginKey+".settings.useUnsafe=true") {
		t.Errorf("the localPlugins alternative does not pass useUnsafe: %q", altChart.args)
	}
	if !slices.ContainsFunc(altChart.mounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == "/plugins-local/src/"+harness.ModuleName
	}) {
		t.Error("the localPlugins alternative does not mount the source where Traefik's local-plugin loader looks")
	}
}

// helmCommentedBlock returns the YAML commented out under the line start
// (its own key and the deeper-indented lines after it), uncommented.
func helmCommentedBlock(text, start string) string {
	var out []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case line == start:
			in = true
			out = append(out, strings.TrimPrefix(line, "  # "))
		case in && strings.HasPrefix(line, "  #   "):
			out = append(out, strings.TrimPrefix(line, "  # "))
		case in:
			return strings.Join(out, "\n")
		}
	}
	return strings.Join(out, "\n")
}

// ------------------------------------------------------------- Kubernetes

// kubeObjects are the manifests of examples/kubernetes, decoded.
type kubeObjects struct {
	files        map[string]int // file -> objects
	namespaces   []corev1.Namespace
	secrets      []corev1.Secret
	adminSecret  corev1.Secret
	services     []corev1.Service
	statefulSets []appsv1.StatefulSet
	policies     []networkingv1.NetworkPolicy
	middlewares  []traefikv1.Middleware
	routes       []traefikv1.IngressRoute
	configs      map[string]*tokenrevocation.Config // namespace/name -> plugin config
}

// kubeLoad decodes every manifest strictly into its Go type; report makes
// decoding failures test failures (the Kubernetes test), else they are left
// to it.
func kubeLoad(t *testing.T, root string, report bool) *kubeObjects {
	t.Helper()
	fail := func(format string, args ...any) {
		if report {
			t.Errorf(format, args...)
		}
	}
	k := &kubeObjects{files: map[string]int{}, configs: map[string]*tokenrevocation.Config{}}
	dir := filepath.Join(root, "examples", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(deployRead(t, f))))
		for n := 0; ; n++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var meta metav1.TypeMeta
			if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
				fail("%s #%d: %v", name, n, err)
				continue
			}
			if meta.Kind == "" {
				if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(string(doc), "")) != "" {
					fail("%s #%d: a document without kind", name, n)
				}
				continue
			}
			where := fmt.Sprintf("%s #%d (%s)", name, n, meta.Kind)
			var into any
			switch meta.APIVersion + "/" + meta.Kind {
			case "v1/Namespace":
				into = &corev1.Namespace{}
			case "v1/Secret":
				into = &corev1.Secret{}
			case "v1/Service":
				into = &corev1.Service{}
			case "apps/v1/StatefulSet":
				into = &appsv1.StatefulSet{}
			case "networking.k8s.io/v1/NetworkPolicy":
				into = &networkingv1.NetworkPolicy{}
			case "traefik.io/v1alpha1/Middleware":
				into = &traefikv1.Middleware{}
			case "traefik.io/v1alpha1/IngressRoute":
				into = &traefikv1.IngressRoute{}
			default:
				fail("%s: %s %s: not a kind the test knows; extend it", where, meta.APIVersion, meta.Kind)
				continue
			}
			if err := deployStrict(doc, into); err != nil {
				fail("%s: %v", where, err)
				continue
			}
			k.files[name]++
			switch o := into.(type) {
			case *corev1.Namespace:
				k.namespaces = append(k.namespaces, *o)
			case *corev1.Secret:
				k.secrets = append(k.secrets, *o)
			case *corev1.Service:
				k.services = append(k.services, *o)
			case *appsv1.StatefulSet:
				k.statefulSets = append(k.statefulSets, *o)
			case *networkingv1.NetworkPolicy:
				k.policies = append(k.policies, *o)
			case *traefikv1.Middleware:
				k.middlewares = append(k.middlewares, *o)
			case *traefikv1.IngressRoute:
				k.routes = append(k.routes, *o)
			}
		}
	}
	for _, s := range k.secrets {
		if s.Name == "revocation-admin" {
			k.adminSecret = s
		}
	}
	for i := range k.middlewares {
		mw := &k.middlewares[i]
		if report {
			if cfg := kubeMiddlewareConfig(t, mw); cfg != nil {
				k.configs[mw.Namespace+"/"+mw.Name] = cfg
			}
		} else if cfg := kubeMiddlewareDecode(mw); cfg != nil {
			k.configs[mw.Namespace+"/"+mw.Name] = cfg
		}
	}
	return k
}

// kubeMiddlewarePlugins converts a Middleware's plugin options as Traefik's
// CRD provider does (createPluginMiddleware: JSON to map[string]PluginConf).
func kubeMiddlewarePlugins(mw *traefikv1.Middleware) (map[string]map[string]any, error) {
	b, err := json.Marshal(mw.Spec.Plugin)
	if err != nil {
		return nil, err
	}
	var out map[string]map[string]any
	return out, json.Unmarshal(b, &out)
}

// kubeMiddlewareConfig decodes a Middleware's plugin options and builds them
// with New, under the name Traefik gives a CRD middleware.
func kubeMiddlewareConfig(t *testing.T, mw *traefikv1.Middleware) *tokenrevocation.Config {
	t.Helper()
	where := fmt.Sprintf("Middleware %s/%s", mw.Namespace, mw.Name)
	plugins, err := kubeMiddlewarePlugins(mw)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	conf, ok := deployPluginBlock(t, where, plugins)
	if !ok {
		return nil
	}
	return deployBuildPlugin(t, where, conf, mw.Namespace+"-"+mw.Name+"@kubernetescrd")
}

// kubeMiddlewareDecode decodes without New or reporting, for other tests'
// cross-checks.
func kubeMiddlewareDecode(mw *traefikv1.Middleware) *tokenrevocation.Config {
	plugins, err := kubeMiddlewarePlugins(mw)
	if err != nil || plugins[deployPluginKey] == nil {
		return nil
	}
	cfg := tokenrevocation.CreateConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.StringToSliceHookFunc(","), WeaklyTypedInput: true, Result: cfg,
	})
	if err != nil || dec.Decode(plugins[deployPluginKey]) != nil {
		return nil
	}
	return cfg
}

// opsConfig is the Middleware with the admin API.
func (k *kubeObjects) opsConfig(t *testing.T) *tokenrevocation.Config {
	t.Helper()
	var ops *tokenrevocation.Config
	for _, c := range k.configs {
		if c.AdminTokenFile != "" {
			if ops != nil {
				t.Error("two Middlewares with adminTokenFile")
			}
			ops = c
		}
	}
	return ops
}

func TestKubernetesExamples(t *testing.T) {
	root := deployRoot(t)
	dir := filepath.Join(root, "examples", "kubernetes")
	k := kubeLoad(t, root, true)
	values, defaults, version, release, namespace := helmExample(t, root)
	chart := helmRender(values, defaults, version, release, namespace)

	// Every file is in the README's table, and every file in the table exists.
	readme := string(deployRead(t, filepath.Join(dir, "README.md")))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "README.md" && !strings.Contains(readme, "| `"+e.Name()+"` |") {
			t.Errorf("README.md does not describe %s", e.Name())
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("README.md describes %s: %v", m[1], err)
		}
	}
	for _, m := range regexp.MustCompile(`kubectl apply -f (\S+)`).FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("README.md applies %s: %v", m[1], err)
		}
	}
	for f, n := range k.files {
		if n == 0 {
			t.Errorf("%s holds no object", f)
		}
	}

	// Names, namespaces and labels the API server accepts.
	namespaces := map[string]bool{}
	for _, ns := range k.namespaces {
		if errs := validation.IsDNS1123Label(ns.Name); len(errs) > 0 {
			t.Errorf("Namespace %s: %v", ns.Name, errs)
		}
		namespaces[ns.Name] = true
	}
	if !namespaces[namespace] {
		t.Errorf("namespaces.yaml does not create Traefik's namespace %s", namespace)
	}
	objects := []metav1.Object{}
	for i := range k.secrets {
		objects = append(objects, &k.secrets[i])
	}
	for i := range k.services {
		objects = append(objects, &k.services[i])
	}
	for i := range k.statefulSets {
		objects = append(objects, &k.statefulSets[i])
	}
	for i := range k.policies {
		objects = append(objects, &k.policies[i])
	}
	for i := range k.middlewares {
		objects = append(objects, &k.middlewares[i])
	}
	for i := range k.routes {
		objects = append(objects, &k.routes[i])
	}
	for _, o := range objects {
		where := o.GetNamespace() + "/" + o.GetName()
		deployValidName(t, where, o.GetName())
		if !namespaces[o.GetNamespace()] {
			t.Errorf("%s: namespace %q is not in namespaces.yaml", where, o.GetNamespace())
		}
		deployValidLabels(t, where, o.GetLabels())
	}

	// The admin token Secret.
	if k.adminSecret.Name == "" {
		t.Fatal("no Secret revocation-admin")
	}
	for key, v := range k.adminSecret.StringData {
		if len(strings.TrimSpace(v)) < 16 {
			t.Errorf("Secret %s: %s is shorter than 16 characters", k.adminSecret.Name, key)
		}
	}

	// Valkey: a Service in front of the StatefulSet's pods, on its port.
	if len(k.statefulSets) != 1 || len(k.services) != 1 {
		t.Fatalf("want Valkey's one StatefulSet and one Service, got %d and %d", len(k.statefulSets), len(k.services))
	}
	sts, svc := k.statefulSets[0], k.services[0]
	podLabels := labels.Set(sts.Spec.Template.Labels)
	if !deploySelector(t, "StatefulSet "+sts.Name, sts.Spec.Selector).Matches(podLabels) {
		t.Errorf("StatefulSet %s: its selector does not select its pods", sts.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s does not select the StatefulSet's pods", svc.Name)
	}
	if sts.Spec.ServiceName != svc.Name || sts.Namespace != svc.Namespace {
		t.Errorf("StatefulSet %s's serviceName %q is not its Service %s", sts.Name, sts.Spec.ServiceName, svc.Name)
	}
	containerPorts := map[string]int32{}
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			containerPorts[p.Name] = p.ContainerPort
		}
		for _, m := range c.VolumeMounts {
			if !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(pvc corev1.PersistentVolumeClaim) bool { return pvc.Name == m.Name }) {
				t.Errorf("StatefulSet %s mounts %s, which no volumeClaimTemplate provides", sts.Name, m.Name)
			}
		}
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service %s: want one port", svc.Name)
	}
	valkeyPort := svc.Spec.Ports[0]
	if target := valkeyPort.TargetPort.String(); containerPorts[target] == 0 && target != strconv.Itoa(int(valkeyPort.Port)) {
		t.Errorf("Service %s targets port %s, which the pods do not have", svc.Name, target)
	}
	valkeyAddr := fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, valkeyPort.Port)

	// Middlewares: one shared denylist and Redis, on the Valkey Service.
	if len(k.configs) != len(k.middlewares) || len(k.middlewares) < 3 {
		t.Fatalf("want the identity, API and ops Middlewares built, got %d of %d", len(k.configs), len(k.middlewares))
	}
	deploySharedSettings(t, "examples/kubernetes", k.configs)
	nsOfMiddlewares := map[string]bool{}
	for id, c := range k.configs {
		nsOfMiddlewares[strings.Split(id, "/")[0]] = true
		if c.Redis != nil && c.Redis.Address != valkeyAddr {
			t.Errorf("Middleware %s: redis.address %s, the Valkey Service is %s", id, c.Redis.Address, valkeyAddr)
		}
	}
	if len(nsOfMiddlewares) < 2 {
		t.Error("the Middlewares are all in one namespace: the example should show the denylist shared across namespaces")
	}
	ops := k.opsConfig(t)
	if ops == nil || ops.MetricsPath == "" || ops.AdminPath == "" {
		t.Fatal("no ops Middleware with metricsPath, adminPath and adminTokenFile")
	}

	// IngressRoutes: entrypoints the chart has, Middlewares of their own
	// namespace (the chart does not allow cross-namespace references), and
	// the routing as Traefik's muxer does it.
	entryPoints := map[string]bool{}
	for name, p := range helmMap(chart.values["ports"]) {
		if p != nil {
			entryPoints[name] = true
		}
	}
	var routes []*deployRoute
	for _, ir := range k.routes {
		for i, r := range ir.Spec.Routes {
			where := fmt.Sprintf("IngressRoute %s/%s route %d", ir.Namespace, ir.Name, i)
			rt := &deployRoute{id: fmt.Sprintf("%s/%s#%d", ir.Namespace, ir.Name, i), entryPoints: ir.Spec.EntryPoints, rule: r.Match, priority: r.Priority}
			if r.Kind != "" && r.Kind != "Rule" {
				t.Errorf("%s: kind %q", where, r.Kind)
			}
			for _, ep := range ir.Spec.EntryPoints {
				if !entryPoints[ep] {
					t.Errorf("%s: entrypoint %q is not one of the chart's %v", where, ep, entryPoints)
				}
			}
			for _, ref := range r.Middlewares {
				if ref.Namespace != "" && ref.Namespace != ir.Namespace {
					t.Errorf("%s: Middleware %s/%s of another namespace (needs providers.kubernetesCRD.allowCrossNamespace)", where, ref.Namespace, ref.Name)
				}
				c, ok := k.configs[ir.Namespace+"/"+ref.Name]
				if !ok {
					t.Errorf("%s: no Middleware %s/%s", where, ir.Namespace, ref.Name)
					continue
				}
				rt.plugins = append(rt.plugins, c)
			}
			for _, s := range r.Services {
				switch s.Kind {
				case "TraefikService":
					if s.Name != "noop@internal" {
						t.Errorf("%s: TraefikService %s: only noop@internal is expected", where, s.Name)
					}
				case "", "Service":
					if s.Port.IntValue() == 0 && s.Port.String() == "0" {
						t.Errorf("%s: Service %s without a port", where, s.Name)
					}
				default:
					t.Errorf("%s: service kind %q", where, s.Kind)
				}
			}
			if len(r.Services) == 0 {
				t.Errorf("%s: no service", where)
			}
			routes = append(routes, rt)
		}
	}
	router := deployNewRouter(t, "examples/kubernetes", routes)
	var public []string
	for _, p := range chart.servicePorts {
		if entryPoints[p.Name] && router.muxers[p.Name] != nil {
			public = append(public, p.Name)
		}
	}
	if len(public) == 0 {
		t.Fatal("no IngressRoute on an entrypoint of the chart's Service")
	}
	router.checkRouting(t, "examples/kubernetes", public, "internal", "/api/orders")

	// NetworkPolicies: the public entrypoints open, the internal port and
	// Traefik's metrics only from Prometheus and operators, Valkey only from
	// Traefik.
	portOf := map[string]int32{}
	for _, p := range chart.ports {
		portOf[p.Name] = p.ContainerPort
	}
	var traefikPolicy, valkeyPolicy *networkingv1.NetworkPolicy
	for i := range k.policies {
		np := &k.policies[i]
		sel := deploySelector(t, "NetworkPolicy "+np.Name, &np.Spec.PodSelector)
		switch {
		case np.Namespace == namespace && sel.Matches(labels.Set(chart.podLabels)):
			traefikPolicy = np
		case np.Namespace == sts.Namespace && sel.Matches(podLabels):
			valkeyPolicy = np
		default:
			t.Errorf("NetworkPolicy %s/%s selects neither Traefik's nor Valkey's pods", np.Namespace, np.Name)
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("NetworkPolicy %s: no Ingress policy type", np.Name)
		}
	}
	if traefikPolicy == nil || valkeyPolicy == nil {
		t.Fatal("want a NetworkPolicy for the Traefik pods and one for Valkey")
	}
	open, restricted := map[int32]bool{}, map[int32]bool{}
	podPorts := map[int32]bool{}
	for _, p := range chart.ports {
		podPorts[p.ContainerPort] = true
	}
	for _, rule := range traefikPolicy.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Errorf("NetworkPolicy %s: a rule for every port", traefikPolicy.Name)
				continue
			}
			n := int32(p.Port.IntValue())
			if p.Port.IntValue() == 0 {
				n = portOf[p.Port.String()]
			}
			if !podPorts[n] {
				t.Errorf("NetworkPolicy %s allows port %s, which the Traefik pods do not listen on", traefikPolicy.Name, p.Port.String())
			}
			if len(rule.From) == 0 {
				open[n] = true
			} else {
				restricted[n] = true
			}
		}
	}
	for _, p := range chart.servicePorts {
		if !open[portOf[p.Name]] {
			t.Errorf("NetworkPolicy %s: the public entrypoint %s (pod port %d) is not open", traefikPolicy.Name, p.Name, portOf[p.Name])
		}
	}
	internalPort := portOf[helmPortName("internal")]
	if open[internalPort] || !restricted[internalPort] {
		t.Errorf("NetworkPolicy %s: the internal port %d must be allowed from chosen peers only (open %v, restricted %v)", traefikPolicy.Name, internalPort, open[internalPort], restricted[internalPort])
	}
	if open[portOf["metrics"]] {
		t.Errorf("NetworkPolicy %s opens Traefik's metrics port to all", traefikPolicy.Name)
	}
	for _, rule := range valkeyPolicy.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Errorf("NetworkPolicy %s: a rule for every port", valkeyPolicy.Name)
				continue
			}
			if p.Port.IntValue() != int(containerPorts[valkeyPort.TargetPort.String()]) && p.Port.String() != valkeyPort.TargetPort.String() {
				t.Errorf("NetworkPolicy %s allows port %s, Valkey listens on %v", valkeyPolicy.Name, p.Port.String(), containerPorts)
			}
		}
		if len(rule.From) == 0 {
			t.Errorf("NetworkPolicy %s opens Valkey to all", valkeyPolicy.Name)
		}
		for _, peer := range rule.From {
			if peer.PodSelector == nil || peer.NamespaceSelector != nil || !deploySelector(t, valkeyPolicy.Name, peer.PodSelector).Matches(labels.Set(chart.podLabels)) {
				t.Errorf("NetworkPolicy %s: a peer other than the Traefik pods: %+v", valkeyPolicy.Name, peer)
			}
		}
	}

	// The plain Prometheus scrape job: the internal port, the metricsPath.
	var scrape struct {
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			KubeSD      []struct {
				Role       string `yaml:"role"`
				Namespaces struct {
					Names []string `yaml:"names"`
				} `yaml:"namespaces"`
			} `yaml:"kubernetes_sd_configs"`
			Relabel []struct {
				SourceLabels []string `yaml:"source_labels"`
				Regex        string   `yaml:"regex"`
				Action       string   `yaml:"action"`
				TargetLabel  string   `yaml:"target_label"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(deployRead(t, filepath.Join(dir, "prometheus-scrape.yml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&scrape); err != nil {
		t.Fatalf("prometheus-scrape.yml: %v", err)
	}
	if len(scrape.ScrapeConfigs) != 1 {
		t.Fatal("prometheus-scrape.yml: want one job")
	}
	job := scrape.ScrapeConfigs[0]
	if job.MetricsPath != ops.MetricsPath || len(job.KubeSD) != 1 || job.KubeSD[0].Role != "pod" || !slices.Contains(job.KubeSD[0].Namespaces.Names, namespace) {
		t.Errorf("prometheus-scrape.yml: job %+v does not scrape pods of %s at %s", job, namespace, ops.MetricsPath)
	}
	kept := false
	for _, r := range job.Relabel {
		if r.Action == "keep" {
			kept = r.Regex == chart.podLabels["app.kubernetes.io/name"]+";"+helmPortName("internal") &&
				slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_label_app_kubernetes_io_name", "__meta_kubernetes_pod_container_port_name"})
		}
	}
	if !kept {
		t.Errorf("prometheus-scrape.yml does not keep only the Traefik pods' %s port", helmPortName("internal"))
	}
}

// ---------------------------------------------------------------- Compose

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes    map[string]any `yaml:"volumes"`
	Extensions map[string]any `yaml:",inline"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string `yaml:"command"`
	Ports       []string `yaml:"ports"`
	Volumes     []string `yaml:"volumes"`
	Secrets     []string `yaml:"secrets"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// composeStatic is the part of Traefik's static configuration the example
// uses, with Traefik's key names; any other key fails the decode.
type composeStatic struct {
	Global struct {
		CheckNewVersion    bool `yaml:"checkNewVersion"`
		SendAnonymousUsage bool `yaml:"sendAnonymousUsage"`
	} `yaml:"global"`
	Log struct {
		Level string `yaml:"level"`
	} `yaml:"log"`
	EntryPoints map[string]struct {
		Address string `yaml:"address"`
	} `yaml:"entryPoints"`
	Ping *struct {
		EntryPoint string `yaml:"entryPoint"`
	} `yaml:"ping"`
	Providers struct {
		File *struct {
			Filename string `yaml:"filename"`
			Watch    bool   `yaml:"watch"`
		} `yaml:"file"`
	} `yaml:"providers"`
	Experimental struct {
		LocalPlugins map[string]struct {
			ModuleName string `yaml:"moduleName"`
			Settings   struct {
				UseUnsafe bool `yaml:"useUnsafe"`
			} `yaml:"settings"`
		} `yaml:"localPlugins"`
	} `yaml:"experimental"`
}

type composePort struct{ ip, host, container string }

func parseComposePort(s string) (composePort, error) {
	f := strings.Split(s, ":")
	switch len(f) {
	case 2:
		return composePort{host: f[0], container: f[1]}, nil
	case 3:
		return composePort{ip: f[0], host: f[1], container: f[2]}, nil
	}
	return composePort{}, fmt.Errorf("port %q is not [ip:]host:container", s)
}

func TestComposeExample(t *testing.T) {
	root := deployRoot(t)
	dir := filepath.Join(root, "examples", "compose")

	var cf composeFile
	dec := yaml.NewDecoder(bytes.NewReader(deployRead(t, filepath.Join(dir, "compose.yaml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for k := range cf.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("compose.yaml: top-level key %q", k)
		}
	}
	for _, name := range []string{"traefik-a", "traefik-b", "valkey", "identity", "api"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("compose.yaml: no service %s", name)
		}
	}

	// Images and builds.
	imageRE := regexp.MustCompile(`^([a-z0-9./-]+):([A-Za-z0-9._-]+)$`)
	for name, s := range cf.Services {
		if (s.Image == "") == (s.Build == nil) {
			t.Errorf("service %s: want an image or a build, not both or neither", name)
			continue
		}
		if s.Image != "" {
			m := imageRE.FindStringSubmatch(s.Image)
			if m == nil {
				t.Errorf("service %s: image %q without a tag", name, s.Image)
				continue
			}
			switch m[1] {
			case "traefik":
				if !semverAtLeast(m[2], "v3.6") {
					t.Errorf("service %s: traefik %s, want v3.6 or later", name, m[2])
				}
			case "valkey/valkey", "traefik/whoami":
			default:
				t.Errorf("service %s: image %s is not one the example documents", name, m[1])
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := cf.Services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown %s", name, dep)
			}
			switch d.Condition {
			case "service_started", "service_completed_successfully":
			case "service_healthy":
				if target.Healthcheck == nil {
					t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			default:
				t.Errorf("service %s: condition %q", name, d.Condition)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := cf.Secrets[sec]; !ok {
				t.Errorf("service %s: secret %s is not declared", name, sec)
			}
		}
	}

	// Every mounted file and build context exists.
	mounts := map[string]map[string]string{} // service -> target -> absolute source
	for name, s := range cf.Services {
		mounts[name] = map[string]string{}
		for _, v := range s.Volumes {
			f := strings.Split(v, ":")
			if len(f) < 2 || len(f) > 3 || (len(f) == 3 && f[2] != "ro" && f[2] != "rw") {
				t.Errorf("service %s: volume %q", name, v)
				continue
			}
			if strings.HasPrefix(f[0], ".") || strings.HasPrefix(f[0], "/") {
				src := filepath.Join(dir, f[0])
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, f[0], err)
				}
				mounts[name][f[1]] = src
			} else if _, ok := cf.Volumes[f[0]]; !ok {
				t.Errorf("service %s: named volume %s is not declared", name, f[0])
			}
		}
	}
	for name, sec := range cf.Secrets {
		b, err := os.ReadFile(filepath.Join(dir, sec.File))
		if err != nil {
			t.Errorf("secret %s: %v", name, err)
		} else if len(strings.TrimSpace(string(b))) < 16 {
			t.Errorf("secret %s: shorter than 16 characters", name)
		}
	}

	// The static configuration both replicas mount.
	static := map[string]composeStatic{}
	for _, name := range []string{"traefik-a", "traefik-b"} {
		src, ok := mounts[name]["/etc/traefik/traefik.yml"]
		if !ok {
			t.Fatalf("service %s does not mount a static configuration at /etc/traefik/traefik.yml", name)
		}
		var sc composeStatic
		dec := yaml.NewDecoder(bytes.NewReader(deployRead(t, src)))
		dec.KnownFields(true)
		if err := dec.Decode(&sc); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		static[name] = sc
		lp, ok := sc.Experimental.LocalPlugins[deployPluginKey]
		if !ok || lp.ModuleName != harness.ModuleName || !lp.Settings.UseUnsafe {
			t.Errorf("%s: experimental.localPlugins.%s must name %s with settings.useUnsafe: true", src, deployPluginKey, harness.ModuleName)
		}
		plugin, ok := mounts[name]["/plugins-local/src/"+lp.ModuleName]
		if !ok {
			t.Errorf("service %s does not mount the plugin's source at /plugins-local/src/%s", name, lp.ModuleName)
		} else {
			for _, f := range []string{".traefik.yml", "go.mod", "plugin.go", "vendor/modules.txt"} {
				if _, err := os.Stat(filepath.Join(plugin, f)); err != nil {
					t.Errorf("service %s: the plugin mount lacks %s: %v", name, f, err)
				}
			}
			if !strings.Contains(string(deployRead(t, filepath.Join(plugin, "go.mod"))), "module "+harness.ModuleName+"\n") {
				t.Errorf("service %s: the plugin mount is not module %s", name, harness.ModuleName)
			}
		}
		if sc.Ping != nil {
			if _, ok := sc.EntryPoints[sc.Ping.EntryPoint]; !ok {
				t.Errorf("%s: ping on unknown entrypoint %s", src, sc.Ping.EntryPoint)
			}
		}
		if s := cf.Services[name]; s.Healthcheck != nil && slices.Contains(s.Healthcheck.Test, "--ping") && sc.Ping == nil {
			t.Errorf("service %s: a ping healthcheck without ping in the static configuration", name)
		}
		if sc.Providers.File == nil {
			t.Fatalf("%s: no file provider", src)
		}
		if _, ok := mounts[name][sc.Providers.File.Filename]; !ok {
			t.Errorf("service %s: the file provider reads %s, which is not mounted", name, sc.Providers.File.Filename)
		}
		// Published ports: on loopback, onto an entrypoint, never twice.
		for _, p := range cf.Services[name].Ports {
			cp, err := parseComposePort(p)
			if err != nil {
				t.Error(err)
				continue
			}
			if cp.ip != "127.0.0.1" {
				t.Errorf("service %s publishes %s beyond loopback", name, p)
			}
			onEntryPoint := false
			for _, ep := range sc.EntryPoints {
				onEntryPoint = onEntryPoint || strings.HasSuffix(ep.Address, ":"+cp.container)
			}
			if !onEntryPoint {
				t.Errorf("service %s publishes container port %s, which no entrypoint listens on", name, cp.container)
			}
		}
	}
	if !reflectEqualJSON(static["traefik-a"], static["traefik-b"]) || !slices.Equal(cf.Services["traefik-a"].Volumes, cf.Services["traefik-b"].Volumes) {
		t.Error("the two replicas differ in configuration")
	}
	hostPorts := map[string]string{}
	published := map[string]map[string]string{} // service -> container port -> host port
	for name, s := range cf.Services {
		published[name] = map[string]string{}
		for _, p := range s.Ports {
			cp, err := parseComposePort(p)
			if err != nil {
				continue
			}
			if other, dup := hostPorts[cp.host]; dup {
				t.Errorf("services %s and %s both publish host port %s", other, name, cp.host)
			}
			hostPorts[cp.host] = name
			published[name][cp.container] = cp.host
		}
	}
	sc := static["traefik-a"]
	var publicEPs []string
	internalEP := ""
	for ep, e := range sc.EntryPoints {
		port := e.Address[strings.LastIndex(e.Address, ":")+1:]
		if published["traefik-a"][port] == "" || published["traefik-b"][port] == "" {
			t.Errorf("entrypoint %s (%s) is not published on both replicas", ep, e.Address)
		}
		if ep == "internal" {
			internalEP = ep
		} else {
			publicEPs = append(publicEPs, ep)
		}
	}
	if internalEP == "" {
		t.Fatal("traefik.yml: no internal entrypoint")
	}

	// The dynamic configuration, decoded as Traefik's file provider does.
	dynSrc := mounts["traefik-a"][sc.Providers.File.Filename]
	dyn := &dynamic.Configuration{
		HTTP: &dynamic.HTTPConfiguration{
			Routers: map[string]*dynamic.Router{}, Middlewares: map[string]*dynamic.Middleware{},
			Services: map[string]*dynamic.Service{}, ServersTransports: map[string]*dynamic.ServersTransport{},
		},
		TCP: &dynamic.TCPConfiguration{
			Routers: map[string]*dynamic.TCPRouter{}, Services: map[string]*dynamic.TCPService{},
			Middlewares: map[string]*dynamic.TCPMiddleware{}, ServersTransports: map[string]*dynamic.TCPServersTransport{},
		},
		TLS: &dynamic.TLSConfiguration{Stores: map[string]traefiktls.Store{}, Options: map[string]traefiktls.Options{}},
		UDP: &dynamic.UDPConfiguration{Routers: map[string]*dynamic.UDPRouter{}, Services: map[string]*dynamic.UDPService{}},
	}
	if err := paerserfile.DecodeContent(string(deployRead(t, dynSrc)), strings.ToLower(filepath.Ext(dynSrc)), dyn); err != nil {
		t.Fatalf("%s: Traefik's file provider refuses it: %v", dynSrc, err)
	}
	configs := map[string]*tokenrevocation.Config{}
	for name, mw := range dyn.HTTP.Middlewares {
		plugins := map[string]map[string]any{}
		for k, v := range mw.Plugin {
			plugins[k] = v
		}
		conf, ok := deployPluginBlock(t, "middleware "+name, plugins)
		if !ok {
			continue
		}
		if cfg := deployBuildPlugin(t, "middleware "+name, conf, name+"@file"); cfg != nil {
			configs[name] = cfg
		}
	}
	if len(configs) < 2 {
		t.Fatalf("want the public and the ops middleware built, got %d", len(configs))
	}
	deploySharedSettings(t, "examples/compose", configs)
	for name, c := range configs {
		if c.Redis == nil {
			continue
		}
		host, port, _ := net.SplitHostPort(c.Redis.Address)
		if _, ok := cf.Services[host]; !ok || host != "valkey" || port != "6379" {
			t.Errorf("middleware %s: redis.address %s is not the valkey service's 6379", name, c.Redis.Address)
		}
		if c.AdminTokenFile != "" {
			found := false
			for sec := range cf.Secrets {
				found = found || c.AdminTokenFile == "/run/secrets/"+sec
			}
			if !found {
				t.Errorf("middleware %s: adminTokenFile %s is no Compose secret", name, c.AdminTokenFile)
			}
		}
	}
	var routes []*deployRoute
	for name, r := range dyn.HTTP.Routers {
		rt := &deployRoute{id: name, entryPoints: r.EntryPoints, rule: r.Rule, priority: r.Priority}
		for _, ep := range r.EntryPoints {
			if _, ok := sc.EntryPoints[ep]; !ok {
				t.Errorf("router %s: unknown entrypoint %s", name, ep)
			}
		}
		if len(r.EntryPoints) == 0 {
			t.Errorf("router %s: no entrypoints (it would take every one, the internal too)", name)
		}
		for _, m := range r.Middlewares {
			c, ok := configs[m]
			if !ok {
				t.Errorf("router %s: no middleware %s", name, m)
				continue
			}
			rt.plugins = append(rt.plugins, c)
		}
		if _, ok := dyn.HTTP.Services[r.Service]; !ok && r.Service != "noop@internal" {
			t.Errorf("router %s: no service %s", name, r.Service)
		}
		routes = append(routes, rt)
	}
	for _, name := range []string{"identity", "api"} {
		if _, ok := dyn.HTTP.Routers[name]; !ok {
			t.Errorf("dynamic.yml: no router %s", name)
		}
	}
	router := deployNewRouter(t, "examples/compose", routes)
	router.checkRouting(t, "examples/compose", publicEPs, internalEP, "/api/orders")

	// The services' servers are Compose services on the ports they listen on.
	listens := map[string]string{"api": "80"} // traefik/whoami's default
	ib := cf.Services["identity"].Build
	if ib == nil {
		t.Fatal("service identity is not built")
	}
	dockerfile := string(deployRead(t, filepath.Join(dir, ib.Context, ib.Dockerfile)))
	if m := regexp.MustCompile(`"-addr", ":(\d+)"`).FindStringSubmatch(dockerfile); m != nil {
		listens["identity"] = m[1]
	}
	for name, s := range dyn.HTTP.Services {
		if s.LoadBalancer == nil || len(s.LoadBalancer.Servers) == 0 {
			t.Errorf("service %s: no servers", name)
			continue
		}
		for _, srv := range s.LoadBalancer.Servers {
			u, err := url.Parse(srv.URL)
			if err != nil {
				t.Errorf("service %s: %v", name, err)
				continue
			}
			if _, ok := cf.Services[u.Hostname()]; !ok || listens[u.Hostname()] != u.Port() {
				t.Errorf("service %s: %s is not a Compose service on the port it listens on (%v)", name, srv.URL, listens)
			}
		}
	}

	// The identity stand-in: its Dockerfile's sources, built as the
	// Dockerfile builds them, answering a token and a revoke call.
	checkComposeIdentity(t, root, dir, cf)

	// The README: the command, the published ports, the client, untested.
	readme := string(deployRead(t, filepath.Join(dir, "README.md")))
	for _, want := range []string{
		"docker compose -f examples/compose/compose.yaml up --build --wait",
		"Untested here",
		"demo-client:demo-secret",
		fixtures.RevokePath, fixtures.TokenPath,
		"http://127.0.0.1:" + published["traefik-a"]["80"], "http://127.0.0.1:" + published["traefik-b"]["80"],
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not mention %q", want)
		}
	}
	for _, c := range configs {
		if c.MetricsPath != "" && !strings.Contains(readme, "http://127.0.0.1:"+published["traefik-b"]["9200"]+c.MetricsPath) {
			t.Errorf("README.md does not scrape %s on replica b's internal port", c.MetricsPath)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(m[1], "/"))); err != nil {
			t.Errorf("README.md describes %s: %v", m[1], err)
		}
	}
}

func reflectEqualJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// checkComposeIdentity checks the identity service's Dockerfile against the
// repository and runs what it builds on loopback.
func checkComposeIdentity(t *testing.T, root, dir string, cf composeFile) {
	t.Helper()
	b := cf.Services["identity"].Build
	if b == nil {
		t.Fatal("service identity is not built")
	}
	buildCtx := filepath.Join(dir, b.Context)
	if buildCtx != root {
		t.Errorf("identity's build context is %s, not the repository root", buildCtx)
	}
	dockerfile := string(deployRead(t, filepath.Join(buildCtx, b.Dockerfile)))
	mainSrc := ""
	for _, line := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			if m := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(f[1]); m != nil {
				goMod := string(deployRead(t, filepath.Join(root, "e2e", "go.mod")))
				want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
				if want == nil || !semverAtLeast(m[1], want[1]) {
					t.Errorf("Dockerfile builds with golang:%s, e2e/go.mod needs go %v", m[1], want)
				}
			}
		case "COPY":
			if strings.HasPrefix(f[1], "--from") {
				continue
			}
			for _, src := range f[1 : len(f)-1] {
				if _, err := os.Stat(filepath.Join(buildCtx, src)); err != nil {
					t.Errorf("Dockerfile copies %s: %v", src, err)
				}
				if strings.HasSuffix(src, "main.go") {
					mainSrc = filepath.Join(buildCtx, src)
					if dst := f[len(f)-1]; dst != "e2e/"+composeIdentityPkg+"/main.go" {
						t.Errorf("Dockerfile copies main.go to %s, not into the e2e module's %s", dst, composeIdentityPkg)
					}
				}
			}
		case "RUN":
			if !strings.Contains(line, "go build") || !strings.Contains(line, "./"+composeIdentityPkg) {
				t.Errorf("Dockerfile RUN %q does not build ./%s", line, composeIdentityPkg)
			}
		}
	}
	if mainSrc == "" {
		t.Fatal("the Dockerfile copies no main.go")
	}
	src := string(deployRead(t, mainSrc))
	tag := regexp.MustCompile(`(?m)^//go:build (\w+)$`).FindStringSubmatch(src)
	if tag == nil || !strings.Contains(dockerfile, "-tags "+tag[1]) {
		t.Fatalf("main.go's build tag %v is not what the Dockerfile builds with", tag)
	}
	client := regexp.MustCompile(`"client", "([^"]+)"`).FindStringSubmatch(src)
	if client == nil {
		t.Fatal("main.go: no default -client")
	}

	// Build it as the Dockerfile does, inside the e2e module (an overlay puts
	// main.go in place without writing into the repository), with no module
	// download.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the identity stand-in: %v", err)
	}
	tmp := t.TempDir()
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(root, "e2e", filepath.FromSlash(composeIdentityPkg), "main.go"): mainSrc,
	}})
	overlayPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayPath, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "identity")
	build := exec.Command(goBin, "build", "-overlay", overlayPath, "-tags", tag[1], "-o", bin, "./"+composeIdentityPkg)
	build.Dir = filepath.Join(root, "e2e")
	build.Env = append(os.Environ(), "GOPROXY=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the identity stand-in: %v\n%s", err, out)
	}

	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-addr", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	up := false
	for i := 0; i < 200 && !up; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			up = true
		} else {
			time.Sleep(25 * time.Millisecond)
		}
	}
	if !up {
		t.Fatalf("the identity stand-in does not listen on %s:\n%s", addr, logs.String())
	}
	id, secret, _ := strings.Cut(client[1], ":")
	post := func(p string, form url.Values) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+p, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	status, body := post(fixtures.TokenPath, url.Values{"grant_type": {"client_credentials"}})
	var tr fixtures.TokenResponse
	if status != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("token endpoint: %d %s", status, body)
	}
	if status, body := post(fixtures.RevokePath, url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}}); status != http.StatusOK {
		t.Errorf("revoke endpoint: %d %s", status, body)
	}
}
