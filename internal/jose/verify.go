package jose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// DefaultMaxTokenBytes bounds the token length when VerifyOptions leaves it 0.
const DefaultMaxTokenBytes = 16 << 10

// VerifyOptions tunes Verify. The zero value is usable.
type VerifyOptions struct {
	// Algorithms, if not empty, narrows the allowed algorithms further
	// (names outside the built-in allowlist never pass).
	Algorithms []string
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// MaxTokenBytes bounds the token; 0 means DefaultMaxTokenBytes.
	MaxTokenBytes int
}

// Header is the verified JOSE header.
type Header struct {
	Alg string
	Kid string
	Typ string // as sent; "" when absent
}

// Claims are the decoded claims of a verified token. Times are zero when the
// claim is absent.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string // "aud" as a string or an array of strings
	IssuedAt  time.Time
	Expiry    time.Time
	NotBefore time.Time
	JTI       string
	SID       string
	Nonce     string
	HasNonce  bool                       // "nonce" present, whatever its value
	Events    map[string]json.RawMessage // "events"; nil when absent
	Raw       map[string]json.RawMessage // every claim
	Header    *Header
}

type rawHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// Verify checks a JWS compact serialization against keys and returns its
// claims. The header's alg must be allowed and fit the key; the key is the
// one named by kid (ErrUnknownKID if none), or, without kid, each key of the
// fitting type in turn. exp (if present) must not be past and nbf (if
// present) not in the future, at now (zero: time.Now()) with opts.Leeway.
// A registered claim of the wrong JSON type, null included, is ErrMalformed.
func Verify(token string, keys *KeySet, now time.Time, opts VerifyOptions) (*Claims, error) {
	if now.IsZero() {
		now = time.Now()
	}
	limit := opts.MaxTokenBytes
	if limit <= 0 {
		limit = DefaultMaxTokenBytes
	}
	if len(token) > limit {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, limit)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not three dot-separated parts", ErrMalformed)
	}
	if parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, fmt.Errorf("%w: empty part", ErrMalformed)
	}
	hb, err := b64(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var rh rawHeader
	if err := decodeObject(hb, &rh); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object with string alg, kid and typ", ErrMalformed)
	}
	if len(rh.Crit) != 0 {
		return nil, fmt.Errorf("%w: crit header parameters not supported", ErrUnsupportedAlg)
	}
	a := algs[rh.Alg]
	if a == nil || !allowed(rh.Alg, opts.Algorithms) {
		return nil, fmt.Errorf("%w: %.20q", ErrUnsupportedAlg, rh.Alg)
	}
	sig, err := b64(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	candidates, err := selectKeys(keys, rh.Kid, rh.Alg, a)
	if err != nil {
		return nil, err
	}
	signingInput := []byte(token[:len(parts[0])+1+len(parts[1])])
	ok := false
	for _, k := range candidates {
		if verifySignature(a, k, signingInput, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, ErrBadSignature
	}
	pb, err := b64(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	c, err := decodeClaims(pb)
	if err != nil {
		return nil, err
	}
	c.Header = &Header{Alg: rh.Alg, Kid: rh.Kid, Typ: rh.Typ}
	if !c.Expiry.IsZero() && !now.Before(c.Expiry.Add(opts.Leeway)) {
		return nil, fmt.Errorf("%w: exp is past", ErrExpired)
	}
	if !c.NotBefore.IsZero() && now.Add(opts.Leeway).Before(c.NotBefore) {
		return nil, fmt.Errorf("%w: nbf is in the future", ErrExpired)
	}
	return c, nil
}

func allowed(alg string, list []string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == alg {
			return true
		}
	}
	return false
}

// selectKeys returns the keys that may verify a token with this kid and alg.
func selectKeys(keys *KeySet, kid, alg string, a *algInfo) ([]*Key, error) {
	if keys.Len() == 0 {
		return nil, fmt.Errorf("%w: empty key set", ErrKeyMismatch)
	}
	var out []*Key
	named := false
	for _, k := range keys.Keys {
		if kid != "" {
			if k.KID != kid {
				continue
			}
			named = true
		}
		if k.Kty != a.kty || (a.crv != "" && k.Crv != a.crv) || (k.Alg != "" && k.Alg != alg) {
			continue
		}
		out = append(out, k)
	}
	if kid != "" && !named {
		return nil, fmt.Errorf("%w: %.64q", ErrUnknownKID, kid)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrKeyMismatch, alg)
	}
	return out, nil
}

// decodeObject unmarshals a JSON object, refusing trailing data.
func decodeObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("not an object")
	}
	return json.Unmarshal(b, v)
}

func decodeClaims(pb []byte) (*Claims, error) {
	var raw map[string]json.RawMessage
	if err := decodeObject(pb, &raw); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	c := &Claims{Raw: raw}
	var err error
	if c.Issuer, err = stringClaim(raw, "iss"); err != nil {
		return nil, err
	}
	if c.Subject, err = stringClaim(raw, "sub"); err != nil {
		return nil, err
	}
	if c.JTI, err = stringClaim(raw, "jti"); err != nil {
		return nil, err
	}
	if c.SID, err = stringClaim(raw, "sid"); err != nil {
		return nil, err
	}
	if c.Audience, err = audienceClaim(raw); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = timeClaim(raw, "iat"); err != nil {
		return nil, err
	}
	if c.Expiry, err = timeClaim(raw, "exp"); err != nil {
		return nil, err
	}
	if c.NotBefore, err = timeClaim(raw, "nbf"); err != nil {
		return nil, err
	}
	if v, ok := raw["nonce"]; ok {
		c.HasNonce = true
		// Any JSON type is kept as "present"; only a string is copied.
		var s string
		if json.Unmarshal(v, &s) == nil {
			c.Nonce = s
		}
	}
	if v, ok := raw["events"]; ok {
		var ev map[string]json.RawMessage
		if err := decodeObject(v, &ev); err != nil || ev == nil {
			return nil, fmt.Errorf("%w: events is not a JSON object", ErrMalformed)
		}
		c.Events = ev
	}
	return c, nil
}

func stringClaim(raw map[string]json.RawMessage, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	var s string
	if isNull(v) || json.Unmarshal(v, &s) != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, name)
	}
	return s, nil
}

func audienceClaim(raw map[string]json.RawMessage) ([]string, error) {
	v, ok := raw["aud"]
	if !ok {
		return nil, nil
	}
	if isNull(v) {
		return nil, fmt.Errorf("%w: aud is null", ErrMalformed)
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil || list == nil {
		return nil, fmt.Errorf("%w: aud is not a string or an array of strings", ErrMalformed)
	}
	return list, nil
}

// maxNumericDate is year 9999; larger values are refused.
const maxNumericDate = 253402300799

func timeClaim(raw map[string]json.RawMessage, name string) (time.Time, error) {
	v, ok := raw[name]
	if !ok {
		return time.Time{}, nil
	}
	var f float64
	if isNull(v) || json.Unmarshal(v, &f) != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%w: %s is not a NumericDate", ErrMalformed, name)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)).UTC(), nil
}

// isNull reports a JSON null, which json.Unmarshal would leave as a zero value.
func isNull(v json.RawMessage) bool {
	return string(bytes.TrimSpace(v)) == "null"
}
