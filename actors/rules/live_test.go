package rules

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

func appendRule(ctx context.Context, t *testing.T, st events.Store, tb *Table, cmd Command) uint64 {
	t.Helper()
	rec, err := tb.Add(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	props, err := schema.Proposals([]schema.Record{*rec}, events.Metadata{Actor: "admin:test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, schema.RulesStream, tb.Expected(), props...)
	if err != nil {
		t.Fatal(err)
	}
	return res.LastRevision
}

// TestLiveFollowsTheStream runs two followers on one log, as two nodes do
// on a shared store: a rule appended once reaches both tables, and the
// time it takes is the subscription's latency.
func TestLiveFollowsTheStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// A rule written before the nodes start is in their first table.
	first := appendRule(ctx, t, st, Empty(), Command{List: schema.RangeBlock, Range: "+7999", Level: 3, CommandID: "c1", By: "alice", Why: "before"})
	// Other streams' events are skipped by the followers.
	if _, err := st.Append(ctx, "caller-+79990000000", events.Any, events.Proposed{Type: "X", Version: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	var nodes []*Live
	for range 2 {
		l := NewLive(st, log)
		from, err := l.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Lookup("+79990000001", time.Now()); len(got) != 1 || got[0].Level != 3 {
			t.Fatalf("after Load: %+v", got)
		}
		go l.Follow(ctx, from)
		nodes = append(nodes, l)
	}

	tb, err := Read(ctx, st, schema.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := tb.Revision(); r != first {
		t.Fatalf("Read: revision %d, want %d", r, first)
	}
	start := time.Now()
	rev := appendRule(ctx, t, st, tb, Command{List: schema.RangeBlock, Range: "+7999123", Level: 8, CommandID: "c2", By: "alice", Why: "fraud"})
	for i, l := range nodes {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := l.WaitFor(wctx, rev); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		wcancel()
		if got := l.Lookup("+79991234567", time.Now()); len(got) != 1 || got[0].Range != "+7999123" || got[0].Level != 8 {
			t.Fatalf("node %d: %+v, want the new rule", i, got)
		}
	}
	t.Logf("a rule reached both followers %v after its append was acknowledged", time.Since(start))

	// A conflicting writer (a second admin with a stale table) is refused.
	if _, err := st.Append(ctx, schema.RulesStream, events.Exact(first), events.Proposed{Type: schema.TypeRangeRemoved, Version: 1, Data: []byte(`{}`)}); err == nil {
		t.Fatal("an append at a stale revision was accepted")
	}
}

// TestWriter: commands checked against the stream, appended with its
// revision, retried commands answered as repeats, refusals before any
// write; the node's table has the rule when Add returns.
func TestWriter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	live := NewLive(st, log)
	from, err := live.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go live.Follow(ctx, from)
	w := &Writer{Store: st, Live: live, Clock: time.Now, Node: "n1"}
	// A second writer, as on another node, with no table of its own.
	w2 := &Writer{Store: st, Clock: time.Now, Node: "n2"}

	add := Command{List: schema.RangeBlock, Range: "+7999123", Level: 7, CommandID: "k1", By: "alice", Why: "fraud"}
	a, err := w.Add(ctx, add)
	if err != nil || a.Event != schema.TypeRangeBlocked || a.Revision != 0 {
		t.Fatalf("Add: %+v, %v", a, err)
	}
	if got := live.Lookup("+79991234567", time.Now()); len(got) != 1 {
		t.Fatalf("the node's table lacks the rule when Add returned: %+v", got)
	}
	if a, err := w2.Add(ctx, add); err != nil || !a.Repeated {
		t.Fatalf("retried command: %+v, %v; want a repeat", a, err)
	}
	add.CommandID = "k2"
	if _, err := w2.Add(ctx, add); !errors.Is(err, ErrExists) {
		t.Fatalf("the same rule by another command: %v, want ErrExists", err)
	}
	if a, err := w2.Remove(ctx, schema.RangeBlock, "+7999123", "k3", "bob", "cleared"); err != nil || a.Revision != 1 {
		t.Fatalf("Remove: %+v, %v", a, err)
	}
	if a, err := w.Remove(ctx, schema.RangeBlock, "+7999123", "k3", "bob", "cleared"); err != nil || !a.Repeated {
		t.Fatalf("retried Remove: %+v, %v; want a repeat", a, err)
	}
	if _, err := w.Remove(ctx, schema.RangeBlock, "+7999123", "k4", "bob", "cleared"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of a rule not there: %v", err)
	}
	evs, err := events.ReadWholeStream(ctx, st, schema.RulesStream, 0)
	if err != nil || len(evs) != 2 || evs[0].Meta.Actor != "admin:alice" || evs[1].Meta.Node != "n2" {
		t.Fatalf("stream: %d events %+v, %v", len(evs), evs, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := live.WaitFor(wctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := live.Lookup("+79991234567", time.Now()); got != nil {
		t.Fatalf("removed on another node, still in this node's table: %+v", got)
	}
}

// TestWritersRace: admins on several nodes adding rules at once all get
// their rules in (a conflict makes the loser read again and retry), and
// the same rule added twice at once is written once.
func TestWritersRace(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 8
	errs := make(chan error, 2*n)
	for i := range n {
		w := &Writer{Store: st, Clock: time.Now, Node: "n"}
		go func() {
			_, err := w.Add(ctx, Command{List: schema.RangeBlock, Range: "+7999" + string(rune('0'+i)), Level: 7, CommandID: string(rune('a' + i)), By: "a", Why: "w"})
			errs <- err
		}()
		go func() {
			_, err := w.Add(ctx, Command{List: schema.RangeWhitelist, Range: "+7495", CommandID: "same-" + string(rune('a'+i)), By: "a", Why: "w"})
			if errors.Is(err, ErrExists) {
				err = nil // another admin's identical rule got in first
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tb, err := Read(ctx, st, schema.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != n+1 {
		t.Fatalf("%d rules, want %d blocks and one whitelist rule", tb.Len(), n)
	}
	if r, _ := tb.Revision(); r != n {
		t.Fatalf("stream revision %d: the identical rule was written more than once", r)
	}
}

// TestReadSkipsUnknownEvents: an event type of a later build in the rules
// stream does not stop a node from loading the rules it knows.
func TestReadSkipsUnknownEvents(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(ctx, schema.RulesStream, events.NoStream, events.Proposed{Type: "RangeScheduled", Version: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	tb, err := Read(ctx, st, schema.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rev := appendRule(ctx, t, st, tb, Command{List: schema.RangeBlock, Range: "+7999", Level: 3, CommandID: "k", By: "a", Why: "w"})
	if tb, err = Read(ctx, st, schema.NewRegistry()); err != nil || tb.Len() != 1 || rev != 1 {
		t.Fatalf("Read: %d rules, revision %d, %v", tb.Len(), rev, err)
	}
}
