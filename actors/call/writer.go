package call

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/callguard/callguard/actors/call/spool"
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
// gets recorded once the store is back. With a pending spool (Deps.Spool)
// the batch is also put on disk at the first failure, so that a restart
// of the node before the store returns does not lose it: the node records
// what its spool holds when it starts (Spawner.RecordPending), and a batch
// still unwritten after retryFor is left there rather than dropped. A
// batch the spool cannot take (a full disk) is logged and counted, and
// the in-memory retry goes on as without a spool.
type streamWriter struct {
	store    events.Store
	pending  *pending
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
	rev     uint64
	exists  bool
	spooled bool // the batch is in the spool: delete it once appended
}

func newStreamWriter(store events.Store, p *pending, stream string, meta events.Metadata, retryFor time.Duration, log *slog.Logger, c *Counters,
	clock func() time.Time, sleep func(time.Duration)) *streamWriter {
	return &streamWriter{store: store, pending: p, stream: stream, meta: meta, log: log, counters: c, retryFor: retryFor, clock: clock, sleep: sleep}
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
		w.appendBatch(context.Background(), batch)
	}
}

// appendResult is how appendBatch ended.
type appendResult uint8

const (
	appended appendResult = iota // written now, or found written before
	dropped                      // refused for good, or given up on without a spool
	left                         // still in the spool, for a later drain
)

// appendBatch appends batch, retrying while the store fails, until it is
// written, refused for good, retryFor has passed since the first failure,
// or ctx ends (the last two leave a spooled batch in the spool).
func (w *streamWriter) appendBatch(ctx context.Context, batch []events.Proposed) appendResult {
	pause := 50 * time.Millisecond
	var firstFailure time.Time
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := w.store.Append(actx, w.stream, events.ExactOrNoStream(w.rev, w.exists), batch...)
		cancel()
		var conflict *events.ConflictError
		switch {
		case err == nil:
			w.rev, w.exists = res.LastRevision, true
			w.counters.EventsWritten.Add(uint64(len(batch)))
			if !firstFailure.IsZero() {
				w.log.Info("call stream: written after store recovered", "stream", w.stream, "events", len(batch), "after", w.clock().Sub(firstFailure).Round(time.Millisecond))
			}
			w.unspool()
			return appended
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
			w.unspool()
			return appended
		case errors.Is(err, events.ErrInvalid):
			w.counters.EventsDropped.Add(uint64(len(batch)))
			w.log.Error("call stream: events dropped", "stream", w.stream, "events", len(batch), "err", err)
			w.unspool()
			return dropped
		case errors.Is(err, events.ErrClosed):
			// The node is stopping: what the spool takes is recorded at
			// the next start.
			if w.spool(batch) {
				w.pending.release(w.stream)
				w.log.Warn("call stream: store closed; events left in the pending spool for the next start", "stream", w.stream, "events", len(batch))
				return left
			}
			w.counters.EventsDropped.Add(uint64(len(batch)))
			w.log.Error("call stream: events dropped", "stream", w.stream, "events", len(batch), "err", err)
			return dropped
		}
		if firstFailure.IsZero() {
			firstFailure = w.clock()
			w.log.Warn("call stream: append failed, retrying", "stream", w.stream, "err", err)
			w.spool(batch)
		}
		if ctx.Err() != nil || w.clock().Sub(firstFailure) > w.retryFor {
			if w.spooled {
				w.pending.release(w.stream)
				w.log.Warn("call stream: not written yet; left in the pending spool", "stream", w.stream, "events", len(batch), "err", err)
				return left
			}
			w.counters.EventsDropped.Add(uint64(len(batch)))
			w.log.Error("call stream: events dropped after retrying", "stream", w.stream, "events", len(batch), "for", w.retryFor, "err", err)
			return dropped
		}
		w.sleep(pause)
		pause = min(2*pause, 5*time.Second)
	}
}

// spool puts batch in the pending spool, once, and reports whether it is
// there. A spool that fails is logged and counted: the batch is then
// retried in memory only.
func (w *streamWriter) spool(batch []events.Proposed) bool {
	if w.spooled || w.pending == nil {
		return w.spooled
	}
	w.pending.hold(w.stream)
	if err := w.pending.spool.Put(spool.Batch{Stream: w.stream, Revision: w.rev, Exists: w.exists, Events: batch}); err != nil {
		w.pending.release(w.stream)
		w.counters.SpoolFailed.Add(1)
		w.log.Error("call stream: cannot keep the events in the pending spool; retrying in memory only, a restart before the store returns loses them",
			"stream", w.stream, "events", len(batch), "err", err)
		return false
	}
	w.spooled = true
	return true
}

// unspool removes a spooled batch once it is written or refused for
// good. An entry that cannot be deleted is appended again at the next
// start, which writes nothing twice.
func (w *streamWriter) unspool() {
	if !w.spooled {
		return
	}
	if err := w.pending.spool.Delete(w.stream); err != nil {
		w.log.Error("call stream: written, but still in the pending spool; the next start appends it again, writing nothing twice", "stream", w.stream, "err", err)
	}
	w.spooled = false
	w.pending.release(w.stream)
}
