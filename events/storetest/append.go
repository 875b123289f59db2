package storetest

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// testAppendReadRoundTrip: every field of the envelope comes back as it was
// proposed, with revisions from 0, increasing positions and Recorded set.
func testAppendReadRoundTrip(t *testing.T, h *harness) {
	stream := h.stream("caller-+79990001122")
	proposed := []events.Proposed{
		{
			ID: events.DeriveID(h.token, "received"), Type: "CallReceived", Version: 1,
			Meta: events.Metadata{Node: "node-a", Actor: "grain", CorrelationID: "call-1", CausationID: "invite-1"},
			Data: json.RawMessage(`{"caller": "+79990001122", "callee": "88001234567", "at": "2024-01-02T03:04:05.123456789Z",
				"n": 1.5, "big": 9007199254740993, "tags": ["a", "b"], "nested": {"x": null, "ok": true}}`),
		},
		{
			ID: events.DeriveID(h.token, "blocked"), Type: "BlockApplied", Version: 3,
			Meta: events.Metadata{Actor: "admin:алиса", CausationID: events.DeriveID(h.token, "received").String()},
			Data: json.RawMessage(`{"level":6,"reason":"ручная блокировка \"спам\" \u2014 <ok> & done"}`),
		},
		{ID: events.DeriveID(h.token, "empty"), Type: "Noted", Version: 1, Data: json.RawMessage(`{}`)},
	}
	before := time.Now()
	res := h.append(stream, events.NoStream, proposed...)
	after := time.Now()
	if res.FirstRevision != 0 || res.LastRevision != 2 {
		t.Fatalf("first append = revisions %d..%d, want 0..2", res.FirstRevision, res.LastRevision)
	}
	if !h.base.Less(res.Position) {
		t.Fatalf("append position %v is not after the Head %v seen before it", res.Position, h.base)
	}

	got := h.read(stream)
	if len(got) != len(proposed) {
		t.Fatalf("read %d events, want %d", len(got), len(proposed))
	}
	for i, ev := range got {
		wantEvent(t, ev, proposed[i])
		// Recorded is the store's clock (a server's, for EventStoreDB):
		// allow for skew, but not for a zero or made-up time.
		if ev.Recorded.Before(before.Add(-time.Minute)) || ev.Recorded.After(after.Add(time.Minute)) {
			t.Errorf("%s@%d Recorded = %v, want about %v", ev.Stream, ev.Revision, ev.Recorded, before)
		}
		if !h.base.Less(ev.Position) {
			t.Errorf("%s@%d Position %v is not after the Head %v seen before the append", ev.Stream, ev.Revision, ev.Position, h.base)
		}
	}
	if got[2].Position != res.Position {
		t.Fatalf("AppendResult.Position = %v, want the last event's %v", res.Position, got[2].Position)
	}
	h.wantHeadAt(res.Position)

	// A second append continues the stream after the first.
	next := events.Proposed{ID: events.DeriveID(h.token, "next"), Type: "CallEnded", Version: 2, Data: json.RawMessage(`[1,2,3]`)}
	res2 := h.append(stream, events.Exact(2), next)
	if res2.FirstRevision != 3 || res2.LastRevision != 3 || !res.Position.Less(res2.Position) {
		t.Fatalf("second append = %+v, want revision 3 after position %v", res2, res.Position)
	}
	got = h.read(stream)
	if len(got) != 4 {
		t.Fatalf("read %d events after the second append, want 4", len(got))
	}
	wantEvent(t, got[3], next)
	h.wantHeadAt(res2.Position)

	// The global log holds the same events with the same envelope.
	log := h.log()
	wantIDs(t, "global log", log, ids(got))
	for i := range log {
		if log[i].Position != got[i].Position || log[i].Revision != got[i].Revision || log[i].Stream != stream {
			t.Fatalf("global log event %d = %s@%d at %v, stream read has %s@%d at %v",
				i, log[i].Stream, log[i].Revision, log[i].Position, got[i].Stream, got[i].Revision, got[i].Position)
		}
		if !log[i].Recorded.Equal(got[i].Recorded) {
			t.Errorf("%s@%d Recorded = %v in the global log, %v in the stream", stream, i, log[i].Recorded, got[i].Recorded)
		}
		if i < 3 {
			wantEvent(t, log[i], proposed[i])
		}
	}
}

// testExpectedRevision: each kind of Expected, met and not met. A failure
// is a *ConflictError naming the stream's actual revision and writes
// nothing.
func testExpectedRevision(t *testing.T, h *harness) {
	n := 0
	// fresh names a new stream; at2 returns one with three events.
	fresh := func(name string) string {
		n++
		return h.stream(name + "-" + strconv.Itoa(n))
	}
	at2 := func(name string) string {
		s := fresh(name)
		h.append(s, events.NoStream, h.batch(s, 0, 3)...)
		return s
	}

	met := []struct {
		name    string
		stream  func() string
		exp     events.Expected
		wantRev uint64
	}{
		{"Any on a new stream", func() string { return fresh("any-new") }, events.Any, 0},
		{"Any on a stream", func() string { return at2("any") }, events.Any, 3},
		{"NoStream on a new stream", func() string { return fresh("nostream") }, events.NoStream, 0},
		{"StreamExists on a stream", func() string { return at2("exists") }, events.StreamExists, 3},
		{"Exact last revision", func() string { return at2("exact") }, events.Exact(2), 3},
		{"ExactOrNoStream on a new stream", func() string { return fresh("eons-new") }, events.ExactOrNoStream(0, false), 0},
		{"ExactOrNoStream on a stream", func() string { return at2("eons") }, events.ExactOrNoStream(2, true), 3},
	}
	for _, tt := range met {
		s := tt.stream()
		evs := h.batch(s+"/new", 0, 2)
		res, err := h.s.Append(h.ctx, s, tt.exp, evs...)
		if err != nil {
			t.Fatalf("%s: Append: %v", tt.name, err)
		}
		if res.FirstRevision != tt.wantRev || res.LastRevision != tt.wantRev+1 {
			t.Fatalf("%s: Append = revisions %d..%d, want %d..%d", tt.name, res.FirstRevision, res.LastRevision, tt.wantRev, tt.wantRev+1)
		}
		got := h.read(s)
		if uint64(len(got)) != tt.wantRev+2 {
			t.Fatalf("%s: stream has %d events, want %d", tt.name, len(got), tt.wantRev+2)
		}
		wantEvent(t, got[len(got)-1], evs[1])
	}

	notMet := []struct {
		name   string
		exists bool
		exp    events.Expected
	}{
		{"NoStream on a stream", true, events.NoStream},
		{"StreamExists on a new stream", false, events.StreamExists},
		{"Exact on a new stream", false, events.Exact(0)},
		{"Exact behind", true, events.Exact(1)},
		{"Exact ahead", true, events.Exact(3)},
		{"Exact far ahead", true, events.Exact(1 << 40)},
		{"ExactOrNoStream on a new stream", false, events.ExactOrNoStream(0, true)},
		{"ExactOrNoStream on a stream", true, events.ExactOrNoStream(2, false)},
	}
	rejected := map[uuid.UUID]bool{}
	for _, tt := range notMet {
		s, actual := fresh("conflict"), events.NoRevision
		if tt.exists {
			s, actual = at2("conflict"), 2
		}
		before := h.read(s)
		evs := h.batch(s+"/rejected", 0, 3)
		_, err := h.s.Append(h.ctx, s, tt.exp, evs...)
		wantConflict(t, err, s, tt.exp, actual)
		wantIDs(t, tt.name+": stream after a failed append", h.read(s), ids(before))
		for _, p := range evs {
			rejected[p.ID] = true
		}
	}
	// Nothing of a failed append reached the global log either.
	for _, ev := range h.log() {
		if rejected[ev.ID] {
			t.Fatalf("%s@%d is in the global log: a failed append wrote it", ev.Stream, ev.Revision)
		}
	}
}

// testAppendAtomic: the events of one append take consecutive revisions in
// the order given, and no reader ever sees part of an append, while
// several writers append batches to one stream.
func testAppendAtomic(t *testing.T, h *harness) {
	const (
		writers = 4
		appends = 8
		size    = 5
	)
	stream := h.stream("atomic")
	results := make([][]events.AppendResult, writers)
	done := make(chan struct{})
	var wg, readers sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				tag := string(rune('a'+w)) + "/" + string(rune('a'+a))
				res, err := h.s.Append(h.ctx, stream, events.Any, h.batch(tag, 0, size)...)
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				results[w] = append(results[w], res)
			}
		})
	}
	// A reader checks that it never sees a partial append.
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			evs, err := h.s.ReadStream(h.ctx, stream, events.Forward, 0, writers*appends*size+1)
			if err != nil {
				t.Errorf("ReadStream while appending: %v", err)
				return
			}
			if len(evs)%size != 0 {
				t.Errorf("ReadStream while appending saw %d events: part of an append of %d", len(evs), size)
				return
			}
			mine, err := h.s.ReadAll(h.ctx, h.base, 1000)
			if err != nil {
				t.Errorf("ReadAll while appending: %v", err)
				return
			}
			if len(mine) < 1000 {
				n := 0
				for _, ev := range mine {
					if h.mine(ev) {
						n++
					}
				}
				if n%size != 0 {
					t.Errorf("ReadAll while appending saw %d events: part of an append of %d", n, size)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		t.FailNow()
	}

	got := h.read(stream)
	if len(got) != writers*appends*size {
		t.Fatalf("stream has %d events, want %d", len(got), writers*appends*size)
	}
	for w := range writers {
		for a, res := range results[w] {
			tag := string(rune('a'+w)) + "/" + string(rune('a'+a))
			if res.LastRevision-res.FirstRevision != size-1 {
				t.Fatalf("append %s = revisions %d..%d, want %d consecutive", tag, res.FirstRevision, res.LastRevision, size)
			}
			for i, p := range h.batch(tag, 0, size) {
				wantEvent(t, got[res.FirstRevision+uint64(i)], p)
			}
			if got[res.LastRevision].Position != res.Position {
				t.Fatalf("append %s: AppendResult.Position = %v, its last event is at %v", tag, res.Position, got[res.LastRevision].Position)
			}
			first := got[res.FirstRevision].Position
			if h.features.DensePositions && res.Position.Commit-first.Commit != size-1 {
				t.Fatalf("append %s: positions %v..%v, want %d consecutive", tag, first, res.Position, size)
			}
		}
	}
	wantIDs(t, "global log", h.log(), ids(got))
}

// testIdempotentRetry: appending the same IDs again returns the first
// result and writes nothing, whatever the expected revision says.
func testIdempotentRetry(t *testing.T, h *harness) {
	stream := h.stream("retry")
	h.append(stream, events.NoStream, h.event("first", 0))
	batch := h.batch("batch", 0, 3)
	want := h.append(stream, events.Exact(0), batch...)

	for _, exp := range []events.Expected{
		events.Exact(0), // the same call again: its expectation is now stale
		events.Any,
		events.NoStream,
		events.StreamExists,
		events.Exact(3),
		events.Exact(7),
	} {
		got, err := h.s.Append(h.ctx, stream, exp, batch...)
		if err != nil {
			t.Fatalf("retry with %v: %v, want the first result", exp, err)
		}
		if got != want {
			t.Fatalf("retry with %v = %+v, want the first result %+v", exp, got, want)
		}
	}
	stored := h.read(stream)
	if len(stored) != 4 {
		t.Fatalf("stream has %d events after retries, want 4", len(stored))
	}
	h.wantHeadAt(want.Position)

	// A single-event append retried.
	one := h.event("one", 0)
	want = h.append(stream, events.Exact(3), one)
	got, err := h.s.Append(h.ctx, stream, events.Exact(3), one)
	if err != nil || got != want {
		t.Fatalf("retry of a single event = %+v, %v; want %+v, nil", got, err, want)
	}

	// Once the stream has moved on, the batch is no longer a retry of the
	// last append: its IDs are stored elsewhere than where it would go.
	_, err = h.s.Append(h.ctx, stream, events.Any, batch...)
	wantErrIs(t, "retry of an append that is no longer last", err, events.ErrDuplicateID)
	// A batch whose first ID is the stream's last event and whose second is
	// new is neither a retry nor new.
	_, err = h.s.Append(h.ctx, stream, events.Any, one, h.event("one", 1))
	wantErrIs(t, "append of a stored and a new ID", err, events.ErrDuplicateID)

	stored = h.read(stream)
	if len(stored) != 5 {
		t.Fatalf("stream has %d events, want 5: a refused retry wrote", len(stored))
	}
	wantIDs(t, "global log", h.log(), ids(stored))
}

// testDuplicateID: an ID is unique in its stream, so reusing a stored one
// anywhere but in a retry of the newest append, or twice in one append, is
// refused and writes nothing. Streams do not share an ID space (as in
// EventStoreDB): the same ID in another stream is a new event there.
func testDuplicateID(t *testing.T, h *harness) {
	first := h.stream("dup-first")
	stored := h.batch("stored", 0, 2)
	h.append(first, events.NoStream, stored...)
	h.append(first, events.Exact(1), h.event("later", 2))

	_, err := h.s.Append(h.ctx, first, events.Any, stored[0])
	wantErrIs(t, "Append of an ID stored earlier in the stream", err, events.ErrDuplicateID)
	_, err = h.s.Append(h.ctx, first, events.Any, h.event("new", 0), stored[1])
	wantErrIs(t, "Append of a new ID and one stored earlier in the stream", err, events.ErrDuplicateID)
	if got := h.read(first); len(got) != 3 {
		t.Fatalf("refused appends wrote: %s has %d events, want 3", first, len(got))
	}

	other := h.stream("dup-other")
	res, err := h.s.Append(h.ctx, other, events.NoStream, stored...)
	if err != nil {
		t.Fatalf("Append of IDs stored in another stream: %v (IDs are unique per stream)", err)
	}
	if res.FirstRevision != 0 || res.LastRevision != 1 {
		t.Fatalf("Append to a new stream gave revisions %d..%d, want 0..1", res.FirstRevision, res.LastRevision)
	}

	twice := h.stream("dup-twice")
	p := h.event("twice", 0)
	_, err = h.s.Append(h.ctx, twice, events.Any, p, h.event("twice", 1), p)
	if !errors.Is(err, events.ErrInvalid) && !errors.Is(err, events.ErrDuplicateID) {
		t.Fatalf("Append with one ID twice = %v, want ErrInvalid or ErrDuplicateID", err)
	}
	if got := h.read(twice); len(got) != 0 {
		t.Fatalf("a refused append wrote %d events to %s", len(got), twice)
	}

	if got := h.read(other); len(got) != 2 {
		t.Fatalf("%s has %d events, want 2", other, len(got))
	}
}

// testZeroIDs: events proposed without an ID get distinct random ones, so
// proposing them again appends them again.
func testZeroIDs(t *testing.T, h *harness) {
	stream := h.stream("zero-ids")
	batch := h.batch("zero", 0, 3)
	for i := range batch {
		batch[i].ID = uuid.Nil
	}
	h.append(stream, events.NoStream, batch...)
	h.append(stream, events.Exact(2), batch...)
	got := h.read(stream)
	if len(got) != 6 {
		t.Fatalf("stream has %d events, want 6: zero IDs are not idempotent", len(got))
	}
	seen := map[uuid.UUID]bool{}
	for i, ev := range got {
		if ev.ID == uuid.Nil {
			t.Fatalf("%s@%d has the zero ID", ev.Stream, ev.Revision)
		}
		if seen[ev.ID] {
			t.Fatalf("%s@%d has ID %v again", ev.Stream, ev.Revision, ev.ID)
		}
		seen[ev.ID] = true
		p := batch[i%3]
		p.ID = ev.ID
		wantEvent(t, ev, p)
	}
	wantIDs(t, "global log", h.log(), ids(got))
}

// testInvalidInput: malformed appends return ErrInvalid and write nothing,
// not even the valid events of the batch.
func testInvalidInput(t *testing.T, h *harness) {
	valid := func(i int) events.Proposed { return h.event("valid", i) }
	with := func(i int, f func(p *events.Proposed)) events.Proposed {
		p := h.event("invalid", i)
		f(&p)
		return p
	}
	tests := []struct {
		name   string
		stream string
		exp    events.Expected
		evs    []events.Proposed
	}{
		{"empty stream name", "", events.Any, []events.Proposed{valid(0)}},
		{"empty stream name, no stream", "", events.NoStream, []events.Proposed{valid(1)}},
		{"empty type", h.stream("type"), events.Any, []events.Proposed{with(0, func(p *events.Proposed) { p.Type = "" })}},
		{"version 0", h.stream("version0"), events.Any, []events.Proposed{with(1, func(p *events.Proposed) { p.Version = 0 })}},
		{"negative version", h.stream("version-1"), events.Any, []events.Proposed{with(2, func(p *events.Proposed) { p.Version = -1 })}},
		{"invalid JSON", h.stream("json"), events.Any, []events.Proposed{with(3, func(p *events.Proposed) { p.Data = json.RawMessage(`{"a":`) })}},
		{"not JSON", h.stream("notjson"), events.Any, []events.Proposed{with(4, func(p *events.Proposed) { p.Data = json.RawMessage(`hello`) })}},
		{"no events", h.stream("none"), events.Any, nil},
		{"no events, no stream", h.stream("none2"), events.NoStream, nil},
		{"valid then invalid", h.stream("mixed"), events.Any, []events.Proposed{valid(2), valid(3), with(5, func(p *events.Proposed) { p.Version = 0 })}},
		{"invalid then valid", h.stream("mixed2"), events.NoStream, []events.Proposed{with(6, func(p *events.Proposed) { p.Data = json.RawMessage(`{`) }), valid(4)}},
	}
	refused := map[uuid.UUID]bool{}
	for _, tt := range tests {
		_, err := h.s.Append(h.ctx, tt.stream, tt.exp, tt.evs...)
		wantErrIs(t, "Append with "+tt.name, err, events.ErrInvalid)
		// An empty name is not read back (whether it can be is not the
		// question); the global log check below covers it.
		if tt.stream != "" {
			if got := h.read(tt.stream); len(got) != 0 {
				t.Fatalf("Append with %s wrote %d events", tt.name, len(got))
			}
		}
		for _, p := range tt.evs {
			refused[p.ID] = true
		}
	}
	// Nothing reached the global log, including the streamless events,
	// which h.log() would not count as the case's.
	evs, err := h.s.ReadAll(h.ctx, h.base, 1000)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	for _, ev := range evs {
		if refused[ev.ID] || h.mine(ev) {
			t.Fatalf("%q@%d (ID %v) is in the global log: a refused append wrote it", ev.Stream, ev.Revision, ev.ID)
		}
	}
	if !h.features.SharedLog {
		h.wantHeadAt(events.Start)
	}

	// The valid events still append afterwards: the refusals left no trace.
	s := h.stream("mixed")
	h.append(s, events.NoStream, valid(2), valid(3))
	if got := h.read(s); len(got) != 2 {
		t.Fatalf("%s has %d events, want 2", s, len(got))
	}
}
