package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Writer is the one writer of the rules stream: an admin command is
// checked against the stream as it is in the store (not the node's
// table, which may lag), appended with the revision it was checked
// against, and retried from a fresh read when another node's command got
// in first. It then waits until the node's own table has folded it, so
// that the answer means "in force on this node".
type Writer struct {
	Store events.Store
	// Live is the node's table, waited for after an append; nil: no wait.
	Live  *Live
	Clock func() time.Time
	// Node names this node in the events' metadata.
	Node string
}

// Applied says where a command's event landed.
type Applied struct {
	// Event is the event type written; empty for a repeat.
	Event    string
	Revision uint64
	// Repeated: the same command had been applied before; nothing written.
	Repeated bool
}

// maxConflicts bounds the read-check-append loop; each conflict means
// another admin's command got in, so it is never reached in practice.
const maxConflicts = 100

// Add applies cmd (see Table.Add).
func (w *Writer) Add(ctx context.Context, cmd Command) (Applied, error) {
	return w.apply(ctx, cmd.CommandID, func(t *Table, now time.Time) (*schema.Record, error) { return t.Add(cmd, now) })
}

// Remove removes the rule of rng from list (see Table.Remove).
func (w *Writer) Remove(ctx context.Context, list schema.RangeList, rng, commandID, by, why string) (Applied, error) {
	return w.apply(ctx, commandID, func(t *Table, now time.Time) (*schema.Record, error) {
		return t.Remove(list, rng, commandID, by, why, now)
	})
}

// SetLine sets a line's settings (see Table.SetLine).
func (w *Writer) SetLine(ctx context.Context, cmd SettingsCommand) (Applied, error) {
	return w.apply(ctx, cmd.CommandID, func(t *Table, now time.Time) (*schema.Record, error) { return t.SetLine(cmd, now) })
}

// ClearLine returns a line to the global settings (see Table.ClearLine).
func (w *Writer) ClearLine(ctx context.Context, line, commandID, by, why string) (Applied, error) {
	return w.apply(ctx, commandID, func(t *Table, now time.Time) (*schema.Record, error) {
		return t.ClearLine(line, commandID, by, why, now)
	})
}

// AddSchedule adds a schedule (see Table.AddSchedule).
func (w *Writer) AddSchedule(ctx context.Context, cmd SettingsCommand) (Applied, error) {
	return w.apply(ctx, cmd.CommandID, func(t *Table, now time.Time) (*schema.Record, error) { return t.AddSchedule(cmd, now) })
}

// RemoveSchedule removes a schedule (see Table.RemoveSchedule).
func (w *Writer) RemoveSchedule(ctx context.Context, name, commandID, by, why string) (Applied, error) {
	return w.apply(ctx, commandID, func(t *Table, now time.Time) (*schema.Record, error) {
		return t.RemoveSchedule(name, commandID, by, why, now)
	})
}

func (w *Writer) apply(ctx context.Context, commandID string, check func(*Table, time.Time) (*schema.Record, error)) (Applied, error) {
	reg := schema.NewRegistry()
	for range maxConflicts {
		t, err := Read(ctx, w.Store, reg)
		if err != nil {
			return Applied{}, err
		}
		if commandID != "" {
			if rev, ok := t.applied(commandID); ok {
				return Applied{Revision: rev, Repeated: true}, nil
			}
		}
		rec, err := check(t, w.Clock())
		if err != nil {
			return Applied{}, err
		}
		if rec == nil {
			r, _ := t.Revision()
			return Applied{Revision: r, Repeated: true}, nil
		}
		props, err := schema.Proposals([]schema.Record{*rec}, events.Metadata{Node: w.Node, Actor: "admin:" + by(rec.Payload), CausationID: commandID})
		if err != nil {
			return Applied{}, err
		}
		res, err := w.Store.Append(ctx, schema.RulesStream, t.Expected(), props...)
		var conflict *events.ConflictError
		if errors.As(err, &conflict) {
			continue
		}
		if err != nil {
			return Applied{}, fmt.Errorf("rules: append: %w", err)
		}
		if w.Live != nil {
			if err := w.Live.WaitFor(ctx, res.LastRevision); err != nil {
				return Applied{}, err
			}
		}
		return Applied{Event: rec.Payload.EventType(), Revision: res.LastRevision}, nil
	}
	return Applied{}, fmt.Errorf("rules: %d conflicting writers in a row", maxConflicts)
}

func by(p schema.Payload) string {
	switch e := p.(type) {
	case schema.RangeWhitelisted:
		return e.By
	case schema.RangeBlocked:
		return e.By
	case schema.RangeRemoved:
		return e.By
	case schema.LineSettingsSet:
		return e.By
	case schema.LineSettingsCleared:
		return e.By
	case schema.ScheduleAdded:
		return e.By
	case schema.ScheduleRemoved:
		return e.By
	case schema.OriginRuleSet:
		return e.By
	case schema.OriginRuleRemoved:
		return e.By
	}
	return ""
}
