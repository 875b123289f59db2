package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

// testLargeStream: a stream of 100,000 events, appended in batches, reads
// back whole and in order, page by page, from either end and from the
// middle.
func testLargeStream(t *testing.T, h *harness) {
	const (
		total = 100_000
		batch = 1_000
		page  = 4_096
	)
	if testing.Short() {
		t.Skip("a stream of 100,000 events takes seconds to append and read back; skipped with -short")
	}
	stream := h.stream("large")
	start := time.Now()
	exp := events.NoStream
	for b := 0; b < total; b += batch {
		res := h.append(stream, exp, h.batch("large", b, batch)...)
		if res.FirstRevision != uint64(b) {
			t.Fatalf("append of events %d.. = revisions %d..%d", b, res.FirstRevision, res.LastRevision)
		}
		exp = events.Exact(res.LastRevision)
	}
	appended := time.Since(start)

	start = time.Now()
	var from uint64
	var last events.Position
	for {
		evs, err := h.s.ReadStream(h.ctx, stream, events.Forward, from, page)
		if err != nil {
			t.Fatalf("ReadStream(from %d, %d): %v", from, page, err)
		}
		for _, ev := range evs {
			if ev.Revision != from {
				t.Fatalf("ReadStream: revision %d where %d is due", ev.Revision, from)
			}
			if !last.Less(ev.Position) {
				t.Fatalf("revision %d at %v is not after %v", ev.Revision, ev.Position, last)
			}
			last = ev.Position
			wantEvent(t, ev, h.event("large", int(from)))
			from++
		}
		if len(evs) < page {
			break
		}
	}
	if from != total {
		t.Fatalf("read %d events back, want %d", from, total)
	}
	read := time.Since(start)

	for _, r := range []struct {
		dir         events.Direction
		from        uint64
		limit       int
		first, last uint64
	}{
		{events.Backward, end, 10, total - 1, total - 10},
		{events.Forward, 54_321, 3, 54_321, 54_323},
		{events.Backward, 50_000, 2, 50_000, 49_999},
		{events.Forward, total - 2, 10, total - 2, total - 1},
	} {
		evs, err := h.s.ReadStream(h.ctx, stream, r.dir, r.from, r.limit)
		if err != nil || len(evs) == 0 || evs[0].Revision != r.first || evs[len(evs)-1].Revision != r.last {
			t.Fatalf("ReadStream(%d, from %d, limit %d) = %s, %v; want revisions %d..%d",
				r.dir, r.from, r.limit, revisionRange(evs), err, r.first, r.last)
		}
		for _, ev := range evs {
			wantEvent(t, ev, h.event("large", int(ev.Revision)))
		}
	}

	start = time.Now()
	if log := h.readLog(h.base, page); len(log) != total {
		t.Fatalf("global log has %d of the case's events, want %d", len(log), total)
	}
	h.wantHeadAt(last)
	t.Logf("appended %d events in batches of %d in %v, read them back in %v, the global log in %v",
		total, batch, appended.Round(time.Millisecond), read.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func revisionRange(evs []events.Event) string {
	if len(evs) == 0 {
		return "no events"
	}
	return fmt.Sprintf("revisions %d..%d", evs[0].Revision, evs[len(evs)-1].Revision)
}
