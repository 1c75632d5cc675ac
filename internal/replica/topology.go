package replica

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/edgerevoke/tokenrevocation/internal/resp"
)

// Where the stream lives. With one address, the stream is there (a managed
// endpoint that fails over by DNS included: a dial resolves the name
// again). With Sentinels, every dial asks them for the master's address,
// the last one that answered first, and checks with ROLE that the node is
// a master before using it: a replica is never written to, and a READONLY
// reply (the master was demoted under an open connection) drops the
// connection, so the next dial asks the Sentinels again. In a cluster, the
// stream's key lives on the node that owns its slot: a MOVED reply for that
// slot moves the stream there, an ASK reply sends that one command there
// after ASKING, and a node that cannot be reached sends the next dial back
// to the configured address, which redirects again.

// Topology is how to find the node that holds the stream (Config).
type Topology struct {
	// Sentinels are the Sentinels' host:port; empty: no Sentinel.
	Sentinels []string
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// Sentinel is how to reach a Sentinel (credentials, TLS, timeouts);
	// its Address is set per Sentinel.
	Sentinel *resp.Options
	// Cluster is true for a Redis Cluster: the stream's key is expected
	// in one slot, and MOVED and ASK for it are followed.
	Cluster bool
}

// errNotMaster refuses a node that the Sentinels named but that is not, or
// no longer, a master.
var errNotMaster = errors.New("the node the sentinels named is not a master (ROLE); asking them again")

// maxRedirects is how many MOVED replies in a row a loop follows at once
// before it backs off as after a failure.
const maxRedirects = 5

// A router dials the node that holds the stream. It is shared by the
// writer and the reader; its counters are read by Status.
type router struct {
	seed *resp.Options // the configured address (none with Sentinels), credentials, TLS
	topo Topology
	slot int // the stream key's cluster slot

	mu       sync.Mutex
	addr     string // the node the stream is on; "" until known: the seed's
	sentinel int    // the Sentinel that answered last, asked first

	// Atomic counters: the master changed, or a write met READONLY;
	// MOVED replies followed; ASK replies followed.
	failovers int64
	moved     int64
	asked     int64
}

func newRouter(seed *resp.Options, topo Topology, stream string) *router {
	return &router{seed: seed, topo: topo, slot: resp.KeySlot(stream)}
}

// current is the address of the node the stream is on, as last known;
// before the Sentinels named one, "sentinels/<masterName>".
func (t *router) current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.addr != "":
		return t.addr
	case len(t.topo.Sentinels) > 0:
		return "sentinels/" + t.topo.MasterName
	}
	return t.seed.Address
}

// dial connects to the node that holds the stream and returns the
// connection and the node's address. With Sentinels, it asks them first
// and checks the node's ROLE.
func (t *router) dial() (*resp.Conn, string, error) {
	addr := t.current()
	if len(t.topo.Sentinels) > 0 {
		// Asked at every dial: after an error, a disconnect or READONLY
		// the master may have changed.
		var err error
		if addr, err = t.askSentinels(); err != nil {
			return nil, "", err
		}
	}
	c, err := t.dialNode(addr)
	if err != nil {
		t.unreachable(addr)
		return nil, "", err
	}
	if len(t.topo.Sentinels) > 0 {
		if err := checkMaster(c); err != nil {
			c.Close()
			return nil, "", err
		}
	}
	return c, addr, nil
}

// dialNode connects to the node at addr with the seed's credentials.
func (t *router) dialNode(addr string) (*resp.Conn, error) {
	opts := *t.seed
	opts.Address = addr
	return resp.Dial(&opts)
}

// dialAsk connects to the node an ASK named, and sends ASKING: the next
// command on the connection is served for the slot being imported.
func (t *router) dialAsk(addr string) (*resp.Conn, error) {
	c, err := t.dialNode(addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Do("ASKING"); err != nil {
		c.Close()
		return nil, err
	}
	atomic.AddInt64(&t.asked, 1)
	return c, nil
}

// checkMaster refuses a node whose ROLE is not master. A user the ACL does
// not allow ROLE is taken at its word: READONLY on a write still sends the
// writer back to the Sentinels.
func checkMaster(c *resp.Conn) error {
	v, err := c.Do("ROLE")
	if resp.Code(err) == "NOPERM" {
		return nil
	}
	if err != nil {
		return err
	}
	role, err := resp.Role(v)
	if err != nil {
		return err
	}
	if role != "master" {
		return errNotMaster
	}
	return nil
}

// askSentinels asks each Sentinel in turn, the last that answered first,
// for the master's address, and counts a failover when it changed.
func (t *router) askSentinels() (string, error) {
	t.mu.Lock()
	first := t.sentinel
	t.mu.Unlock()
	var lastErr error
	n := len(t.topo.Sentinels)
	for i := 0; i < n; i++ {
		at := (first + i) % n
		addr, err := t.askSentinel(t.topo.Sentinels[at])
		if err != nil {
			lastErr = err
			continue
		}
		t.mu.Lock()
		if t.addr != "" && t.addr != addr {
			atomic.AddInt64(&t.failovers, 1)
		}
		t.addr = addr
		t.sentinel = at
		t.mu.Unlock()
		return addr, nil
	}
	return "", lastErr
}

// askSentinel asks one Sentinel for the master's address.
func (t *router) askSentinel(sentinel string) (string, error) {
	opts := *t.topo.Sentinel
	opts.Address = sentinel
	c, err := resp.Dial(&opts)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return resp.MasterAddr(c.Do("SENTINEL", "get-master-addr-by-name", t.topo.MasterName))
}

// unreachable forgets a cluster node that cannot be reached: the next dial
// goes to the configured address, which redirects to the slot's new owner.
func (t *router) unreachable(addr string) {
	if len(t.topo.Sentinels) > 0 {
		return
	}
	t.mu.Lock()
	if t.addr == addr {
		t.addr = ""
	}
	t.mu.Unlock()
}

// follow reads err, a command's error on the node at from, and reports
// whether it is a redirect for the stream's slot, to follow at once: a
// MOVED moves the stream to its node, an ASK the caller follows once.
// READONLY counts a failover.
func (t *router) follow(err error, from string) bool {
	if resp.Code(err) == "READONLY" {
		atomic.AddInt64(&t.failovers, 1)
		return false
	}
	r, ok := resp.ParseRedirect(err, from)
	if !ok || r.Slot != t.slot {
		// Another key's slot: the keys do not share one (keyPrefix
		// without a hash tag, redis.cluster not set); reported as an error.
		return false
	}
	if !r.Ask {
		t.mu.Lock()
		t.addr = r.Addr
		t.mu.Unlock()
		atomic.AddInt64(&t.moved, 1)
	}
	return true
}

// counters are the router's counters, for Status.
func (t *router) counters() (failovers, moved, asked int64) {
	return atomic.LoadInt64(&t.failovers), atomic.LoadInt64(&t.moved), atomic.LoadInt64(&t.asked)
}
