package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edgerevoke/tokenrevocation"
	"github.com/mitchellh/mapstructure"
	"gopkg.in/yaml.v3"
)

// decodeConfig decodes a YAML plugin block into CreateConfig's result the way
// Traefik's plugin builder does (pkg/plugins/middlewareyaegi.go).
func decodeConfig(t *testing.T, path string, into any) error {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		return nil
	}
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           into,
	})
	if err != nil {
		t.Fatal(err)
	}
	return decoder.Decode(m)
}

func TestConfigDecoding(t *testing.T) {
	tests := []struct {
		desc   string
		file   string
		exp    func(*tokenrevocation.Config)
		expErr string
	}{
		{desc: "defaults", file: "defaults.yml", exp: func(*tokenrevocation.Config) {}},
		{desc: "every option", file: "full.yml", exp: func(c *tokenrevocation.Config) {
			c.RevokePath, c.TokenPath = "/oauth/revoke", "/oauth/token"
			c.AccessTokenTTL, c.RefreshTokenTTL, c.MaxTTL, c.Leeway = "30m", "240h", "240h", "30s"
			c.CacheSizeMB, c.MaxBodyBytes, c.RequireClientAuth = 128, 4096, false
			c.TokenSources = []string{"header", "query", "form", "header:X-Access-Token", "cookie:at"}
			c.Denylist, c.StatsPath, c.Realm = "edge", "/_revocation/stats", "identity"
			c.LoadWait, c.FailClosed = "5s", true
			c.ClientRate, c.ClientBurst, c.ClientSharePercent = 20, 40, 25
			c.TrackGrants, c.RevokeOnRefresh, c.MaxGrants = true, true, 5000
		}},
		{desc: "label strings", file: "labels.yml", exp: func(c *tokenrevocation.Config) {
			c.CacheSizeMB, c.MaxBodyBytes, c.RequireClientAuth = 32, 2048, false
			c.TokenSources = []string{"header", "query", "cookie:at"}
			c.LoadWait, c.FailClosed, c.ClientRate, c.ClientSharePercent = "3s", true, 0, 100
			c.TrackGrants, c.MaxGrants = true, 10
		}},
		{desc: "redis and persistence", file: "redis.yml", exp: func(c *tokenrevocation.Config) {
			c.PersistPath = "/var/lib/traefik/revocations.bin"
			c.Redis = &tokenrevocation.RedisConfig{
				Address: "redis.internal:6379", Username: "traefik", Password: "s3cret", DB: 2, TLS: true,
				KeyPrefix: "edge:", DialTimeout: "1s", ReadTimeout: "3s", WriteTimeout: "3s",
			}
		}},
		{desc: "bad redis address", file: "bad-redis.yml", expErr: "invalid redis.address"},
		{desc: "bad duration", file: "bad-duration.yml", expErr: "invalid accessTokenTTL"},
		{desc: "bad token source", file: "bad-source.yml", expErr: "invalid tokenSources"},
		{desc: "bad cache size", file: "bad-size.yml", expErr: "invalid cacheSizeMB"},
		{desc: "misspelled option", file: "typo.yml", expErr: `unknown option "revokePth": did you mean "revokePath"?`},
		{desc: "misspelled redis option", file: "typo-redis.yml", expErr: `unknown option "redis.adress": did you mean "redis.address"?`},
		{desc: "redis without an address", file: "redis-no-address.yml", expErr: "invalid redis.address: is required"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			cfg := tokenrevocation.CreateConfig()
			if err := decodeConfig(t, filepath.Join("testdata", "configs", test.file), cfg); err != nil {
				t.Fatalf("decode: %v", err)
			}
			_, err := tokenrevocation.New(context.Background(), http.NotFoundHandler(), cfg, "cfg-"+test.file)
			if test.expErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.expErr) {
					t.Fatalf("New: got %v, want an error containing %q", err, test.expErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			want := tokenrevocation.CreateConfig()
			test.exp(want)
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("decoded config:\n got %+v\nwant %+v", cfg, want)
			}
		})
	}
}
