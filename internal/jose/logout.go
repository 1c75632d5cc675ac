package jose

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// BackChannelLogoutEvent is the member of "events" that marks a logout token.
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Default iat window of ValidateLogoutToken.
const (
	DefaultMaxAge     = 2 * time.Minute
	DefaultFutureSkew = 30 * time.Second
)

// LogoutOptions configures ValidateLogoutToken.
type LogoutOptions struct {
	Issuer    string   // required; iss must equal it
	Audiences []string // required; aud must contain one of them
	Now       time.Time
	// MaxAge is how far in the past iat may be (0: DefaultMaxAge);
	// FutureSkew how far in the future (0: DefaultFutureSkew).
	MaxAge     time.Duration
	FutureSkew time.Duration
	// AllowMissingTyp accepts a header without typ. Off by default.
	AllowMissingTyp bool
	// SeenJTI, if set, is called with (iss, jti) once every other check has
	// passed; returning true refuses the token as a replay. The caller owns
	// the replay store.
	SeenJTI func(iss, jti string) bool
}

// ValidateLogoutToken checks verified claims and header as a logout token
// (OpenID Connect Back-Channel Logout 1.0, section 2.6).
//
// typ: "logout+jwt" (what the spec recommends, also as
// "application/logout+jwt") and "JWT" (what Ory Hydra sends) are accepted,
// case-insensitively; any other value is refused, and so is a missing typ
// unless opts.AllowMissingTyp. The spec keeps ID tokens from passing as
// logout tokens through the events claim and the ban on nonce, both checked
// here whatever the typ.
func ValidateLogoutToken(c *Claims, h *Header, opts *LogoutOptions) error {
	if c == nil || h == nil || opts == nil {
		return fmt.Errorf("%w: nothing to validate", ErrInvalidLogoutToken)
	}
	if err := checkTyp(h.Typ, opts.AllowMissingTyp); err != nil {
		return err
	}
	if opts.Issuer == "" || c.Issuer != opts.Issuer {
		return fmt.Errorf("%w: iss %.100q is not the expected issuer", ErrInvalidLogoutToken, c.Issuer)
	}
	if !audienceMatches(c.Audience, opts.Audiences) {
		return fmt.Errorf("%w: aud does not contain a configured audience", ErrInvalidLogoutToken)
	}
	if err := checkTimes(c, opts); err != nil {
		return err
	}
	if c.JTI == "" {
		return fmt.Errorf("%w: jti missing", ErrInvalidLogoutToken)
	}
	if c.Events == nil {
		return fmt.Errorf("%w: events missing", ErrInvalidLogoutToken)
	}
	ev, ok := c.Events[BackChannelLogoutEvent]
	if !ok {
		return fmt.Errorf("%w: events lacks the back-channel logout member", ErrInvalidLogoutToken)
	}
	var obj map[string]json.RawMessage
	if err := decodeObject(ev, &obj); err != nil || obj == nil {
		return fmt.Errorf("%w: back-channel logout event is not a JSON object", ErrInvalidLogoutToken)
	}
	if c.SID == "" && c.Subject == "" {
		return fmt.Errorf("%w: neither sid nor sub", ErrInvalidLogoutToken)
	}
	if c.HasNonce {
		return fmt.Errorf("%w: nonce present", ErrInvalidLogoutToken)
	}
	if opts.SeenJTI != nil && opts.SeenJTI(c.Issuer, c.JTI) {
		return fmt.Errorf("%w: jti already seen", ErrInvalidLogoutToken)
	}
	return nil
}

func checkTyp(typ string, allowMissing bool) error {
	switch strings.ToLower(typ) {
	case "logout+jwt", "application/logout+jwt", "jwt":
		return nil
	case "":
		if allowMissing {
			return nil
		}
		return fmt.Errorf("%w: typ header missing", ErrInvalidLogoutToken)
	}
	return fmt.Errorf("%w: typ %.40q not accepted", ErrInvalidLogoutToken, typ)
}

func audienceMatches(aud, want []string) bool {
	for _, a := range aud {
		for _, w := range want {
			if w != "" && a == w {
				return true
			}
		}
	}
	return false
}

func checkTimes(c *Claims, opts *LogoutOptions) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	maxAge := opts.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	skew := opts.FutureSkew
	if skew <= 0 {
		skew = DefaultFutureSkew
	}
	if c.IssuedAt.IsZero() {
		return fmt.Errorf("%w: iat missing", ErrInvalidLogoutToken)
	}
	if c.IssuedAt.Before(now.Add(-maxAge)) {
		return fmt.Errorf("%w: iat older than %s", ErrInvalidLogoutToken, maxAge)
	}
	if c.IssuedAt.After(now.Add(skew)) {
		return fmt.Errorf("%w: iat more than %s in the future", ErrInvalidLogoutToken, skew)
	}
	if !c.Expiry.IsZero() && !now.Before(c.Expiry) {
		return fmt.Errorf("%w: exp is past", ErrInvalidLogoutToken)
	}
	return nil
}
