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
// Status, CatchUp and WaitFor read.
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
	// want is the furthest position a waiter (WaitFor, CatchUp) asked
	// for, while hasWant; a batch that reaches it commits at once instead
	// of on the cadence. It is cleared once the checkpoint reaches it.
	want    events.Position
	hasWant bool
	commits uint64
	// flush wakes the run goroutine when a waiter arrives, so that a
	// batch already pending commits now (capacity 1: a wake-up only).
	flush  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Failure is where and why a projection stopped.
type Failure struct {
	// Position, Stream, Revision and Type name the event it failed on
	// (for a write failure, the last event of the batch it could not
	// commit).
	Position events.Position `json:"-"`
	At       string          `json:"position"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Type     string          `json:"type"`
	Error    string          `json:"error"`
	// Since is when it failed, by the runner's clock.
	Since time.Time `json:"since"`
	// Retrying marks a write to the projection's own database that
	// failed (a full disk, an I/O error): the projection retries by
	// itself with a growing pause, and this Failure is cleared by the
	// first commit that succeeds. Without it the projection could not
	// apply the event and stays stopped until it is rebuilt.
	Retrying bool `json:"retrying,omitempty"`
	// Attempts counts the failed commits in a row (Retrying only).
	Attempts int `json:"attempts,omitempty"`
}

func (f *Failure) err() error {
	return fmt.Errorf("%w: at %s (%s@%d, %s): %s", ErrFailed, f.At, f.Stream, f.Revision, f.Type, f.Error)
}

// start runs the worker under ctx unless it has failed. The caller holds
// r.mu.
func (w *worker) start(ctx context.Context) {
	w.mu.Lock()
	failed := w.failure != nil && !w.failure.Retrying
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

// waitFor waits until the projection has applied the log up to pos. It
// asks the run goroutine to commit what it holds now rather than on the
// cadence. It returns the failure of a projection that stopped on an
// event (wrapping ErrFailed), or ctx's error; a projection whose writes
// fail is waited for, since it retries by itself.
func (w *worker) waitFor(ctx context.Context, pos events.Position) error {
	w.mu.Lock()
	if w.cp.position().Less(pos) && (!w.hasWant || w.want.Less(pos)) {
		w.want, w.hasWant = pos, true
	}
	w.mu.Unlock()
	select {
	case w.flush <- struct{}{}:
	default:
	}
	for {
		wake, cp, failure := w.snapshot()
		if failure != nil && !failure.Retrying {
			return failure.err()
		}
		if !cp.position().Less(pos) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("%s at %v of %v: %w", w.name, cp.position(), pos, ctx.Err())
		}
	}
}

// wanted reports whether a waiter is waiting for pos or an earlier
// position.
func (w *worker) wanted(pos events.Position) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hasWant && !pos.Less(w.want)
}

// run subscribes from the checkpoint and applies batches until ctx ends
// or the projection fails on an event. A store error, or a write to the
// projection's database that fails, ends the subscription; it resumes
// from the checkpoint stored in the file after a pause that grows from
// 100 ms to 5 s, and starts again from 100 ms once a commit succeeds.
func (w *worker) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	log := w.r.log.With("projection", w.name)
	const first, most = 100 * time.Millisecond, 5 * time.Second
	pause := first
	for {
		_, cp, failure := w.snapshot()
		if failure != nil && failure.Retrying {
			// A commit failed. Whatever bbolt kept of it, the checkpoint
			// in the file is the one that goes with the read model in
			// the file (they commit together): resume from there, never
			// from memory, and nothing is applied twice or skipped.
			stored, err := w.storedCheckpoint()
			if err != nil {
				log.Warn("projection cannot read its checkpoint back; retrying", "retry_in", pause, "err", err)
				if !w.sleep(ctx, pause) {
					return
				}
				pause = min(2*pause, most)
				continue
			}
			w.mu.Lock()
			if cp.position().Less(stored.position()) {
				// The commit reported failed had reached the file: a
				// write went through, so writing works.
				w.failure = nil
			}
			w.cp = stored
			w.notifyLocked()
			w.mu.Unlock()
			cp = stored
		}
		before := w.commitCount()
		err := w.pump(ctx, cp)
		if ctx.Err() != nil {
			return
		}
		var f *failedError
		if errors.As(err, &f) {
			return // logged and recorded by fail
		}
		if w.commitCount() != before {
			pause = first
		}
		log.Warn("projection subscription ended; resuming from the checkpoint", "checkpoint", cp.position().String(), "retry_in", pause, "err", err)
		if !w.sleep(ctx, pause) {
			return
		}
		pause = min(2*pause, most)
	}
}

// sleep pauses for d by the runner's timer, and reports false when ctx
// ended first.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-w.r.opts.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *worker) commitCount() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits
}

// storedCheckpoint reads the checkpoint in the projection's file.
func (w *worker) storedCheckpoint() (checkpoint, error) {
	var cp checkpoint
	err := w.db.View(func(tx *bolt.Tx) error {
		c, found, err := readCheckpoint(tx)
		if err != nil {
			return err
		}
		if !found {
			c = checkpoint{Version: w.p.Version()}
		}
		cp = c
		return nil
	})
	if err != nil {
		return checkpoint{}, fmt.Errorf("read back the checkpoint of %s: %w", w.name, err)
	}
	return cp, nil
}

// failedError ends a pump when the projection failed on an event.
type failedError struct{ f *Failure }

func (e *failedError) Error() string { return e.f.err().Error() }

// pump runs one subscription from cp. The store's handler only hands
// events over a channel; this goroutine gathers them into a batch and
// commits it on the cadence: when BatchSize events are pending, or
// CommitInterval after the first of them arrived, whichever comes first
// — or at once when a waiter (WaitFor, CatchUp) wants them. A catch-up
// fills whole batches; a live projection commits a few times a second
// instead of once per arrival.
func (w *worker) pump(ctx context.Context, cp checkpoint) error {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	size, interval := w.r.opts.BatchSize, w.r.opts.CommitInterval
	// The hand-over buffer need not hold a whole batch: a full one only
	// makes the subscription wait, and 16k idle slots per projection were
	// ~3 MB each for nothing.
	ch := make(chan events.Event, min(size, 1024))
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
	// fail stops the subscription and returns err once it has ended.
	fail := func(err error) error {
		cancel()
		for range ch { // let the subscription goroutine finish
		}
		<-subErr
		return err
	}
	// The batch grows to size in a catch-up.
	batch := make([]events.Event, 0, min(size, 1024))
	var deadline <-chan time.Time // armed by the first event of a batch
	commit := func() error {
		err := w.apply(batch)
		clear(batch) // let the applied events' payloads go
		batch, deadline = batch[:0], nil
		return err
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				// The subscription ended (a store error): keep what has
				// been gathered unless the runner is stopping.
				if len(batch) > 0 && ctx.Err() == nil {
					if err := commit(); err != nil {
						return errors.Join(err, <-subErr)
					}
				}
				return <-subErr
			}
			if len(batch) == 0 && interval > 0 {
				deadline = w.r.opts.After(interval)
			}
			batch = append(batch, ev)
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
			if len(batch) < size && interval > 0 && !w.wanted(batch[len(batch)-1].Position) {
				continue
			}
		case <-deadline:
		case <-w.flush:
			if len(batch) == 0 {
				continue
			}
		}
		if err := commit(); err != nil {
			return fail(err)
		}
	}
}

// apply folds batch and advances the checkpoint in one transaction. When
// the projection fails on an event, the events before it are committed
// on their own and the projection is marked failed at it. A commit that
// fails is a write failure: the projection is marked retrying, and the
// error ends the subscription so that run resumes it.
func (w *worker) apply(batch []events.Event) error {
	_, cp, _ := w.snapshot()
	next, failedAt, applyErr, err := w.commit(cp, batch)
	if err != nil {
		return w.stall(batch[len(batch)-1], err)
	}
	if applyErr == nil {
		w.advance(next)
		return nil
	}
	if failedAt < 0 { // Flush failed: nothing of the batch is written
		return w.fail(batch[len(batch)-1], applyErr)
	}
	if failedAt > 0 {
		next, _, _, err = w.commit(cp, batch[:failedAt])
		if err != nil {
			return w.stall(batch[failedAt-1], err)
		}
		w.advance(next)
	}
	return w.fail(batch[failedAt], applyErr)
}

// applyError marks an error of the projection's own Apply or Flush: the
// fold cannot go on, and retrying would fail the same way.
type applyError struct {
	index int
	err   error
}

func (e *applyError) Error() string { return e.err.Error() }

// commit applies batch after cp in one transaction. It returns the new
// checkpoint; or, when Apply failed, the index of the event and its
// error with nothing written (index -1 when Flush failed); or the error of a write to the
// database (the transaction's commit).
func (w *worker) commit(cp checkpoint, batch []events.Event) (checkpoint, int, error, error) {
	last := batch[len(batch)-1]
	next := cp
	next.Commit, next.Prepare = last.Position.Commit, last.Position.Prepare
	next.Recorded = last.Recorded
	next.Events += uint64(len(batch))
	tx, err := w.db.Begin(true)
	if err != nil {
		return cp, 0, nil, fmt.Errorf("begin: %w", err)
	}
	err = func() error {
		root, err := tx.CreateBucketIfNotExists(bucketModel)
		if err != nil {
			return fmt.Errorf("model bucket: %w", err)
		}
		b := w.p.Begin(root)
		for i, ev := range batch {
			if err := b.Apply(ev); err != nil {
				return &applyError{index: i, err: err}
			}
		}
		if err := b.Flush(); err != nil {
			return &applyError{index: -1, err: fmt.Errorf("flush: %w", err)}
		}
		return writeCheckpoint(tx, next)
	}()
	if err != nil {
		_ = tx.Rollback()
		var ae *applyError
		if errors.As(err, &ae) {
			return cp, ae.index, ae.err, nil
		}
		return cp, 0, nil, err
	}
	if err := w.r.commitTx(tx); err != nil {
		return cp, 0, nil, fmt.Errorf("commit: %w", err)
	}
	return next, 0, nil, nil
}

func (w *worker) advance(cp checkpoint) {
	w.mu.Lock()
	w.cp = cp
	w.failure = nil // a write failure is over once a commit succeeds
	w.commits++
	if w.hasWant && !cp.position().Less(w.want) {
		w.hasWant = false
	}
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

// stall records that a batch ending at ev could not be written, and
// returns the error that ends the subscription (run retries it).
func (w *worker) stall(ev events.Event, err error) error {
	err = fmt.Errorf("write the batch to %s: %w", w.path, err)
	w.mu.Lock()
	f := &Failure{
		Position: ev.Position, At: ev.Position.String(), Stream: ev.Stream, Revision: ev.Revision,
		Type: ev.Type, Error: err.Error(), Since: w.r.opts.Clock(), Retrying: true, Attempts: 1,
	}
	if old := w.failure; old != nil && old.Retrying {
		f.Since, f.Attempts = old.Since, old.Attempts+1
	}
	w.failure = f
	w.notifyLocked()
	w.mu.Unlock()
	w.r.log.Error("projection could not write its database; it retries by itself",
		"projection", w.name, "batch_end", f.At, "attempts", f.Attempts, "err", err)
	return err
}
