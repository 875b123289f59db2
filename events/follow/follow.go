// Package follow keeps a node's copy of one small stream that admins write
// and every node folds (the range rules, the console users): loaded whole
// at start, then kept current by a subscription to the log. The folded
// value is immutable; each event that changes it swaps in a new one, so
// readers take the current value with one atomic load and never block on
// the store.
package follow

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callguard/callguard/events"
)

// Config says which stream a Stream follows and how it folds it.
type Config[T any] struct {
	// Stream is the name of the stream followed; events of other streams
	// are skipped.
	Stream string
	// Read folds the whole stream of store: what Load makes current. An
	// error fails the Load.
	Read func(ctx context.Context, store events.Store) (*T, error)
	// Fold returns the value after ev. Returning cur itself means the
	// event changed nothing (a subscription delivers some twice); an error
	// is logged and the event skipped, so that one bad event does not stop
	// the ones after it.
	Fold func(cur *T, ev events.Event) (*T, error)
	// Revision is the stream's revision folded into a value; false before
	// its first event.
	Revision func(*T) (uint64, bool)

	// Prefix starts the errors ("rules": "rules: load: head: ...").
	Prefix string
	// Name is what the logs call the folded value ("range rules").
	Name string
	// Item is what the logs call one event of the stream ("rule").
	Item string
}

// Stream is a node's folded copy of one stream. Its zero value is not
// usable: make one with New, or Init one held by value (so that a reader
// of the value loads one pointer, not two).
type Stream[T any] struct {
	store events.Store
	cfg   Config[T]
	log   *slog.Logger

	cur atomic.Pointer[T]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each swap
}

// New returns a Stream over store holding empty until Load replaces it.
// A nil log is slog.Default().
func New[T any](store events.Store, empty *T, cfg Config[T], log *slog.Logger) *Stream[T] {
	s := new(Stream[T])
	s.Init(store, empty, cfg, log)
	return s
}

// Init makes s a Stream over store holding empty, as New does. It is for
// a Stream embedded by value, before any other use.
func (s *Stream[T]) Init(store events.Store, empty *T, cfg Config[T], log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	s.store, s.cfg, s.log = store, cfg, log
	s.changed = make(chan struct{})
	s.cur.Store(empty)
}

// Current returns the current value: one atomic load, the hot path.
func (s *Stream[T]) Current() *T { return s.cur.Load() }

func (s *Stream[T]) swap(v *T) {
	s.cur.Store(v)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Load reads the stream and makes it current. It returns the log's head
// as it was before the read: Follow from there misses nothing (what it
// delivers twice, Fold skips by revision).
func (s *Stream[T]) Load(ctx context.Context) (events.Position, error) {
	head, err := s.store.Head(ctx)
	if err != nil {
		return events.Start, fmt.Errorf("%s: load: head: %w", s.cfg.Prefix, err)
	}
	v, err := s.cfg.Read(ctx, s.store)
	if err != nil {
		return events.Start, err
	}
	s.swap(v)
	return head, nil
}

// Follow keeps the value current from the log after from until ctx ends,
// resubscribing after a pause (doubling up to 5 s) when the store fails.
// Every node follows the same stream, so a command reaches every node
// within the subscription's latency.
func (s *Stream[T]) Follow(ctx context.Context, from events.Position) {
	pos := from
	pause := 100 * time.Millisecond
	for {
		err := s.store.Subscribe(ctx, pos, func(_ context.Context, ev events.Event) error {
			pos = ev.Position
			if ev.Stream != s.cfg.Stream {
				return nil
			}
			cur := s.cur.Load()
			next, err := s.cfg.Fold(cur, ev)
			if err != nil {
				s.log.Error(s.cfg.Item+" not folded", "revision", ev.Revision, "err", err)
				return nil
			}
			if next != cur {
				s.swap(next)
			}
			pause = 100 * time.Millisecond
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn(s.cfg.Name+": subscription ended; resubscribing", "after", pause, "position", pos.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// WaitFor returns once the value has folded the stream up to rev, or with
// ctx's error: an admin command waits so that its answer means the change
// is in force on this node.
func (s *Stream[T]) WaitFor(ctx context.Context, rev uint64) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if r, ok := s.cfg.Revision(s.cur.Load()); ok && r >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: wait for revision %d: %w", s.cfg.Prefix, rev, ctx.Err())
		case <-ch:
		}
	}
}

// Start loads the value and then follows the log until ctx ends, in the
// background. It waits for the first load at most wait: when that fails
// (the store does not answer) it returns the error and goes on trying in
// the background, the value staying as it was until a load succeeds.
func (s *Stream[T]) Start(ctx context.Context, wait time.Duration) error {
	first := make(chan error, 1)
	go func() {
		pause := 100 * time.Millisecond
		for {
			lctx, cancel := context.WithTimeout(ctx, wait)
			from, err := s.Load(lctx)
			cancel()
			select {
			case first <- err:
			default:
			}
			if err == nil {
				s.Follow(ctx, from)
				return
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn(s.cfg.Name+" not loaded; retrying", "after", pause, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 5*time.Second)
		}
	}()
	return <-first
}
