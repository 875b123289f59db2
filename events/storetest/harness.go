package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// testType is the type of the events the suite proposes.
const testType = "StoretestEvent"

// end is the ReadStream revision that means "the end of the stream".
const end = ^uint64(0)

// harness is one case's store and the names it owns.
type harness struct {
	t        *testing.T
	s        events.Store
	features Features
	ctx      context.Context
	// token ends the name of every stream the case creates.
	token string
	// base is Head when the case started: the case's events come after it.
	base events.Position
}

func newHarness(t *testing.T, open Factory, features Features) *harness {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random token: %v", err)
	}
	h := &harness{
		t:        t,
		s:        open(t),
		features: features,
		ctx:      t.Context(),
		token:    hex.EncodeToString(b),
	}
	base, err := h.s.Head(h.ctx)
	if err != nil {
		t.Fatalf("Head of a new store: %v", err)
	}
	if !features.SharedLog && base != events.Start {
		t.Fatalf("Head of a new store = %v, want Start (an empty store)", base)
	}
	h.base = base
	return h
}

// stream names a stream of this case.
func (h *harness) stream(name string) string { return name + "-" + h.token }

// mine reports whether ev is in a stream of this case; a stream derived
// from one (say, a backend's snapshot stream) counts too.
func (h *harness) mine(ev events.Event) bool { return strings.Contains(ev.Stream, h.token) }

// event is the i-th proposed event of a series named tag; its ID is derived
// from the case, tag and i, so proposing it again is a retry.
func (h *harness) event(tag string, i int) events.Proposed {
	return events.Proposed{
		ID:      events.DeriveID(h.token, tag, strconv.Itoa(i)),
		Type:    testType,
		Version: 1,
		Meta:    events.Metadata{Node: "storetest", Actor: "test", CorrelationID: h.token + "/" + tag},
		Data:    json.RawMessage(fmt.Sprintf(`{"tag":%q,"i":%d}`, tag, i)),
	}
}

// batch is events from..from+n-1 of the series tag.
func (h *harness) batch(tag string, from, n int) []events.Proposed {
	out := make([]events.Proposed, n)
	for i := range out {
		out[i] = h.event(tag, from+i)
	}
	return out
}

// append appends or fails the test.
func (h *harness) append(stream string, exp events.Expected, evs ...events.Proposed) events.AppendResult {
	h.t.Helper()
	res, err := h.s.Append(h.ctx, stream, exp, evs...)
	if err != nil {
		h.t.Fatalf("Append(%s, %v, %d events): %v", stream, exp, len(evs), err)
	}
	if n := uint64(len(evs)); res.LastRevision-res.FirstRevision != n-1 {
		h.t.Fatalf("Append(%s, %d events) = revisions %d..%d, want %d consecutive", stream, n, res.FirstRevision, res.LastRevision, n)
	}
	return res
}

// read returns the whole stream, checking that revisions count up from 0
// and positions increase with them.
func (h *harness) read(stream string) []events.Event {
	h.t.Helper()
	evs, err := events.ReadWholeStream(h.ctx, h.s, stream, 0)
	if err != nil {
		h.t.Fatalf("read %s: %v", stream, err)
	}
	for i, ev := range evs {
		if ev.Stream != stream {
			h.t.Fatalf("read %s: event %d has Stream %q", stream, i, ev.Stream)
		}
		if ev.Revision != uint64(i) {
			h.t.Fatalf("read %s: event %d has Revision %d, want %d (a gap or a duplicate)", stream, i, ev.Revision, i)
		}
		if i > 0 && !evs[i-1].Position.Less(ev.Position) {
			h.t.Fatalf("read %s: revision %d at position %v is not after revision %d at %v", stream, i, ev.Position, i-1, evs[i-1].Position)
		}
	}
	return evs
}

// readLog reads the global log after from to its end in pages of page
// events, checks what holds for every event of the log (strictly increasing
// positions after from; dense numbering with DensePositions) and returns the
// events of this case.
func (h *harness) readLog(from events.Position, page int) []events.Event {
	h.t.Helper()
	var mine []events.Event
	cur := from
	for {
		evs, err := h.s.ReadAll(h.ctx, cur, page)
		if err != nil {
			h.t.Fatalf("ReadAll(%v, %d): %v", cur, page, err)
		}
		if len(evs) > page {
			h.t.Fatalf("ReadAll(%v, %d) returned %d events", cur, page, len(evs))
		}
		for _, ev := range evs {
			if err := h.follows(cur, ev.Position); err != nil {
				h.t.Fatalf("ReadAll(%v, %d): %s@%d: %v", from, page, ev.Stream, ev.Revision, err)
			}
			cur = ev.Position
			if h.mine(ev) {
				mine = append(mine, ev)
			}
		}
		if len(evs) < page {
			return mine
		}
	}
}

// log is readLog from the case's start in pages of 100.
func (h *harness) log() []events.Event {
	h.t.Helper()
	return h.readLog(h.base, 100)
}

// follows says what is wrong with next coming right after prev in the
// global log, if anything.
func (h *harness) follows(prev, next events.Position) error {
	if !prev.Less(next) {
		return fmt.Errorf("position %v is not after %v", next, prev)
	}
	if h.features.DensePositions {
		if next.Commit != prev.Commit+1 || next.Prepare != next.Commit {
			return fmt.Errorf("position %v follows %v: want dense positions %d/%d", next, prev, prev.Commit+1, prev.Commit+1)
		}
	}
	return nil
}

// head returns Head or fails the test.
func (h *harness) head() events.Position {
	h.t.Helper()
	p, err := h.s.Head(h.ctx)
	if err != nil {
		h.t.Fatalf("Head: %v", err)
	}
	return p
}

// wantHeadAt checks Head against the position of the case's last append.
func (h *harness) wantHeadAt(p events.Position) {
	h.t.Helper()
	got := h.head()
	if h.features.SharedLog {
		if got.Less(p) {
			h.t.Fatalf("Head = %v, before the last append at %v", got, p)
		}
		return
	}
	if got != p {
		h.t.Fatalf("Head = %v, want %v (the last append)", got, p)
	}
}

// wantEvent checks that ev is what p proposed.
func wantEvent(t *testing.T, ev events.Event, p events.Proposed) {
	t.Helper()
	if err := sameEvent(ev, p); err != nil {
		t.Fatalf("%s@%d: %v", ev.Stream, ev.Revision, err)
	}
}

func sameEvent(ev events.Event, p events.Proposed) error {
	switch {
	case ev.ID != p.ID:
		return fmt.Errorf("has ID %v, want %v", ev.ID, p.ID)
	case ev.Type != p.Type:
		return fmt.Errorf("has type %q, want %q", ev.Type, p.Type)
	case ev.Version != p.Version:
		return fmt.Errorf("has version %d, want %d", ev.Version, p.Version)
	case ev.Meta != p.Meta:
		return fmt.Errorf("has metadata %+v, want %+v", ev.Meta, p.Meta)
	case !sameJSON(ev.Data, p.Data):
		return fmt.Errorf("has data %s, want %s", ev.Data, p.Data)
	}
	return nil
}

// sameJSON reports whether a and b hold the same JSON value; an empty
// payload matches only an empty one.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(bytes.TrimSpace(a)) == 0 || len(bytes.TrimSpace(b)) == 0 {
		return len(bytes.TrimSpace(a)) == len(bytes.TrimSpace(b))
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// ids lists the IDs of evs.
func ids(evs []events.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// proposedIDs lists the IDs of ps.
func proposedIDs(ps []events.Proposed) []uuid.UUID {
	out := make([]uuid.UUID, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// wantIDs checks that evs are exactly the events want, in that order.
func wantIDs(t *testing.T, what string, evs []events.Event, want []uuid.UUID) {
	t.Helper()
	got := ids(evs)
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: %d events, want %d; event %d (%s@%d at %v) has ID %v, want %v",
				what, len(got), len(want), i, evs[i].Stream, evs[i].Revision, evs[i].Position, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d; the first %d agree", what, len(got), len(want), min(len(got), len(want)))
	}
}

// wantConflict checks that err is the *ConflictError of an append to stream
// with exp when the stream's last revision is actual.
func wantConflict(t *testing.T, err error, stream string, exp events.Expected, actual int64) {
	t.Helper()
	if err == nil {
		t.Fatalf("Append(%s, %v) succeeded, want a conflict", stream, exp)
	}
	if !errors.Is(err, events.ErrConflict) {
		t.Fatalf("Append(%s, %v) = %v, want errors.Is(err, ErrConflict)", stream, exp, err)
	}
	var ce *events.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Append(%s, %v) = %v (%T), want a *ConflictError", stream, exp, err, err)
	}
	if ce.Stream != stream || ce.Expected != exp || ce.Actual != actual {
		t.Fatalf("Append(%s, %v) = ConflictError{Stream: %q, Expected: %v, Actual: %d}, want {%q, %v, %d}",
			stream, exp, ce.Stream, ce.Expected, ce.Actual, stream, exp, actual)
	}
}

// wantErrIs checks that err matches target.
func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want errors.Is(err, %v)", what, err, target)
	}
}

// checkFor calls f every interval until it returns nil, and fails the test
// with f's last error when timeout has passed.
func checkFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
