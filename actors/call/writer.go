package call

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// streamWriter appends the events of one call stream, in order, on its own
// goroutine. It holds them until the call ends (close) and appends them
// then, in one append: nothing in a call stream must be durable before
// the guard acts (the grain's CallReceived is), and one append per call
// costs the store far less than one per event. A call with nothing to
// write (a reject, recorded by its CallReceived) appends nothing.
// It is the stream's only writer, so it tracks the revision itself and
// appends with it (one writer per stream); the derived event IDs make an
// append retried after a lost reply write nothing twice.
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

	// Owned by the actor until close, by run after.
	queue  []events.Proposed
	closed bool

	// Owned by run.
	rev    uint64
	exists bool
}

func newStreamWriter(store events.Store, stream string, meta events.Metadata, retryFor time.Duration, log *slog.Logger, c *Counters,
	clock func() time.Time, sleep func(time.Duration)) *streamWriter {
	return &streamWriter{store: store, stream: stream, meta: meta, log: log, counters: c, retryFor: retryFor, clock: clock, sleep: sleep}
}

// add queues a payload until close; it never blocks. Called from the
// actor only.
func (w *streamWriter) add(p schema.Payload) {
	if w.closed {
		w.log.Error("call stream: event after close", "stream", w.stream, "type", p.EventType())
		return
	}
	callID := w.stream[len(schema.CallStreamPrefix):]
	prop, err := schema.Record{ID: schema.CallStreamEventID(callID, p.EventType()), Payload: p}.Proposed(w.meta)
	if err != nil {
		w.log.Error("call stream: encode event", "stream", w.stream, "type", p.EventType(), "err", err)
		return
	}
	w.queue = append(w.queue, prop)
}

// close ends the stream's events and reports whether there is anything
// to append: then run must be called, once, on a goroutine of its own.
// Called from the actor only.
func (w *streamWriter) close() bool {
	w.closed = true
	return len(w.queue) > 0
}

// run appends what was queued before close, in one append.
func (w *streamWriter) run() {
	if batch := w.queue; len(batch) > 0 {
		w.queue = nil
		w.appendBatch(batch)
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
