package cluster

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// netPartition is node 3 in a network namespace of its own, joined to the
// host by a veth pair: the host end holds hostIP (the other guards'
// remoting listens there) and proxyIP (where the test forwards etcd and
// PostgreSQL), the namespace end nsIP (node 3's every listener).
type netPartition struct {
	t                     *testing.T
	ns, hostIf, nsIf      string
	hostIP, proxyIP, nsIP string
	etcdProxy, pgProxy    *tcpProxy
	pgURL                 string
	ruleArgs              []string
}

// ip runs ip(8) with args; within the namespace when ns is set.
func ip(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"netns", "exec", ns, "ip"}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetPartition makes the namespace and the veth pair, or skips t where
// network namespaces are not available (not root, no ip(8), no
// CAP_SYS_ADMIN/CAP_NET_ADMIN).
func newNetPartition(t *testing.T) *netPartition {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("scenario 8 makes network namespaces and veth pairs: it needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("scenario 8 needs ip(8) (iproute2) for network namespaces")
	}
	id := os.Getpid()%200 + 20
	p := &netPartition{
		t:      t,
		ns:     fmt.Sprintf("cgpart%d", os.Getpid()),
		hostIf: fmt.Sprintf("cgh%d", os.Getpid()), nsIf: fmt.Sprintf("cgn%d", os.Getpid()),
		hostIP: fmt.Sprintf("10.213.%d.1", id), proxyIP: fmt.Sprintf("10.213.%d.3", id), nsIP: fmt.Sprintf("10.213.%d.2", id),
	}
	if err := ip("", "netns", "add", p.ns); err != nil {
		t.Skipf("network namespaces unavailable here: %v", err)
	}
	t.Cleanup(func() {
		if p.ruleArgs != nil {
			_ = ip("", append([]string{"rule", "del"}, p.ruleArgs...)...)
		}
		_ = ip("", "link", "del", p.hostIf)
		_ = ip("", "netns", "del", p.ns)
	})
	steps := [][]string{
		{"", "link add " + p.hostIf + " type veth peer name " + p.nsIf},
		{"", "link set " + p.nsIf + " netns " + p.ns},
		{"", "addr add " + p.hostIP + "/24 dev " + p.hostIf},
		{"", "addr add " + p.proxyIP + "/24 dev " + p.hostIf},
		{"", "link set " + p.hostIf + " up"},
		{p.ns, "addr add " + p.nsIP + "/24 dev " + p.nsIf},
		{p.ns, "link set " + p.nsIf + " up"},
		{p.ns, "link set lo up"},
	}
	for _, st := range steps {
		if err := ip(st[0], strings.Fields(st[1])...); err != nil {
			t.Skipf("cannot set up a veth pair into a network namespace here: %v", err)
		}
	}
	return p
}

// cutFromGuards drops traffic between node 3 and the other guards (their
// remoting) both ways; etcd and PostgreSQL, behind proxyIP, stay
// reachable.
func (p *netPartition) cutFromGuards() error {
	p.ruleArgs = []string{"from", p.hostIP, "to", p.nsIP, "blackhole"}
	if err := ip("", append([]string{"rule", "add"}, p.ruleArgs...)...); err != nil {
		p.ruleArgs = nil
		return err
	}
	return ip(p.ns, "route", "add", "blackhole", p.hostIP+"/32")
}

// heal undoes cutFromGuards.
func (p *netPartition) heal() error {
	err := ip("", append([]string{"rule", "del"}, p.ruleArgs...)...)
	p.ruleArgs = nil
	if e := ip(p.ns, "route", "del", "blackhole", p.hostIP+"/32"); err == nil {
		err = e
	}
	return err
}

// isolate takes the namespace's link down: node 3 reaches nothing, etcd
// and PostgreSQL included; rejoin brings it back.
func (p *netPartition) isolate() error { return ip(p.ns, "link", "set", p.nsIf, "down") }

func (p *netPartition) rejoin() error {
	if err := ip(p.ns, "link", "set", p.nsIf, "up"); err != nil {
		return err
	}
	return nil
}

// tcpProxy forwards connections from a listener to a target.
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, listen, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go func() {
			u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			_, _ = io.Copy(c, u)
			c.Close()
		}()
	}
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// Scenario 8: node 3 partitioned from the other guards. First from the
// guards only (etcd and PostgreSQL still reachable): it keeps its lease
// and its grains, and the other nodes' calls for them get 503 until the
// partition heals. Then from everything: its lease runs out, its grains
// re-activate on the others; when it comes back it finds its registration
// gone and exits non-zero. Throughout: no two committed writers for any
// caller (no interleaving, counts consecutive, replay agrees).
func TestScenario8NetworkPartition(t *testing.T) {
	allOnly(t)
	part := newNetPartition(t)
	third := func(n *Node) {
		if n.Index != 2 {
			n.clusterHost = part.hostIP
			return
		}
		n.clusterHost = part.nsIP
		n.SIP = net.JoinHostPort(part.nsIP, strconv.Itoa(porttest.Port(t)))
		n.Admin = net.JoinHostPort(part.nsIP, strconv.Itoa(porttest.Port(t)))
		n.Metrics = net.JoinHostPort(part.nsIP, strconv.Itoa(porttest.Port(t)))
		n.wrap = []string{"ip", "netns", "exec", part.ns}
		n.env = []string{
			"GUARD_TRUSTED_PEERS=" + part.hostIP + "/32," + part.proxyIP + "/32",
			"GUARD_ETCD_ENDPOINTS=http://" + part.etcdProxy.l.Addr().String(),
			"GUARD_POSTGRES_URL=" + part.pgURL,
		}
	}
	s := newScenario(t, options{prepare: func(n *Node) {
		if part.etcdProxy == nil {
			c := n.c
			part.etcdProxy = startProxy(t, net.JoinHostPort(part.proxyIP, "0"), strings.TrimPrefix(c.etcd.cluster.Endpoints()[0], "http://"))
			part.pgProxy = startProxy(t, net.JoinHostPort(part.proxyIP, "0"), "127.0.0.1:"+strconv.Itoa(c.pg.server.Port()))
			u, err := url.Parse(c.pg.server.URL())
			if err != nil {
				t.Fatal(err)
			}
			u.Host = part.pgProxy.l.Addr().String()
			part.pgURL = u.String()
		}
		third(n)
	}})
	c := s.c
	victim := c.Nodes[2]
	// The load reaches nodes 1 and 2 (the load client runs on loopback);
	// a third of the callers' grains live on node 3 all the same.
	d := loadDuration(t) + 20*time.Second
	load, wait := c.startLoadOn(s.cs, rate(t), d, c.Nodes[:2])
	time.Sleep(4 * time.Second)
	if err := part.cutFromGuards(); err != nil {
		t.Fatalf("partition: %v", err)
	}
	c.Logf("node3 cut off from the other guards (etcd and PostgreSQL still reachable)")
	time.Sleep(6 * time.Second)
	if err := part.heal(); err != nil {
		t.Fatalf("heal: %v", err)
	}
	c.Logf("partition healed")
	time.Sleep(3 * time.Second)
	exitsBefore := len(victim.Exits())
	if err := part.isolate(); err != nil {
		t.Fatalf("isolate: %v", err)
	}
	isolated := time.Now()
	c.Logf("node3 cut off from everything (etcd and PostgreSQL too)")
	time.Sleep(leaseTTL + 4*time.Second)
	if err := part.rejoin(); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	rejoined := time.Now()
	c.Logf("node3 reachable again after %.1fs", rejoined.Sub(isolated).Seconds())
	err := waitFor(s.ctx, 30*time.Second, func() error {
		if len(victim.Exits()) > exitsBefore {
			return nil
		}
		return fmt.Errorf("%s still running", victim.Name())
	})
	exitNote := "did not exit"
	if err == nil {
		ex := victim.Exits()[exitsBefore]
		exitNote = fmt.Sprintf("%s exited (%v) %.1fs after it could reach etcd again", ex.Name, ex.Err, ex.At.Sub(rejoined).Seconds())
		victim.WaitReady(60 * time.Second)
	}
	c.Logf("%s", exitNote)
	wait()
	f := s.figures("scenario 8 (network partition)", load)
	figs := c.checkLog(s.ctx, load.Calls(), s.acks, nil)
	t.Logf("FIGURES scenario 8: partitioned from the guards 6 s, then from everything %.1f s; %s; calls %d, answered %d (503: %d), lost %d; caller streams written by two activations turn about: %d",
		rejoined.Sub(isolated).Seconds(), exitNote, f.Calls, f.Answered, f.Busy, f.Lost, figs.Interleaved)
}
