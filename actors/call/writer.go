package call

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// streamWriter appends the events of one call stream, in order, on its own
// goroutine. It is the stream's only writer, so it tracks the revision
// itself and appends with it (one writer per stream); the derived event IDs
// make an append retried after a lost reply write nothing twice.
//
// While the store fails, appends are retried with a growing pause, up to
// retryFor after the first failure; the events' own timestamps keep their
// times right however late they land. That is how the store-down decision
// gets recorded once the store is back.
type streamWriter struct {
	store    events.Store
	stream   string
	meta     events.Metadata
	log      *slog.Logger
	counters *Counters
	retryFor time.Duration
	clock    func() time.Time
	sleep    func(time.Duration)

	mu     sync.Mutex
	queue  []events.Proposed
	closed bool
	wake   chan struct{}
	done   chan struct{}

	// Owned by the run goroutine.
	rev    uint64
	exists bool
}

func newStreamWriter(store events.Store, stream string, meta events.Metadata, retryFor time.Duration, log *slog.Logger, c *Counters,
	clock func() time.Time, sleep func(time.Duration)) *streamWriter {
	return &streamWriter{
		store: store, stream: stream, meta: meta, log: log, counters: c, retryFor: retryFor, clock: clock, sleep: sleep,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// add queues a payload; it never blocks.
func (w *streamWriter) add(p schema.Payload) {
	callID := w.stream[len(schema.CallStreamPrefix):]
	prop, err := schema.Record{ID: schema.CallStreamEventID(callID, p.EventType()), Payload: p}.Proposed(w.meta)
	if err != nil {
		w.log.Error("call stream: encode event", "stream", w.stream, "type", p.EventType(), "err", err)
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.log.Error("call stream: event after close", "stream", w.stream, "type", p.EventType())
		return
	}
	w.queue = append(w.queue, prop)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close lets the writer finish what is queued and stop.
func (w *streamWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run appends until closed and drained.
func (w *streamWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closed := w.closed
		w.mu.Unlock()
		if len(batch) > 0 {
			w.appendBatch(batch)
			continue
		}
		if closed {
			return
		}
		<-w.wake
	}
}

func (w *streamWriter) appendBatch(batch []events.Proposed) {
	pause := 50 * time.Millisecond
	var firstFailure time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := w.store.Append(ctx, w.stream, events.ExactOrNoStream(w.rev, w.exists), batch...)
		cancel()
		var conflict *events.ConflictError
		switch {
		case err == nil:
			w.rev, w.exists = res.LastRevision, true
			w.counters.EventsWritten.Add(uint64(len(batch)))
			if !firstFailure.IsZero() {
				w.log.Info("call stream: written after store recovered", "stream", w.stream, "events", len(batch), "after", w.clock().Sub(firstFailure).Round(time.Millisecond))
			}
			return
		case errors.As(err, &conflict):
			// Only a lost reply to our own append can move the stream (we
			// are its one writer): take the stream's revision and retry;
			// the IDs then either match the tail (idempotent success) or
			// were stored before (ErrDuplicateID below).
			if conflict.Actual == events.NoRevision {
				w.exists = false
			} else {
				w.rev, w.exists = uint64(conflict.Actual), true
			}
			continue
		case errors.Is(err, events.ErrDuplicateID):
			w.log.Warn("call stream: events already stored", "stream", w.stream, "events", len(batch))
			return
		case errors.Is(err, events.ErrInvalid), errors.Is(err, events.ErrClosed):
			w.counters.EventsDropped.Add(uint64(len(batch)))
			w.log.Error("call stream: events dropped", "stream", w.stream, "events", len(batch), "err", err)
			return
		}
		if firstFailure.IsZero() {
			firstFailure = w.clock()
			w.log.Warn("call stream: append failed, retrying", "stream", w.stream, "err", err)
		}
		if w.clock().Sub(firstFailure) > w.retryFor {
			w.counters.EventsDropped.Add(uint64(len(batch)))
			w.log.Error("call stream: events dropped after retrying", "stream", w.stream, "events", len(batch), "for", w.retryFor, "err", err)
			return
		}
		w.sleep(pause)
		pause = min(2*pause, 5*time.Second)
	}
}
