package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// Append implements events.Store.
//
// Every event gets its ID here, before anything is sent (a zero ID gets a
// random one), so the client never draws one and everything below reuses
// the same IDs. Unless every ID was drawn here, Append first reads the last
// len(evs) events of the stream: if they are these IDs, the append is a
// retry and returns their revisions and position without writing, whatever
// expected says; if some of them are, it is ErrDuplicateID. Then it appends
// with expected mapped to EventStoreDB's expected revision, which the server
// checks atomically with the write.
//
// EventStoreDB has its own idempotence (same IDs at the same expected
// revision: success, nothing written); when it answers that way for events
// that are not the end of the stream, Append returns ErrDuplicateID, as the
// contract says. What EventStoreDB cannot do is refuse an ID stored in
// another stream: it keeps no index of event IDs, so such an append
// succeeds. With Any or StreamExists its check of IDs deeper in the stream
// than the last len(evs) events is best effort (a cache of recent IDs).
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if err := checkStream(stream); err != nil {
		return events.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	if len(evs) == 0 {
		// EventStoreDB would write an empty record and create the stream.
		return events.AppendResult{}, fmt.Errorf("append %s: %w: no events", stream, events.ErrInvalid)
	}
	a := appendOp{stream: stream, name: s.names.stream(stream), expected: expected, fresh: true}
	a.ids = make([]uuid.UUID, len(evs))
	a.data = make([]client.EventData, len(evs))
	seen := make(map[uuid.UUID]struct{}, len(evs))
	for i, p := range evs {
		if err := p.Validate(); err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: event %d: %w", stream, i, err)
		}
		if p.ID == uuid.Nil {
			p.ID = uuid.New()
		} else {
			a.fresh = false
		}
		if _, dup := seen[p.ID]; dup {
			return events.AppendResult{}, fmt.Errorf("append %s: %w: event ID %s appears twice", stream, events.ErrInvalid, p.ID)
		}
		seen[p.ID] = struct{}{}
		d, err := toEventData(p)
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: event %d: %w", stream, i, err)
		}
		a.ids[i], a.data[i] = p.ID, d
	}

	var res events.AppendResult
	err := s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		var err error
		res, err = a.do(ctx, cl)
		return err
	})
	if err != nil {
		var ce *events.ConflictError
		if errors.As(err, &ce) {
			return events.AppendResult{}, err // it names the stream already
		}
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	return res, nil
}

// appendOp is one Append, from the first attempt to its result.
type appendOp struct {
	stream   string // the Store's name
	name     string // EventStoreDB's name
	expected events.Expected
	ids      []uuid.UUID
	data     []client.EventData
	// fresh says every ID was drawn by this Append: none can be stored.
	fresh bool
}

func (a *appendOp) do(ctx context.Context, cl *client.Client) (events.AppendResult, error) {
	var (
		last   uint64 // the stream's last revision before the write
		exists bool
	)
	if !a.fresh {
		t, ok, err := tail(ctx, cl, a.name, len(a.ids))
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("read the end of the stream: %w", err)
		}
		if res, done, err := a.settled(t); done {
			return res, err
		}
		if ok {
			exists, last = true, t[len(t)-1].EventNumber
		}
	}

	wr, err := cl.AppendToStream(ctx, a.name, client.AppendToStreamOptions{ExpectedRevision: toExpected(a.expected)}, a.data...)
	if err != nil {
		if classify(err) == kindWrongExpected {
			return a.conflict(ctx, cl, err)
		}
		return events.AppendResult{}, err
	}
	n := uint64(len(a.ids))
	next := wr.NextExpectedVersion // the revision of the last event
	if next+1 < n {
		return events.AppendResult{}, fmt.Errorf("EventStoreDB reported revision %d after appending %d events", next, n)
	}
	if exists && next <= last {
		// EventStoreDB found these IDs earlier in the stream and, as its
		// idempotence goes, reported their revisions and wrote nothing.
		return events.AppendResult{}, fmt.Errorf("%w: the events are stored at revisions %d..%d, and the stream has moved on to %d",
			events.ErrDuplicateID, next+1-n, next, last)
	}
	res := events.AppendResult{
		FirstRevision: next + 1 - n,
		LastRevision:  next,
		Position:      events.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition},
	}
	if res.Position == (events.Position{}) {
		// No position in the reply (EventStoreDB leaves it out of some
		// idempotent answers): read the last event's.
		recs, err := readRecords(cl.ReadStream(ctx, a.name, client.ReadStreamOptions{Direction: client.Backwards, From: client.Revision(next)}, 1))
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("appended, but reading the position of revision %d: %w", next, err)
		}
		if len(recs) != 1 || recs[0].EventNumber != next || recs[0].EventID != a.ids[n-1] {
			return events.AppendResult{}, fmt.Errorf("appended, but revision %d does not read back as event %s", next, a.ids[n-1])
		}
		res.Position = fromPosition(recs[0].Position)
	}
	return res, nil
}

// settled decides the append from the last events of the stream, oldest
// first: they are exactly its IDs (a retry: the original result), some of
// its IDs are among them (ErrDuplicateID), or neither (done is false).
func (a *appendOp) settled(t []*client.RecordedEvent) (res events.AppendResult, done bool, err error) {
	if sameIDs(t, a.ids) {
		lastRec := t[len(t)-1]
		return events.AppendResult{
			FirstRevision: t[0].EventNumber,
			LastRevision:  lastRec.EventNumber,
			Position:      fromPosition(lastRec.Position),
		}, true, nil
	}
	if id, ok := anyID(t, a.ids); ok {
		return events.AppendResult{}, true, fmt.Errorf("%w: event %s is already stored near the end of the stream, and the batch is not a retry of the last append", events.ErrDuplicateID, id)
	}
	return events.AppendResult{}, false, nil
}

// conflict handles EventStoreDB's wrong expected version answer. The
// v4.2.0 client keeps the stream's actual revision only in the error's
// text, so the stream's end is read again: that also settles a retry of
// this very append that won meanwhile, and names the actual revision.
func (a *appendOp) conflict(ctx context.Context, cl *client.Client, wrong error) (events.AppendResult, error) {
	t, ok, err := tail(ctx, cl, a.name, len(a.ids))
	if err != nil {
		actual, parsed := actualFromMessage(wrong)
		if !parsed {
			return events.AppendResult{}, fmt.Errorf("%w (%v), and reading the stream's end failed: %w", events.ErrConflict, wrong, err)
		}
		return events.AppendResult{}, &events.ConflictError{Stream: a.stream, Expected: a.expected, Actual: actual}
	}
	if res, done, err := a.settled(t); done {
		return res, err
	}
	actual := events.NoRevision
	if ok {
		actual = int64(t[len(t)-1].EventNumber)
	}
	// EventStoreDB also answers wrong expected version when a batch repeats
	// part of an earlier one ("corrupted idempotency"). With Any nothing
	// else can have caused it; with StreamExists neither, if the stream
	// existed when the server checked (its answer says what it saw).
	if seen, parsed := actualFromMessage(wrong); a.expected.IsAny() || (a.expected.IsStreamExists() && parsed && seen != events.NoRevision) {
		return events.AppendResult{}, fmt.Errorf("%w: EventStoreDB refused the batch as a partial repeat of events stored in the stream", events.ErrDuplicateID)
	}
	// With an exact revision or NoStream it compares the IDs after the
	// expected revision: look at them the same way.
	if ok {
		from, check := uint64(0), a.expected.IsNoStream()
		if rev, exact := a.expected.Revision(); exact {
			from, check = rev+1, true
		}
		if check && from <= uint64(actual) {
			recs, err := readRecords(cl.ReadStream(ctx, a.name, client.ReadStreamOptions{Direction: client.Forwards, From: client.Revision(from)}, uint64(len(a.ids))))
			if err == nil {
				if id, dup := anyID(recs, a.ids); dup {
					return events.AppendResult{}, fmt.Errorf("%w: event %s is already stored in the stream after revision %d", events.ErrDuplicateID, id, int64(from)-1)
				}
			}
		}
	}
	return events.AppendResult{}, &events.ConflictError{Stream: a.stream, Expected: a.expected, Actual: actual}
}

// tail returns the last n events of an EventStoreDB stream, oldest first,
// and whether the stream has any event.
func tail(ctx context.Context, cl *client.Client, name string, n int) ([]*client.RecordedEvent, bool, error) {
	recs, err := readRecords(cl.ReadStream(ctx, name, client.ReadStreamOptions{Direction: client.Backwards, From: client.End{}}, uint64(n)))
	if classify(err) == kindNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs, len(recs) > 0, nil
}

// readRecords drains one read of the client (the arguments are what
// Client.ReadStream or Client.ReadAll returned). A stream that does not
// exist is an error of kind kindNotFound.
func readRecords(rs *client.ReadStream, err error) ([]*client.RecordedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*client.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if rec := ev.OriginalEvent(); rec != nil {
			out = append(out, rec)
		}
	}
}
