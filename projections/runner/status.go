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
	// Retrying: a write to its database failed (a full disk); it resumes
	// by itself from its checkpoint after a growing pause; see Failure.
	Retrying State = "retrying"
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
	// Commits counts the transactions committed since the runner opened.
	Commits uint64 `json:"commits"`
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
	// Failure is set when State is Failed or Retrying.
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
			LastRecorded: cp.Recorded, Events: cp.Events, Commits: w.commitCount(),
			Head: head.String(), Failure: failure,
		}
		switch {
		case failure != nil && failure.Retrying:
			st.State = Retrying
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

// Currency says how current a read of a read model is.
type Currency string

const (
	// ReadCurrent: the projections read had applied the log up to its head
	// as it was when the read began.
	ReadCurrent Currency = "current"
	// ReadLagging: they had not caught up within the time the reader gave
	// them; the answer may miss the latest events. A projection whose
	// writes fail (State Retrying) reads as ReadLagging, with Reason.
	ReadLagging Currency = "lagging"
	// ReadFailed: one of them stopped on an event it cannot apply; the answer
	// misses everything after it until the projection is rebuilt.
	ReadFailed Currency = "failed"
)

// Freshness is how current a read of some projections is: what Await
// found.
type Freshness struct {
	Status Currency `json:"status"`
	// Head is the head of the log when the read began ("" when the store
	// could not say).
	Head string `json:"head,omitempty"`
	// Checkpoint is the least checkpoint of the projections read.
	Checkpoint string `json:"checkpoint"`
	// Reason says why the read is not current.
	Reason string `json:"reason,omitempty"`
}

// Await waits, as long as ctx allows, until the named projections (all
// when names is empty) have applied the log up to its head as it is when
// Await is called, and says how current a read of them now is. So a read
// that begins after a write on any node that shares the log sees that
// write: the write's events are at or before that head. A deadline or
// cancellation of ctx is not an error: it makes the read ReadLagging. Await
// fails only for an unknown name, or when the runner is closed or not
// started.
func (r *Runner) Await(ctx context.Context, names ...string) (Freshness, error) {
	if err := r.started(); err != nil {
		return Freshness{}, fmt.Errorf("await: %w", err)
	}
	ws, err := r.named(names)
	if err != nil {
		return Freshness{}, fmt.Errorf("await %w", err)
	}
	fr := Freshness{Status: ReadCurrent}
	head, err := r.store.Head(ctx)
	if err != nil {
		fr.Status, fr.Reason = ReadLagging, fmt.Sprintf("the head of the log is unknown: %v", err)
	}
	if err == nil {
		fr.Head = head.String()
		for _, w := range ws {
			if err := w.waitFor(ctx, head); err != nil && fr.Status == ReadCurrent {
				fr.Status, fr.Reason = ReadLagging, fmt.Sprintf("%s had not caught up with the log in time", w.name)
			}
		}
	}
	var least *events.Position
	for _, w := range ws {
		_, cp, failure := w.snapshot()
		if p := cp.position(); least == nil || p.Less(*least) {
			least = &p
		}
		switch {
		case failure == nil:
		case !failure.Retrying:
			fr.Status, fr.Reason = ReadFailed, fmt.Sprintf("%s stopped at %s (%s): %s; rebuild it once the cause is fixed", w.name, failure.At, failure.Type, failure.Error)
		case fr.Status != ReadFailed:
			fr.Status, fr.Reason = ReadLagging, fmt.Sprintf("%s cannot write its database since %s (%d attempts): %s; it retries by itself", w.name, failure.Since.Format(time.RFC3339), failure.Attempts, failure.Error)
		}
	}
	if least != nil {
		fr.Checkpoint = least.String()
	}
	return fr, nil
}
