package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/phone"
)

// Limits and timeouts of the HTTP server. The API serves a few admins and
// a CLI; nothing legitimate comes near them, and they bound what a
// slow or hostile client can hold.
const (
	// MaxBodyBytes bounds a request body; a command is a few hundred bytes.
	MaxBodyBytes = 1 << 20
	// maxHeaderBytes bounds the request headers.
	maxHeaderBytes = 64 << 10
	// readHeaderTimeout stops slowloris-style clients.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds reading a whole request.
	readTimeout = 30 * time.Second
	// idleTimeout closes idle keep-alive connections.
	idleTimeout = 2 * time.Minute
	// shutdownTimeout is how long Serve waits for requests in flight when
	// its context ends, before it closes their connections.
	shutdownTimeout = 10 * time.Second
)

// ErrNotFound is what a History returns (wrapped) for a number the store
// has no events for; the API answers 404 unknown-caller.
var ErrNotFound = errors.New("no events for this caller")

// Callers is what the API needs of the caller grains; *caller.Client
// implements it.
type Callers interface {
	Command(ctx context.Context, key string, cmd caller.Command) (caller.Applied, error)
	Status(ctx context.Context, key string) (caller.Status, error)
}

var _ Callers = (*caller.Client)(nil)

// History gives a caller's audit timeline: any value that encodes to
// JSON. It may return errors wrapping ErrNotFound (404), caller.ErrStore
// or events.ErrUnavailable (503).
type History interface {
	History(ctx context.Context, key string) (any, error)
}

// HistoryFunc adapts a function to History.
type HistoryFunc func(ctx context.Context, key string) (any, error)

// History calls f.
func (f HistoryFunc) History(ctx context.Context, key string) (any, error) { return f(ctx, key) }

// Replayer re-decides the whole log under other policy settings
// (GET /v1/replay). settings maps a policy flag name ("limit-hour") to its
// value; the rest keep the node's configuration. An error wrapping
// ErrSettings is the client's (400); the answer is any value that encodes
// to JSON.
type Replayer interface {
	Replay(ctx context.Context, settings map[string]string) (any, error)
}

// ReplayFunc adapts a function to Replayer.
type ReplayFunc func(ctx context.Context, settings map[string]string) (any, error)

// Replay calls f.
func (f ReplayFunc) Replay(ctx context.Context, settings map[string]string) (any, error) {
	return f(ctx, settings)
}

// ErrSettings marks replay settings the Replayer refused.
var ErrSettings = errors.New("invalid replay settings")

// SettingValueError is a replay setting the Replayer could not read: an
// unknown name, or a value that is not of the setting's type. A Replayer
// wraps it (and the policy's *policy.SettingError for a value out of its
// rules) in ErrSettings, so that an edge can say which setting in its own
// words.
type SettingValueError struct {
	Setting, Value string
	Err            error
}

func (e *SettingValueError) Error() string {
	return fmt.Sprintf("%s=%q: %v", e.Setting, e.Value, e.Err)
}

func (e *SettingValueError) Unwrap() error { return e.Err }

// Deps are the API's collaborators.
type Deps struct {
	// Callers reaches the caller grains (required).
	Callers Callers
	// History serves GET /v1/callers/{number}/history; nil answers that
	// route with 501 not-implemented, so a node can run without the audit
	// projection.
	History History
	// Replay serves GET /v1/replay; nil answers it with 501.
	Replay Replayer
	// Lists serves GET /v1/blacklist and GET /v1/whitelist; Import serves
	// POST /v1/whitelist/import; Reports serves GET /v1/reports/daily and
	// GET /v1/reports/top; Profiles serves GET /v1/callers; Projections
	// serves GET /v1/projections and POST /v1/projections/{name}/rebuild.
	// Each nil answers its routes with 501, so a node can run without its
	// read side (see readside.go).
	Lists       Lists
	Import      WhitelistImporter
	Reports     Reports
	Profiles    Profiles
	Projections Projections
	// Ranges applies the range rule commands (POST and DELETE under
	// /v1/ranges); RangeLists serves GET /v1/ranges. Each nil answers its
	// routes with 501.
	Ranges     RangeRules
	RangeLists RangeLists
	// Origins serves /v1/origins (verdicts by the caller number's
	// country and type); nil answers it with 501.
	Origins OriginRules
	// Lines serves /v1/lines/{number}/attack (the under-attack mode of a
	// called number); nil answers it with 501.
	Lines Lines
	// Users serves /v1/users (the operator console's users); a nil
	// Commands or List answers with 501.
	Users UsersDeps
	// Settings serves /v1/lines/{number}/settings, /v1/lines/settings and
	// /v1/schedules (settings.go); a nil Rules or Table answers with 501.
	Settings SettingsDeps
	// Backup serves GET /v1/backup (backup.go); nil answers it with 501.
	Backup Backuper
	// Normalizer reads numbers in paths and bodies (required).
	Normalizer *phone.Normalizer
	// Clock dates CallerView.AsOf and checks that expiries are in the
	// future; nil means time.Now. The grain applies its own clock to the
	// command itself.
	Clock func() time.Time
	// NewID returns a fresh random UUID string for request and command
	// IDs; nil means uuid.NewString (crypto/rand).
	NewID func() string
	// Console, when set, is served for every path under /console/ on the
	// API's listener, before the API's own routes and outside its bearer
	// token: the console has its own sign-in and sessions, and logs its
	// own requests.
	Console http.Handler
	// Logger receives one line per request and per command; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Server is the admin API. It is immutable after New and safe for
// concurrent use; Serve may run on several listeners.
type Server struct {
	cfg       Config
	d         Deps
	tokenHash [sha256.Size]byte
	routes    []route
	mux       *http.ServeMux
	handler   http.Handler
}

// route is one entry of the API. The list in routes() is the single
// source of the mux; the OpenAPI test compares the document with it.
type route struct {
	pattern string
	// public routes need no token.
	public  bool
	handler http.HandlerFunc
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document served at /openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// New checks cfg and deps and builds the server. It fails with ErrConfig
// when there is no usable token (see the package documentation) or the
// listen address is not host:port.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("adminapi: %w", err)
	}
	switch {
	case deps.Callers == nil:
		return nil, errors.New("adminapi: Deps.Callers is nil")
	case deps.Normalizer == nil:
		return nil, errors.New("adminapi: Deps.Normalizer is nil")
	}
	// A nil pointer in an interface is not a nil interface: a node that
	// passes a read-side part it does not have (a nil *importer.Importer)
	// gets 501, not a panic.
	if IsNil(deps.Lists) {
		deps.Lists = nil
	}
	if IsNil(deps.Import) {
		deps.Import = nil
	}
	if IsNil(deps.Reports) {
		deps.Reports = nil
	}
	if IsNil(deps.Profiles) {
		deps.Profiles = nil
	}
	if IsNil(deps.Projections) {
		deps.Projections = nil
	}
	if IsNil(deps.Ranges) {
		deps.Ranges = nil
	}
	if IsNil(deps.RangeLists) {
		deps.RangeLists = nil
	}
	if IsNil(deps.Settings.Rules) {
		deps.Settings.Rules = nil
	}
	if IsNil(deps.Origins) {
		deps.Origins = nil
	}
	if IsNil(deps.Lines) {
		deps.Lines = nil
	}
	if IsNil(deps.Users.Commands) {
		deps.Users.Commands = nil
	}
	if IsNil(deps.Backup) {
		deps.Backup = nil
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.NewID == nil {
		deps.NewID = uuid.NewString
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, d: deps, tokenHash: sha256.Sum256([]byte(cfg.Token)), mux: http.NewServeMux()}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		h := rt.handler
		if !rt.public {
			h = s.authenticated(h)
		}
		s.mux.Handle(rt.pattern, h)
	}
	s.handler = s.logged(s.recovered(s.problemsForMux(s.mux)))
	if deps.Console != nil {
		api := s.handler
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/") {
				deps.Console.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	return s, nil
}

func (s *Server) routeTable() []route {
	return []route{
		{pattern: "POST /v1/whitelist", handler: s.whitelist},
		{pattern: "DELETE /v1/whitelist/{number}", handler: s.unwhitelist},
		{pattern: "PUT /v1/blocks/{number}", handler: s.block},
		{pattern: "DELETE /v1/blocks/{number}", handler: s.unblock},
		{pattern: "GET /v1/callers/{number}", handler: s.callerStatus},
		{pattern: "GET /v1/callers/{number}/history", handler: s.history},
		{pattern: "GET /v1/replay", handler: s.replay},
		{pattern: "GET /v1/blacklist", handler: s.blacklist},
		{pattern: "GET /v1/whitelist", handler: s.whitelistList},
		{pattern: "POST /v1/whitelist/import", handler: s.importWhitelist},
		{pattern: "GET /v1/reports/daily", handler: s.dailyReport},
		{pattern: "GET /v1/reports/top", handler: s.topReport},
		{pattern: "GET /v1/callers", handler: s.searchCallers},
		{pattern: "GET /v1/projections", handler: s.projections},
		{pattern: "POST /v1/projections/{name}/rebuild", handler: s.rebuild},
		{pattern: "POST /v1/ranges/whitelist", handler: s.rangeWhitelist},
		{pattern: "DELETE /v1/ranges/whitelist/{range}", handler: s.rangeWhitelistRemove},
		{pattern: "POST /v1/ranges/blocks", handler: s.rangeBlock},
		{pattern: "DELETE /v1/ranges/blocks/{range}", handler: s.rangeBlockRemove},
		{pattern: "GET /v1/ranges", handler: s.rangeList},
		{pattern: "POST /v1/origins/{kind}", handler: s.originSet},
		{pattern: "DELETE /v1/origins/{kind}/{value}", handler: s.originRemove},
		{pattern: "GET /v1/origins", handler: s.originList},
		{pattern: "GET /v1/lines/{number}/attack", handler: s.attackStatus},
		{pattern: "PUT /v1/lines/{number}/attack", handler: s.attackOn},
		{pattern: "DELETE /v1/lines/{number}/attack", handler: s.attackOff},
		{pattern: "GET /v1/lines/settings", handler: s.settingsList},
		{pattern: "PUT /v1/lines/{number}/settings", handler: s.lineSettingsSet},
		{pattern: "DELETE /v1/lines/{number}/settings", handler: s.lineSettingsClear},
		{pattern: "GET /v1/schedules", handler: s.scheduleList},
		{pattern: "POST /v1/schedules", handler: s.scheduleAdd},
		{pattern: "DELETE /v1/schedules/{name}", handler: s.scheduleRemove},
		{pattern: "GET /v1/users", handler: s.userList},
		{pattern: "POST /v1/users", handler: s.userCreate},
		{pattern: "PUT /v1/users/{name}/role", handler: s.userRole},
		{pattern: "PUT /v1/users/{name}/password", handler: s.userPassword},
		{pattern: "POST /v1/users/{name}/disable", handler: s.userDisable},
		{pattern: "POST /v1/users/{name}/enable", handler: s.userEnable},
		{pattern: "GET /v1/backup", handler: s.backup},
		{pattern: "GET /v1/problems", handler: s.problems},
		{pattern: "GET /openapi.json", public: true, handler: s.openAPI},
		{pattern: "GET /healthz", public: true, handler: s.healthz},
	}
}

// IsNil reports whether v is nil or holds a nil pointer, func, map or
// interface: a dependency given as a typed nil is absent, though the
// interface holding it is not nil. The console checks its dependencies
// with it too.
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// Handler returns the API's handler, for tests and for mounting behind
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on Config.Listen and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("adminapi: listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in flight finish for up to 10 s, and returns
// nil. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// Above the time a request may spend in the cluster, so that a
		// slow grain still gets its 503 to the client.
		WriteTimeout:   s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.d.Logger.Handler(), slog.LevelWarn),
	}
	tls := s.cfg.TLSCert != ""
	addr := ln.Addr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil && !IsLoopback(host) && !tls {
		s.d.Logger.Warn("admin API listens beyond loopback over plain HTTP: the bearer token crosses the network in clear; set GUARD_ADMIN_TLS_CERT/KEY or terminate TLS in front", "addr", addr)
	}
	s.d.Logger.Info("admin API listening", "addr", addr, "tls", tls)
	done := make(chan error, 1)
	go func() {
		if tls {
			done <- srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return fmt.Errorf("adminapi: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if err != nil {
		err = errors.Join(fmt.Errorf("adminapi: graceful shutdown on %s: %w", addr, err), srv.Close())
	}
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("adminapi: serve on %s: %w", addr, serr))
	}
	s.d.Logger.Info("admin API stopped", "addr", addr)
	return err
}

// authenticated requires the bearer token (RFC 6750 §2.1) before h runs.
func (s *Server) authenticated(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Answers about callers are personal data and change with every
		// call: no cache may keep them.
		w.Header().Set("Cache-Control", "no-store")
		const realm = `Bearer realm="callguard-admin"`
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		switch {
		case scheme == "" || (strings.EqualFold(scheme, "Bearer") && token == ""):
			// RFC 6750 §3.1: a request without credentials gets no error
			// code, only the challenge.
			w.Header().Set("WWW-Authenticate", realm)
			writeProblem(w, r, newProblem(CodeUnauthorized, "this endpoint needs an Authorization: Bearer <token> header"))
		case !strings.EqualFold(scheme, "Bearer"): // auth-scheme is case-insensitive (RFC 9110 §11.1)
			w.Header().Set("WWW-Authenticate", realm)
			writeProblem(w, r, newProblem(CodeUnauthorized, "the Authorization header must use the Bearer scheme"))
		case !s.tokenMatches(token):
			w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token", error_description="the token is not valid"`)
			writeProblem(w, r, newProblem(CodeUnauthorized, "the bearer token is not valid"))
		default:
			h(w, r)
		}
	}
}

// tokenMatches compares in constant time. Hashing both sides first makes
// the comparison's length fixed too, so the time taken says nothing about
// the token's length either.
func (s *Server) tokenMatches(token string) bool {
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

type ctxKey struct{}

// requestID returns the ID logged() gave the request.
func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(ctxKey{}).(string); ok {
		return id
	}
	return "unknown"
}

// StatusWriter remembers what was answered, for the access log (the
// console's too).
type StatusWriter struct {
	http.ResponseWriter
	// Status is the first status written; 0 before anything was.
	Status int
	// Code is the problem code, if the answer was a problem.
	Code string
}

// WriteHeader records the first status and passes it on.
func (w *StatusWriter) WriteHeader(status int) {
	if w.Status == 0 {
		w.Status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write records 200 if nothing was written before, and passes b on.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logged gives each request an ID and logs one line when it ends. Only the
// route, the raw number and the outcome are logged: never headers (the
// Authorization header holds the token) nor bodies.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // duration for the log only, not a decision
		id := s.d.NewID()
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		sw := &StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		switch {
		case sw.Status >= 500:
			level = slog.LevelWarn
		case r.Pattern == "GET /healthz":
			level = slog.LevelDebug // probes every few seconds drown the log
		}
		attrs := []any{
			"request_id", id, "method", r.Method, "route", r.Pattern,
			"status", sw.Status, "ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr,
		}
		if n := r.PathValue("number"); n != "" {
			attrs = append(attrs, "number", clip(n))
		}
		if sw.Code != "" {
			attrs = append(attrs, "problem", sw.Code)
		}
		s.d.Logger.Log(r.Context(), level, "admin request", attrs...)
	})
}

// recovered turns a panic in a handler into a 500 problem instead of a
// dropped connection, and logs it.
func (s *Server) recovered(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's own way to abort a response; let it do so
			}
			s.d.Logger.Error("admin API handler panicked", "request_id", requestID(r), "panic", fmt.Sprint(v))
			writeProblem(w, r, newProblem(CodeInternal, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}

// problemsForMux makes the mux's own 404 and 405 answers problems like
// every other error.
func (s *Server) problemsForMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&muxErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

// muxErrorWriter replaces the mux's plain-text 404 and 405 bodies with
// problems, keeping the Allow header the mux set for 405 (RFC 9110 §15.5.6).
type muxErrorWriter struct {
	http.ResponseWriter
	r           *http.Request
	intercepted bool
	wrote       bool
}

func (m *muxErrorWriter) WriteHeader(status int) {
	if m.wrote {
		return
	}
	m.wrote = true
	switch status {
	case http.StatusNotFound:
		m.intercepted = true
		writeProblem(m.ResponseWriter, m.r, newProblem(CodeNotFound, fmt.Sprintf("no route for %s %s; see GET /openapi.json", m.r.Method, clip(m.r.URL.Path))))
	case http.StatusMethodNotAllowed:
		m.intercepted = true
		allow := m.ResponseWriter.Header().Get("Allow")
		writeProblem(m.ResponseWriter, m.r, newProblem(CodeMethodNotAllowed, fmt.Sprintf("%s does not take %s; it takes %s", clip(m.r.URL.Path), m.r.Method, allow)))
	default:
		m.ResponseWriter.WriteHeader(status)
	}
}

func (m *muxErrorWriter) Write(b []byte) (int, error) {
	if !m.wrote {
		m.WriteHeader(http.StatusOK)
	}
	if m.intercepted {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

// clip bounds client-supplied text echoed into logs and problem details.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}
