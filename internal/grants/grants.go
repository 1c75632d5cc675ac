// Package grants holds the grant families the edge learns from token
// responses (trackGrants): each family is the tokens of one grant, indexed
// by token digest, with the session and subject of its ID token. The root
// package revokes what this store returns; the store itself revokes
// nothing and knows nothing of denylists or HTTP.
//
// Families live in memory, capped at the max given to New: past it new
// grants are not tracked (counted in Untracked, warned about at most once
// per obs.WarnEvery), and nothing already recorded is dropped. A family
// holds at most MaxFamilyTokens tokens (drops counted in Dropped). A family
// is forgotten once its last token has expired.
//
// It avoids generics, which Yaegi, the interpreter Traefik runs plugins
// with, supports poorly.
package grants

import (
	"crypto/sha256"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// A family is the tokens of one grant, and the session and subject of
// its ID token as digests of the claim values (zero when absent). offline
// is set when the grant's scope holds offline_access: its refresh tokens
// survive a back-channel logout.
type family struct {
	id       string
	tokens   []record.GrantToken
	sid, sub [sha256.Size]byte
	expiry   int64
	offline  bool
}

const (
	// MaxFamilyTokens bounds the tokens one family holds (Add); the drops
	// are counted in Dropped.
	MaxFamilyTokens = 32
	// sweepEvery spaces out the sweeps of expired families.
	sweepEvery = time.Minute
)

// A Store holds the grant families of one denylist. Its methods are safe
// for concurrent use.
type Store struct {
	now func() time.Time
	max int

	mu        sync.Mutex
	families  map[string]*family // by family id
	byToken   map[string]*family // by token digest
	lastSweep int64

	untracked  int64
	dropped    int64 // tokens dropped at MaxFamilyTokens
	lastWarnNs int64
}

// New returns an empty store that tracks at most max families, reading the
// time from now.
func New(max int, now func() time.Time) *Store {
	return &Store{now: now, max: max, families: map[string]*family{}, byToken: map[string]*family{}}
}

// FamilyID returns the id of the family a refresh grant presenting refresh
// belongs to, or refresh's own digest when no family holds it yet.
func (g *Store) FamilyID(refresh *[sha256.Size]byte) [sha256.Size]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.byToken[string(refresh[:])]; ok {
		var id [sha256.Size]byte
		copy(id[:], f.id)
		return id
	}
	return *refresh
}

// Add merges rec into its family and returns the live access tokens the
// family held before (for revokeOnRefresh). take removes those from the
// family too: the caller revokes them, so they need tracking no longer,
// and no later refresh finds them again. It reports false when the family
// is new and the store is full: the grant is not tracked.
//
// A family holds at most MaxFamilyTokens tokens: expired ones are pruned
// when it is full, and then the oldest are dropped (counted in dropped). So
// one refresh costs O(MaxFamilyTokens), whatever the grant's age.
func (g *Store) Add(rec *record.Grant, take bool) ([]record.GrantToken, bool) {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now-g.lastSweep >= int64(sweepEvery) {
		g.sweep(now)
	}
	f, ok := g.families[string(rec.Family[:])]
	if !ok {
		if len(g.families) >= g.max {
			g.refuse(now)
			return nil, false
		}
		f = &family{id: string(rec.Family[:])}
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
		if len(f.tokens) >= MaxFamilyTokens {
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
// the last MaxFamilyTokens-1 refresh tokens still revokes the grant. The
// caller holds mu.
func (g *Store) makeRoom(f *family, now int64) {
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
	if n < MaxFamilyTokens {
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
func (g *Store) unindex(f *family, digest *[sha256.Size]byte) {
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
func (g *Store) refuse(now int64) {
	n := atomic.AddInt64(&g.untracked, 1)
	if obs.WarnDue(&g.lastWarnNs, now) {
		log.Printf("tokenrevocation: WARN %d grant families tracked, the maxGrants limit: %d new grants not tracked so far; raise maxGrants", g.max, n)
	}
}

// RevokeFamily removes and returns the live tokens, refresh itself left
// out, of the family that holds refresh as a refresh token; nil when no
// family does.
func (g *Store) RevokeFamily(refresh *[sha256.Size]byte) []record.GrantToken {
	return g.liveFamily(refresh, true)
}

// FamilyOf returns what RevokeFamily would, and keeps the family: what
// revoking refresh would store, for admission.
func (g *Store) FamilyOf(refresh *[sha256.Size]byte) []record.GrantToken {
	return g.liveFamily(refresh, false)
}

// liveFamily returns a copy of the live tokens, refresh left out, of the
// family that holds refresh as a refresh token, and forgets it when asked.
func (g *Store) liveFamily(refresh *[sha256.Size]byte, forget bool) []record.GrantToken {
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

func isRefresh(f *family, digest *[sha256.Size]byte) bool {
	for i := range f.tokens {
		if f.tokens[i].Digest == *digest {
			return f.tokens[i].Refresh
		}
	}
	return false
}

// remove drops f and its index entries. The caller holds mu.
func (g *Store) remove(f *family) {
	delete(g.families, f.id)
	for i := range f.tokens {
		g.unindex(f, &f.tokens[i].Digest)
	}
}

// sweep forgets the families whose last token has expired. The caller
// holds mu.
func (g *Store) sweep(now int64) {
	g.lastSweep = now
	for _, f := range g.families {
		if f.expiry <= now {
			g.remove(f)
		}
	}
}

// RevokeSession removes, from every family of the session sid or the
// subject sub (each nil when not matched), the live tokens a logout
// revokes, and returns them: all of them, or for a grant with
// offline_access only its access tokens unless includeOffline (Back-Channel
// Logout §2.7: such refresh tokens normally survive a logout). A family
// with nothing left is forgotten. A logout is rare; the scan over every
// family, under the lock, is what keeps each grant record small.
func (g *Store) RevokeSession(sid, sub *[sha256.Size]byte, includeOffline bool) []record.GrantToken {
	return g.session(sid, sub, includeOffline, true)
}

// SessionTokens returns what RevokeSession would, and keeps the families:
// for admission.
func (g *Store) SessionTokens(sid, sub *[sha256.Size]byte, includeOffline bool) []record.GrantToken {
	return g.session(sid, sub, includeOffline, false)
}

func (g *Store) session(sid, sub *[sha256.Size]byte, includeOffline, forget bool) []record.GrantToken {
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

// Size is the number of families tracked and of their tokens indexed,
// expired ones swept first when a sweep is due.
func (g *Store) Size() (int, int) {
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now-g.lastSweep >= int64(sweepEvery) {
		g.sweep(now)
	}
	// Separate statements: under Yaegi "return len(a), len(b)" can return
	// the second twice.
	families := len(g.families)
	tokens := len(g.byToken)
	return families, tokens
}

// Untracked is the number of new grants not tracked because the store held
// max families.
func (g *Store) Untracked() int64 {
	return atomic.LoadInt64(&g.untracked)
}

// Dropped is the number of live tokens dropped from full families
// (MaxFamilyTokens).
func (g *Store) Dropped() int64 {
	return atomic.LoadInt64(&g.dropped)
}
