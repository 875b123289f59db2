package storetest

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// testConcurrentOneStream: writers race on one stream the way two
// activations of one caller grain would, each appending with the revision
// it read and reloading on a conflict. Every event lands exactly once, at
// contiguous revisions, in each writer's order.
func testConcurrentOneStream(t *testing.T, h *harness) {
	const (
		writers     = 8
		perWriter   = 8
		maxAttempts = 1000
	)
	stream := h.stream("contended")
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				p := h.event("w"+strconv.Itoa(w), i)
				for attempt := 0; ; attempt++ {
					if attempt == maxAttempts {
						t.Errorf("writer %d: event %d still conflicting after %d attempts", w, i, attempt)
						return
					}
					last, err := h.s.ReadStream(h.ctx, stream, events.Backward, end, 1)
					if err != nil {
						t.Errorf("writer %d: reload: %v", w, err)
						return
					}
					exp := events.NoStream
					if len(last) == 1 {
						exp = events.Exact(last[0].Revision)
					}
					_, err = h.s.Append(h.ctx, stream, exp, p)
					if errors.Is(err, events.ErrConflict) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("writer %d: Append(%v): %v", w, exp, err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d conflicts retried", conflicts.Load())

	got := h.read(stream) // checks revisions 0, 1, 2, ...
	if len(got) != writers*perWriter {
		t.Fatalf("stream has %d events, want %d", len(got), writers*perWriter)
	}
	next := map[string]int{} // per writer, the index of its next event
	for _, ev := range got {
		found := false
		for w := range writers {
			tag := "w" + strconv.Itoa(w)
			if next[tag] < perWriter && ev.ID == h.event(tag, next[tag]).ID {
				wantEvent(t, ev, h.event(tag, next[tag]))
				next[tag]++
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("%s@%d (ID %v) is a duplicate, out of its writer's order, or not proposed", ev.Stream, ev.Revision, ev.ID)
		}
	}
	wantIDs(t, "global log", h.log(), ids(got))
}

// testConcurrentManyStreams: writers append to their own streams at once;
// every event lands, and the global log orders each stream by revision.
func testConcurrentManyStreams(t *testing.T, h *harness) {
	const (
		writers = 16
		appends = 8
		size    = 2
	)
	results := make([][]events.AppendResult, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := h.stream("many-" + strconv.Itoa(w))
			exp := events.NoStream
			for a := range appends {
				res, err := h.s.Append(h.ctx, stream, exp, h.batch(stream, a*size, size)...)
				if err != nil {
					t.Errorf("%s: Append(%v): %v", stream, exp, err)
					return
				}
				results[w] = append(results[w], res)
				exp = events.Exact(res.LastRevision)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var all []uuid.UUID
	for w := range writers {
		stream := h.stream("many-" + strconv.Itoa(w))
		got := h.read(stream)
		want := h.batch(stream, 0, appends*size)
		if len(got) != len(want) {
			t.Fatalf("%s has %d events, want %d", stream, len(got), len(want))
		}
		for i := range got {
			wantEvent(t, got[i], want[i])
		}
		for a, res := range results[w] {
			if res.FirstRevision != uint64(a*size) || got[res.LastRevision].Position != res.Position {
				t.Fatalf("%s append %d = %+v, want revisions from %d and the position of its last event %v",
					stream, a, res, a*size, got[res.LastRevision].Position)
			}
		}
		all = append(all, proposedIDs(want)...)
	}

	log := h.log()
	if len(log) != len(all) {
		t.Fatalf("global log has %d of the case's events, want %d", len(log), len(all))
	}
	next := map[string]uint64{}
	seen := map[uuid.UUID]bool{}
	for _, ev := range log {
		if ev.Revision != next[ev.Stream] {
			t.Fatalf("global log has %s@%d where revision %d of that stream is due", ev.Stream, ev.Revision, next[ev.Stream])
		}
		next[ev.Stream]++
		seen[ev.ID] = true
	}
	for _, id := range all {
		if !seen[id] {
			t.Fatalf("event %v is missing from the global log", id)
		}
	}
}
