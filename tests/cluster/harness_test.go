package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// binary is the callguard binary, built once per test run. The guards are
// built without -race unless CALLGUARD_CLUSTER_RACE=1: three race-built
// guards under load do not fit on CI's two cores next to the race-built
// test, and the suite is about processes failing, not data races (the
// packages' own tests run under -race).
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "callguard-cluster-")
	if err != nil {
		return "", err
	}
	binaryDir.Store(&dir)
	bin := filepath.Join(dir, "callguard")
	args := []string{"build", "-o", bin}
	if os.Getenv("CALLGUARD_CLUSTER_RACE") == "1" {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../../cmd/callguard")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// binaryDir is where binary built it, removed by TestMain.
var binaryDir atomic.Pointer[string]

func TestMain(m *testing.M) {
	code := m.Run()
	if dir := binaryDir.Load(); dir != nil {
		_ = os.RemoveAll(*dir)
	}
	os.Exit(code)
}

// adminToken is every node's GUARD_ADMIN_TOKEN.
const adminToken = "failure-suite-admin-token-0123456789"

// options shape a cluster.
type options struct {
	nodes       int      // guard nodes (3)
	etcdMembers int      // etcd members (1)
	env         []string // extra GUARD_* settings for every node
	// prepare, when set, may change a node before its first start (its
	// addresses, a network namespace).
	prepare func(n *Node)
}

// Cluster is the guards of one scenario and what they need: etcd,
// PostgreSQL and a PBX. The harness is the nodes' supervisor: a node that
// exits without being told to is restarted, under its next name.
type Cluster struct {
	t     *testing.T
	dir   string
	bin   string
	name  string
	opts  options
	etcd  *etcdKit
	pg    *pgKit
	PBX   *siptest.RecordingPBX
	Nodes []*Node

	mu       sync.Mutex
	timeline []string
	start    time.Time
	closed   bool // the test is ending: no node starts again
}

// Node is one guard node. Its SIP, admin and metrics addresses stay the
// same across restarts, so the load and the admin client keep finding it;
// its name, cluster port and process are new at each start.
type Node struct {
	c       *Cluster
	Index   int
	SIP     string
	Admin   string
	Metrics string
	DataDir string
	logPath string
	// clusterHost is the address remoting listens on and advertises
	// (127.0.0.1 unless prepare says otherwise); env is appended last
	// (later settings win); wrap runs the binary through a command
	// (ip netns exec NAME).
	clusterHost string
	env         []string
	wrap        []string

	mu       sync.Mutex
	gen      int
	name     string
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	expected bool // the harness asked the process to end
	stopped  bool // SIGSTOPped
	backoff  time.Duration
	exits    []Exit
}

// Exit is a node process that ended.
type Exit struct {
	Name     string
	At       time.Time
	Err      error
	Expected bool
}

// newCluster starts etcd, PostgreSQL, a PBX and o.nodes guards, and waits
// until each guard is ready. Everything stops when t ends.
func newCluster(t *testing.T, o options) *Cluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 3
	}
	if o.etcdMembers == 0 {
		o.etcdMembers = 1
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "failure-suite-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the nodes' data and logs are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	c := &Cluster{t: t, dir: dir, bin: bin, opts: o, start: time.Now(),
		name: fmt.Sprintf("fs%d", time.Now().UnixNano()%1_000_000_000)}
	c.etcd = startEtcd(t, filepath.Join(c.dir, "etcd"), o.etcdMembers)
	c.pg = startPostgres(t, filepath.Join(c.dir, "pg"))
	c.PBX, err = siptest.NewRecordingPBX(siptest.PBXConfig{
		NoInBandDetection: true,
		Behave:            func(*siptest.PBXCall) siptest.Behaviour { return siptest.Behaviour{NoRinging: true, Quiet: true} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.PBX.Close() })
	t.Cleanup(c.stopAll)
	for i := range o.nodes {
		c.addNode(i)
	}
	c.WaitReady(60 * time.Second)
	return c
}

// addNode starts node i (0-based) without waiting for it.
func (c *Cluster) addNode(i int) *Node {
	c.t.Helper()
	n := &Node{
		c: c, Index: i,
		SIP:         "127.0.0.1:" + strconv.Itoa(porttest.Port(c.t)),
		Admin:       "127.0.0.1:" + strconv.Itoa(porttest.Port(c.t)),
		Metrics:     "127.0.0.1:" + strconv.Itoa(porttest.Port(c.t)),
		DataDir:     filepath.Join(c.dir, fmt.Sprintf("node%d", i+1)),
		logPath:     filepath.Join(c.dir, fmt.Sprintf("node%d.log", i+1)),
		clusterHost: "127.0.0.1",
	}
	if c.opts.prepare != nil {
		c.opts.prepare(n)
	}
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.Nodes = append(c.Nodes, n)
	c.mu.Unlock()
	if err := n.start(); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// Logf logs with the time since the cluster started and keeps the line
// for the scenario's timeline.
func (c *Cluster) Logf(format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("+%6.2fs (%s) ", now.Sub(c.start).Seconds(), now.Format("15:04:05.000")) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.timeline = append(c.timeline, line)
	c.mu.Unlock()
	c.t.Log(line)
}

// environ is node n's environment for its next start.
func (n *Node) environ(name string, clusterPort int) []string {
	c := n.c
	// RTP ports apart per node: the three share one loopback address.
	rtpLo := 20000 + n.Index*2000
	env := []string{
		"GUARD_NODE_NAME=" + name,
		"GUARD_DATA_DIR=" + n.DataDir,
		"GUARD_SIP_LISTEN=" + n.SIP,
		"GUARD_ADMIN_LISTEN=" + n.Admin,
		"GUARD_METRICS_LISTEN=" + n.Metrics,
		"GUARD_CLUSTER_LISTEN=" + net.JoinHostPort(n.clusterHost, strconv.Itoa(clusterPort)),
		"GUARD_ADMIN_TOKEN=" + adminToken,
		"GUARD_TRUSTED_PEERS=127.0.0.1/32",
		"GUARD_PBX_URI=" + c.PBX.URI(),
		fmt.Sprintf("GUARD_RTP_PORTS=%d-%d", rtpLo, rtpLo+1999),
		"GUARD_LIMIT_LEVEL=7", // an abusive caller is rejected, not challenged: every outcome is a final status
		"GUARD_ESCALATION_LEVEL=8",
		"GUARD_CLUSTER_NAME=" + c.name,
		"GUARD_ATTACK_RATE=0", // the suite's load is fresh numbers to one line on purpose
	}
	env = append(env, c.etcd.env()...)
	env = append(env, c.pg.env()...)
	env = append(env, "GUARD_CLUSTER_ADVERTISED_HOST="+n.clusterHost)
	env = append(env, c.opts.env...)
	return append(env, n.env...)
}

// start runs the node's next generation.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Checked under n.mu: stopAll marks the cluster closed before it
	// looks at each node, so a node is either started before it looks
	// (and stopped) or not at all.
	if n.c.isClosed() {
		return errors.New("the test is ending")
	}
	n.gen++
	n.name = fmt.Sprintf("node%d.%d", n.Index+1, n.gen)
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s starts at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
	port, err := porttest.Reserve(1)
	if err != nil {
		logf.Close()
		return err
	}
	argv := append(append([]string(nil), n.wrap...), n.c.bin, "serve")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), n.environ(n.name, port)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.cmd, n.done, n.exitErr, n.expected, n.stopped = cmd, make(chan struct{}), nil, false, false
	done, name, started := n.done, n.name, time.Now()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		ex := Exit{Name: name, At: time.Now(), Err: err, Expected: n.expected}
		n.exits = append(n.exits, ex)
		n.mu.Unlock()
		close(done)
		if !ex.Expected {
			// A supervisor's crash-loop back-off: 200 ms after a process
			// that ran a while, doubling up to 3 s while starts fail.
			n.mu.Lock()
			if time.Since(started) > 10*time.Second {
				n.backoff = 0
			}
			n.backoff = min(max(2*n.backoff, 200*time.Millisecond), 3*time.Second)
			wait := n.backoff
			n.mu.Unlock()
			if n.c.isClosed() {
				return
			}
			n.c.Logf("%s exited by itself (%v): the supervisor restarts it in %v", name, err, wait)
			time.Sleep(wait)
			if n.c.isClosed() {
				return
			}
			if err := n.start(); err != nil {
				n.c.Logf("restart of node%d failed: %v", n.Index+1, err)
				return
			}
			n.c.Logf("node%d restarted as %s", n.Index+1, n.Name())
		}
	}()
	return nil
}

// cleanEnv is the test's environment without GUARD_ settings of its own.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GUARD_") {
			out = append(out, kv)
		}
	}
	return out
}

// Name is the node's current name (node2.1, then node2.2 after a restart).
func (n *Node) Name() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.name
}

// Exits lists the node's processes that ended.
func (n *Node) Exits() []Exit {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Exit(nil), n.exits...)
}

// Running reports whether the node's current process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *Node) signal(sig syscall.Signal, expectExit bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if expectExit {
		n.expected = true
	}
	switch sig {
	case syscall.SIGSTOP:
		n.stopped = true
	case syscall.SIGCONT:
		n.stopped = false
	}
	_ = n.cmd.Process.Signal(sig)
}

// Kill SIGKILLs the node and waits for the process to be gone. The
// supervisor does not restart it: the scenario does, with Start.
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL, true)
	n.wait(10 * time.Second)
	n.c.Logf("%s SIGKILLed", n.Name())
}

// Pause sends SIGSTOP; Resume SIGCONT.
func (n *Node) Pause() {
	n.signal(syscall.SIGSTOP, false)
	n.c.Logf("%s SIGSTOPped", n.Name())
}

func (n *Node) Resume() {
	n.signal(syscall.SIGCONT, false)
	n.c.Logf("%s SIGCONTinued", n.Name())
}

// Stop asks the node to stop with SIGINT and waits for it to end (SIGKILL
// after 20 s). It reports whether the process ended cleanly.
func (n *Node) Stop() error {
	n.mu.Lock()
	if n.stopped {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
	}
	n.mu.Unlock()
	n.signal(syscall.SIGINT, true)
	if !n.wait(20 * time.Second) {
		n.signal(syscall.SIGKILL, true)
		n.wait(10 * time.Second)
		return fmt.Errorf("%s did not stop within 20 s of SIGINT", n.Name())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exitErr != nil {
		return fmt.Errorf("%s stopped with %v", n.name, n.exitErr)
	}
	return nil
}

// Restart stops the node (SIGINT) and starts its next generation.
func (n *Node) Restart() error {
	err := n.Stop()
	if serr := n.start(); serr != nil {
		return serr
	}
	n.c.Logf("node%d restarted as %s", n.Index+1, n.Name())
	return err
}

// Start starts the node's next generation after a Kill or Stop.
func (n *Node) Start() error {
	if err := n.start(); err != nil {
		return err
	}
	n.c.Logf("node%d started as %s", n.Index+1, n.Name())
	return nil
}

func (n *Node) wait(d time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Ready asks the node's /readyz; nil when it answers 200.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Metrics+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d: %s", resp.StatusCode, strings.TrimSpace(body.String()))
	}
	return nil
}

// WaitReady waits until n answers ready, or fails the test.
func (n *Node) WaitReady(d time.Duration) {
	n.c.t.Helper()
	ctx, cancel := context.WithTimeout(n.c.t.Context(), d)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if last = n.Ready(ctx); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.c.t.Fatalf("%s not ready within %v: %v\n%s", n.Name(), d, last, n.LogTail(40))
}

// WaitReady waits for every node.
func (c *Cluster) WaitReady(d time.Duration) {
	c.t.Helper()
	for _, n := range c.nodes() {
		n.WaitReady(d)
	}
}

func (c *Cluster) nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.Nodes...)
}

// LogTail is the last lines of the node's log (all its generations).
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// Log is the node's whole log.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Client is an admin API client for the node.
func (n *Node) Client() *adminapi.Client {
	return &adminapi.Client{BaseURL: "http://" + n.Admin, Token: adminToken, HTTP: &http.Client{Timeout: 15 * time.Second}}
}

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// stopAll stops every node at the end of the test (and keeps the
// supervisor from starting any again); a node that does not stop cleanly
// is logged with the tail of its log.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range c.nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !n.Running() {
				return
			}
			if err := n.Stop(); err != nil {
				c.t.Logf("%v\n%s", err, n.LogTail(30))
			}
		}()
	}
	wg.Wait()
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		last := cond()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", d, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
