package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/follow"
	"github.com/callguard/callguard/events/schema"
)

// Live is a node's current rule table: loaded from the rules stream, then
// kept current by a subscription to the log (a follow.Stream). Readers
// call Table, an atomic load; the follower swaps in each new table whole.
type Live struct {
	// s is held by value so that Table loads one pointer, as the decision
	// hot path did before the follower was shared with the users book.
	s follow.Stream[Table]
}

// NewLive returns a Live with the empty table; Load fills it.
func NewLive(store events.Store, log *slog.Logger) *Live {
	reg := schema.NewRegistry()
	l := new(Live)
	l.s.Init(store, Empty(), follow.Config[Table]{
		Stream: schema.RulesStream,
		Read: func(ctx context.Context, store events.Store) (*Table, error) {
			return Read(ctx, store, reg)
		},
		Fold: func(t *Table, ev events.Event) (*Table, error) {
			return fold(t, reg, ev)
		},
		Revision: (*Table).Revision,
		Prefix:   "rules",
		Name:     "range rules",
		Item:     "rule",
	}, log)
	return l
}

// Table returns the current table. It never blocks and never reads the
// store: the hot path of a call.
func (l *Live) Table() *Table { return l.s.Current() }

// Lookup is Table().Lookup.
func (l *Live) Lookup(key string, now time.Time) []schema.RangeMatch {
	return l.s.Current().Lookup(key, now)
}

// Overrides is Table().Overrides.
func (l *Live) Overrides(line string, now time.Time) []schema.Override {
	return l.s.Current().Overrides(line, now)
}

// Load reads the rules stream and makes it the current table. It returns
// the log's head as it was before the read: Follow from there misses
// nothing (what it delivers twice, Fold skips by revision).
func (l *Live) Load(ctx context.Context) (events.Position, error) { return l.s.Load(ctx) }

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
// subscription's latency. A rule that cannot be folded is logged and
// skipped: it must not stop the others.
func (l *Live) Follow(ctx context.Context, from events.Position) { l.s.Follow(ctx, from) }

// WaitFor returns once the table has folded the rules stream up to rev,
// or with ctx's error: an admin command waits so that its answer means
// the rule is in force on this node.
func (l *Live) WaitFor(ctx context.Context, rev uint64) error { return l.s.WaitFor(ctx, rev) }

// Start loads the table and then follows the log until ctx ends, in the
// background. It waits for the first load at most wait: when that fails
// (the store does not answer) it returns the error and goes on trying in
// the background, so the node decides without range rules until then.
func (l *Live) Start(ctx context.Context, wait time.Duration) error { return l.s.Start(ctx, wait) }
