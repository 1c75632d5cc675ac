package tokenrevocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/jose"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
)

// A keySource keeps an OpenID provider's signing keys, the JWK Set that
// logout tokens are verified with. New never fetches: the catalog calls it
// with no network and Traefik calls it per router and on every reload. One
// goroutine per provider fetches the keys in the background at once, again
// after a failure (backoff from 1 s to 30 s) and every jwksRefresh. The
// logout receiver may also ask for a fetch when a token names a kid the set
// lacks or no set has loaded yet (a rotation, or a provider that was down
// at start), at most once every jwksMinRefetch; the request path never does.
type keySource struct {
	issuer  string
	jwksURL string // configured; "" to use discovery
	every   time.Duration
	minGap  time.Duration // between fetches asked for by logout tokens: jwksMinRefetch
	client  *http.Client

	mu        sync.Mutex // one fetch at a time; guards lastFetch and jwksFound
	lastFetch time.Time
	jwksFound string // the jwks_uri discovery found

	keys       atomic.Value // *jose.KeySet
	lastWarnNs int64
}

const (
	// jwksMinRefetch is the least time between two fetches asked for by
	// logout tokens, so that forged tokens with random kids cannot make the
	// edge hammer the provider.
	jwksMinRefetch = 5 * time.Second
	// jwksTimeout bounds one fetch, discovery included.
	jwksTimeout = 5 * time.Second
	// jwksMaxBackoff caps the wait between fetches while they fail.
	jwksMaxBackoff = 30 * time.Second
)

// keySources holds the process's key sources, one per provider and refresh.
var keySources obs.Registry

// sharedKeySource returns the key source of a provider, starting its
// fetcher the first time it is asked for.
func sharedKeySource(issuer, jwksURL string, every time.Duration) *keySource {
	v, _, _ := keySources.Get(issuer+"\n"+jwksURL+"\n"+every.String(), func() (interface{}, error) {
		k := newKeySource(issuer, jwksURL, every)
		go k.loop()
		return k, nil
	})
	return v.(*keySource)
}

func newKeySource(issuer, jwksURL string, every time.Duration) *keySource {
	return &keySource{issuer: issuer, jwksURL: jwksURL, every: every, minGap: jwksMinRefetch,
		client: &http.Client{Timeout: jwksTimeout}}
}

// loop fetches the keys now, then every k.every, retrying failures sooner.
func (k *keySource) loop() {
	failures := 0
	for {
		wait := k.every
		if err := k.fetch(0); err != nil {
			failures++
			wait = obs.Backoff(failures-1, time.Second, jwksMaxBackoff)
		} else {
			failures = 0
		}
		// Traefik never cancels a plugin's context: the fetcher lives as
		// long as the process, one per provider.
		time.Sleep(wait)
	}
}

// current returns the last key set fetched, nil before the first.
func (k *keySource) current() *jose.KeySet {
	ks, _ := k.keys.Load().(*jose.KeySet)
	return ks
}

// refetch fetches the keys now unless a fetch happened less than
// jwksMinRefetch ago, and returns the key set then held.
func (k *keySource) refetch() *jose.KeySet {
	_ = k.fetch(k.minGap)
	return k.current()
}

// fetch loads the key set, through discovery when no jwksURL is set, unless
// the last fetch began less than gap ago. A failure keeps the keys already
// held and is logged at most once a minute.
func (k *keySource) fetch(gap time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if gap > 0 && !k.lastFetch.IsZero() && time.Since(k.lastFetch) < gap {
		return nil
	}
	k.lastFetch = time.Now()
	ks, err := k.fetchLocked()
	if err != nil {
		if obs.WarnDue(&k.lastWarnNs, time.Now().UnixNano()) {
			log.Printf("tokenrevocation: ERROR fetching the signing keys of %s: %v; logouts are refused until they load", k.issuer, err)
		}
		return err
	}
	k.keys.Store(ks)
	return nil
}

func (k *keySource) fetchLocked() (*jose.KeySet, error) {
	url := k.jwksURL
	if url == "" {
		if k.jwksFound == "" {
			found, err := k.discover()
			if err != nil {
				return nil, err
			}
			k.jwksFound = found
		}
		url = k.jwksFound
	}
	body, err := k.get(url)
	if err != nil {
		// The provider may have moved its keys: discover again next time.
		k.jwksFound = ""
		return nil, err
	}
	return jose.ParseJWKS(body)
}

// discover reads jwks_uri from the issuer's OpenID Connect discovery
// document, whose issuer must be the configured one (OIDC Discovery §4.3).
func (k *keySource) discover() (string, error) {
	body, err := k.get(strings.TrimSuffix(k.issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document: %w", err)
	}
	if doc.Issuer != k.issuer {
		return "", fmt.Errorf("discovery document names issuer %.200q, not %q", doc.Issuer, k.issuer)
	}
	if !isHTTPURL(doc.JWKSURI) {
		return "", errors.New("discovery document has no http(s) jwks_uri")
	}
	return doc.JWKSURI, nil
}

// get fetches url, at most jose.MaxJWKSBytes of it.
func (k *keySource) get(url string) ([]byte, error) {
	resp, err := k.client.Get(url) //nolint:noctx // bounded by the client's timeout
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jose.MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > jose.MaxJWKSBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, jose.MaxJWKSBytes)
	}
	return body, nil
}
