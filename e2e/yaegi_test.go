package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"github.com/mitchellh/mapstructure"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"github.com/traefik/yaegi/stdlib/syscall"
	"github.com/traefik/yaegi/stdlib/unsafe"
)

// loadPlugin imports the plugin from source into a Yaegi interpreter set up as
// Traefik sets it up (pkg/plugins/middlewareyaegi.go: GoPath layout, stdlib,
// and unsafe and syscall symbols when useUnsafe is on).
func loadPlugin(t *testing.T, useUnsafe bool) (*interp.Interpreter, error) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	gopath := t.TempDir()
	if _, err := harness.PluginTree(root, gopath); err != nil {
		t.Fatal(err)
	}
	i := interp.New(interp.Options{GoPath: gopath, Env: os.Environ()})
	if err := i.Use(stdlib.Symbols); err != nil {
		t.Fatal(err)
	}
	if useUnsafe {
		if err := i.Use(unsafe.Symbols); err != nil {
			t.Fatal(err)
		}
		if err := i.Use(syscall.Symbols); err != nil {
			t.Fatal(err)
		}
	}
	_, err = i.Eval(`import "github.com/edgerevoke/tokenrevocation"`)
	return i, err
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pluginFuncs evaluates New and CreateConfig as Traefik's plugin builder does.
func pluginFuncs(t *testing.T, i *interp.Interpreter) (fnNew, fnCreateConfig reflect.Value) {
	t.Helper()
	fnNew, err := i.Eval("tokenrevocation.New")
	if err != nil {
		t.Fatal(err)
	}
	fnCreateConfig, err = i.Eval("tokenrevocation.CreateConfig")
	if err != nil {
		t.Fatal(err)
	}
	return fnNew, fnCreateConfig
}

// decodeInto decodes config into the interpreted Config cfg as Traefik's
// plugin builder does (mapstructure, weakly typed, comma-split strings).
func decodeInto(t *testing.T, cfg reflect.Value, config map[string]any) {
	t.Helper()
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           cfg.Interface(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := decoder.Decode(config); err != nil {
		t.Fatal(err)
	}
}

func TestYaegiNeedsUnsafe(t *testing.T) {
	if _, err := loadPlugin(t, false); err == nil || !strings.Contains(err.Error(), "unsafe") {
		t.Fatalf("import without unsafe symbols: got %v, want an unsafe error", err)
	}
}

func TestYaegiRevokeThenReject(t *testing.T) {
	i, err := loadPlugin(t, true)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	fnNew, fnCreateConfig := pluginFuncs(t, i)
	cfg := fnCreateConfig.Call(nil)[0]
	// A Redis that is not there: New does not dial it, and the plugin works.
	deadPort := mustFreePort(t)
	config := map[string]any{
		"tokenSources": "header,query",
		"cacheSizeMB":  "8",
		"persistPath":  t.TempDir() + "/revocations.bin",
		"loadWait":     "1s",
		"redis":        map[string]any{"address": fmt.Sprintf("127.0.0.1:%d", deadPort), "dialTimeout": "5s"},
	}
	decodeInto(t, cfg, config)

	var calls int
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		calls++
		rw.WriteHeader(http.StatusOK)
	})
	newHandler := func(name string) http.Handler {
		res := fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), cfg, reflect.ValueOf(name)})
		if errV := res[1].Interface(); errV != nil {
			t.Fatalf("New: %v", errV)
		}
		return res[0].Interface().(http.Handler)
	}
	// With Redis down, revocations are still enforced locally.
	routerA, routerB := newHandler("revocation@file"), newHandler("revocation@file")

	req := httptest.NewRequest(http.MethodPost, "/api/id/v1/auth/token/revoke", strings.NewReader("token=yaegi-token&token_type_hint=access_token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("client", "secret")
	rw := httptest.NewRecorder()
	routerA.ServeHTTP(rw, req)
	if rw.Code != http.StatusOK || calls != 1 {
		t.Fatalf("revoke: %d, upstream calls %d", rw.Code, calls)
	}
	// Redis cannot load: once loadWait has passed, the replica serves with
	// what it has (failClosed is off), and enforces what it revoked itself.
	time.Sleep(1500 * time.Millisecond)

	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/api/things", nil),
		httptest.NewRequest(http.MethodGet, "/api/things?access_token=yaegi-token", nil),
	} {
		if r.URL.RawQuery == "" {
			r.Header.Set("Authorization", "Bearer yaegi-token")
		}
		rw = httptest.NewRecorder()
		routerB.ServeHTTP(rw, r)
		if rw.Code != http.StatusUnauthorized || !strings.Contains(rw.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("revoked token on %s: %d %v", r.URL, rw.Code, rw.Header())
		}
	}
	if calls != 1 {
		t.Fatalf("a rejected request reached the upstream")
	}

	good := httptest.NewRequest(http.MethodGet, "/api/things", nil)
	good.Header.Set("Authorization", "Bearer another-token")
	rw = httptest.NewRecorder()
	routerB.ServeHTTP(rw, good)
	if rw.Code != http.StatusOK || calls != 2 {
		t.Fatalf("good token: %d", rw.Code)
	}
}

func TestYaegiMisspeltOptionRefused(t *testing.T) {
	// given the plugin loaded as Traefik loads it, and options with typos
	i, err := loadPlugin(t, true)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	fnNew, fnCreateConfig := pluginFuncs(t, i)
	for _, test := range []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"revokePth": "/oauth/revoke"}, `unknown option "revokePth": did you mean "revokePath"?`},
		{map[string]any{"redis": map[string]any{"adress": "127.0.0.1:6379"}}, `unknown option "redis.adress": did you mean "redis.address"?`}, //nolint:misspell // the typo under test
		{map[string]any{"redis": map[string]any{"address": "127.0.0.1:6379", "shards": "a:1,b:2"}}, `unknown option "redis.shards"`},
	} {
		// when Traefik's decoder fills the interpreted Config
		cfg := fnCreateConfig.Call(nil)[0]
		decodeInto(t, cfg, test.config)
		// then New refuses it, naming the nearest option
		res := fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(http.NotFoundHandler()), cfg, reflect.ValueOf("typo")})
		errV, _ := res[1].Interface().(error)
		if errV == nil || !strings.Contains(errV.Error(), test.want) {
			t.Errorf("%v: New returned %v, want %s", test.config, errV, test.want)
		}
	}
}

// The benchmark's preload hook sits behind a build constraint: loaded the way
// Traefik loads the plugin, it must be unreachable even with its variables set.
func TestYaegiBenchHookUnreachable(t *testing.T) {
	t.Setenv("TOKENREVOCATION_BENCH_PRELOAD", "10")
	t.Setenv("TOKENREVOCATION_BENCH_DENYLIST", "hook-check")
	i, err := loadPlugin(t, true)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	fnNew, fnCreateConfig := pluginFuncs(t, i)
	next := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })
	res := fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), fnCreateConfig.Call(nil)[0], reflect.ValueOf("hook-check")})
	if errV := res[1].Interface(); errV != nil {
		t.Fatalf("New: %v", errV)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/things", nil)
	req.Header.Set("Authorization", "Bearer bench-revoked-1")
	rw := httptest.NewRecorder()
	res[0].Interface().(http.Handler).ServeHTTP(rw, req)
	if rw.Code != http.StatusOK {
		t.Fatalf("a bench-preloaded token was rejected (%d): the hook ran outside the bench", rw.Code)
	}
}
