package tokenrevocation

import (
	"crypto/sha256"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/grants"
	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/persist"
	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/replica"
	"github.com/edgerevoke/tokenrevocation/internal/rules"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// A denylist composes the components behind one denylist name: the exact
// store (internal/store), its two logs (the persistPath file and the Redis
// stream, written through the journal), the client limiter, the grant
// families and the logout rules, and the counters the stats and metrics
// report. Raw tokens never reach it: callers hand it a digest.
type denylist struct {
	name string
	// opts are the options the denylist was created with, defaults applied.
	opts  denylistOptions
	store *store.Store

	// persist and replica are set when persistPath or redis is configured.
	persist *persist.File
	replica *replica.Replicator
	limiter *limit.Limiter
	grants  *grants.Store
	rules   *rules.Store

	life  lifecycle    // loading at start (loader.go)
	order order        // confirmation times and lifetimes (lifetime.go)
	count counters     // never reset: a reload keeps the denylist
	audit atomic.Value // *auditor (audit.go); unset: no audit trail

	// mu guards keys and warned: the last back-channel logout key source
	// configured, and the last change of the fixed options a New was
	// warned about (sharedDenylist).
	mu     sync.Mutex
	keys   *keySource
	warned string
}

// counters are the denylist's counts for the stats and the metrics
// (metrics.go), never reset.
type counters struct {
	revokes            int64
	loaded             int64
	recorded           [sourceCount]int64 // revocations recorded, by source
	unrevoked          [sourceCount]int64 // un-revocations applied, by source
	rejected           [rejectReasons]int64
	adminCalls         [adminOps][adminOutcomes]int64
	refusedCapacity    int64
	refusedClientLimit int64
	refusedLifetime    int64
	authFailures       int64         // revoke calls the identity service answered 401
	boundAudit         int64         // audit fields cut
	auditDropped       int64         // audit events the full queue dropped
	skipped            replica.Skips // the records the denylist skipped; the replicator counts its own
	lastWarnNs         int64
}

// Where a revocation or un-revocation was learned, as the metrics, the
// audit trail and the admin lookup name it.
const (
	sourceUnknown byte = iota
	sourceRevoke       // the revoke endpoint
	sourceGrant        // a token of a revoked grant (trackGrants)
	sourceLogout       // a back-channel logout's grant families
	sourceAdmin        // the admin API
	sourceRedis        // the Redis stream: another replica
	sourceFile         // persistPath, at start
	sourceCount
)

// sourceNames are the sources' names, by source.
var sourceNames = [sourceCount]string{"unknown", "revoke_endpoint", "grant", "logout", "admin", "redis", "file"}

// maxClients bounds the clients the revoke path's limiter tracks.
const maxClients = 10000

// denylistOptions are the settings fixed when a denylist is created.
type denylistOptions struct {
	sizeMB      int
	maxTTL      time.Duration
	laneBase    time.Duration
	now         func() time.Time
	persistPath string
	redis       *redisOptions
	// loadWait and failClosed govern loading at start (loader.go).
	loadWait   time.Duration
	failClosed bool
	// The per-client limits of the revoke path (internal/limit).
	clientRate  int
	clientBurst int
	clientShare float64
	// maxGrants caps the grant families (internal/grants).
	maxGrants int
	// leeway is the clock skew tolerated between replicas and apps;
	// maxLifetime the longest life the store holds (lifetime.go).
	leeway      time.Duration
	maxLifetime time.Duration
}

// normalized is opts with its defaults applied.
func (opts denylistOptions) normalized() denylistOptions {
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.laneBase <= 0 {
		opts.laneBase = store.DefaultLaneBase
	}
	if opts.maxLifetime <= 0 {
		opts.maxLifetime = defaultMaxLifetime
	}
	if opts.maxLifetime < opts.maxTTL {
		opts.maxLifetime = opts.maxTTL
	}
	if opts.loadWait <= 0 {
		opts.loadWait = 10 * time.Second
	}
	if opts.clientShare <= 0 {
		opts.clientShare = 1
	}
	if opts.maxGrants <= 0 {
		opts.maxGrants = 100000
	}
	return opts
}

func newDenylist(name string, opts denylistOptions) (*denylist, error) {
	opts = opts.normalized()
	d := &denylist{name: name, opts: opts}
	d.limiter = limit.New(float64(opts.clientRate), opts.clientBurst, opts.clientShare, maxClients, opts.now)
	d.grants = grants.New(opts.maxGrants, opts.now)
	st, err := store.New(store.Options{
		Name: name, SizeMB: opts.sizeMB, MaxTTL: opts.maxTTL, MaxLifetime: opts.maxLifetime,
		LaneBase: opts.laneBase, Leeway: opts.leeway, Now: opts.now, OnFilled: d.countFilled,
	})
	if err != nil {
		return nil, err
	}
	d.store = st
	d.rules = rules.New(opts.now, jtiExpiry, st.SetRules)
	d.life.loadedCh = make(chan struct{})
	d.life.closed = make(chan struct{})
	d.life.startedAt = opts.now()
	d.life.state = stateReady
	close(d.life.loadedCh)
	return d, nil
}

// countFilled counts a record loaded from the stream with its client against
// that client's share here too (see loadDirect), in the lane i that would
// hold it, as the store's staging ends.
func (d *denylist) countFilled(rec *record.Revocation, lane int, window time.Duration) {
	d.limiter.Count(limit.Key(rec.Client), lane, window, 1)
}

// add records a revocation learned from source, with no slot reserved for it.
// Without the token, no pre-check key is known: the pre-check stays open
// until the revocation expires (internal/store).
func (d *denylist) add(digest *[sha256.Size]byte, expiry time.Time, source byte) error {
	return d.addReserved(digest, "", expiry, -1, source, nil)
}

// addKeyed is add with the token's pre-check key (keyOf).
func (d *denylist) addKeyed(digest *[sha256.Size]byte, key string, expiry time.Time, source byte) error {
	return d.addReserved(digest, key, expiry, -1, source, nil)
}

// addReserved records a revocation the identity service confirmed (record).
func (d *denylist) addReserved(digest *[sha256.Size]byte, key string, expiry time.Time, reserved int, source byte, who *revokeInfo) error {
	_, _, err := d.record(digest, key, expiry, reserved, source, who)
	return err
}

// record records a revocation confirmed now: in memory, in the lane
// reserved for it (reserve; -1 when none was), then in the persistence file
// and the Redis replication queue when configured. For a digest already
// held the later expiry and the later confirmation win (merge): a
// revocation never shortens one. A past expiry records nothing. It returns
// the expiry now held and whether it is new or later than the one held (a
// later confirmation alone is recorded too, but reported false); a
// reservation not used is given back.
func (d *denylist) record(digest *[sha256.Size]byte, key string, expiry time.Time, reserved int, source byte, who *revokeInfo) (int64, bool, error) {
	rec := record.Revocation{Digest: *digest, Expiry: expiry.UnixNano(), Source: source, At: d.stamp()}
	rec.SetKey(key)
	if rec.Expiry <= d.opts.now().UnixNano() {
		if reserved >= 0 {
			d.store.Unreserve(reserved, digest)
		}
		return 0, false, nil
	}
	if who != nil {
		rec.Client = [16]byte(who.tag)
	}
	mu := d.store.Lock(digest)
	mu.Lock()
	h := d.store.Held(digest)
	extended := !h.Found || rec.Expiry > h.Expiry
	changed := d.store.MergeSync(&rec, &h, reserved)
	mu.Unlock()
	if !changed {
		return h.Expiry, false, nil
	}
	d.noteLife(rec.Expiry, rec.At)
	err := d.journalRevocation(&rec)
	atomic.AddInt64(&d.count.revokes, 1)
	atomic.AddInt64(&d.count.recorded[source], 1)
	d.auditRevocation(&rec, who)
	return rec.Expiry, extended, err
}

// contains reports whether token is revoked and its entry still live: by
// its identity, or, for a JWS, by the exact string older records hold.
func (d *denylist) contains(token string) bool {
	sums, n := tokenDigests(token)
	return d.store.Has(&sums[0]) || (n == 2 && d.store.Has(&sums[1]))
}

func (d *denylist) close() {
	select {
	case <-d.life.closed:
	default:
		close(d.life.closed)
	}
	if d.replica != nil {
		d.replica.Close()
	}
	d.store.Close()
}

// denylists shares one denylist per name across every middleware instance
// in the interpreter: Traefik calls New once per router and again on every
// configuration reload, and each of those must see the same revocations.
var denylists obs.Registry

// changedFixed names the options fixed at a denylist's creation that b
// changes from a: they take effect only on restart. Secrets are compared,
// never shown.
func changedFixed(a, b *denylistOptions) []string {
	// Compared with their defaults applied: leaving an option out and
	// writing its default are the same configuration.
	na := a.normalized()
	nb := b.normalized()
	a = &na
	b = &nb
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	add("cacheSizeMB", a.sizeMB != b.sizeMB)
	add("maxTTL", a.maxTTL != b.maxTTL)
	add("maxLifetime", a.maxLifetime != b.maxLifetime)
	add("leeway", a.leeway != b.leeway)
	add("persistPath", a.persistPath != b.persistPath)
	add("loadWait", a.loadWait != b.loadWait)
	add("failClosed", a.failClosed != b.failClosed)
	add("clientRate", a.clientRate != b.clientRate)
	add("clientBurst", a.clientBurst != b.clientBurst)
	add("clientSharePercent", a.clientShare != b.clientShare)
	add("maxGrants", a.maxGrants != b.maxGrants)
	ra, rb := a.redis, b.redis
	switch {
	case (ra == nil) != (rb == nil):
		add("redis", true)
	case ra != nil:
		add("redis.address", ra.address != rb.address)
		add("redis.username", ra.username != rb.username)
		add("redis.password", ra.password != rb.password || ra.passwordFile != rb.passwordFile)
		add("redis.db", ra.db != rb.db)
		add("redis.tls", ra.tls != rb.tls || ra.tlsSkipCheck != rb.tlsSkipCheck || ra.caFile != rb.caFile)
		add("redis.keyPrefix", ra.keyPrefix != rb.keyPrefix)
		add("redis timeouts", ra.dialTimeout != rb.dialTimeout || ra.readTimeout != rb.readTimeout || ra.writeTimeout != rb.writeTimeout)
		add("redis.sentinels", strings.Join(ra.sentinels, ",") != strings.Join(rb.sentinels, ",") || ra.masterName != rb.masterName)
		add("redis sentinel credentials", ra.sentinelUsername != rb.sentinelUsername || ra.sentinelPassword != rb.sentinelPassword || ra.sentinelPasswordFile != rb.sentinelPasswordFile)
		add("redis.cluster", ra.cluster != rb.cluster)
		add("redis.waitReplicas", ra.waitReplicas != rb.waitReplicas || ra.waitTimeout != rb.waitTimeout)
		add("redis signing secrets", (ra.signer == nil) != (rb.signer == nil) || (ra.signer != nil && !ra.signer.Same(rb.signer)))
	}
	return out
}

// benchPreload is nil in the plugin. Only the benchmark harness sets it, by
// adding e2e/testdata/benchhook/preload_bench.go to its own copy of the
// plugin: no configuration can reach it.
var benchPreload func(*denylist)

// sharedDenylist returns the denylist called name, creating it with opts the
// first time. A later caller gets the existing one whatever its opts, so a
// reload never loses entries; a change of size or maxTTL is logged and takes
// effect only on restart.
func sharedDenylist(name string, opts denylistOptions) (*denylist, error) {
	v, created, err := denylists.Get(name, func() (interface{}, error) {
		d, err := createDenylist(name, opts)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	d := v.(*denylist)
	if !created {
		d.warnFixed(opts)
	}
	return d, nil
}

// warnFixed logs the options fixed at d's creation that opts, a later New's,
// changes: once per different change, not at every New of every router.
func (d *denylist) warnFixed(opts denylistOptions) {
	changed := strings.Join(changedFixed(&d.opts, &opts), ", ")
	d.mu.Lock()
	defer d.mu.Unlock()
	if changed != "" && changed != d.warned {
		d.warned = changed
		log.Printf("tokenrevocation: WARN denylist %q keeps %s as it was created until restart: this configuration changes them", d.name, changed)
	}
}

// createDenylist makes the denylist called name and starts its loading, once
// per name: sharedDenylist calls it under the registry's lock.
func createDenylist(name string, opts denylistOptions) (*denylist, error) {
	d, err := newDenylist(name, opts)
	if err != nil {
		return nil, err
	}
	// New never waits on loading: the file and the stream load in the
	// background while requests carrying a token are held (loader.go).
	sources := 0
	if opts.persistPath != "" {
		p, err := persist.Open(opts.persistPath, d.opts.now)
		if err != nil {
			d.close()
			return nil, err
		}
		d.persist = p
		sources++
	}
	if opts.redis != nil {
		sources++
	}
	if sources > 0 {
		d.startLoading(sources)
	}
	if opts.redis != nil {
		d.replica = startReplica(d, opts.redis)
	}
	if d.persist != nil {
		d.life.fileLoading = 1
		go d.loadFile()
	}
	if sources > 0 {
		go d.watchLoad()
	}
	if benchPreload != nil {
		benchPreload(d)
	}
	return d, nil
}
