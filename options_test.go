package tokenrevocation

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// jsonNames is the option names of a struct's fields: their json tags.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func TestOptionNamesMatchConfig(t *testing.T) {
	if got := jsonNames(reflect.TypeOf(Config{})); !reflect.DeepEqual(got, configOptions) {
		t.Errorf("configOptions is\n%v\nConfig's fields are\n%v", configOptions, got)
	}
	if got := jsonNames(reflect.TypeOf(RedisConfig{})); !reflect.DeepEqual(got, redisOptionNames) {
		t.Errorf("redisOptionNames is\n%v\nRedisConfig's fields are\n%v", redisOptionNames, got)
	}
}

func TestUnknownOptionsAreRefused(t *testing.T) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	tests := []struct {
		desc  string
		apply func(*Config)
		want  string
	}{
		{"a misspelled top-level option", func(c *Config) { c.Unknown = map[string]interface{}{"revokePth": "/revoke"} },
			`unknown option "revokePth": did you mean "revokePath"?`},
		{"another case", func(c *Config) { c.Unknown = map[string]interface{}{"CACHESIZEMBS": 8} },
			`unknown option "CACHESIZEMBS": did you mean "cacheSizeMB"?`},
		{"a transposition", func(c *Config) { c.Unknown = map[string]interface{}{"readlm": "x"} },
			`unknown option "readlm": did you mean "realm"?`},
		{"a misspelled redis option", func(c *Config) {
			c.Redis = &RedisConfig{Unknown: map[string]interface{}{"adress": "127.0.0.1:6379"}} //nolint:misspell // the typo under test
		}, `unknown option "redis.adress": did you mean "redis.address"?`},
		{"options that do not exist yet", func(c *Config) {
			c.Redis = &RedisConfig{Address: "127.0.0.1:6379", Unknown: map[string]interface{}{"shards": []interface{}{"a:1"}, "readFrom": "replica"}}
		}, `unknown options "redis.readFrom"; "redis.shards"`},
		{"nothing near", func(c *Config) { c.Unknown = map[string]interface{}{"zq": 1} },
			`unknown option "zq" (the README's options reference lists them)`},
		{"a redis block without an address", func(c *Config) { c.Redis = &RedisConfig{KeyPrefix: "edge:"} },
			`invalid redis.address: is required in a redis block`},
	}
	for i, test := range tests {
		cfg := CreateConfig()
		cfg.Denylist = "TestUnknownOptionsAreRefused-" + strconv.Itoa(i)
		test.apply(cfg)
		_, err := New(context.Background(), next, cfg, "unknown")
		if err == nil || !strings.Contains(err.Error(), test.want) {
			t.Errorf("%s: New returned %v, want an error with %s", test.desc, err, test.want)
		}
	}
}

func TestNearestOption(t *testing.T) {
	for key, want := range map[string]string{
		"adress": "address", "addr": "address", "masterNme": "masterName", "replicaOf": "", "pasword": "password", "passwordfile": "passwordFile", //nolint:misspell // typos under test
		"tls": "tls", "sigingSecret": "signingSecret", "x": "", "addresses": "address",
	} {
		if got := nearestOption(key, redisOptionNames); got != want {
			t.Errorf("nearest to %q: %q, want %q", key, got, want)
		}
	}
	if d := editDistance(strings.Repeat("a", 1000), strings.Repeat("b", 1000)); d != 64 {
		t.Errorf("a long key is compared by its first 64 bytes: distance %d", d)
	}
}

// pingWith validates cfg, connects with it and PINGs; it returns the options.
func pingWith(t *testing.T, cfg *RedisConfig) *redisOptions {
	t.Helper()
	opts, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialRedis(opts)
	if err != nil {
		t.Fatalf("dial with %+v: %v", cfg, err)
	}
	defer c.Close()
	if v, err := c.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING: %v %v", v, err)
	}
	return opts
}

func TestRedisPasswordFile(t *testing.T) {
	// given a Redis that requires a password, and the password in a file
	srv := startRedis(t, "--requirepass", "s3cret")
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// then a connection authenticates with the file's content
	opts := pingWith(t, &RedisConfig{Address: srv.addr(), PasswordFile: file})
	// and a rotated password is read at the next connect
	c, err := dialRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do("CONFIG", "SET", "requirepass", "n3w-s3cret"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := dialRedis(opts); err == nil {
		t.Fatal("the old password still authenticates")
	}
	if err := os.WriteFile(file, []byte("n3w-s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = dialRedis(opts)
	if err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	c.Close()
	// and the errors name the file, never its content
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dialRedis(opts); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("an empty passwordFile: %v", err)
	}
	bad := []*RedisConfig{
		{Address: srv.addr(), PasswordFile: file, Password: "s3cret"},
		{Address: srv.addr(), PasswordFile: filepath.Join(dir, "missing")},
	}
	for _, b := range bad {
		if _, err := b.validate(); err == nil || !strings.Contains(err.Error(), "redis.passwordFile") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: %v", b, err)
		}
	}
}

func TestRedisCAFile(t *testing.T) {
	// given a Redis serving TLS with a certificate of a private CA
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	srv := startTLSRedis(t, certFile, keyFile)
	// when caFile names that CA (and tls is left unset)
	// then the connection is TLS and verifies the server
	opts := pingWith(t, &RedisConfig{Address: srv.addr(), CAFile: certFile})
	// and another CA's certificate is refused
	other, _ := writeSelfSigned(t, t.TempDir())
	opts.caFile = other
	if _, err := dialRedis(opts); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	// and a file with no certificate, or with insecureSkipVerify, is a configuration error
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*RedisConfig{
		{Address: srv.addr(), CAFile: junk},
		{Address: srv.addr(), CAFile: filepath.Join(dir, "missing.pem")},
		{Address: srv.addr(), CAFile: certFile, InsecureSkipVerify: true},
	} {
		if _, err := b.validate(); err == nil || !strings.Contains(err.Error(), "redis.caFile") {
			t.Errorf("%+v: %v", b, err)
		}
	}
}
