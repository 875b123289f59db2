package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/callguard/callguard/events"
	// Linking this adapter links EventStore-Client-Go/v4, whose gossip.proto
	// collides with protoactor-go's: protoconflict keeps such a binary from
	// panicking at init.
	_ "github.com/callguard/callguard/events/protoconflict"
)

// Defaults of the options.
const (
	// DefaultMaxInFlight is how many calls the Store runs against the
	// client at once; further calls wait for a place or their context.
	DefaultMaxInFlight = 128
)

// Timings of the connection supervision. Variables so that a test could
// shorten them; nothing changes them at run time.
var (
	// closeWait is how long Close waits for calls in flight before it
	// leaves the client to the garbage collector instead of closing it.
	closeWait = 3 * time.Second
	// redialMin and redialMax bound the pause after a client closed itself
	// before the Store makes a new one; calls in the pause fail fast with
	// events.ErrUnavailable.
	redialMin = 250 * time.Millisecond
	redialMax = 10 * time.Second
)

// Option configures Open.
type Option func(*config) error

type config struct {
	logger      *slog.Logger
	prefix      string
	maxInFlight int
}

// WithLogger sets the logger of the Store and of the client underneath it
// (whose own lines go to Debug). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", events.ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithStreamPrefix puts prefix in front of every EventStoreDB stream name of
// the Store, and limits its global log (ReadAll, Subscribe, Head) to those
// streams, so that several stores, such as test runs, can share one server
// without seeing each other. The names the Store takes and returns are
// without the prefix. The default is no prefix: the Store sees every
// non-system stream of the server.
func WithStreamPrefix(prefix string) Option {
	return func(c *config) error {
		if strings.HasPrefix(prefix, "$") {
			return fmt.Errorf("%w: stream prefix %q starts with '$'", events.ErrInvalid, prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithMaxInFlight bounds how many calls run against the client at once
// (default DefaultMaxInFlight). It also bounds what a failed reconnection
// of the client can strand (see the package documentation).
func WithMaxInFlight(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight %d, want 1 or more", events.ErrInvalid, n)
		}
		c.maxInFlight = n
		return nil
	}
}

// Store is an events.Store on EventStoreDB. It is safe for concurrent use.
type Store struct {
	cfg    client.Configuration
	log    *slog.Logger
	names  names
	url    string // masked, for logs
	slots  int
	life   context.Context // done when Close starts
	finish context.CancelFunc

	// mu guards the fields below it.
	mu     sync.Mutex
	closed bool
	cur    *conn
	gen    uint64
	// retryAt is when a new client may be made after one closed itself;
	// pause is the pause after the next such closing.
	retryAt time.Time
	pause   time.Duration
	// inflight counts calls that are using a client; Add happens under mu
	// with closed false, so Close can wait for it.
	inflight sync.WaitGroup
}

// conn is one client and the gate in front of it.
//
// The gate exists because of how EventStore-Client-Go/v4.2.0 connects: one
// goroutine owns the connection and serves every call over an unbuffered
// channel; while it discovers a node the other calls wait on that channel
// with no context, and if discovery fails it exits and closes the client
// for good, leaving those calls waiting forever. So until a client has
// answered once (ready), and again after it reported the server
// unavailable, only one call at a time goes through (probe); after that at
// most Store.slots.
type conn struct {
	client *client.Client
	gen    uint64
	slots  chan struct{}
	probe  chan struct{}
	ready  atomic.Bool
	dead   atomic.Bool
}

// Open connects to the EventStoreDB server of a connection string such as
// "esdb://localhost:2113?tls=false" or "esdb://user:pass@host:2113" (see
// EventStoreDB's client documentation for the settings), and checks that
// the server answers by reading the last event of $all. It returns an error
// that wraps events.ErrUnavailable when the server cannot be reached before
// ctx ends or the client gives up discovery, ErrPermission when it refuses
// the credentials, and events.ErrInvalid for a malformed connection string.
// The connection string is never logged or returned with its user
// information.
func Open(ctx context.Context, connString string, opts ...Option) (*Store, error) {
	s, err := newStore(connString, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := s.Head(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open EventStoreDB store %s: %w", s.url, err)
	}
	s.log.Info("connected to EventStoreDB", "prefix", s.names.prefix)
	return s, nil
}

// newStore is Open without the check that the server answers.
func newStore(connString string, opts ...Option) (*Store, error) {
	c := config{logger: slog.New(slog.DiscardHandler), maxInFlight: DefaultMaxInFlight}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("open EventStoreDB store: %w", err)
		}
	}
	masked := maskURL(connString)
	cfg, err := client.ParseConnectionString(connString)
	if err != nil {
		return nil, fmt.Errorf("open EventStoreDB store %s: %w: %s", masked, events.ErrInvalid, parseError(err, connString))
	}
	cfg.Logger = clientLogger(c.logger.With("component", "esdb-client"))
	life, finish := context.WithCancel(context.Background())
	s := &Store{
		cfg:    *cfg,
		log:    c.logger.With("store", "eventstoredb", "url", masked),
		names:  names{prefix: c.prefix},
		url:    masked,
		slots:  c.maxInFlight,
		life:   life,
		finish: finish,
		pause:  redialMin,
	}
	return s, nil
}

// parseError is the client's complaint about a connection string, without
// the user information the string may hold.
func parseError(err error, connString string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error quotes the whole string
	}
	msg := err.Error()
	if pw := password(connString); pw != "" && strings.Contains(msg, pw) {
		return "malformed connection string"
	}
	return msg
}

// Close ends every subscription, waits briefly for calls in flight and
// closes the client. Calls after Close, Close included, return
// events.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return events.ErrClosed
	}
	s.closed = true
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.finish()

	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		// Nothing uses the client: closing it cannot strand a call (the
		// client panics a call that sends on its closed channel).
		if cur != nil && !cur.dead.Load() {
			_ = cur.client.Close()
		}
		s.log.Info("EventStoreDB store closed")
	case <-time.After(closeWait):
		s.log.Warn("EventStoreDB store closed with calls still inside the client; leaving the client unclosed", "waited", closeWait)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// conn returns the current client, making one when there is none or the
// last one closed itself (after a pause), and counts the caller in
// inflight; the caller must call s.inflight.Done.
func (s *Store) conn() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, events.ErrClosed
	}
	if s.cur == nil || s.cur.dead.Load() {
		if now := time.Now(); s.cur != nil && now.Before(s.retryAt) {
			return nil, fmt.Errorf("%w: the EventStoreDB client closed itself; reconnecting in %v", events.ErrUnavailable, s.retryAt.Sub(now).Round(time.Millisecond))
		}
		cfg := s.cfg
		cl, err := client.NewClient(&cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: new EventStoreDB client: %w", events.ErrInvalid, err)
		}
		s.gen++
		if s.cur != nil {
			s.log.Info("new EventStoreDB client after the last one closed itself", "generation", s.gen)
		}
		s.cur = &conn{
			client: cl,
			gen:    s.gen,
			slots:  make(chan struct{}, s.slots),
			probe:  make(chan struct{}, 1),
		}
	}
	s.inflight.Add(1)
	return s.cur, nil
}

// acquire waits for a place at c's gate and returns its release.
func (c *conn) acquire(ctx, life context.Context) (func(), error) {
	if !c.ready.Load() {
		select {
		case c.probe <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-life.Done():
			return nil, events.ErrClosed
		}
		if !c.ready.Load() {
			return func() { <-c.probe }, nil
		}
		<-c.probe // it became ready while we waited
	}
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-life.Done():
		return nil, events.ErrClosed
	}
}

// run calls fn with the client, at most s.slots at a time, and returns its
// error with the client's errors mapped to the Store's sentinels. fn runs
// in its own goroutine with a context that ends with ctx or Close, so that
// run returns when ctx ends even if the client does not (see conn).
func (s *Store) run(ctx context.Context, fn func(ctx context.Context, cl *client.Client) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.conn()
	if err != nil {
		return err
	}
	release, err := c.acquire(ctx, s.life)
	if err != nil {
		s.inflight.Done()
		return err
	}
	opCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	errc := make(chan error, 1)
	go func() {
		defer s.inflight.Done()
		defer release()
		defer cancel()
		defer stop()
		err := s.call(opCtx, c, fn)
		s.observe(c, err)
		errc <- err
	}()
	select {
	case err := <-errc:
		return s.mapErr(ctx, err)
	case <-ctx.Done():
		return s.ctxErr(ctx)
	case <-s.life.Done():
		return events.ErrClosed
	}
}

// call runs fn, turning a panic inside the client (v4.2.0 panics on a read
// reply it does not know, for one) into an error, so that one bad answer
// does not take the guard down.
func (s *Store) call(ctx context.Context, c *conn, fn func(ctx context.Context, cl *client.Client) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("the EventStoreDB client panicked", "panic", r, "generation", c.gen)
			err = fmt.Errorf("EventStoreDB client panicked: %v", r)
		}
	}()
	return fn(ctx, c.client)
}

// observe updates c's state after a call that returned err.
func (s *Store) observe(c *conn, err error) {
	switch classify(err) {
	case kindUnavailable:
		// The client is rediscovering, or about to: back to one call at
		// a time until it answers again.
		c.ready.Store(false)
	case kindClientClosed:
		if s.life.Err() != nil {
			return
		}
		c.ready.Store(false)
		if c.dead.Swap(true) {
			return
		}
		s.mu.Lock()
		s.retryAt = time.Now().Add(s.pause)
		pause := s.pause
		s.pause = min(2*s.pause, redialMax)
		s.mu.Unlock()
		s.log.Warn("EventStoreDB client closed itself (node discovery failed); a new one will be made", "generation", c.gen, "pause", pause, "err", err)
	case kindCanceled:
		// Says nothing about the server.
	default:
		// The server answered (success, conflict, not found, ...).
		if !c.ready.Swap(true) {
			s.mu.Lock()
			s.pause = redialMin
			s.mu.Unlock()
		}
	}
}

// mapErr maps what fn returned; errors that are already the Store's (a
// *ConflictError, ErrDuplicateID, ...) pass unchanged.
func (s *Store) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	switch classify(err) {
	case kindCanceled:
		if ctx.Err() != nil {
			return s.ctxErr(ctx)
		}
		if s.life.Err() != nil {
			return events.ErrClosed
		}
		// The client's own deadline (10 s for an append unless the
		// connection string says otherwise).
		return fmt.Errorf("%w: %w", events.ErrUnavailable, err)
	case kindClientClosed:
		if s.life.Err() != nil {
			return events.ErrClosed
		}
	}
	return wrapClientErr(err)
}

// ctxErr is the error of a call that ctx ended: ctx's error, which also
// says ErrUnavailable when it is a deadline (the server did not answer in
// time; the outcome of an append is then unknown, and a retry with the same
// IDs settles it).
func (s *Store) ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", err, events.ErrUnavailable)
	}
	return err
}

// clientLogger sends the client's log lines to l at Debug: the Store
// reports what matters to its callers, and the client calls "error" what is
// routine for it (a cancelled read, a dropped subscription).
func clientLogger(l *slog.Logger) client.LoggingFunc {
	return func(level client.LogLevel, format string, args ...any) {
		if !l.Enabled(context.Background(), slog.LevelDebug) {
			return
		}
		// Configuration.applyLogger of v4.2.0 passes its arguments as
		// one slice instead of spreading them.
		if len(args) == 1 {
			if inner, ok := args[0].([]any); ok {
				args = inner
			}
		}
		l.Debug(fmt.Sprintf(format, args...), "client_level", level)
	}
}

var _ events.Store = (*Store)(nil)
