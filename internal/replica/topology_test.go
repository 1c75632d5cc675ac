package replica

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
	"github.com/edgerevoke/tokenrevocation/internal/resp"
	"github.com/edgerevoke/tokenrevocation/internal/testcert"
)

// startServer starts redis-server on a free loopback port with args,
// stopped when the test ends, and returns its address and a stop function.
func startServer(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	port := freePort(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	all := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--daemonize", "no"}, args...)
	return runServer(t, bin, all, options("127.0.0.1:"+port), dir)
}

// startSentinel starts a Sentinel (redis-sentinel, or redis-server
// --sentinel) monitoring master as "m" with quorum 1 and short timeouts,
// and the configuration lines extra, stopped when the test ends.
func startSentinel(t *testing.T, master string, extra ...string) string {
	t.Helper()
	port := freePort(t)
	host, masterPort, _ := net.SplitHostPort(master)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := "port " + port + "\nbind 127.0.0.1\ndir " + dir + "\n" +
		"sentinel monitor m " + host + " " + masterPort + " 1\n" +
		"sentinel down-after-milliseconds m 500\nsentinel failover-timeout m 2000\n" + strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, args := sentinelCommand(t, conf)
	addr, _ := runServer(t, bin, args, options("127.0.0.1:"+port), dir)
	return addr
}

// sentinelCommand is how to start a Sentinel on conf.
func sentinelCommand(t *testing.T, conf string) (string, []string) {
	t.Helper()
	if bin, err := exec.LookPath("redis-sentinel"); err == nil {
		return bin, []string{conf}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-sentinel or redis-server is required (scripts/deps.sh): %v", err)
	}
	return bin, []string{conf, "--sentinel"}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// runServer runs bin with args, logging into dir, until the test ends, and
// waits until it answers PING (or NOAUTH, when it wants a password) at
// probe's address.
func runServer(t *testing.T, bin string, args []string, probe *resp.Options, dir string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = logFile.Close()
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := resp.Dial(probe); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil || resp.Code(err) == "NOAUTH" {
				return probe.Address, stop
			}
		}
	}
	t.Fatalf("%s did not answer on %s", bin, probe.Address)
	return "", nil
}

func options(addr string) *resp.Options {
	return &resp.Options{Address: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
}

// do runs one command on addr and fails the test on an error.
func do(t *testing.T, addr string, args ...string) interface{} {
	t.Helper()
	c, err := resp.Dial(options(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%s on %s: %v", args[0], addr, err)
	}
	return v
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
	}
}

// revocation is a revocation of digest byte n, live for an hour.
func revocation(n int) record.Revocation {
	return record.Revocation{Digest: [32]byte{byte(n), byte(n >> 8), 1}, Expiry: time.Now().Add(time.Hour).UnixNano()}
}

// fakeNode is a RESP server that answers every command with reply(args).
type fakeNode struct {
	ln    net.Listener
	mu    sync.Mutex
	reply func(args []string) string
}

func startFake(t *testing.T, reply func(args []string) string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{ln: ln, reply: reply}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeNode) addr() string { return f.ln.Addr().String() }

func (f *fakeNode) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil || len(line) < 3 || line[0] != '*' {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		args := make([]string, 0, n)
		for i := 0; i < n; i++ {
			head, err := r.ReadString('\n')
			if err != nil {
				return
			}
			size, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
			buf := make([]byte, size+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			args = append(args, string(buf[:size]))
		}
		f.mu.Lock()
		reply := f.reply
		f.mu.Unlock()
		if _, err := c.Write([]byte(reply(args))); err != nil {
			return
		}
	}
}

// sentinelReply answers SENTINEL get-master-addr-by-name with *master.
func sentinelReply(mu *sync.Mutex, master *string) func([]string) string {
	return func(args []string) string {
		mu.Lock()
		defer mu.Unlock()
		host, port, _ := net.SplitHostPort(*master)
		return fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(host), host, len(port), port)
	}
}

func TestSentinelDialNeverPicksAReplica(t *testing.T) {
	// given a master, its replica, and a Sentinel that names the replica
	master, _ := startServer(t)
	replicaAddr, _ := startServer(t, "--replicaof", "127.0.0.1", strings.Split(master, ":")[1])
	var mu sync.Mutex
	named := replicaAddr
	sentinel := startFake(t, sentinelReply(&mu, &named))
	rt := newRouter(options(""), Topology{Sentinels: []string{"127.0.0.1:1", sentinel.addr()}, MasterName: "m", Sentinel: options("")}, "s")

	// when the router dials, then it refuses the replica (ROLE)
	if c, _, err := rt.dial(); err == nil {
		c.Close()
		t.Fatal("dialed a replica the sentinel named")
	} else if err != errNotMaster { //nolint:errorlint // returned as is
		t.Fatalf("dial: %v, want errNotMaster", err)
	}

	// when the Sentinel names the master, then the router dials it, asking
	// the Sentinel that answered first from then on
	mu.Lock()
	named = master
	mu.Unlock()
	c, addr, err := rt.dial()
	if err != nil || addr != master {
		t.Fatalf("dial: %q %v, want %s", addr, err, master)
	}
	c.Close()
	if rt.sentinel != 1 {
		t.Fatalf("the Sentinel that answered is %d, want 1", rt.sentinel)
	}
	// the master changed once, from the replica's address the Sentinel gave first
	if f, _, _ := rt.counters(); f != 1 {
		t.Fatalf("failovers %d, want 1", f)
	}
}

func TestSentinelWithCredentials(t *testing.T) {
	// given a master that admits an ACL user only, and a Sentinel that
	// wants a password of its own
	master, _ := startServer(t, "--user", "default", "off", "--user", "edge", "on", ">edge-password", "~*", "+@all")
	sentinel := startSentinel(t, master, "requirepass sentinel-password", "sentinel auth-user m edge", "sentinel auth-pass m edge-password")
	seed := options("")
	seed.Username, seed.Password = "edge", "edge-password"
	topo := Topology{Sentinels: []string{sentinel}, MasterName: "m", Sentinel: options("")}

	// when the router dials without the Sentinel's password, then it fails
	if c, _, err := newRouter(seed, topo, "s").dial(); err == nil {
		c.Close()
		t.Fatal("dialed through a Sentinel without its password")
	}

	// when a writer has both, then it writes to the master
	topo.Sentinel.Password = "sentinel-password"
	w := Start(&Config{Name: "w", Stream: "s", Redis: seed, Sink: &sink{}, Topology: topo})
	defer w.Close()
	w.Enqueue(revocation(1))
	c, err := resp.Dial(&resp.Options{Address: master, Username: "edge", Password: "edge-password", DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 10*time.Second, "the record on the master", func() bool { n, _ := c.Do("XLEN", "s"); return n == int64(1) })
}

func TestSentinelOverTLS(t *testing.T) {
	// given a master and a Sentinel that serve TLS only, with a
	// certificate of their own CA
	dir := t.TempDir()
	cert, key, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsOptions := func(addr string) *resp.Options {
		o := options(addr)
		o.TLS, o.CAFile = true, cert
		return o
	}
	tlsArgs := []string{"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required: %v", err)
	}
	port := freePort(t)
	master, _ := runServer(t, bin, append([]string{"--port", "0", "--tls-port", port, "--bind", "127.0.0.1", "--dir", t.TempDir(), "--save", "", "--daemonize", "no"}, tlsArgs...),
		tlsOptions("127.0.0.1:"+port), t.TempDir())
	sentinelPort := freePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	body := "port 0\ntls-port " + sentinelPort + "\nbind 127.0.0.1\ndir " + dir + "\ntls-cert-file " + cert + "\ntls-key-file " + key +
		"\ntls-ca-cert-file " + cert + "\ntls-auth-clients no\ntls-replication yes\nsentinel monitor m 127.0.0.1 " + port + " 1\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinelBin, args := sentinelCommand(t, conf)
	sentinel, _ := runServer(t, sentinelBin, args, tlsOptions("127.0.0.1:"+sentinelPort), dir)

	// when a writer finds the master through the Sentinel, both over TLS
	topo := Topology{Sentinels: []string{sentinel}, MasterName: "m", Sentinel: tlsOptions("")}
	w := Start(&Config{Name: "w", Stream: "s", Redis: tlsOptions(""), Sink: &sink{}, Topology: topo})
	defer w.Close()
	w.Enqueue(revocation(1))

	// then the record is on the master
	c, err := resp.Dial(tlsOptions(master))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 10*time.Second, "the record on the master", func() bool { n, _ := c.Do("XLEN", "s"); return n == int64(1) })
	if st := w.Status().Failover; st.Master != master {
		t.Fatalf("status %+v", st)
	}

	// and a router that does not speak TLS to the Sentinel finds none
	if c, _, err := newRouter(tlsOptions(""), Topology{Sentinels: []string{sentinel}, MasterName: "m", Sentinel: options("")}, "s").dial(); err == nil {
		c.Close()
		t.Fatal("found the master through a TLS Sentinel without TLS")
	}
}

func TestFailoverRepublishesWhatWasLost(t *testing.T) {
	// given a writer on the master a Sentinel names
	a, _ := startServer(t)
	b, _ := startServer(t)
	var mu sync.Mutex
	named := a
	sentinel := startFake(t, sentinelReply(&mu, &named))
	w := Start(&Config{Name: "w", Stream: "s", Redis: options(""), Sink: &sink{},
		Topology: Topology{Sentinels: []string{sentinel.addr()}, MasterName: "m", Sentinel: options("")}})
	defer w.Close()
	for i := 0; i < 5; i++ {
		w.Enqueue(revocation(i))
	}
	eventually(t, 10*time.Second, "5 records on A", func() bool { return do(t, a, "XLEN", "s") == int64(5) })

	// when A becomes a replica of B, an empty master (as after a failover
	// to a replica that had none of them), and the Sentinel names B
	mu.Lock()
	named = b
	mu.Unlock()
	do(t, a, "REPLICAOF", "127.0.0.1", strings.Split(b, ":")[1])
	w.Enqueue(revocation(5))

	// then the writer meets READONLY on A (or its reader is unblocked
	// there), asks the Sentinel again, writes to B, and writes again the 5
	// records B never had (A, now B's replica, gets them from B)
	eventually(t, 20*time.Second, "6 records on B", func() bool { return do(t, b, "XLEN", "s") == int64(6) })
	// (The ledger records an entry once the writer has read its XADD's
	// reply, which may come just after B holds it.)
	ledger := func() bool {
		st := w.Status().Failover
		return st.Master == b && st.Failovers >= 1 && st.Republished == 5 && st.Remembered == 6
	}
	if !ledger() {
		eventually(t, 10*time.Second, fmt.Sprintf("the ledger (now %+v)", w.Status().Failover), ledger)
	}
	// and the records on B are the six, each once
	s := &sink{}
	r := Start(&Config{Name: "r", Stream: "s", Redis: options(b), Sink: s})
	defer r.Close()
	eventually(t, 10*time.Second, "reader ready", func() bool { return r.Status().Ready })
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[[32]byte]int{}
	for _, rec := range s.recs {
		seen[rec.Digest]++
	}
	if len(s.recs) != 6 || len(seen) != 6 {
		t.Fatalf("B holds %d records, %d distinct", len(s.recs), len(seen))
	}
}

func TestSentinelFailover(t *testing.T) {
	// given a master, its replica and a Sentinel, and a writer and a
	// reader through the Sentinel
	master, stopMaster := startServer(t)
	replicaAddr, _ := startServer(t, "--replicaof", "127.0.0.1", strings.Split(master, ":")[1])
	sentinel := startSentinel(t, master)
	eventually(t, 10*time.Second, "the replica in sync", func() bool {
		info, _ := do(t, replicaAddr, "INFO", "replication").(string)
		return strings.Contains(info, "master_link_status:up")
	})
	topo := Topology{Sentinels: []string{sentinel}, MasterName: "m", Sentinel: options("")}
	w := Start(&Config{Name: "w", Stream: "s", Redis: options(""), Sink: &sink{}, Topology: topo})
	defer w.Close()
	s := &sink{}
	r := Start(&Config{Name: "r", Stream: "s", Redis: options(""), Sink: s, Topology: topo})
	defer r.Close()
	w.Enqueue(revocation(1))
	eventually(t, 10*time.Second, "the reader has the first", func() bool { return s.Count() == 1 })

	// when the master dies and the Sentinel promotes the replica
	stopMaster()
	w.Enqueue(revocation(2))

	// then both follow, and the reader gets the second
	// (The reader may read the first again: it rewinds on another node.)
	eventually(t, 30*time.Second, "the reader has the second", func() bool { return s.has(revocation(2).Digest) })
	if st := w.Status().Failover; st.Master != replicaAddr || st.Failovers < 1 {
		t.Fatalf("writer %+v", st)
	}
	if st := r.Status().Failover; st.Master != replicaAddr {
		t.Fatalf("reader %+v", st)
	}
}

// clusterNode starts a one-node Redis Cluster that owns every slot.
func clusterNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addr, _ := startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	do(t, addr, "CLUSTER", "ADDSLOTSRANGE", "0", strconv.Itoa(resp.Slots-1))
	eventually(t, 10*time.Second, "cluster ok", func() bool {
		info, _ := do(t, addr, "CLUSTER", "INFO").(string)
		return strings.Contains(info, "cluster_state:ok")
	})
	return addr
}

func TestClusterRedirects(t *testing.T) {
	tests := []struct {
		desc  string
		kind  string // MOVED or ASK
		moved int64
		asked int64
	}{
		{desc: "MOVED moves the stream to its node", kind: "MOVED", moved: 1},
		{desc: "ASK sends one command there, after ASKING", kind: "ASK", asked: 2},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a node that owns the stream's slot, and one that
			// redirects there
			owner := clusterNode(t)
			const stream = "{edge}"
			slot := strconv.Itoa(resp.KeySlot(stream))
			other := startFake(t, func(args []string) string {
				switch strings.ToUpper(args[0]) {
				case "XADD", "XREAD":
					return "-" + test.kind + " " + slot + " " + owner + "\r\n"
				case "EXISTS":
					return ":0\r\n"
				}
				return "+OK\r\n"
			})

			// when a writer and a reader are pointed at the other
			w := Start(&Config{Name: "w", Stream: stream, Redis: options(other.addr()), Sink: &sink{}, Topology: Topology{Cluster: true}})
			defer w.Close()
			s := &sink{}
			r := Start(&Config{Name: "r", Stream: stream, Redis: options(other.addr()), Sink: s, Topology: Topology{Cluster: true}})
			defer r.Close()
			w.Enqueue(revocation(1))

			// then the record reaches the owner, and the reader
			eventually(t, 10*time.Second, "the reader has it", func() bool { return s.Count() == 1 })
			if n := do(t, owner, "XLEN", stream); n != int64(1) {
				t.Fatalf("XLEN on the owner: %v", n)
			}
			fw, fr := w.Status().Failover, r.Status().Failover
			if fw.Moved+fr.Moved < test.moved || fw.Asked+fr.Asked < test.asked {
				t.Fatalf("writer %+v, reader %+v", fw, fr)
			}
			if test.kind == "MOVED" && (fw.Master != owner || fr.Master != owner) {
				t.Fatalf("writer %+v, reader %+v: not on the owner", fw, fr)
			}
		})
	}
}

func TestClusterMovedForAnotherSlotIsAnError(t *testing.T) {
	// given a node that redirects the stream to a slot not its own (the
	// marker key in another slot, say)
	other := startFake(t, func([]string) string { return "-MOVED 1 127.0.0.1:1\r\n" })
	rt := newRouter(options(other.addr()), Topology{Cluster: true}, "stream")
	c, addr, err := rt.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Do("XADD", "stream", "*", "d", "x")
	// then the router does not follow it
	if rt.follow(err, addr) || rt.current() != other.addr() {
		t.Fatalf("followed a MOVED for another slot: now %s", rt.current())
	}
}

func TestWaitReplicas(t *testing.T) {
	// given a master with one replica
	master, _ := startServer(t)
	replicaAddr, _ := startServer(t, "--replicaof", "127.0.0.1", strings.Split(master, ":")[1])
	eventually(t, 10*time.Second, "the replica in sync", func() bool {
		info, _ := do(t, replicaAddr, "INFO", "replication").(string)
		return strings.Contains(info, "master_link_status:up")
	})
	tests := []struct {
		desc    string
		replica int
		short   bool
	}{
		{desc: "one replica acknowledges", replica: 1},
		{desc: "two are asked for: WAIT times out, the record is written all the same", replica: 2, short: true},
	}
	for i, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// when a replicator writes with redis.waitReplicas
			stream := "wait-" + strconv.Itoa(i)
			s := &sink{}
			w := Start(&Config{Name: "w", Stream: stream, Redis: options(master), Sink: s, WaitReplicas: test.replica, WaitTimeout: 200 * time.Millisecond})
			defer w.Close()
			w.Enqueue(revocation(1))
			eventually(t, 10*time.Second, "read back", func() bool { return s.has(revocation(1).Digest) })
			w.Enqueue(revocation(2))
			eventually(t, 10*time.Second, "the second read back", func() bool { return s.has(revocation(2).Digest) })
			w.Enqueue(revocation(3))
			eventually(t, 10*time.Second, "on the replica", func() bool { return do(t, replicaAddr, "XLEN", stream) == int64(3) })

			// then an acknowledged record read back leaves the ledger at
			// once; one WAIT did not acknowledge stays, and is counted
			if test.short {
				eventually(t, 10*time.Second, "three WAITs short", func() bool { return w.Status().Failover.WaitShort == 3 })
			}
			f := w.Status().Failover
			if (!test.short && (f.WaitShort != 0 || f.Remembered > 2)) || (test.short && f.Remembered != 3) {
				t.Fatalf("status %+v", f)
			}
		})
	}
}

func TestWritesGoOnWhenTheCheckIsRefused(t *testing.T) {
	// given an ACL user that may not XRANGE, and a writer that wrote once
	addr, _ := startServer(t, "--user", "edge", "on", ">edge-password", "~*", "+@all", "-xrange")
	opts := options(addr)
	opts.Username, opts.Password = "edge", "edge-password"
	w := Start(&Config{Name: "w", Stream: "s", Redis: opts, Sink: &sink{}})
	defer w.Close()
	w.Enqueue(revocation(1))
	eventually(t, 10*time.Second, "the first written", func() bool { return do(t, addr, "XLEN", "s") == int64(1) })

	// when its connections are cut, and it writes again
	do(t, addr, "CLIENT", "KILL", "USER", "edge")
	w.Enqueue(revocation(2))

	// then the check after the reconnect is refused, and the write goes on
	eventually(t, 10*time.Second, "the second written", func() bool { return do(t, addr, "XLEN", "s") == int64(2) })
}
