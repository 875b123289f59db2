// Package etcdtest runs real etcd servers for tests: one member, or a
// cluster of several, on free loopback ports with their data in a
// directory the caller owns. The servers are the etcd binary (Debian's
// etcd-server package installs /usr/bin/etcd; GUARD_ETCD_BIN overrides),
// run as child processes so that tests can stop, kill and restart them.
//
// Start and StartCluster take no testing.T, so process-level suites can
// drive them from their own harness; New and NewCluster are the testing
// wrappers that skip when etcd is missing and stop the servers on cleanup.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// ErrNoEtcd is returned by Binary (and so by Start) when no etcd binary
// is installed.
var ErrNoEtcd = errors.New("etcd binary not found (install Debian's etcd-server, or set GUARD_ETCD_BIN)")

// Binary is the path of the etcd binary: $GUARD_ETCD_BIN, /usr/bin/etcd,
// or etcd on the PATH.
func Binary() (string, error) {
	if p := os.Getenv("GUARD_ETCD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: GUARD_ETCD_BIN: %v", ErrNoEtcd, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	return "", ErrNoEtcd
}

// Member is one etcd server process. Its ports and data directory stay the
// same across Stop/Kill and Start, so a restarted member rejoins its
// cluster with its data.
type Member struct {
	Name      string
	Dir       string // data directory
	ClientURL string // http://127.0.0.1:port
	PeerURL   string

	bin          string
	initCluster  string
	clusterToken string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// Cluster is a set of etcd members that form one etcd cluster.
type Cluster struct {
	Members []*Member
}

// Start runs a single-member etcd in dir (created if missing) and waits
// until it answers as healthy or ctx ends.
func Start(ctx context.Context, dir string) (*Member, error) {
	c, err := StartCluster(ctx, dir, 1)
	if err != nil {
		return nil, err
	}
	return c.Members[0], nil
}

// StartCluster runs an n-member etcd cluster, each member's data under
// dir/<name>, and waits until every member answers as healthy.
func StartCluster(ctx context.Context, dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcd cluster of %d members", n)
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd dir: %w", err)
	}
	ports, err := freePorts(ctx, 2*n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	var initial []string
	token := fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	for i := range n {
		m := &Member{
			Name:         fmt.Sprintf("etcd%d", i),
			ClientURL:    "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			PeerURL:      "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
			bin:          bin,
			clusterToken: token,
		}
		m.Dir = filepath.Join(dir, m.Name)
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.initCluster = strings.Join(initial, ",")
		if err := m.spawn(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	// A member is healthy only once a quorum runs, so all are spawned
	// before any is awaited.
	for _, m := range c.Members {
		if err := m.WaitHealthy(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// New starts a single-member etcd for t in a temporary directory and stops
// it when t ends. It skips t when etcd is not installed.
func New(t testing.TB) *Member {
	t.Helper()
	return NewCluster(t, 1).Members[0]
}

// NewCluster is New for an n-member cluster.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, err := Binary(); err != nil {
		t.Skipf("etcd tests skipped: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := StartCluster(ctx, t.TempDir(), n)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Stop stops every member that runs.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// Endpoints is the member's client URL as a list, what clients take.
func (m *Member) Endpoints() []string { return []string{m.ClientURL} }

func (m *Member) spawn() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("etcd %s already runs", m.Name)
	}
	logf, err := os.OpenFile(m.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("etcd %s log: %w", m.Name, err)
	}
	cmd := exec.Command(m.bin,
		"--name", m.Name,
		"--data-dir", m.Dir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.initCluster,
		"--initial-cluster-token", m.clusterToken,
		"--initial-cluster-state", "new", // ignored once the data dir exists
		"--logger", "zap", "--log-level", "warn",
	)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's ^C reaches the test, not etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.cmd, m.done, m.log = cmd, done, logf
	return nil
}

// cleanEnv drops ETCD_* variables, which etcd reads as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// Start restarts a stopped or killed member on its old ports and data and
// waits until it is healthy (which, in a cluster, needs a quorum up).
func (m *Member) Start(ctx context.Context) error {
	if err := m.spawn(); err != nil {
		return err
	}
	return m.WaitHealthy(ctx)
}

// Stop ends the member with SIGTERM (SIGKILL after 10 s) and waits for it.
// Stopping a stopped member does nothing.
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

// Kill ends the member with SIGKILL and waits for it.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

// Running reports whether the member's process runs.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd, m.done = nil, nil
}

// WaitHealthy polls the member's /health until it says true or ctx ends.
func (m *Member) WaitHealthy(ctx context.Context) error {
	var last error
	for {
		if last = m.Healthy(ctx); last == nil {
			return nil
		}
		m.mu.Lock()
		done := m.done
		m.mu.Unlock()
		if done == nil {
			return fmt.Errorf("etcd %s is not running", m.Name)
		}
		select {
		case <-done:
			return fmt.Errorf("etcd %s exited (log: %s): %s", m.Name, m.Dir+".log", tail(m.Dir+".log"))
		case <-ctx.Done():
			return fmt.Errorf("etcd %s not healthy: %w (last: %v)", m.Name, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Healthy asks the member's /health once: nil when it has a leader and
// answers.
func (m *Member) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd %s health: %s %s", m.Name, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePorts finds n free loopback ports, reserved against every other
// test process until this one exits (see porttest): members are restarted
// on the same ports by tests.
func freePorts(_ context.Context, n int) ([]int, error) {
	var ports []int
	for range n {
		p, err := porttest.Reserve(1)
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
