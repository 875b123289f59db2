package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
)

// worker runs one projection: its subscription, its batches and its
// checkpoint. The run goroutine owns the subscription; mu guards what
// Status and CatchUp read.
type worker struct {
	r    *Runner
	p    Projection
	name string
	db   *bolt.DB // the projection's own file
	path string

	mu       sync.Mutex
	cp       checkpoint
	failure  *Failure
	progress chan struct{} // closed and replaced after each commit or failure
	cancel   context.CancelFunc
	done     chan struct{}
}

// Failure is where and why a projection stopped.
type Failure struct {
	// Position, Stream, Revision and Type name the event it failed on.
	Position events.Position `json:"-"`
	At       string          `json:"position"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Type     string          `json:"type"`
	Error    string          `json:"error"`
	// Since is when it failed, by the runner's clock.
	Since time.Time `json:"since"`
}

func (f *Failure) err() error {
	return fmt.Errorf("%w: at %s (%s@%d, %s): %s", ErrFailed, f.At, f.Stream, f.Revision, f.Type, f.Error)
}

// start runs the worker under ctx unless it has failed. The caller holds
// r.mu.
func (w *worker) start(ctx context.Context) {
	w.mu.Lock()
	failed := w.failure != nil
	w.mu.Unlock()
	if failed || w.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	w.cancel, w.done = cancel, make(chan struct{})
	go w.run(ctx, w.done)
}

// stop cancels the worker and waits for it. The caller holds r.mu.
func (w *worker) stop() {
	if w.done == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cancel, w.done = nil, nil
}

// reset sets the in-memory checkpoint after the database was reset.
func (w *worker) reset(cp checkpoint) {
	w.mu.Lock()
	w.cp, w.failure = cp, nil
	w.notifyLocked()
	w.mu.Unlock()
}

func (w *worker) snapshot() (<-chan struct{}, checkpoint, *Failure) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.progress, w.cp, w.failure
}

func (w *worker) notifyLocked() {
	close(w.progress)
	w.progress = make(chan struct{})
}

// run subscribes from the checkpoint and applies batches until ctx ends
// or the projection fails. A store error ends the subscription; it is
// resumed from the checkpoint after a pause that grows to 5 s.
func (w *worker) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	log := w.r.log.With("projection", w.name)
	pause := 100 * time.Millisecond
	for {
		_, cp, _ := w.snapshot()
		err := w.pump(ctx, cp)
		if ctx.Err() != nil {
			return
		}
		var f *failedError
		if errors.As(err, &f) {
			return // logged and recorded by fail
		}
		log.Warn("projection subscription ended; resuming from the checkpoint", "checkpoint", cp.position().String(), "retry_in", pause, "err", err)
		select {
		case <-time.After(pause): // real time: a retry pause, not a decision
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// failedError ends a pump when the projection failed on an event.
type failedError struct{ f *Failure }

func (e *failedError) Error() string { return e.f.err().Error() }

// pump runs one subscription from cp. The store's handler only hands
// events over a channel; this goroutine takes whatever has arrived (up to
// BatchSize) as one batch, so a catch-up applies big batches and a live
// projection applies each event as soon as it comes.
func (w *worker) pump(ctx context.Context, cp checkpoint) error {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := w.r.opts.BatchSize
	ch := make(chan events.Event, size)
	subErr := make(chan error, 1)
	go func() {
		defer close(ch)
		subErr <- w.r.store.Subscribe(subCtx, cp.position(), func(ctx context.Context, ev events.Event) error {
			select {
			case ch <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	batch := make([]events.Event, 0, size)
	for ev := range ch {
		batch = append(batch[:0], ev)
	fill:
		for len(batch) < size {
			select {
			case ev, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		if err := w.apply(batch); err != nil {
			cancel()
			for range ch { // let the subscription goroutine finish
			}
			<-subErr
			return err
		}
	}
	return <-subErr
}

// apply folds batch and advances the checkpoint in one transaction. When
// the projection fails on an event, the events before it are committed
// on their own and the projection is marked failed at it.
func (w *worker) apply(batch []events.Event) error {
	_, cp, _ := w.snapshot()
	next, failedAt, applyErr, err := w.commit(cp, batch)
	if err != nil {
		return w.fail(batch[len(batch)-1], fmt.Errorf("commit batch: %w", err))
	}
	if applyErr == nil {
		w.advance(next)
		return nil
	}
	if failedAt > 0 {
		next, _, _, err = w.commit(cp, batch[:failedAt])
		if err != nil {
			return w.fail(batch[failedAt], fmt.Errorf("%v (and committing the events before it failed: %w)", applyErr, err))
		}
		w.advance(next)
	}
	return w.fail(batch[failedAt], applyErr)
}

// applyError marks an error of the projection's own Apply.
type applyError struct {
	index int
	err   error
}

func (e *applyError) Error() string { return e.err.Error() }

// commit applies batch after cp in one transaction. It returns the new
// checkpoint; or, when Apply failed, the index of the event and its
// error with nothing written; or a storage error.
func (w *worker) commit(cp checkpoint, batch []events.Event) (checkpoint, int, error, error) {
	last := batch[len(batch)-1]
	next := cp
	next.Commit, next.Prepare = last.Position.Commit, last.Position.Prepare
	next.Recorded = last.Recorded
	next.Events += uint64(len(batch))
	err := w.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketModel)
		if err != nil {
			return err
		}
		b := w.p.Begin(root)
		for i, ev := range batch {
			if err := b.Apply(ev); err != nil {
				return &applyError{index: i, err: err}
			}
		}
		if err := b.Flush(); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return writeCheckpoint(tx, next)
	})
	var ae *applyError
	if errors.As(err, &ae) {
		return cp, ae.index, ae.err, nil
	}
	return next, 0, nil, err
}

func (w *worker) advance(cp checkpoint) {
	w.mu.Lock()
	w.cp = cp
	w.notifyLocked()
	w.mu.Unlock()
}

// fail records that the projection stopped at ev and logs it.
func (w *worker) fail(ev events.Event, err error) error {
	f := &Failure{
		Position: ev.Position, At: ev.Position.String(), Stream: ev.Stream, Revision: ev.Revision,
		Type: ev.Type, Error: err.Error(), Since: w.r.opts.Clock(),
	}
	w.mu.Lock()
	w.failure = f
	w.notifyLocked()
	w.mu.Unlock()
	w.r.log.Error("projection stopped on an event it cannot apply; fix and rebuild it or restart",
		"projection", w.name, "position", f.At, "stream", f.Stream, "revision", f.Revision, "type", f.Type, "err", err)
	return &failedError{f: f}
}
