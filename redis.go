package tokenrevocation

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/replica"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// RedisConfig is the connection to Redis or Valkey.
type RedisConfig struct {
	// Address is host:port. Default: "" (Redis off).
	Address string `json:"address,omitempty"`
	// Username is the ACL user for AUTH. Default: "" (default user).
	Username string `json:"username,omitempty"`
	// Password for AUTH. Default: "" (no AUTH).
	Password string `json:"password,omitempty"`
	// PasswordFile is a file holding the password for AUTH (a mounted
	// secret; one trailing newline is dropped), read again at every
	// connect. Exclusive with Password. Default: "".
	PasswordFile string `json:"passwordFile,omitempty"`
	// DB is the database SELECTed after connecting. Default: 0.
	DB int `json:"db,omitempty"`
	// TLS connects with TLS 1.2 or later. Default: false.
	TLS bool `json:"tls,omitempty"`
	// CAFile is a PEM file of the CA certificates that verify the server's
	// TLS certificate, instead of the system's; setting it turns TLS on.
	// Read again at every connect. Default: "" (the system's roots).
	CAFile string `json:"caFile,omitempty"`
	// InsecureSkipVerify skips TLS certificate checks. Default: false.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// KeyPrefix is prepended to the denylist name to make the stream key. Default: tokenrevocation:.
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// DialTimeout bounds connecting. Default: 2s.
	DialTimeout string `json:"dialTimeout,omitempty"`
	// ReadTimeout bounds each reply, beyond XREAD's own block time. Default: 2s.
	ReadTimeout string `json:"readTimeout,omitempty"`
	// WriteTimeout bounds each write. Default: 2s.
	WriteTimeout string `json:"writeTimeout,omitempty"`
	// SigningSecret, when set, HMAC-SHA256-signs every record written to
	// the stream, and records that do not verify are skipped, never
	// applied. Set the same on every replica. At least 16 characters; never
	// logged. Default: "" (records unsigned). Read at start: a reload keeps
	// the first.
	SigningSecret string `json:"signingSecret,omitempty"`
	// PreviousSigningSecret is accepted for verifying, never for signing,
	// while a new SigningSecret rolls out. Default: "".
	PreviousSigningSecret string `json:"previousSigningSecret,omitempty"`
	// SigningSecretFile is a file holding the secrets, one per line: the
	// first signs, every one verifies (rotation). Exclusive with
	// SigningSecret. Read at start. Default: "".
	SigningSecretFile string `json:"signingSecretFile,omitempty"`
	// Sentinels are the host:port of Redis Sentinels, asked for the
	// master of MasterName at every connect. Exclusive with Address.
	// Default: none.
	Sentinels []string `json:"sentinels,omitempty"`
	// MasterName is the name the Sentinels monitor the master under;
	// required with Sentinels. Default: "".
	MasterName string `json:"masterName,omitempty"`
	// SentinelUsername is the ACL user for AUTH to the Sentinels. Default: "".
	SentinelUsername string `json:"sentinelUsername,omitempty"`
	// SentinelPassword is the password for AUTH to the Sentinels. Default: "" (no AUTH).
	SentinelPassword string `json:"sentinelPassword,omitempty"`
	// SentinelPasswordFile is a file holding it, read at every connect.
	// Exclusive with SentinelPassword. Default: "".
	SentinelPasswordFile string `json:"sentinelPasswordFile,omitempty"`
	// Cluster is true for a Redis Cluster: Address is any node, MOVED and
	// ASK are followed, and the stream key gets a hash tag when keyPrefix
	// has none. Default: false.
	Cluster bool `json:"cluster,omitempty"`
	// WaitReplicas, above 0, makes every write wait for that many replicas
	// to acknowledge it (WAIT), at most WaitTimeout. Default: 0 (no WAIT).
	WaitReplicas int `json:"waitReplicas,omitempty"`
	// WaitTimeout bounds each WAIT. Default: 1s.
	WaitTimeout string `json:"waitTimeout,omitempty"`
	// Unknown holds the options the decoder could not place; New refuses
	// them. Not an option.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// redisOptions is a parsed Redis configuration.
type redisOptions struct {
	address      string
	username     string
	password     string
	passwordFile string // read at every dial, instead of password
	caFile       string // read at every dial: the roots that verify the server
	db           int
	tls          bool
	tlsSkipCheck bool
	keyPrefix    string
	dialTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	// signer signs and verifies stream records; nil when
	// redis.signingSecret is not set (internal/replica).
	signer *replica.Signer
	// sentinels, masterName and the sentinel credentials: where to ask
	// for the master; none without Sentinel.
	sentinels            []string
	masterName           string
	sentinelUsername     string
	sentinelPassword     string
	sentinelPasswordFile string
	cluster              bool
	waitReplicas         int
	waitTimeout          time.Duration
}

// dialRedis connects to the server opts names (internal/resp), and
// authenticates and selects the database. Reconnection with backoff lives
// with the replicator (internal/replica), which owns its connections.
func dialRedis(opts *redisOptions) (*resp.Conn, error) {
	return resp.Dial(opts.dialOptions())
}

// dialOptions are the options every dial to the server opts names uses.
func (opts *redisOptions) dialOptions() *resp.Options {
	return &resp.Options{
		Address:            opts.address,
		Username:           opts.username,
		Password:           opts.password,
		PasswordFile:       opts.passwordFile,
		CAFile:             opts.caFile,
		DB:                 opts.db,
		TLS:                opts.tls,
		InsecureSkipVerify: opts.tlsSkipCheck,
		DialTimeout:        opts.dialTimeout,
		ReadTimeout:        opts.readTimeout,
		WriteTimeout:       opts.writeTimeout,
	}
}

// topology is where the stream lives: the Sentinels, or a cluster.
func (opts *redisOptions) topology() replica.Topology {
	topo := replica.Topology{Sentinels: opts.sentinels, MasterName: opts.masterName, Cluster: opts.cluster}
	if len(opts.sentinels) > 0 {
		sentinel := opts.dialOptions()
		sentinel.Username, sentinel.Password, sentinel.PasswordFile = opts.sentinelUsername, opts.sentinelPassword, opts.sentinelPasswordFile
		sentinel.DB = 0
		topo.Sentinel = sentinel
	}
	return topo
}

// stream is the stream's key for the denylist name: keyPrefix and name.
// In a cluster, a key without a hash tag is wrapped in one, {keyPrefix
// name}, so that the stream and its marker key (name:signed) share a slot.
func (opts *redisOptions) stream(name string) string {
	key := opts.keyPrefix + name
	if opts.cluster && resp.HashTag(key) == "" {
		key = "{" + key + "}"
	}
	return key
}

// validate checks the Redis settings; its errors name the field.
func (r *RedisConfig) validate() (*redisOptions, error) {
	o := &redisOptions{
		address:      strings.TrimSpace(r.Address),
		username:     r.Username,
		password:     r.Password,
		passwordFile: strings.TrimSpace(r.PasswordFile),
		caFile:       strings.TrimSpace(r.CAFile),
		db:           r.DB,
		tls:          r.TLS || strings.TrimSpace(r.CAFile) != "",
		tlsSkipCheck: r.InsecureSkipVerify,
		keyPrefix:    r.KeyPrefix,
	}
	if err := r.validateTopology(o); err != nil {
		return nil, err
	}
	if err := validatePasswordFile("redis.passwordFile", o.passwordFile, o.password); err != nil {
		return nil, err
	}
	if o.caFile != "" {
		if o.tlsSkipCheck {
			return nil, fieldError("redis.caFile", "is exclusive with redis.insecureSkipVerify")
		}
		if _, err := resp.ReadCAFile(o.caFile); err != nil {
			return nil, fieldError("redis.caFile", "%v", err)
		}
	}
	if o.db < 0 {
		return nil, fieldError("redis.db", "must be 0 or more, got %d", o.db)
	}
	if o.keyPrefix == "" {
		o.keyPrefix = "tokenrevocation:"
	}
	var err error
	if o.dialTimeout, err = durationOr("redis.dialTimeout", r.DialTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	if o.readTimeout, err = durationOr("redis.readTimeout", r.ReadTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	if o.writeTimeout, err = durationOr("redis.writeTimeout", r.WriteTimeout, 2*time.Second); err != nil {
		return nil, err
	}
	if o.signer, err = r.signer(); err != nil {
		return nil, err
	}
	if o.waitTimeout, err = durationOr("redis.waitTimeout", r.WaitTimeout, time.Second); err != nil {
		return nil, err
	}
	return o, nil
}

// validateTopology checks where the stream lives: one address (perhaps a
// cluster's node), or Sentinels and a master name.
func (r *RedisConfig) validateTopology(o *redisOptions) error {
	o.masterName = strings.TrimSpace(r.MasterName)
	o.sentinelUsername, o.sentinelPassword = r.SentinelUsername, r.SentinelPassword
	o.sentinelPasswordFile = strings.TrimSpace(r.SentinelPasswordFile)
	o.cluster = r.Cluster
	o.waitReplicas = r.WaitReplicas
	for _, s := range r.Sentinels {
		s = strings.TrimSpace(s)
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return fieldError("redis.sentinels", "must be host:port addresses, got %q", s)
		}
		o.sentinels = append(o.sentinels, s)
	}
	switch {
	case len(o.sentinels) > 0 && o.address != "":
		return fieldError("redis.sentinels", "is exclusive with redis.address")
	case len(o.sentinels) > 0 && o.masterName == "":
		return fieldError("redis.masterName", "is required with redis.sentinels")
	case len(o.sentinels) > 0 && o.cluster:
		return fieldError("redis.cluster", "is exclusive with redis.sentinels")
	case len(o.sentinels) == 0 && (o.masterName != "" || o.sentinelUsername != "" || o.sentinelPassword != "" || o.sentinelPasswordFile != ""):
		return fieldError("redis.sentinels", "is required with redis.masterName and the sentinel credentials")
	case o.cluster && o.db != 0:
		return fieldError("redis.db", "must be 0 with redis.cluster (a cluster has one database)")
	case o.waitReplicas < 0:
		return fieldError("redis.waitReplicas", "must be 0 or more, got %d", o.waitReplicas)
	case len(o.sentinels) > 0:
		return validatePasswordFile("redis.sentinelPasswordFile", o.sentinelPasswordFile, o.sentinelPassword)
	case o.address == "":
		return fieldError("redis.address", "is required in a redis block (leave the block out to run without Redis)")
	}
	if _, port, err := net.SplitHostPort(o.address); err != nil || port == "" {
		return fieldError("redis.address", "must be host:port, got %q", r.Address)
	}
	return nil
}

// validatePasswordFile checks a password file option, named field, against
// its password option.
func validatePasswordFile(field, file, password string) error {
	if file == "" {
		return nil
	}
	if password != "" {
		return fieldError(field, "is exclusive with %s", strings.TrimSuffix(field, "File"))
	}
	if _, err := resp.ReadPasswordFile(file); err != nil {
		return fieldError(field, "%v", err)
	}
	return nil
}

// minSigningSecret is the shortest signing secret accepted.
const minSigningSecret = 16

// signer reads the signing secrets, nil when none is set. Its errors never
// quote a secret.
func (r *RedisConfig) signer() (*replica.Signer, error) {
	var secrets []string
	switch {
	case r.SigningSecret != "" && r.SigningSecretFile != "":
		return nil, fieldError("redis.signingSecretFile", "is exclusive with redis.signingSecret")
	case r.SigningSecretFile != "":
		raw, err := os.ReadFile(r.SigningSecretFile)
		if err != nil {
			return nil, fieldError("redis.signingSecretFile", "cannot be read: %v", err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				secrets = append(secrets, line)
			}
		}
		if len(secrets) == 0 {
			return nil, fieldError("redis.signingSecretFile", "holds no secret")
		}
	case r.SigningSecret != "":
		secrets = append(secrets, r.SigningSecret)
	case r.PreviousSigningSecret != "":
		return nil, fieldError("redis.previousSigningSecret", "needs redis.signingSecret")
	default:
		return nil, nil
	}
	if r.PreviousSigningSecret != "" {
		secrets = append(secrets, r.PreviousSigningSecret)
	}
	for _, secret := range secrets {
		if len(secret) < minSigningSecret {
			return nil, fieldError("redis.signingSecret", "every signing secret must be at least %d characters", minSigningSecret)
		}
	}
	return replica.NewSigner(secrets), nil
}
