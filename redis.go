package tokenrevocation

import (
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/replica"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

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
