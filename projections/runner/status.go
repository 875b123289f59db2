package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/callguard/callguard/events"
)

// State says what a projection is doing.
type State string

const (
	// Running: subscribed; Lag says whether it is catching up or live.
	Running State = "running"
	// Failed: stopped on an event it could not apply; see Failure.
	Failed State = "failed"
	// Stopped: not started yet, or the runner was closed.
	Stopped State = "stopped"
)

// Status is where a projection stands.
type Status struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   State  `json:"state"`
	// Checkpoint is the position of the last event applied ("0": none).
	Checkpoint string          `json:"checkpoint"`
	Position   events.Position `json:"-"`
	// LastRecorded is the store's commit time of the last event applied.
	LastRecorded time.Time `json:"lastRecorded,omitzero"`
	// Events counts the events consumed since the start of the log.
	Events uint64 `json:"events"`
	// Head is the position of the last event of the log when measured.
	Head string `json:"head"`
	// LagEvents is how many events the projection is behind the head;
	// with LagAtLeast, at least that many (counting stopped at
	// Options.MaxLagCount).
	LagEvents  uint64 `json:"lagEvents"`
	LagAtLeast bool   `json:"lagAtLeast,omitempty"`
	// LagSeconds is how long the oldest event not yet applied has been in
	// the store, by the runner's clock; 0 at the head.
	LagSeconds float64 `json:"lagSeconds"`
	// Failure is set when State is Failed.
	Failure *Failure `json:"failure,omitempty"`
}

// StatusSource reports projections' standing; *Runner implements it, and
// metrics and health read it.
type StatusSource interface {
	Status(ctx context.Context) ([]Status, error)
}

var _ StatusSource = (*Runner)(nil)

// Status returns every projection's standing, measured against the head
// of the log now. It fails only when the store cannot say where its head
// is; a projection's own failure is in its Status.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection status: head of the log: %w", err)
	}
	now := r.opts.Clock()
	r.mu.Lock()
	started, closed := r.ctx != nil, r.closed
	r.mu.Unlock()
	out := make([]Status, 0, len(r.workers))
	for _, w := range r.workers {
		_, cp, failure := w.snapshot()
		st := Status{
			Name: w.name, Version: cp.Version, State: Running,
			Checkpoint: cp.position().String(), Position: cp.position(),
			LastRecorded: cp.Recorded, Events: cp.Events, Head: head.String(), Failure: failure,
		}
		switch {
		case failure != nil:
			st.State = Failed
		case !started || closed:
			st.State = Stopped
		}
		if cp.position().Less(head) {
			if err := r.measure(ctx, &st, cp.position(), head, now); err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// measure fills in the lag of a projection at from, behind head.
func (r *Runner) measure(ctx context.Context, st *Status, from, head events.Position, now time.Time) error {
	limit := 1
	if !r.opts.SequentialPositions {
		limit = r.opts.MaxLagCount
	}
	evs, err := r.store.ReadAll(ctx, from, limit)
	if err != nil {
		return fmt.Errorf("projection status of %s: read the log after %v: %w", st.Name, from, err)
	}
	if len(evs) > 0 {
		st.LagSeconds = max(0, now.Sub(evs[0].Recorded).Seconds())
	}
	if r.opts.SequentialPositions {
		st.LagEvents = head.Commit - from.Commit
		return nil
	}
	for _, ev := range evs {
		if head.Less(ev.Position) {
			break
		}
		st.LagEvents++
	}
	st.LagAtLeast = len(evs) == limit && st.LagEvents == uint64(limit)
	return nil
}
