package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
)

// Redis as teams run it (issue 22): Sentinel with a failover in the middle
// of a stream of revocations, a failover that loses an acknowledged write,
// and a Redis Cluster resharded under the plugin. Every server is a real
// redis-server or redis-sentinel on loopback, started and stopped here.

const sentinelMaster = "edge-master"

// sentinelSet is a master, its replica and Sentinels (a majority quorum).
type sentinelSet struct {
	master, replica *harness.Redis
	// proxy, when set, carries the replication from the master to the
	// replica, and can drop it.
	proxy     *harness.Proxy
	sentinels []*harness.Sentinel
}

// startSentinelSet starts the set with n Sentinels; viaProxy sends the
// replication through a proxy. failoverTimeout is the Sentinels'
// failover-timeout, which also delays their repointing of a replica that
// replicates from another address (the proxy's), and, doubled, a new
// election after a failed one.
func startSentinelSet(t *testing.T, n int, viaProxy bool, failoverTimeout time.Duration) *sentinelSet {
	t.Helper()
	s := &sentinelSet{master: startRedis(t)}
	port := s.master.Port
	if viaProxy {
		proxy, err := harness.StartProxy(s.master.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(proxy.Close)
		s.proxy, port = proxy, proxy.Port()
	}
	replica, err := harness.StartRedis(t.TempDir(), "--replicaof", "127.0.0.1", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	s.replica = replica
	waitRedis(t, replica.Addr(), "the replica in sync", func(c *harness.RedisClient) bool {
		return strings.Contains(infoOf(c, "replication"), "master_link_status:up")
	})
	for range n {
		sentinel, err := harness.StartSentinel(t.TempDir(), s.master.Addr(), sentinelMaster, n/2+1, time.Second, failoverTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sentinel.Stop)
		s.sentinels = append(s.sentinels, sentinel)
	}
	// Every Sentinel knows the replica and the others: a failover needs
	// both.
	for _, sentinel := range s.sentinels {
		waitRedis(t, sentinel.Addr(), "the Sentinel knows the replica and the other Sentinels", func(c *harness.RedisClient) bool {
			replicas, _ := c.Do("SENTINEL", "replicas", sentinelMaster)
			others, _ := c.Do("SENTINEL", "sentinels", sentinelMaster)
			r, _ := replicas.([]any)
			o, _ := others.([]any)
			return len(r) == 1 && len(o) == n-1
		})
	}
	return s
}

// redisOptions is the plugin's redis block for the set.
func (s *sentinelSet) redisOptions() map[string]string {
	addrs := make([]string, len(s.sentinels))
	for i, sentinel := range s.sentinels {
		addrs[i] = `"` + sentinel.Addr() + `"`
	}
	return map[string]string{"sentinels": "[" + strings.Join(addrs, ", ") + "]", "masterName": sentinelMaster}
}

// waitPromoted waits until every Sentinel names the replica as the master,
// and the replica says it is one.
func (s *sentinelSet) waitPromoted(t *testing.T) {
	t.Helper()
	for _, sentinel := range s.sentinels {
		waitRedis(t, sentinel.Addr(), "the Sentinel names the replica", func(c *harness.RedisClient) bool {
			v, _ := c.Do("SENTINEL", "get-master-addr-by-name", sentinelMaster)
			addr, _ := v.([]any)
			return len(addr) == 2 && addr[1] == strconv.Itoa(s.replica.Port)
		})
	}
	waitRedis(t, s.replica.Addr(), "the replica promoted", func(c *harness.RedisClient) bool { return roleOf(c) == "master" })
}

// waitRedis polls cond on a connection to addr for up to 60 s.
func waitRedis(t *testing.T, addr, what string, cond func(*harness.RedisClient) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := harness.DialRedis(addr); err == nil {
			ok := cond(c)
			c.Close()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within 60s", addr, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func infoOf(c *harness.RedisClient, section string) string {
	v, _ := c.Do("INFO", section)
	s, _ := v.(string)
	return s
}

func roleOf(c *harness.RedisClient) string {
	v, _ := c.Do("ROLE")
	role, _ := v.([]any)
	if len(role) == 0 {
		return ""
	}
	s, _ := role[0].(string)
	return s
}

// streamIDOf returns the ID of the entry of stream on addr whose d field is
// digest, "" when there is none.
func streamIDOf(t *testing.T, addr, stream, digest string) string {
	t.Helper()
	c, err := harness.DialRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do("XRANGE", stream, "-", "+")
	if err != nil {
		t.Fatalf("XRANGE on %s: %v", addr, err)
	}
	entries, _ := v.([]any)
	for _, e := range entries {
		entry, _ := e.([]any)
		if len(entry) != 2 {
			continue
		}
		fields, _ := entry[1].([]any)
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i] == "d" && fields[i+1] == digest {
				id, _ := entry[0].(string)
				return id
			}
		}
	}
	return ""
}

func TestSentinelFailoverKeepsEveryRevocation(t *testing.T) {
	// given a master, its replica, three Sentinels, and two Traefik
	// replicas that find the master through them
	e := newReplicaEnv(t)
	set := startSentinelSet(t, 3, false, 10*time.Second)
	data := replicaData{RedisOptions: set.redisOptions()}
	a, b := e.startPairWith(t, data)

	// when the master is killed in the middle of a stream of revocations
	// through both
	exp := time.Now().Add(time.Hour)
	tokens := newTokens(40, exp)
	killed := time.Time{}
	for i, token := range tokens {
		if i == 10 {
			set.master.Stop()
			killed = time.Now()
		}
		tr := a
		if i%2 == 1 {
			tr = b
		}
		if err := e.revoke(tr, token); err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	set.waitPromoted(t)
	t.Logf("the Sentinels promoted the replica %s after the master was killed", time.Since(killed).Round(time.Millisecond))

	// then both enforce every revocation, made before, during and after
	// the failover
	for _, tr := range []*harness.Traefik{a, b} {
		for _, token := range tokens {
			e.waitRejected(t, tr, token, 60*time.Second)
		}
	}
	t.Logf("every revocation enforced on A and B %s after the kill", time.Since(killed).Round(time.Millisecond))
	for _, tr := range []*harness.Traefik{a, b} {
		st := e.waitStats(t, tr, "writing to the new master", 30*time.Second, func(st replicaStats) bool {
			return st.Failover.Master == set.replica.Addr() && st.Queued == 0 && st.Redis == "connected"
		})
		t.Logf("%s: %+v", tr.URL, st.Failover)
	}

	// and a third replica, started after, loads them all from the new master
	c := e.startTraefikWith(t, t.TempDir(), data)
	e.waitReady(t, c, 30*time.Second)
	assertAllRevoked(t, c, tokens)

	// when the old master comes back, and the Sentinels make it a replica
	if err := set.master.Start(); err != nil {
		t.Fatal(err)
	}
	waitRedis(t, set.master.Addr(), "the old master turned replica", func(conn *harness.RedisClient) bool {
		return roleOf(conn) == "slave" && strings.Contains(infoOf(conn, "replication"), "master_link_status:up")
	})
	more := newTokens(6, exp)
	for i, token := range more {
		tr := a
		if i%2 == 1 {
			tr = b
		}
		if err := e.revoke(tr, token); err != nil {
			t.Fatal(err)
		}
	}
	for _, token := range more {
		e.waitRejected(t, c, token, 30*time.Second)
	}

	// then nothing was ever written to it: no write met READONLY there,
	// and every replica writes to the new master
	conn, err := harness.DialRedis(set.master.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if errs := infoOf(conn, "errorstats"); strings.Contains(errs, "READONLY") {
		t.Fatalf("the old master refused writes after it came back:\n%s", errs)
	}
	for _, tr := range []*harness.Traefik{a, b, c} {
		if st, err := e.stats(tr); err != nil || st.Failover.Master != set.replica.Addr() {
			t.Fatalf("%s writes to %q (%v), want the new master %s", tr.URL, st.Failover.Master, err, set.replica.Addr())
		}
	}
}

func TestSentinelLostWriteIsRepublished(t *testing.T) {
	// given a master whose replica replicates through a proxy, a Sentinel,
	// and two Traefik replicas. (One Sentinel: its election cannot fail,
	// and a second one would wait twice the minute of failover-timeout
	// that keeps the Sentinel from repointing the replica past the proxy.)
	e := newReplicaEnv(t)
	set := startSentinelSet(t, 1, true, time.Minute)
	data := replicaData{RedisOptions: set.redisOptions()}
	a, b := e.startPairWith(t, data)
	exp := time.Now().Add(time.Hour)
	if _, err := e.propagation(a, b, newTokens(1, exp)[0], 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// when the replication stops reaching the replica, a revocation is
	// acknowledged by the master, and the master dies
	set.proxy.Drop()
	lost := newTokens(1, exp)[0]
	if err := e.revoke(a, lost); err != nil {
		t.Fatal(err)
	}
	digest := digestHex(lost)
	var firstID string
	waitRedis(t, set.master.Addr(), "the master holds the revocation", func(*harness.RedisClient) bool {
		firstID = streamIDOf(t, set.master.Addr(), replicaStream, digest)
		return firstID != ""
	})
	// The write is really lost: the replica does not have it, and the
	// only copy dies with the master and the proxy.
	if id := streamIDOf(t, set.replica.Addr(), replicaStream, digest); id != "" {
		t.Fatalf("the replica has the revocation (%s): the write would not be lost", id)
	}
	set.master.Stop()
	set.proxy.Close()
	killed := time.Now()
	set.waitPromoted(t)

	// then A writes it again to the new master, under a new ID, and a
	// replica started after the failover enforces it
	const bound = 30 * time.Second
	var againID string
	waitRedis(t, set.replica.Addr(), "the revocation written again", func(*harness.RedisClient) bool {
		againID = streamIDOf(t, set.replica.Addr(), replicaStream, digest)
		return againID != ""
	})
	took := time.Since(killed)
	if againID == firstID {
		t.Fatalf("the new master holds the entry under its first ID %s: not re-published", firstID)
	}
	c := e.startTraefikWith(t, t.TempDir(), data)
	e.waitReady(t, c, 30*time.Second)
	assertAllRevoked(t, c, []string{lost})
	e.waitRejected(t, b, lost, bound)
	st := e.waitStats(t, a, "re-published", bound, func(st replicaStats) bool { return st.Failover.Republished >= 1 })
	t.Logf("re-published %s after the master was killed (first ID %s, then %s); A %+v", took.Round(time.Millisecond), firstID, againID, st.Failover)
	if took > bound {
		t.Fatalf("re-published after %s, over the bound of %s", took, bound)
	}
}

// clusterSlots returns the owner (host:port) of slot and the first slot of
// its range, from CLUSTER SLOTS on addr.
func clusterSlots(t *testing.T, addr string, slot int) (string, int) {
	t.Helper()
	c, err := harness.DialRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do("CLUSTER", "SLOTS")
	if err != nil {
		t.Fatal(err)
	}
	ranges, _ := v.([]any)
	for _, r := range ranges {
		rng, _ := r.([]any)
		if len(rng) < 3 {
			continue
		}
		lo, _ := rng[0].(int64)
		hi, _ := rng[1].(int64)
		node, _ := rng[2].([]any)
		if int64(slot) >= lo && int64(slot) <= hi && len(node) >= 2 {
			return fmt.Sprintf("%v:%v", node[0], node[1]), int(lo)
		}
	}
	t.Fatalf("no node owns slot %d: %v", slot, v)
	return "", 0
}

func TestClusterFollowsMovedAndReshard(t *testing.T) {
	// given a cluster of three masters, and two Traefik replicas pointed
	// at a node that does not own the stream's slot
	e := newReplicaEnv(t)
	nodes := make([]*harness.Redis, 3)
	byAddr := map[string]*harness.Redis{}
	for i := range nodes {
		n, err := harness.StartRedis(t.TempDir(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Stop)
		nodes[i] = n
		byAddr[n.Addr()] = n
	}
	if err := harness.CreateCluster(nodes...); err != nil {
		t.Fatal(err)
	}
	// redis.cluster wraps the key in a hash tag: the stream and its
	// marker key share one slot.
	const stream = "{" + replicaStream + "}"
	slotReply, err := redisDo(nodes[0].Addr(), "CLUSTER", "KEYSLOT", stream)
	if err != nil {
		t.Fatal(err)
	}
	slot := int(slotReply.(int64))
	ownerAddr, lo := clusterSlots(t, nodes[0].Addr(), slot)
	owner := byAddr[ownerAddr]
	var entry, target *harness.Redis
	for _, n := range nodes {
		switch {
		case n == owner:
		case entry == nil:
			entry = n
		default:
			target = n
		}
	}
	data := replicaData{RedisAddress: entry.Addr(), RedisOptions: map[string]string{"cluster": "true"}}
	a, b := e.startPairWith(t, data)

	// when revocations are made through A, then B enforces them, and
	// they are on the slot's owner
	exp := time.Now().Add(time.Hour)
	before := newTokens(10, exp)
	for _, token := range before {
		if _, err := e.propagation(a, b, token, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := redisDo(owner.Addr(), "XLEN", stream); err != nil || n.(int64) < int64(len(before)) {
		t.Fatalf("XLEN on the owner %s: %v %v", owner.Addr(), n, err)
	}

	// when the slot moves to another node (redis-cli --cluster reshard)
	if err := harness.Reshard(owner, target, slot-lo+1); err != nil {
		t.Fatal(err)
	}
	if moved, _ := clusterSlots(t, entry.Addr(), slot); moved != target.Addr() {
		t.Fatalf("slot %d is on %s after the reshard, want %s", slot, moved, target.Addr())
	}

	// then revocations through B reach A, through the slot's new owner
	after := newTokens(10, exp)
	for _, token := range after {
		if _, err := e.propagation(b, a, token, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range []*harness.Traefik{a, b} {
		st := e.waitStats(t, tr, "on the new owner", 20*time.Second, func(st replicaStats) bool { return st.Failover.Master == target.Addr() })
		t.Logf("%s: %+v", tr.URL, st.Failover)
	}
	if n, err := redisDo(target.Addr(), "XLEN", stream); err != nil || n.(int64) < int64(len(before)+len(after)) {
		t.Fatalf("XLEN on the new owner: %v %v", n, err)
	}

	// and a replica started cold against the cluster loads them all
	c := e.startTraefikWith(t, t.TempDir(), data)
	e.waitReady(t, c, 30*time.Second)
	assertAllRevoked(t, c, append(before, after...))
}

// redisDo runs one command on addr.
func redisDo(addr string, args ...string) (any, error) {
	c, err := harness.DialRedis(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(args...)
}
