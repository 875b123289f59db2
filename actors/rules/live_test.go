package rules

import (
	"context"
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
