package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Live is a node's current rule table: loaded from the rules stream, then
// kept current by a subscription to the log. Readers call Table, an atomic
// load; the follower swaps in each new table whole.
type Live struct {
	store events.Store
	reg   *events.Registry
	log   *slog.Logger

	cur atomic.Pointer[Table]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each swap
}

// NewLive returns a Live with the empty table; Load fills it.
func NewLive(store events.Store, log *slog.Logger) *Live {
	if log == nil {
		log = slog.Default()
	}
	l := &Live{store: store, reg: schema.NewRegistry(), log: log, changed: make(chan struct{})}
	l.cur.Store(Empty())
	return l
}

// Table returns the current table. It never blocks and never reads the
// store: the hot path of a call.
func (l *Live) Table() *Table { return l.cur.Load() }

// Lookup is Table().Lookup.
func (l *Live) Lookup(key string, now time.Time) []schema.RangeMatch {
	return l.cur.Load().Lookup(key, now)
}

// Overrides is Table().Overrides.
func (l *Live) Overrides(line string, now time.Time) []schema.Override {
	return l.cur.Load().Overrides(line, now)
}

func (l *Live) swap(t *Table) {
	l.cur.Store(t)
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Load reads the rules stream and makes it the current table. It returns
// the log's head as it was before the read: Follow from there misses
// nothing (what it delivers twice, Fold skips by revision).
func (l *Live) Load(ctx context.Context) (events.Position, error) {
	head, err := l.store.Head(ctx)
	if err != nil {
		return events.Start, fmt.Errorf("rules: load: head: %w", err)
	}
	t, err := Read(ctx, l.store, l.reg)
	if err != nil {
		return events.Start, err
	}
	l.swap(t)
	return head, nil
}

// Read folds the whole rules stream of store into a table: what an admin
// command checks against before it appends with the table's revision.
func Read(ctx context.Context, store events.Store, reg *events.Registry) (*Table, error) {
	evs, err := events.ReadWholeStream(ctx, store, schema.RulesStream, 0)
	if err != nil {
		return nil, fmt.Errorf("rules: read %s: %w", schema.RulesStream, err)
	}
	f := Empty().folder()
	for _, ev := range evs {
		p, err := decode(reg, ev)
		if errors.Is(err, events.ErrUnknownType) {
			// A later build's event: not a rule this one knows.
			f.rev = int64(ev.Revision)
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := f.fold(ev.Revision, p); err != nil {
			return nil, err
		}
	}
	return f.table(), nil
}

func decode(reg *events.Registry, ev events.Event) (schema.Payload, error) {
	v, err := reg.Decode(ev)
	if err != nil {
		return nil, fmt.Errorf("rules: decode %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	p, ok := v.(schema.Payload)
	if !ok {
		return nil, fmt.Errorf("rules: %s@%d: %w: %T", ev.Stream, ev.Revision, ErrInvalid, v)
	}
	return p, nil
}

func fold(t *Table, reg *events.Registry, ev events.Event) (*Table, error) {
	p, err := decode(reg, ev)
	if err != nil {
		return nil, err
	}
	return t.Fold(ev.Revision, p)
}

// Follow keeps the table current from the log after from until ctx ends,
// resubscribing after a pause when the store fails. Every node follows
// the same stream, so a command reaches every node's table within the
// subscription's latency.
func (l *Live) Follow(ctx context.Context, from events.Position) {
	pos := from
	pause := 100 * time.Millisecond
	for {
		err := l.store.Subscribe(ctx, pos, func(_ context.Context, ev events.Event) error {
			pos = ev.Position
			if ev.Stream != schema.RulesStream {
				return nil
			}
			t, err := fold(l.cur.Load(), l.reg, ev)
			if err != nil {
				// A rule that cannot be folded must not stop the others.
				l.log.Error("rule not folded", "revision", ev.Revision, "err", err)
				return nil
			}
			if t != l.cur.Load() {
				l.swap(t)
			}
			pause = 100 * time.Millisecond
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("range rules: subscription ended; resubscribing", "after", pause, "position", pos.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// WaitFor returns once the table has folded the rules stream up to rev,
// or with ctx's error: an admin command waits so that its answer means
// the rule is in force on this node.
func (l *Live) WaitFor(ctx context.Context, rev uint64) error {
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if r, ok := l.cur.Load().Revision(); ok && r >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rules: wait for revision %d: %w", rev, ctx.Err())
		case <-ch:
		}
	}
}

// Start loads the table and then follows the log until ctx ends, in the
// background. It waits for the first load at most wait: when that fails
// (the store does not answer) it returns the error and goes on trying in
// the background, so the node decides without range rules until then.
func (l *Live) Start(ctx context.Context, wait time.Duration) error {
	first := make(chan error, 1)
	go func() {
		pause := 100 * time.Millisecond
		for {
			lctx, cancel := context.WithTimeout(ctx, wait)
			from, err := l.Load(lctx)
			cancel()
			select {
			case first <- err:
			default:
			}
			if err == nil {
				l.Follow(ctx, from)
				return
			}
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("range rules not loaded; retrying", "after", pause, "err", err)
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
