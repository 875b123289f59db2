package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// testGlobalOrder: the global log holds every event once, in strictly
// increasing positions that follow the order of the appends and, within a
// stream, the order of revisions; pages of any size read the same log.
func testGlobalOrder(t *testing.T, h *harness) {
	rng := rand.New(rand.NewPCG(1, 2))
	streams := []string{h.stream("order-a"), h.stream("order-b"), h.stream("order-c")}
	last := map[string]uint64{}
	var order []uuid.UUID // every appended ID, in append order
	type appended struct {
		res events.AppendResult
		id  uuid.UUID // of the append's last event
	}
	var results []appended
	for a := range 30 {
		s := streams[rng.IntN(len(streams))]
		batch := h.batch("order-"+strconv.Itoa(a), 0, 1+rng.IntN(3))
		exp := events.NoStream
		if rev, ok := last[s]; ok {
			exp = events.Exact(rev)
		}
		res := h.append(s, exp, batch...)
		last[s] = res.LastRevision
		order = append(order, proposedIDs(batch)...)
		results = append(results, appended{res, batch[len(batch)-1].ID})
	}

	log := h.log() // checks strictly increasing, and dense with DensePositions
	wantIDs(t, "global log", log, order)
	byID := map[uuid.UUID]events.Event{}
	next := map[string]uint64{}
	for _, ev := range log {
		byID[ev.ID] = ev
		if ev.Revision != next[ev.Stream] {
			t.Fatalf("global log has %s@%d where revision %d of that stream is due", ev.Stream, ev.Revision, next[ev.Stream])
		}
		next[ev.Stream]++
	}
	for _, r := range results {
		if ev := byID[r.id]; ev.Position != r.res.Position || ev.Revision != r.res.LastRevision {
			t.Fatalf("AppendResult %+v, but its last event is %s@%d at %v in the global log", r.res, ev.Stream, ev.Revision, ev.Position)
		}
	}
	for _, s := range streams {
		for _, ev := range h.read(s) {
			if lev := byID[ev.ID]; lev.Position != ev.Position || lev.Stream != ev.Stream || lev.Revision != ev.Revision {
				t.Fatalf("%s@%d is at %v; the global log has it as %s@%d at %v", ev.Stream, ev.Revision, ev.Position, lev.Stream, lev.Revision, lev.Position)
			}
		}
	}
	if !h.features.SharedLog && h.features.DensePositions {
		if got := log[len(log)-1].Position; got.Commit != uint64(len(order)) {
			t.Fatalf("last of %d events is at %v, want dense positions from 1", len(order), got)
		}
	}
	h.wantHeadAt(log[len(log)-1].Position)

	for _, page := range []int{1, 2, 7, len(order), len(order) + 1} {
		paged := h.readLog(h.base, page)
		wantIDs(t, fmt.Sprintf("global log in pages of %d", page), paged, order)
		for i := range paged {
			if paged[i].Position != log[i].Position {
				t.Fatalf("global log in pages of %d: event %d at %v, in pages of 100 at %v", page, i, paged[i].Position, log[i].Position)
			}
		}
	}
}

// testReadStreamRanges: ReadStream from a revision, either way, with a
// limit; from the end; past the end; and of a stream that does not exist.
func testReadStreamRanges(t *testing.T, h *harness) {
	stream := h.stream("ranges")
	want := h.batch("ranges", 0, 10)
	h.append(stream, events.NoStream, want[:4]...)
	h.append(stream, events.Exact(3), want[4:]...)

	revs := func(from, to uint64) []uint64 { // from..to inclusive, either way
		var out []uint64
		for r := from; ; {
			out = append(out, r)
			if r == to {
				return out
			}
			if from < to {
				r++
			} else {
				r--
			}
		}
	}
	tests := []struct {
		name  string
		dir   events.Direction
		from  uint64
		limit int
		want  []uint64
	}{
		{"forward, all", events.Forward, 0, 100, revs(0, 9)},
		{"forward, exactly all", events.Forward, 0, 10, revs(0, 9)},
		{"forward from the middle", events.Forward, 3, 4, revs(3, 6)},
		{"forward, limit 1", events.Forward, 5, 1, revs(5, 5)},
		{"forward, limit past the end", events.Forward, 8, 5, revs(8, 9)},
		{"forward from the last", events.Forward, 9, 5, revs(9, 9)},
		{"forward from past the end", events.Forward, 10, 5, nil},
		{"forward from far past the end", events.Forward, 1000, 5, nil},
		{"forward from the end marker", events.Forward, end, 5, nil},
		{"backward from the middle", events.Backward, 9, 3, revs(9, 7)},
		{"backward to the start", events.Backward, 4, 100, revs(4, 0)},
		{"backward from the first", events.Backward, 0, 1, revs(0, 0)},
		{"backward from the end", events.Backward, end, 2, revs(9, 8)},
		{"backward from the end, all", events.Backward, end, 100, revs(9, 0)},
		{"backward from the end, limit 1", events.Backward, end, 1, revs(9, 9)},
	}
	for _, tt := range tests {
		got, err := h.s.ReadStream(h.ctx, stream, tt.dir, tt.from, tt.limit)
		if err != nil {
			t.Fatalf("%s: ReadStream(%d, %d): %v", tt.name, tt.from, tt.limit, err)
		}
		var gotRevs []uint64
		for _, ev := range got {
			gotRevs = append(gotRevs, ev.Revision)
		}
		if !slices.Equal(gotRevs, tt.want) {
			t.Fatalf("%s: ReadStream(from %d, limit %d) = revisions %v, want %v", tt.name, tt.from, tt.limit, gotRevs, tt.want)
		}
		for _, ev := range got {
			wantEvent(t, ev, want[ev.Revision])
		}
	}

	missing := h.stream("missing")
	for _, dir := range []events.Direction{events.Forward, events.Backward} {
		for _, from := range []uint64{0, end} {
			got, err := h.s.ReadStream(h.ctx, missing, dir, from, 10)
			if err != nil || len(got) != 0 {
				t.Fatalf("ReadStream of a stream that does not exist (dir %d, from %d) = %d events, %v; want none, nil", dir, from, len(got), err)
			}
		}
	}
}

// testReadAllRanges: ReadAll from a position is exclusive of it, returns
// exactly limit events when there are that many, and nothing from the
// last position.
func testReadAllRanges(t *testing.T, h *harness) {
	a, b := h.stream("all-a"), h.stream("all-b")
	for i := range 5 {
		s := a
		if i%2 == 1 {
			s = b
		}
		h.append(s, events.Any, h.batch("all", 2*i, 2)...)
	}
	all := h.log()
	if len(all) != 10 {
		t.Fatalf("global log has %d of the case's events, want 10", len(all))
	}

	wantIDs(t, "global log after the 5th event", h.readLog(all[4].Position, 100), ids(all[5:]))
	wantIDs(t, "global log after the 5th event in pages of 3", h.readLog(all[4].Position, 3), ids(all[5:]))
	wantIDs(t, "global log after the first event", h.readLog(all[0].Position, 100), ids(all[1:]))
	wantIDs(t, "global log after the last event", h.readLog(all[9].Position, 100), nil)

	// There are at least ten events after base, so a page is full.
	for _, limit := range []int{1, 4, 10} {
		got, err := h.s.ReadAll(h.ctx, h.base, limit)
		if err != nil || len(got) != limit {
			t.Fatalf("ReadAll(%v, %d) = %d events, %v; want %d", h.base, limit, len(got), err, limit)
		}
	}
	if h.features.SharedLog {
		return
	}
	// Alone in the log, the pages are exactly the case's events.
	for _, r := range []struct {
		from  events.Position
		limit int
		want  []events.Event
	}{
		{events.Start, 4, all[:4]},
		{all[4].Position, 3, all[5:8]},
		{all[8].Position, 5, all[9:]},
		{all[9].Position, 5, nil},
	} {
		got, err := h.s.ReadAll(h.ctx, r.from, r.limit)
		if err != nil {
			t.Fatalf("ReadAll(%v, %d): %v", r.from, r.limit, err)
		}
		wantIDs(t, fmt.Sprintf("ReadAll(%v, %d)", r.from, r.limit), got, ids(r.want))
	}
	if h.features.DensePositions {
		past := events.Position{Commit: 1000, Prepare: 1000}
		got, err := h.s.ReadAll(h.ctx, past, 5)
		if err != nil || len(got) != 0 {
			t.Fatalf("ReadAll(%v, 5) past the end = %d events, %v; want none, nil", past, len(got), err)
		}
	}
	h.wantHeadAt(all[9].Position)
}
