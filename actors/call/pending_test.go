package call

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

// switchStore fails every append while down, and comes back up by itself
// after upAfter failed appends (when upAfter > 0).
type switchStore struct {
	events.Store
	down     atomic.Bool
	upAfter  int64
	failures atomic.Int64
}

func (s *switchStore) Append(ctx context.Context, stream string, exp events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	if s.down.Load() {
		if n := s.failures.Add(1); s.upAfter > 0 && n >= s.upAfter {
			s.down.Store(false)
		}
		return events.AppendResult{}, fmt.Errorf("test: %w", events.ErrUnavailable)
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

func openEmbedded(t *testing.T) events.Store {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openSpool(t *testing.T, path string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeDownCall writes the call stream of a call passed under the
// store-down policy through a writer of its own, as the actor does.
func storeDownCall(st events.Store, p *pending, id string, c *Counters, clock *actortest.Clock, retryFor time.Duration) appendResult {
	w := newStreamWriter(st, p, schema.CallStream(id), events.Metadata{Node: "n1", Actor: "call", CorrelationID: id}, retryFor,
		slog.New(slog.DiscardHandler), c, clock.Now, clock.Sleep)
	w.add(schema.CallStarted{CallID: id, Caller: "+79990000001", At: epoch})
	w.add(schema.CallDecided{CallID: id, StoreDown: true, Error: "store down", Action: schema.Pass, At: epoch})
	w.add(schema.CallEnded{CallID: id, Cause: schema.EndCallerHangup, At: epoch})
	w.close()
	batch := w.queue
	w.queue = nil
	return w.appendBatch(context.Background(), batch)
}

// drainer is what a restarted node builds: a Spawner on the store and
// the reopened spool (RecordPending needs no actor system).
func drainer(st events.Store, sp *spool.Spool, clock *actortest.Clock) *Spawner {
	d := Deps{Store: st, Spool: sp, Clock: clock.Now, Sleep: clock.Sleep, Logger: slog.New(slog.DiscardHandler)}
	d.defaults()
	return &Spawner{d: &d}
}

func streamTypes(t *testing.T, st events.Store, id string) []string {
	t.Helper()
	evs, err := events.ReadWholeStream(context.Background(), st, schema.CallStream(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

func TestStoreDownCallIsRecordedOnceAfterARestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		// writtenBeforeRestart: the append landed but the node died before
		// deleting the spool entry (the drain must write nothing twice).
		writtenBeforeRestart bool
	}{
		{name: "store still down at restart"},
		{name: "written but still spooled", writtenBeforeRestart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := openEmbedded(t)
			st := &switchStore{Store: inner}
			st.down.Store(true)
			path := filepath.Join(t.TempDir(), spool.FileName)
			sp := openSpool(t, path)
			clock := actortest.NewClock(epoch)
			c := &Counters{}

			// The node decides two calls while the store is down; their
			// writers give up retrying (as a node stopping would) and leave
			// them in the spool.
			for _, id := range []string{"c1", "c2"} {
				if got := storeDownCall(st, newPending(sp), id, c, clock, time.Minute); got != left {
					t.Fatalf("call %s: writer ended %v, want left in the spool", id, got)
				}
			}
			if sp.Len() != 2 || c.EventsDropped.Load() != 0 {
				t.Fatalf("spool holds %d, %d events dropped; want 2 held, none dropped", sp.Len(), c.EventsDropped.Load())
			}
			if tc.writtenBeforeRestart {
				st.down.Store(false)
				batches, err := sp.List()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := inner.Append(context.Background(), batches[0].Stream, batches[0].Expected(), batches[0].Events...); err != nil {
					t.Fatal(err)
				}
				st.down.Store(true)
			}
			// Restart: the spool is closed and reopened by a new node.
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			sp = openSpool(t, path)
			defer sp.Close()
			if sp.Len() != 2 {
				t.Fatalf("reopened spool holds %d, want 2", sp.Len())
			}
			st.upAfter = st.failures.Load() + 3 // the store returns during the drain
			d := drainer(st, sp, clock)
			if n := d.RecordPending(context.Background(), 0); n != 2 {
				t.Errorf("RecordPending recorded %d, want 2", n)
			}
			want := fmt.Sprint([]string{"CallStarted", "CallDecided", "CallEnded"})
			for _, id := range []string{"c1", "c2"} {
				if got := fmt.Sprint(streamTypes(t, inner, id)); got != want {
					t.Errorf("call-%s holds %s, want %s once", id, got, want)
				}
			}
			if sp.Len() != 0 || d.d.Counters.PendingRecorded.Load() != 2 {
				t.Errorf("after the drain: spool holds %d, %d recorded; want 0 and 2", sp.Len(), d.d.Counters.PendingRecorded.Load())
			}
			// A second drain finds nothing to do.
			if n := d.RecordPending(context.Background(), 0); n != 0 {
				t.Errorf("second RecordPending recorded %d, want 0", n)
			}
		})
	}
}

func TestStreamWriterUnspoolsOnceWritten(t *testing.T) {
	inner := openEmbedded(t)
	st := &switchStore{Store: inner, upAfter: 3}
	st.down.Store(true)
	sp := openSpool(t, filepath.Join(t.TempDir(), spool.FileName))
	defer sp.Close()
	clock := actortest.NewClock(epoch)
	c := &Counters{}
	p := newPending(sp)
	if got := storeDownCall(st, p, "c1", c, clock, time.Hour); got != appended {
		t.Fatalf("writer ended %v, want appended", got)
	}
	if sp.Len() != 0 || len(p.held) != 0 {
		t.Errorf("after the append: spool holds %d, %d streams held; want none", sp.Len(), len(p.held))
	}
	if c.EventsWritten.Load() != 3 {
		t.Errorf("%d events written, want 3", c.EventsWritten.Load())
	}
}

func TestStreamWriterSpoolsNothingWhileTheStoreAnswers(t *testing.T) {
	st := openEmbedded(t)
	sp := openSpool(t, filepath.Join(t.TempDir(), spool.FileName))
	defer sp.Close()
	clock := actortest.NewClock(epoch)
	if got := storeDownCall(st, newPending(sp), "c1", &Counters{}, clock, time.Hour); got != appended {
		t.Fatalf("writer ended %v, want appended", got)
	}
	if sp.Len() != 0 {
		t.Errorf("spool holds %d after an append that succeeded at once", sp.Len())
	}
}

func TestStreamWriterRetriesInMemoryWhenTheSpoolFails(t *testing.T) {
	st := &switchStore{Store: openEmbedded(t), upAfter: 5}
	st.down.Store(true)
	sp := openSpool(t, filepath.Join(t.TempDir(), spool.FileName))
	if err := sp.Close(); err != nil { // a spool that refuses every write, as on a full disk
		t.Fatal(err)
	}
	clock := actortest.NewClock(epoch)
	c := &Counters{}
	if got := storeDownCall(st, newPending(sp), "c1", c, clock, time.Hour); got != appended {
		t.Fatalf("writer ended %v, want appended once the store returned", got)
	}
	if c.SpoolFailed.Load() != 1 || c.EventsWritten.Load() != 3 {
		t.Errorf("spool failures %d, events written %d; want 1 and 3", c.SpoolFailed.Load(), c.EventsWritten.Load())
	}
}

func TestStreamWriterSpoolsWhenTheStoreCloses(t *testing.T) {
	inner, err := embedded.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Close(); err != nil {
		t.Fatal(err)
	}
	sp := openSpool(t, filepath.Join(t.TempDir(), spool.FileName))
	defer sp.Close()
	c := &Counters{}
	if got := storeDownCall(inner, newPending(sp), "c1", c, actortest.NewClock(epoch), time.Hour); got != left {
		t.Fatalf("writer ended %v, want left in the spool", got)
	}
	if sp.Len() != 1 || c.EventsDropped.Load() != 0 {
		t.Errorf("spool holds %d, %d dropped; want 1 held, none dropped", sp.Len(), c.EventsDropped.Load())
	}
}

func TestRecordPendingStopsWithTheNodeAndLeavesTheEntry(t *testing.T) {
	st := &switchStore{Store: openEmbedded(t)}
	st.down.Store(true)
	sp := openSpool(t, filepath.Join(t.TempDir(), spool.FileName))
	defer sp.Close()
	clock := actortest.NewClock(epoch)
	if got := storeDownCall(st, newPending(sp), "c1", &Counters{}, clock, time.Minute); got != left {
		t.Fatalf("writer ended %v, want left in the spool", got)
	}
	d := Deps{Store: st, Spool: sp, Logger: slog.New(slog.DiscardHandler)} // real clock and sleep
	d.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	before := st.failures.Load()
	go func() { done <- (&Spawner{d: &d}).RecordPending(ctx, time.Hour) }()
	deadline := time.Now().Add(10 * time.Second)
	for st.failures.Load() < before+3 { // the drain is retrying
		if time.Now().After(deadline) {
			t.Fatal("the drain did not retry the append three times within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case n := <-done:
		if n != 0 {
			t.Errorf("RecordPending recorded %d with the store down, want 0", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RecordPending did not return within 5 s of its context ending")
	}
	if sp.Len() != 1 {
		t.Errorf("spool holds %d after the drain stopped, want the entry kept", sp.Len())
	}
}
