// Package embedded is the default, server-less backend of events.Store: one
// bbolt database file in a data directory, owned by one process.
//
// Appends go through a single writer goroutine that applies every pending
// request in one transaction and commits (fsyncs) once for all of them
// (group commit): the cost of an fsync is shared by every concurrent caller,
// and each caller still returns only once its events are on disk.
//
// Layout (bbolt buckets):
//
//	log       8-byte big-endian sequence (1-based) -> event record (codec.go)
//	idx       len16 + stream + 8-byte revision -> 8-byte sequence + 16-byte event ID
//	snapshots stream name -> snapshot record
//
// An event's Position is {Commit: seq, Prepare: seq}. A stream's last
// revision is its last key in idx; there is no separate table of streams,
// whose update would dirty one more page per append.
package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/callguard/callguard/events"
)

// FileName is the database file inside the data directory.
const FileName = "events.db"

// MaxStreamName is the longest stream name in bytes; it keeps every index
// key under bbolt's key size limit.
const MaxStreamName = 16 << 10

// lockTimeout is how long Open waits for the file lock: long enough to ride
// out a predecessor that is just exiting, short enough to fail fast when the
// directory is really in use.
const lockTimeout = 200 * time.Millisecond

// maxEventSize keeps a record under bbolt's value size limit.
const maxEventSize = 1 << 30

var (
	bucketLog       = []byte("log")
	bucketIdx       = []byte("idx")
	bucketSnapshots = []byte("snapshots")
)

// Option configures Open.
type Option func(*config)

type config struct {
	clock  func() time.Time
	logger *slog.Logger
}

// WithClock sets the clock that stamps Event.Recorded and Snapshot.Recorded.
func WithClock(clock func() time.Time) Option {
	return func(c *config) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// Store is the embedded events.Store. It is safe for concurrent use.
type Store struct {
	dir   string
	db    *bolt.DB
	clock func() time.Time
	log   *slog.Logger

	// mu orders Close against senders on reqs: a sender holds it for
	// reading while it checks closed and sends, so Close (holding it for
	// writing) can close reqs without a send on a closed channel.
	mu     sync.RWMutex
	closed atomic.Bool
	reqs   chan *request
	quit   chan struct{} // closed by Close; wakes subscribers
	wdone  chan struct{} // closed when the writer has stopped

	// head is the sequence of the last committed event, published by the
	// writer after each commit.
	head atomic.Uint64

	// stats count the writer's work, for benchmarks and tuning.
	stats struct{ commits, requests, pages atomic.Int64 }

	// notify is closed and replaced after every commit that wrote events,
	// waking every live subscription at once.
	notifyMu sync.Mutex
	notify   chan struct{}
}

var _ events.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It fails with an error
// wrapping events.ErrLocked when another Store, in this process or another,
// has dir open.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	cfg := config{clock: time.Now, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	if dir == "" {
		return nil, fmt.Errorf("open event store: %w: empty directory", events.ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// The freelist is rebuilt by a scan at open instead of being written
		// at every commit: fewer pages per commit for an append-only log.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistArrayType,
		// Room to grow before a remap, which must wait for open readers.
		InitialMmapSize: 256 << 20,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open event store %s: %w", dir, events.ErrLocked)
		}
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	var head uint64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLog, bucketIdx, bucketSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
			head = u64(k)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	s := &Store{
		dir:    dir,
		db:     db,
		clock:  cfg.clock,
		log:    cfg.logger.With("component", "eventstore", "dir", dir),
		reqs:   make(chan *request, 1024),
		quit:   make(chan struct{}),
		wdone:  make(chan struct{}),
		notify: make(chan struct{}),
	}
	s.head.Store(head)
	go s.run(head)
	s.log.Info("event store opened", "head", head)
	return s, nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Close stops the writer and closes the database. Appends already handed to
// the writer are committed and get their result; later calls, Close
// included, return events.ErrClosed. Live subscriptions end with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return events.ErrClosed
	}
	s.closed.Store(true)
	close(s.quit)
	close(s.reqs)
	s.mu.Unlock()
	<-s.wdone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close event store %s: %w", s.dir, err)
	}
	s.log.Info("event store closed", "head", s.head.Load())
	return nil
}

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if s.closed.Load() {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, events.ErrClosed)
	}
	if err := checkStream(stream); err != nil {
		return events.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	if len(evs) == 0 {
		return events.AppendResult{}, fmt.Errorf("append %s: %w: no events", stream, events.ErrInvalid)
	}
	// Copy so that filling in IDs does not touch the caller's slice.
	own := make([]events.Proposed, len(evs))
	copy(own, evs)
	var seen map[uuid.UUID]struct{} // only for several events
	if len(own) > 1 {
		seen = make(map[uuid.UUID]struct{}, len(own))
	}
	for i := range own {
		p := &own[i]
		if err := p.Validate(); err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: event %d: %w", stream, i, err)
		}
		if len(p.Data) > maxEventSize {
			return events.AppendResult{}, fmt.Errorf("append %s: %w: event %d payload is %d bytes", stream, events.ErrInvalid, i, len(p.Data))
		}
		if p.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				id = uuid.New()
			}
			p.ID = id
		}
		if seen != nil {
			if _, dup := seen[p.ID]; dup {
				return events.AppendResult{}, fmt.Errorf("append %s: %w: event ID %s appears twice", stream, events.ErrInvalid, p.ID)
			}
			seen[p.ID] = struct{}{}
		}
	}
	req := newAppendRequest(ctx, stream, expected, own)
	r, err := s.submit(ctx, req)
	if err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	return r.res, r.err
}

// newAppendRequest encodes evs (valid, with IDs) for the writer. Encoding
// happens here, in parallel with other callers, rather than in the single
// writer; the writer then never reads the caller's payloads, which matters
// when Append returns early on ctx while the writer works.
func newAppendRequest(ctx context.Context, stream string, expected events.Expected, evs []events.Proposed) *request {
	size := 0
	for i := range evs {
		size += eventSize(stream, &evs[i])
	}
	buf := make([]byte, 0, size)
	recs := make([][]byte, len(evs))
	for i := range evs {
		start := len(buf)
		buf = appendEvent(buf, stream, &evs[i])
		recs[i] = buf[start:len(buf):len(buf)]
		evs[i].Data = nil
	}
	return &request{ctx: ctx, stream: stream, expected: expected, evs: evs, recs: recs, reply: make(chan reply, 1)}
}

// submit hands req to the writer and waits for its reply. If ctx ends while
// waiting, the outcome is unknown; a retry with the same IDs settles it.
func (s *Store) submit(ctx context.Context, req *request) (reply, error) {
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return reply{}, events.ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.mu.RUnlock()
		return reply{}, ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case r := <-req.reply:
		return r, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func checkStream(stream string) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", events.ErrInvalid)
	}
	if len(stream) > MaxStreamName {
		return fmt.Errorf("%w: stream name is %d bytes, limit %d", events.ErrInvalid, len(stream), MaxStreamName)
	}
	return nil
}

// view runs fn in a read transaction, mapping a closed database to ErrClosed.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return events.ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return events.ErrClosed
	}
	return err
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Event, error) {
	if err := checkStream(stream); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("read stream %s: %w: limit %d", stream, events.ErrInvalid, limit)
	}
	if dir != events.Forward && dir != events.Backward {
		return nil, fmt.Errorf("read stream %s: %w: direction %d", stream, events.ErrInvalid, dir)
	}
	out := []events.Event{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		idx, log := tx.Bucket(bucketIdx), tx.Bucket(bucketLog)
		key := revKey(nil, stream, ^uint64(0))
		last, exists := lastRevision(idx.Cursor(), key)
		if !exists {
			return nil
		}
		var n uint64 // events to read
		if dir == events.Forward {
			if from > last {
				return nil
			}
			n = min(last-from+1, uint64(limit))
		} else {
			from = min(from, last)
			n = min(from+1, uint64(limit))
		}
		out = make([]events.Event, 0, n)
		d := newDecoder()
		var sk [8]byte
		for i := uint64(0); i < n; i++ {
			rev := from + i
			if dir == events.Backward {
				rev = from - i
			}
			key = revKey(key[:0], stream, rev)
			seqV := idx.Get(key)
			if seqV == nil {
				return fmt.Errorf("revision %d: %w: missing from index", rev, errCorrupt)
			}
			seq := u64(seqV)
			v := log.Get(seqKey(sk[:0], seq))
			if v == nil {
				return fmt.Errorf("revision %d: %w: position %d missing from log", rev, errCorrupt, seq)
			}
			ev, err := d.event(seq, v)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return out, nil
}

// lastRevision returns the last revision of the stream whose idx keys are
// revKey(stream, *), given key = revKey(stream, ^uint64(0)), and false when
// the stream has no events. key's bytes are left as they were.
func lastRevision(c *bolt.Cursor, key []byte) (uint64, bool) {
	k, _ := c.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		return ^uint64(0), true
	}
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	prefix := key[:len(key)-8]
	// The length prefix makes every key that starts with prefix one of this
	// stream's.
	if k == nil || len(k) != len(key) || !bytes.HasPrefix(k, prefix) {
		return 0, false
	}
	return u64(k[len(prefix):]), true
}

// firstAfter is the first sequence whose position comes after from.
func firstAfter(from events.Position) uint64 {
	if from.Prepare < from.Commit {
		return from.Commit // {c,c} is after {c,p} when p < c
	}
	if from.Commit == ^uint64(0) {
		return 0 // nothing comes after; callers treat 0 as "none"
	}
	return from.Commit + 1
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, from events.Position, limit int) ([]events.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all from %v: %w: limit %d", from, events.ErrInvalid, limit)
	}
	out, err := s.readAll(ctx, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read all from %v: %w", from, err)
	}
	return out, nil
}

func (s *Store) readAll(ctx context.Context, from events.Position, limit int) ([]events.Event, error) {
	start := firstAfter(from)
	head := s.head.Load()
	if start == 0 || start > head {
		// The published head can lag a commit by an instant; that is fine:
		// a subscriber is woken after the head is published.
		return []events.Event{}, s.view(ctx, func(*bolt.Tx) error { return nil })
	}
	out := make([]events.Event, 0, min(uint64(limit), head-start+1))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		d := newDecoder()
		c := tx.Bucket(bucketLog).Cursor()
		var sk [8]byte
		for k, v := c.Seek(seqKey(sk[:0], start)); k != nil && len(out) < limit; k, v = c.Next() {
			ev, err := d.event(u64(k), v)
			if err != nil {
				return err
			}
			out = append(out, ev)
			if len(out)%8192 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Head implements events.Store.
func (s *Store) Head(ctx context.Context) (events.Position, error) {
	if err := ctx.Err(); err != nil {
		return events.Start, fmt.Errorf("head: %w", err)
	}
	if s.closed.Load() {
		return events.Start, fmt.Errorf("head: %w", events.ErrClosed)
	}
	h := s.head.Load()
	return events.Position{Commit: h, Prepare: h}, nil
}

// subscribePage is how many events a subscription reads per transaction.
const subscribePage = 1024

// Subscribe implements events.Store. It reads pages of the log after the
// last delivered position until it is caught up, then waits for the writer's
// next commit. The notification channel is taken before each read, so a
// commit that lands between the read and the wait still wakes it.
func (s *Store) Subscribe(ctx context.Context, from events.Position, h events.Handler) error {
	if h == nil {
		return fmt.Errorf("subscribe: %w: nil handler", events.ErrInvalid)
	}
	last := from
	for {
		wake := s.notifyChan()
		batch, err := s.readAll(ctx, last, subscribePage)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("subscribe from %v: %w", last, err)
		}
		for _, ev := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := h(ctx, ev); err != nil {
				return err
			}
			last = ev.Position
		}
		if len(batch) == subscribePage {
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return fmt.Errorf("subscribe from %v: %w", last, events.ErrClosed)
		}
	}
}

func (s *Store) notifyChan() chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

// wake wakes every subscriber waiting for a commit.
func (s *Store) wake() {
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// SaveSnapshot implements events.Store. It goes through the writer, so it is
// committed together with concurrent appends.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, events.ErrClosed)
	}
	if err := checkStream(snap.Stream); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if snap.Type == "" || snap.Version < 1 {
		return fmt.Errorf("save snapshot of %s: %w: type %q version %d", snap.Stream, events.ErrInvalid, snap.Type, snap.Version)
	}
	if len(snap.Data) > 0 && !json.Valid(snap.Data) {
		return fmt.Errorf("save snapshot of %s: %w: state is not valid JSON", snap.Stream, events.ErrInvalid)
	}
	if len(snap.Data) > maxEventSize {
		return fmt.Errorf("save snapshot of %s: %w: state is %d bytes", snap.Stream, events.ErrInvalid, len(snap.Data))
	}
	snap.Data = append([]byte(nil), snap.Data...) // the caller may reuse its buffer
	req := &request{ctx: ctx, stream: snap.Stream, snap: &snap, reply: make(chan reply, 1)}
	r, err := s.submit(ctx, req)
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, err)
	}
	return r.err
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, bool, error) {
	if err := checkStream(stream); err != nil {
		return events.Snapshot{}, false, fmt.Errorf("load snapshot: %w", err)
	}
	var (
		snap  events.Snapshot
		found bool
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSnapshots).Get([]byte(stream))
		if v == nil {
			return nil
		}
		var err error
		snap, err = decodeSnapshot(stream, v)
		found = err == nil
		return err
	})
	if err != nil {
		return events.Snapshot{}, false, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	return snap, found, nil
}

// Copy is a consistent copy of the store's database as of one read
// transaction: Size bytes that WriteTo writes, holding the log up to Head.
type Copy struct {
	// Head is the position of the last event in the copy.
	Head events.Position
	// Size is the number of bytes WriteTo writes.
	Size int64
	io.WriterTo
}

// Backup hands fn a consistent copy of the database (a bbolt file that
// opens as a store of its own), taken in one read transaction while
// appends go on: they are simply not in it. The copy is valid only inside
// fn. The transaction holds pages the writer would otherwise reuse, so a
// long copy lets the file grow meanwhile.
func (s *Store) Backup(ctx context.Context, fn func(Copy) error) error {
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var head uint64
		if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
			head = u64(k)
		}
		return fn(Copy{Head: events.Position{Commit: head, Prepare: head}, Size: tx.Size(), WriterTo: tx})
	})
	if err != nil {
		return fmt.Errorf("back up the event store: %w", err)
	}
	return nil
}
