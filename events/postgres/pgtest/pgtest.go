// Package pgtest runs a throwaway PostgreSQL server for tests: initdb into a
// temporary directory, postgres on a free loopback port, a fresh database per
// caller. Start is for a test; StartServer is for code that runs outside a
// testing.T (a process-level test that starts the server once).
//
// PostgreSQL refuses to run as root, so when the test runs as uid 0 the
// server runs as the "postgres" user and the directory is handed to it.
// The binaries are found with pg_config --bindir, then in
// /usr/lib/postgresql/*/bin, then on PATH; PGTEST_BINDIR overrides all three.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries means initdb or postgres could not be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found; install the Debian package postgresql or set PGTEST_BINDIR")

// DefaultDatabase is the database StartServer creates and URL points at.
const DefaultDatabase = "callguard"

// Option changes how a server is run.
type Option func(*config)

type config struct {
	fsync    bool
	maxConns int
	extra    []string
}

// WithFsync turns fsync on (the default) or off. Off is only for load tests
// that do not care about durability across an OS crash; synchronous_commit
// stays on either way, so a commit still waits for its WAL write.
func WithFsync(on bool) Option { return func(c *config) { c.fsync = on } }

// WithMaxConnections sets max_connections (default 200).
func WithMaxConnections(n int) Option { return func(c *config) { c.maxConns = n } }

// WithSetting adds a "-c name=value" setting to the postgres command line.
func WithSetting(name, value string) Option {
	return func(c *config) { c.extra = append(c.extra, name+"="+value) }
}

// Server is a running (or stopped) PostgreSQL server owned by the test.
type Server struct {
	bin  string
	dir  string // holds data/, the socket and postgres.log
	port int
	cfg  config
	cred *syscall.Credential // nil unless the server runs as another user

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	seq  int           // numbers the databases of NewDatabase
}

// Start runs a new server for t in its own temporary directory and stops
// it, removing the directory, when t ends. It skips t when the binaries are
// missing and fails it when the server does not start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := BinDir(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	// Not t.TempDir: its parent is 0700 root-owned, which the postgres user
	// could not enter.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: temp dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := StartServer(ctx, dir, opts...)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest: stop: %v", err)
		}
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("pgtest: server files kept in %s", dir)
		}
	})
	return s
}

// StartServer initialises a cluster in dir (which must exist and should be
// empty), starts postgres on a free loopback port and creates
// DefaultDatabase. The caller stops it with Stop.
func StartServer(ctx context.Context, dir string, opts ...Option) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cfg := config{fsync: true, maxConns: 200}
	for _, o := range opts {
		o(&cfg)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, dir: dir, cfg: cfg}
	if os.Geteuid() == 0 {
		if s.cred, err = handOver(dir); err != nil {
			return nil, err
		}
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	// A free port can be taken between probing and binding: try a few.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.Start(ctx)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+DefaultDatabase); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// BinDir returns the directory of initdb and postgres.
func BinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("PGTEST_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w (PGTEST_BINDIR=%s has no initdb and postgres)", ErrNoBinaries, dir)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// handOver gives dir to the postgres user and makes its ancestors
// enterable, so that a server started as root can drop to that user.
func handOver(dir string) (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("pgtest: chown %s: %w", dir, err)
	}
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return nil, fmt.Errorf("pgtest: make %s enterable for postgres: %w", p, err)
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	port, err := porttest.Reserve(1)
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	return port, nil
}

func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	// Own process group: a Ctrl-C meant for the test does not reach the
	// server, which Stop shuts down cleanly instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	return cmd
}

func (s *Server) initdb(ctx context.Context) error {
	var out bytes.Buffer
	cmd := s.command(ctx, "initdb", "-D", s.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out.String())
	}
	return nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// LogFile is the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "postgres.log") }

// Dir is the directory holding the server's data and log.
func (s *Server) Dir() string { return s.dir }

// Port is the server's TCP port on 127.0.0.1; it stays the same across
// Stop and Start.
func (s *Server) Port() int { return s.port }

// URL is the connection URL of DefaultDatabase.
func (s *Server) URL() string { return s.DatabaseURL(DefaultDatabase) }

// DatabaseURL is the connection URL of database db.
func (s *Server) DatabaseURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Start starts the server again after Stop or Kill (and is how
// StartServer starts it), and waits until it accepts connections.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: server already running")
	}
	fsync := "off"
	if s.cfg.fsync {
		fsync = "on"
	}
	sock := s.dir
	if len(sock) > 90 { // a socket path is limited to ~107 bytes
		sock = ""
	}
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sock,
		"-c", "fsync=" + fsync,
		"-c", "synchronous_commit=on",
		"-c", "full_page_writes=" + fsync,
		"-c", "max_connections=" + strconv.Itoa(s.cfg.maxConns),
		"-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning",
	}
	for _, kv := range s.cfg.extra {
		args = append(args, "-c", kv)
	}
	logf, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// Not CommandContext: ctx bounds the start, not the server's life.
	cmd := s.command(context.Background(), "postgres", args...)
	// Should the test process die without stopping it, the server shuts
	// down at once instead of running on (SIGQUIT: immediate shutdown).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(ctx, done); err != nil {
		s.stopLocked(syscall.SIGKILL)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	url := s.DatabaseURL("postgres")
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, url)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited during start-up: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not accepting connections: %w (last error %v)\n%s", ctx.Err(), err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.LogFile())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop shuts the server down cleanly (a fast shutdown: open sessions are
// ended, committed work is kept). Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGINT)
}

// Kill ends the postmaster and every backend at once with SIGKILL, as a
// crash would, and waits until they are gone; Start then recovers from
// the WAL.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL)
}

// Restart is Stop then Start on the same port and data.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	var kids []int
	if sig == syscall.SIGKILL {
		// Each backend is a session leader of its own (PostgreSQL calls
		// setsid), so the postmaster's group does not reach them: kill
		// them one by one, all at once, as a crash would.
		// SIGSTOP first, so that no backend is forked after the list.
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		kids = children(pid)
		_ = syscall.Kill(pid, sig)
		for _, k := range kids {
			_ = syscall.Kill(k, sig)
		}
	} else {
		_ = s.cmd.Process.Signal(sig)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-s.done
	}
	// A backend that outlived the postmaster keeps the shared memory
	// attached and stops the next start: wait until all have exited.
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range kids {
		for alive(k) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.cmd, s.done = nil, nil
	return nil
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	dirs, _ := os.ReadDir("/proc")
	var out []int
	for _, d := range dirs {
		n, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie has released its memory and
// counts as gone).
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the parent and state of pid from /proc/pid/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// NewDatabase creates an empty database with a new name and returns its
// URL, so that tests can share one server without seeing each other's data.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("db%d", s.seq)
	s.mu.Unlock()
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.DatabaseURL(name), nil
}

// NewDatabaseT is NewDatabase that fails t on error.
func (s *Server) NewDatabaseT(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return url
}

func (s *Server) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.DatabaseURL(db))
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}
