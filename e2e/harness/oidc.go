package harness

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BackchannelLogoutEvent is the events member that marks a logout token
// (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Signing algorithms of the OIDC stand-in's two keys.
const (
	RS256 = "RS256" // RSA 2048, PKCS #1 v1.5, SHA-256
	ES256 = "ES256" // ECDSA P-256, SHA-256, signature r||s
)

// Claims is a JWT payload, encoded as JSON as given.
type Claims map[string]any

// SigningKey is a private key with its kid and JWS alg.
type SigningKey struct {
	KID, Alg string
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
}

// OIDC is an OpenID provider stand-in on loopback, for the back-channel
// logout tests: it serves discovery and a JWKS of one RS256 and one ES256
// key, signs logout tokens and JWT access tokens, rotates its keys, and can
// be taken down (503, or its listener closed) and brought back.
type OIDC struct {
	// URL is the issuer, http://127.0.0.1:port; discovery is at
	// URL + "/.well-known/openid-configuration", the JWKS at JWKSURL.
	URL, JWKSURL string

	mu         sync.Mutex
	keys       map[string]*SigningKey // by alg: the keys the JWKS publishes
	down       bool                   // discovery and JWKS answer 503
	fetches    int                    // JWKS documents served (200)
	lastFetch  time.Time
	generation int // bumped by Rotate, part of the kids
	addr       string
	server     *http.Server
}

// StartOIDC starts the stand-in on a free loopback port, stopped when the
// test ends.
func StartOIDC(t testing.TB) *OIDC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &OIDC{addr: ln.Addr().String()}
	p.URL = "http://" + p.addr
	p.JWKSURL = p.URL + "/jwks.json"
	if err := p.Rotate(); err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	p.serve(ln)
	t.Cleanup(p.Stop)
	return p
}

func (p *OIDC) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(rw http.ResponseWriter, _ *http.Request) {
		if p.isDown(rw) {
			return
		}
		writeJSON(rw, map[string]any{
			"issuer":                                p.URL,
			"jwks_uri":                              p.JWKSURL,
			"id_token_signing_alg_values_supported": []string{RS256, ES256},
			"backchannel_logout_supported":          true,
			"backchannel_logout_session_supported":  true,
		})
	})
	mux.HandleFunc("GET /jwks.json", func(rw http.ResponseWriter, _ *http.Request) {
		if p.isDown(rw) {
			return
		}
		writeJSON(rw, p.jwks())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.mu.Lock()
	p.server = srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// isDown answers 503 when the provider is down.
func (p *OIDC) isDown(rw http.ResponseWriter) bool {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		http.Error(rw, "provider down", http.StatusServiceUnavailable)
	}
	return down
}

func writeJSON(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(rw).Encode(v)
}

// jwks is the public JWK Set, counted as one fetch.
func (p *OIDC) jwks() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetches++
	p.lastFetch = time.Now()
	keys := []map[string]string{}
	for _, alg := range []string{RS256, ES256} {
		keys = append(keys, publicJWK(p.keys[alg]))
	}
	return map[string]any{"keys": keys}
}

func publicJWK(k *SigningKey) map[string]string {
	enc := base64.RawURLEncoding.EncodeToString
	if k.rsa != nil {
		return map[string]string{"kty": "RSA", "use": "sig", "alg": k.Alg, "kid": k.KID,
			"n": enc(k.rsa.N.Bytes()), "e": enc(big.NewInt(int64(k.rsa.E)).Bytes())}
	}
	return map[string]string{"kty": "EC", "use": "sig", "alg": k.Alg, "kid": k.KID, "crv": "P-256",
		"x": enc(k.ec.X.FillBytes(make([]byte, 32))), "y": enc(k.ec.Y.FillBytes(make([]byte, 32)))}
}

// Rotate replaces both keys with new ones under new kids; the JWKS no
// longer lists the old ones.
func (p *OIDC) Rotate() error {
	p.mu.Lock()
	gen := p.generation + 1
	p.mu.Unlock()
	rk, err := NewSigningKey(RS256, fmt.Sprintf("rsa-%d", gen))
	if err != nil {
		return err
	}
	ek, err := NewSigningKey(ES256, fmt.Sprintf("ec-%d", gen))
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.generation = gen
	p.keys = map[string]*SigningKey{RS256: rk, ES256: ek}
	return nil
}

// NewSigningKey generates a key for alg (RS256 or ES256) named kid. A key
// made here and never published is what a forger holds.
func NewSigningKey(alg, kid string) (*SigningKey, error) {
	k := &SigningKey{KID: kid, Alg: alg}
	var err error
	switch alg {
	case RS256:
		k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		err = fmt.Errorf("harness: no %q keys", alg)
	}
	return k, err
}

// Key returns the published key for alg (RS256 or ES256).
func (p *OIDC) Key(alg string) *SigningKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[alg]
}

// SetDown makes discovery and the JWKS answer 503 (true) or serve again.
func (p *OIDC) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Stop closes the listener: connections to the provider are refused until
// Restart. Stopping a stopped provider does nothing.
func (p *OIDC) Stop() {
	p.mu.Lock()
	srv := p.server
	p.server = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address after Stop.
func (p *OIDC) Restart() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("harness: OIDC stand-in cannot listen on %s again: %w", p.addr, err)
	}
	p.serve(ln)
	return nil
}

// JWKSFetches returns how many JWKS documents were served and when the
// last one was.
func (p *OIDC) JWKSFetches() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches, p.lastFetch
}

// LogoutClaims are the claims of a valid logout token for aud: iss, aud,
// iat now, exp in two minutes, a fresh jti, the back-channel logout event,
// and sid and sub when not empty. Tests change or delete claims to forge.
func (p *OIDC) LogoutClaims(aud, sid, sub string) Claims {
	now := time.Now()
	c := Claims{
		"iss":    p.URL,
		"aud":    aud,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    randomID(),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if sid != "" {
		c["sid"] = sid
	}
	if sub != "" {
		c["sub"] = sub
	}
	return c
}

// Logout signs a valid logout token (typ logout+jwt) with the published key
// for alg.
func (p *OIDC) Logout(alg, aud, sid, sub string) string {
	return p.Key(alg).Sign("logout+jwt", p.LogoutClaims(aud, sid, sub))
}

// AccessClaims are the claims of a JWT access token for sub in session sid
// (left out when empty), issued now and valid for an hour.
func (p *OIDC) AccessClaims(sub, sid string) Claims {
	now := time.Now()
	c := Claims{"iss": p.URL, "sub": sub, "aud": "api", "client_id": "e2e-app", "scope": "openid",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": randomID()}
	if sid != "" {
		c["sid"] = sid
	}
	return c
}

// AccessToken signs AccessClaims(sub, sid) (typ JWT) with the published key
// for alg. The plugin reads its payload only; it is signed all the same.
func (p *OIDC) AccessToken(alg, sub, sid string) string {
	return p.Key(alg).Sign("JWT", p.AccessClaims(sub, sid))
}

// Forge signs claims with a key that is not in the JWKS but carries the
// kid of the published key for alg: a signature that must not verify.
func (p *OIDC) Forge(alg, typ string, claims Claims) (string, error) {
	k, err := NewSigningKey(alg, p.Key(alg).KID)
	if err != nil {
		return "", err
	}
	return k.Sign(typ, claims), nil
}

// SignHS256WithPublicKey signs claims with HMAC-SHA256 keyed by the PEM of
// the published RSA public key, under its kid: the algorithm confusion
// attack a verifier must refuse.
func (p *OIDC) SignHS256WithPublicKey(typ string, claims Claims) (string, error) {
	k := p.Key(RS256)
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		return "", err
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	input := signingInput(map[string]string{"alg": "HS256", "typ": typ, "kid": k.KID}, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Unsigned returns claims as an alg "none" token (empty signature).
func (p *OIDC) Unsigned(typ string, claims Claims) string {
	return signingInput(map[string]string{"alg": "none", "typ": typ}, claims) + "."
}

// Sign returns the JWS compact serialization of claims with header alg,
// kid and typ (left out when empty).
func (k *SigningKey) Sign(typ string, claims Claims) string {
	header := map[string]string{"alg": k.Alg, "kid": k.KID}
	if typ != "" {
		header["typ"] = typ
	}
	input := signingInput(header, claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	if k.rsa != nil {
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, digest[:]); err != nil {
			panic(err) // only on a broken key or digest length
		}
	} else {
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, digest[:])
		if err != nil {
			panic(err)
		}
		// JWS ES256: r and s as 32-byte big-endian integers, concatenated.
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// signingInput is base64url(header) "." base64url(claims).
func signingInput(header map[string]string, claims Claims) string {
	h, err1 := json.Marshal(header)
	c, err2 := json.Marshal(claims)
	if err := errors.Join(err1, err2); err != nil {
		panic(err) // claims hold only JSON-encodable values
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
}

// randomID is 16 random bytes in hex.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
