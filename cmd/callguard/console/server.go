// Package console is the guard's web console: server-rendered pages
// (html/template, embedded) for the people who run the line — today's
// figures, a caller's standing and audit timeline with the whitelist and
// block forms, the lists, the reports and the what-if replay — behind
// named users with roles, server-side sessions, CSRF tokens and a strict
// Content-Security-Policy. It is an edge like adminapi: it reads and
// commands through the same interfaces, and cmd composes it.
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/phone"
)

// Prefix is the path every console URL starts with.
const Prefix = "/console/"

// Limits of the console's own listener (see adminapi's for the reasons).
const (
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 10 * time.Second
	// maxFormBytes bounds a form post; maxUploadBytes a whitelist CSV.
	maxFormBytes   = 64 << 10
	maxUploadBytes = adminapi.MaxBodyBytes
)

// ErrBadCredentials is what a Users answers (wrapped) for a wrong name or
// password, an unknown or a disabled user alike.
var ErrBadCredentials = errors.New("wrong name or password")

// Roles, from least to most allowed.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// roleRank orders the roles; an unknown role ranks below viewer and may
// see nothing.
func roleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Account is a console user as the console sees one.
type Account struct{ Name, Role string }

// Users is how the console checks passwords and re-reads accounts; cmd
// adapts actors/users' book to it.
type Users interface {
	// Authenticate checks a name and password in constant time whatever
	// the name; a wrong pair, an unknown or disabled user all give errors
	// wrapping ErrBadCredentials, which the page shows alike.
	Authenticate(ctx context.Context, name, password string) (Account, error)
	// Account returns the current account of a signed-in name; ok false
	// when it is gone or disabled.
	Account(ctx context.Context, name string) (Account, bool)
}

// Health gives the live figures of the Today page, which the node has in
// its metrics and readiness checks rather than in any projection.
type Health interface {
	Live(ctx context.Context) (Live, error)
}

// HealthFunc adapts a function to Health.
type HealthFunc func(ctx context.Context) (Live, error)

// Live calls f.
func (f HealthFunc) Live(ctx context.Context) (Live, error) { return f(ctx) }

// Live is the node's state now.
type Live struct {
	// ActiveCalls are the calls in progress on this node (the
	// callguard_active_calls gauge); Challenges the challenges among them
	// still waiting for their code.
	ActiveCalls int
	Challenges  int
	// StoreOK says the event store answers; StoreDetail says what is
	// wrong when it does not (the readiness check's reason).
	StoreOK     bool
	StoreDetail string
	// Lines are the called numbers (E.164) the guard serves; Today shows
	// the under-attack mode of each (through Deps.Lines).
	Lines []string
}

// Deps are the console's collaborators. The interfaces are the admin
// API's, so cmd hands both edges the same parts.
type Deps struct {
	// Users checks sign-ins and re-reads roles (required).
	Users Users
	// UserAdmin manages users on the Users page; nil shows it as not
	// available.
	UserAdmin UserAdmin
	// Callers reaches the caller grains (required).
	Callers adminapi.Callers
	// Normalizer reads numbers typed in forms and paths (required).
	Normalizer *phone.Normalizer
	// The read side and the rest; each nil shows its page or block as
	// not available on this node.
	History     adminapi.History
	Replay      adminapi.Replayer
	Lists       adminapi.Lists
	Import      adminapi.WhitelistImporter
	Reports     adminapi.Reports
	Profiles    adminapi.Profiles
	Projections adminapi.Projections
	Lines       adminapi.Lines
	Health      Health
	// Policy is the node's policy configuration: the what-if form shows
	// its values beside each setting.
	Policy policy.Config
	// Zone shows times and reads the expiries typed in forms (the
	// guard's GUARD_TIMEZONE); nil means UTC.
	Zone *time.Location
	// Clock dates sessions, rate limits and expiries; nil means time.Now.
	Clock func() time.Time
	// NewID returns a fresh UUID for command IDs; nil means
	// uuid.NewString.
	NewID func() string
	// Random draws session IDs and CSRF tokens; nil means crypto/rand.
	Random io.Reader
	// Logger gets one line per request and per command; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Server is the console. It is safe for concurrent use; Serve may run on
// several listeners, sharing the sessions.
type Server struct {
	cfg      Config
	d        Deps
	sessions *sessions
	limiter  *limiter
	pages    *pages
	static   staticFiles
	handler  http.Handler
	// replaying holds a token while a what-if replay runs.
	replaying chan struct{}
}

// New checks cfg and deps and builds the console.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	switch {
	case adminapi.IsNil(deps.Users):
		return nil, errors.New("console: Deps.Users is nil")
	case adminapi.IsNil(deps.Callers):
		return nil, errors.New("console: Deps.Callers is nil")
	case deps.Normalizer == nil:
		return nil, errors.New("console: Deps.Normalizer is nil")
	}
	// A nil pointer in an interface is not a nil interface (see adminapi).
	if adminapi.IsNil(deps.History) {
		deps.History = nil
	}
	if adminapi.IsNil(deps.Replay) {
		deps.Replay = nil
	}
	if adminapi.IsNil(deps.Lists) {
		deps.Lists = nil
	}
	if adminapi.IsNil(deps.Import) {
		deps.Import = nil
	}
	if adminapi.IsNil(deps.Reports) {
		deps.Reports = nil
	}
	if adminapi.IsNil(deps.Profiles) {
		deps.Profiles = nil
	}
	if adminapi.IsNil(deps.Projections) {
		deps.Projections = nil
	}
	if adminapi.IsNil(deps.Lines) {
		deps.Lines = nil
	}
	if adminapi.IsNil(deps.Health) {
		deps.Health = nil
	}
	if adminapi.IsNil(deps.UserAdmin) {
		deps.UserAdmin = nil
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Zone == nil {
		deps.Zone = time.UTC
	}
	if deps.NewID == nil {
		deps.NewID = uuid.NewString
	}
	if deps.Random == nil {
		deps.Random = rand.Reader
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	p, err := loadPages()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	names, err := staticNames()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	static, err := loadStatic(mergedStatic{}, names)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	s := &Server{
		cfg: cfg, d: deps, pages: p, static: static,
		sessions:  newSessions(cfg.IdleTimeout, cfg.MaxAge, deps.Clock, deps.Random),
		limiter:   newLimiter(deps.Clock),
		replaying: make(chan struct{}, 1),
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the console's handler for paths under /console/, to
// mount on the admin API's listener (mux.Handle("/console/", h)).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the console on its own listener until ctx ends, then
// shuts down gracefully. There, "/" redirects to /console/. It closes ln.
// TLS, when Config.TLS says so, is the caller's: pass a tls.Listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(Prefix, s.handler)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.d.Logger.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil && !adminapi.IsLoopback(host) && !s.cfg.TLS {
		s.d.Logger.Warn("console listens beyond loopback over plain HTTP: passwords and session cookies cross the network in clear; terminate TLS in front", "addr", addr)
	}
	s.d.Logger.Info("console listening", "addr", addr, "tls", s.cfg.TLS)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("console: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if err != nil {
		err = errors.Join(fmt.Errorf("console: graceful shutdown on %s: %w", addr, err), srv.Close())
	}
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("console: serve on %s: %w", addr, serr))
	}
	s.d.Logger.Info("console stopped", "addr", addr)
	return err
}
