package tokenrevocation

import (
	"crypto/sha256"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// Grant tracking (trackGrants). RFC 7009 §2.1: revoking a refresh token
// SHOULD invalidate the access tokens of the same grant, and identity
// services do so. The edge learns the grants from the token responses that
// cross it on tokenPath: the identity service's own answers, from the
// upstream, so no signature needs checking. Each answer adds its tokens to a
// grant family: a new one for a new grant, the family of the presented
// refresh token for a refresh grant. When the identity service confirms the
// revocation of a family's refresh token, every live token of the family is
// revoked at the edge as an ordinary revocation: in the same denylist,
// persisted and replicated like any other (so even the previous release
// enforces it), at no cost on the hot path.
//
// Families live in memory, capped at maxGrants: past the cap new grants are
// not tracked (counted, and warned about), and nothing already recorded is
// dropped. A family is forgotten once its last token has expired. Grant
// records replicate through the Redis stream and persist in persistPath as
// record type grantRecordType (record.go).

// A grantFamily is the tokens of one grant, and the session and subject of
// its ID token as digests of the claim values (zero when absent). offline
// is set when the grant's scope holds offline_access: its refresh tokens
// survive a back-channel logout (logout.go).
type grantFamily struct {
	id       string
	tokens   []record.GrantToken
	sid, sub [sha256.Size]byte
	expiry   int64
	offline  bool
}

const (
	// maxFamilyTokens bounds the tokens one family holds (add).
	maxFamilyTokens = 32
	// grantSweepEvery spaces out the sweeps of expired families.
	grantSweepEvery = time.Minute
)

// A grantStore holds the families of one denylist.
type grantStore struct {
	now func() time.Time
	max int

	mu        sync.Mutex
	families  map[string]*grantFamily // by family id
	byToken   map[string]*grantFamily // by token digest
	lastSweep int64

	untracked  int64
	dropped    int64 // tokens dropped at maxFamilyTokens
	lastWarnNs int64
}

func newGrantStore(max int, now func() time.Time) *grantStore {
	return &grantStore{now: now, max: max, families: map[string]*grantFamily{}, byToken: map[string]*grantFamily{}}
}

// familyID returns the id of the family a refresh grant presenting refresh
// belongs to, or refresh's own digest when no family holds it yet.
func (g *grantStore) familyID(refresh *[sha256.Size]byte) [sha256.Size]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.byToken[string(refresh[:])]; ok {
		var id [sha256.Size]byte
		copy(id[:], f.id)
		return id
	}
	return *refresh
}

// add merges rec into its family and returns the live access tokens the
// family held before (for revokeOnRefresh). take removes those from the
// family too: the caller revokes them, so they need tracking no longer,
// and no later refresh finds them again. It reports false when the family
// is new and the store is full: the grant is not tracked.
//
// A family holds at most maxFamilyTokens tokens: expired ones are pruned
// when it is full, and then the oldest are dropped (counted in dropped). So
// one refresh costs O(maxFamilyTokens), whatever the grant's age.
func (g *grantStore) add(rec *record.Grant, take bool) ([]record.GrantToken, bool) {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now-g.lastSweep >= int64(grantSweepEvery) {
		g.sweep(now)
	}
	f, ok := g.families[string(rec.Family[:])]
	if !ok {
		if len(g.families) >= g.max {
			g.refuse(now)
			return nil, false
		}
		f = &grantFamily{id: string(rec.Family[:])}
		g.families[f.id] = f
	}
	var previous []record.GrantToken
	// Compacted by index: under Yaegi, appending a family's own elements
	// to a slice of its array (kept := f.tokens[:0]) loses entries.
	n := 0
	for i := 0; i < len(f.tokens); i++ {
		t := f.tokens[i]
		if !t.Refresh && t.Expiry > now && !hasToken(rec.Tokens, &t.Digest) {
			previous = append(previous, t)
			if take {
				g.unindex(f, &t.Digest)
				continue
			}
		}
		f.tokens[n] = t
		n++
	}
	f.tokens = f.tokens[:n]
	for i := range rec.Tokens {
		t := rec.Tokens[i]
		if t.Expiry <= now {
			continue
		}
		key := string(t.Digest[:])
		if other, ok := g.byToken[key]; ok && other == f {
			continue
		}
		if len(f.tokens) >= maxFamilyTokens {
			g.makeRoom(f, now)
		}
		f.tokens = append(f.tokens, t)
		g.byToken[key] = f
		if t.Expiry > f.expiry {
			f.expiry = t.Expiry
		}
	}
	if rec.SID != ([sha256.Size]byte{}) {
		f.sid = rec.SID
	}
	if rec.Sub != ([sha256.Size]byte{}) {
		f.sub = rec.Sub
	}
	if rec.Offline {
		f.offline = true
	}
	return previous, true
}

// makeRoom frees a place in a full family: it prunes the expired tokens,
// and when none has expired drops one, counted: the oldest access token
// while the family holds another, else the oldest refresh token. So the
// newest access token and the newest refresh tokens stay: revoking any of
// the last maxFamilyTokens-1 refresh tokens still revokes the grant. The
// caller holds mu.
func (g *grantStore) makeRoom(f *grantFamily, now int64) {
	n, access, oldestAccess := 0, 0, -1
	for i := 0; i < len(f.tokens); i++ {
		t := f.tokens[i]
		if t.Expiry <= now {
			g.unindex(f, &t.Digest)
			continue
		}
		if !t.Refresh {
			access++
			if oldestAccess < 0 {
				oldestAccess = n
			}
		}
		f.tokens[n] = t
		n++
	}
	f.tokens = f.tokens[:n]
	if n < maxFamilyTokens {
		return
	}
	drop := 0
	if access > 1 {
		drop = oldestAccess
	}
	g.unindex(f, &f.tokens[drop].Digest)
	for i := drop + 1; i < n; i++ {
		f.tokens[i-1] = f.tokens[i]
	}
	f.tokens = f.tokens[:n-1]
	atomic.AddInt64(&g.dropped, 1)
}

// unindex drops digest's index entry when it points at f. The caller holds mu.
func (g *grantStore) unindex(f *grantFamily, digest *[sha256.Size]byte) {
	if g.byToken[string(digest[:])] == f {
		delete(g.byToken, string(digest[:]))
	}
}

func hasToken(tokens []record.GrantToken, digest *[sha256.Size]byte) bool {
	for i := range tokens {
		if tokens[i].Digest == *digest {
			return true
		}
	}
	return false
}

// refuse counts a grant not tracked for want of room, and warns at most
// once per obs.WarnEvery. The caller holds mu.
func (g *grantStore) refuse(now int64) {
	n := atomic.AddInt64(&g.untracked, 1)
	if obs.WarnDue(&g.lastWarnNs, now) {
		log.Printf("tokenrevocation: WARN %d grant families tracked, the maxGrants limit: %d new grants not tracked so far; raise maxGrants", g.max, n)
	}
}

// revokeFamily removes and returns the live tokens, refresh itself left
// out, of the family that holds refresh as a refresh token; nil when no
// family does.
func (g *grantStore) revokeFamily(refresh *[sha256.Size]byte) []record.GrantToken {
	return g.liveFamily(refresh, true)
}

// familyOf returns what revokeFamily would, and keeps the family: what
// revoking refresh would store, for admission.
func (g *grantStore) familyOf(refresh *[sha256.Size]byte) []record.GrantToken {
	return g.liveFamily(refresh, false)
}

// liveFamily returns a copy of the live tokens, refresh left out, of the
// family that holds refresh as a refresh token, and forgets it when asked.
func (g *grantStore) liveFamily(refresh *[sha256.Size]byte, forget bool) []record.GrantToken {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.byToken[string(refresh[:])]
	if !ok || !isRefresh(f, refresh) {
		return nil
	}
	if forget {
		g.remove(f)
	}
	var live []record.GrantToken
	for i := range f.tokens {
		if f.tokens[i].Expiry > now && f.tokens[i].Digest != *refresh {
			live = append(live, f.tokens[i])
		}
	}
	return live
}

func isRefresh(f *grantFamily, digest *[sha256.Size]byte) bool {
	for i := range f.tokens {
		if f.tokens[i].Digest == *digest {
			return f.tokens[i].Refresh
		}
	}
	return false
}

// remove drops f and its index entries. The caller holds mu.
func (g *grantStore) remove(f *grantFamily) {
	delete(g.families, f.id)
	for i := range f.tokens {
		g.unindex(f, &f.tokens[i].Digest)
	}
}

// sweep forgets the families whose last token has expired. The caller
// holds mu.
func (g *grantStore) sweep(now int64) {
	g.lastSweep = now
	for _, f := range g.families {
		if f.expiry <= now {
			g.remove(f)
		}
	}
}

// revokeSession removes, from every family of the session sid or the
// subject sub (each nil when not matched), the live tokens a logout
// revokes, and returns them: all of them, or for a grant with
// offline_access only its access tokens unless includeOffline (Back-Channel
// Logout §2.7: such refresh tokens normally survive a logout). A family
// with nothing left is forgotten. A logout is rare; the scan over every
// family, under the lock, is what keeps each grant record small.
func (g *grantStore) revokeSession(sid, sub *[sha256.Size]byte, includeOffline bool) []record.GrantToken {
	return g.session(sid, sub, includeOffline, true)
}

// sessionTokens returns what revokeSession would, and keeps the families:
// for admission.
func (g *grantStore) sessionTokens(sid, sub *[sha256.Size]byte, includeOffline bool) []record.GrantToken {
	return g.session(sid, sub, includeOffline, false)
}

func (g *grantStore) session(sid, sub *[sha256.Size]byte, includeOffline, forget bool) []record.GrantToken {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	var revoked []record.GrantToken
	for _, f := range g.families {
		bySID, bySub := sid != nil && f.sid == *sid, sub != nil && f.sub == *sub
		if !bySID && !bySub {
			continue
		}
		keep := f.tokens[:0]
		for i := range f.tokens {
			t := f.tokens[i]
			survives := t.Refresh && f.offline && !includeOffline
			if !survives && t.Expiry > now {
				revoked = append(revoked, t)
			}
			if !forget {
				continue
			}
			if survives {
				// keep shares f.tokens: only written when forgetting.
				keep = append(keep, t)
				continue
			}
			g.unindex(f, &t.Digest)
		}
		if !forget {
			continue
		}
		f.tokens = keep
		if len(keep) == 0 {
			delete(g.families, f.id)
		}
	}
	return revoked
}

// revokeGrantOf revokes, when digest is the refresh token of a tracked
// family, every live token of that family, as ordinary revocations:
// persisted and replicated like any other, so every replica enforces them.
// who is the revoke call's client when it came from one: the family's
// tokens replicate under its tag, so every replica counts them against its
// share.
func (d *denylist) revokeGrantOf(digest *[sha256.Size]byte, who *revokeInfo) {
	tokens := d.grants.revokeFamily(digest)
	var tagged *revokeInfo
	if who != nil {
		tagged = &revokeInfo{tag: who.tag}
	}
	for i := range tokens {
		if tokens[i].Digest == *digest || d.has(&tokens[i].Digest) {
			continue
		}
		if err := d.addReserved(&tokens[i].Digest, tokens[i].Key, time.Unix(0, tokens[i].Expiry), -1, sourceGrant, tagged); err != nil {
			log.Printf("tokenrevocation: ERROR a revoked grant's token was enforced but not persisted: %v", err)
		}
	}
}

// revokeIfRevoked revokes the family of rec at once when one of its refresh
// tokens is already revoked: the grant record arrived (from another
// replica, the file, or a refresh answered while the revocation went
// through) after the revocation it belongs to.
func (d *denylist) revokeIfRevoked(rec *record.Grant) {
	for i := range rec.Tokens {
		if rec.Tokens[i].Refresh && d.has(&rec.Tokens[i].Digest) {
			d.revokeGrantOf(&rec.Tokens[i].Digest, nil)
			return
		}
	}
}

// size is the number of families tracked and of their tokens indexed,
// expired ones swept first when a sweep is due.
func (g *grantStore) size() (int, int) {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now-g.lastSweep >= int64(grantSweepEvery) {
		g.sweep(now)
	}
	// Separate statements: under Yaegi "return len(a), len(b)" can return
	// the second twice.
	families := len(g.families)
	tokens := len(g.byToken)
	return families, tokens
}
