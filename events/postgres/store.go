// Package postgres is an events.Store on PostgreSQL (pgx/v5, pgxpool).
//
// Events live in one table, callguard_events, with a unique (stream,
// revision) and a transaction id column (tx_id xid8, the writing
// transaction's pg_current_xact_id()). Snapshots live in
// callguard_snapshots, one row per stream. Open creates both if they are
// missing.
//
// The global log is ordered by (tx_id, position): an events.Position is
// {Commit: tx_id, Prepare: position}, position being an identity column. A
// reader sees only rows whose tx_id is below the xmin of its snapshot, that
// is rows of transactions that had all finished when it looked, so a
// transaction that commits late can never land behind a checkpoint a reader
// has already passed (identity values alone are handed out at insert and
// committed out of order). Appends to one stream are serialised by a
// transaction-scoped advisory lock taken before the transaction gets its
// xid, so a stream's revisions also come in global order.
//
// An append is durable when its COMMIT returns (synchronous_commit on: the
// PostgreSQL default, and the Store's sessions set it where a database or
// role turned it off); concurrent appends on the pool share WAL
// flushes (group commit). Subscribe reads the table; LISTEN/NOTIFY only
// wakes it early (one NOTIFY after a run of commits, see notifier), and it
// polls anyway, so a lost notification delays delivery by at most the poll
// interval.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callguard/callguard/events"
)

// channel is the LISTEN/NOTIFY channel appends notify.
const channel = "callguard_events"

// Option configures Open.
type Option func(*options)

type options struct {
	maxConns     int32
	pollInterval time.Duration
	log          *slog.Logger
	// notifyInTx NOTIFYs inside each append's transaction instead of
	// from the notifier; tests and the benchmark compare the two.
	notifyInTx bool
	// beforeCommit, when set, runs inside each append's transaction just
	// before COMMIT (tests hold a transaction open with it).
	beforeCommit func(ctx context.Context, stream string)
}

// WithMaxConns sets the pool size (default 32). Concurrent appends share
// WAL flushes only as far as there are connections to run them on.
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = int32(n)
		}
	}
}

// WithPollInterval sets how often a live subscription reads the table when
// no notification arrives (default 500 ms).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.pollInterval = d
		}
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Store is an events.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	opts options

	closed atomic.Bool
	// ctx ends at Close; background work and subscriptions watch it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	wakeMu sync.Mutex
	wakeCh chan struct{} // closed and replaced when new events may exist

	// notify has a value when an append committed and other nodes have
	// not been told yet (see notifier).
	notify chan struct{}
}

var _ events.Store = (*Store)(nil)

// Open connects to the database of url (a libpq URL or keyword/value
// string) and creates the tables if they do not exist. A server that cannot
// be reached gives an error wrapping events.ErrUnavailable.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{maxConns: 32, pollInterval: 500 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w: connection URL: %w", events.ErrInvalid, err)
	}
	cfg.MaxConns = o.maxConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	// A connection that survives a server restart is found dead on first
	// use; checking idle ones first saves a caller that error.
	cfg.HealthCheckPeriod = 5 * time.Second
	// An append must be durable when COMMIT returns: a database or role
	// with synchronous_commit off would acknowledge appends a crash can
	// lose, so the Store's sessions turn it back on.
	var warnOnce sync.Once
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		var v string
		if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
			return err
		}
		if v != "off" {
			return nil
		}
		warnOnce.Do(func() {
			o.log.Warn("postgres: synchronous_commit is off for this database or user; the event store sets it on for its sessions")
		})
		_, err := c.Exec(ctx, `SET synchronous_commit TO on`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Store{pool: pool, opts: o, ctx: bg, cancel: cancel, wakeCh: make(chan struct{}), notify: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		cancel()
		pool.Close()
		return nil, s.wrap("open", err)
	}
	s.wg.Add(2)
	go s.listen(cfg.ConnConfig.Copy())
	go s.notifier()
	return s, nil
}

// Close implements events.Store. It ends subscriptions and waits for calls
// in progress to release their connections.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return events.ErrClosed
	}
	s.cancel()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// enter is the check at the start of every call.
func (s *Store) enter(ctx context.Context) error {
	if s.closed.Load() {
		return events.ErrClosed
	}
	return ctx.Err()
}

// schema is run in order, in one transaction, by Open.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS callguard_schema (version int NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS callguard_events (
		position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		tx_id    xid8 NOT NULL DEFAULT pg_current_xact_id(),
		stream   text NOT NULL,
		revision bigint NOT NULL,
		id       uuid NOT NULL,
		type     text NOT NULL,
		version  int NOT NULL,
		data     bytea NOT NULL,
		meta     jsonb NOT NULL,
		recorded timestamptz NOT NULL DEFAULT now(),
		UNIQUE (stream, revision)
	)`,
	`CREATE INDEX IF NOT EXISTS callguard_events_log ON callguard_events (tx_id, position)`,
	`CREATE TABLE IF NOT EXISTS callguard_snapshots (
		stream   text PRIMARY KEY,
		revision bigint NOT NULL,
		type     text NOT NULL,
		version  int NOT NULL,
		data     bytea NOT NULL,
		recorded timestamptz NOT NULL DEFAULT now()
	)`,
	`INSERT INTO callguard_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT FROM callguard_schema)`,
}

// schemaVersion is the version of the tables this code reads and writes.
const schemaVersion = 1

// Advisory lock keys; stream locks use a hash of the name (lockKey), and a
// collision only makes two appends wait for each other.
const schemaLock = 0x63616c6c67756172 // "callguar"

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two nodes starting together would otherwise race on CREATE
		// TABLE IF NOT EXISTS (it is not atomic against itself).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		for _, stmt := range schema {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM callguard_schema`).Scan(&v); err != nil {
			return err
		}
		if v > schemaVersion {
			return fmt.Errorf("%w: database schema version %d is newer than this binary's %d", events.ErrInvalid, v, schemaVersion)
		}
		return nil
	})
}

func lockKey(stream string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(stream))
	return int64(h.Sum64())
}

// wake tells subscriptions that new events may be readable.
func (s *Store) wake() {
	s.wakeMu.Lock()
	close(s.wakeCh)
	s.wakeCh = make(chan struct{})
	s.wakeMu.Unlock()
}

func (s *Store) wakeup() <-chan struct{} {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	return s.wakeCh
}

// committed records that an append committed: subscriptions of this Store
// wake now, those of other Stores when the notifier's NOTIFY arrives.
func (s *Store) committed() {
	s.wake()
	if !s.opts.notifyInTx {
		select {
		case s.notify <- struct{}{}:
		default: // a NOTIFY is already due; it covers this append too
		}
	}
}

// notifier sends one NOTIFY for all the appends that committed since its
// last one. A NOTIFY inside each append's transaction would be simpler,
// but PostgreSQL serialises the commits of notifying transactions on a
// database-wide lock held across the WAL flush, which ends group commit:
// with 64 appenders it cut appends/s to a third (BenchmarkDurableAppend64).
// A NOTIFY lost to a crash right after a commit delays other nodes'
// subscriptions by at most their poll interval.
func (s *Store) notifier() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.notify:
		}
		if _, err := s.pool.Exec(s.ctx, `SELECT pg_notify($1, '')`, channel); err != nil && s.ctx.Err() == nil {
			s.opts.log.Debug("postgres: NOTIFY failed; subscriptions elsewhere will poll", "err", err)
		}
	}
}

// listen holds one connection outside the pool that LISTENs on channel and
// wakes subscriptions on each notification, reconnecting after failures.
func (s *Store) listen(cfg *pgx.ConnConfig) {
	defer s.wg.Done()
	ctx := s.ctx
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		s.opts.log.Warn("postgres: LISTEN connection lost; subscriptions poll until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	// Anything committed while not listening was not announced.
	s.wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.wake()
	}
}

// errClosedDuring reports ErrClosed for a call that Close overtook.
func (s *Store) errClosedDuring(err error) error {
	if s.closed.Load() && !errors.Is(err, events.ErrClosed) {
		return fmt.Errorf("%w: %w", events.ErrClosed, err)
	}
	return err
}
