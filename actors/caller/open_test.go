package caller_test

import (
	"context"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// TestConcurrentCallsPerCaller: the grain counts the caller's calls up
// from their decision to their end (Ended), or until DefaultOpenCallFor
// when the end never comes, decides with the count and records it.
func TestConcurrentCallsPerCaller(t *testing.T) {
	clock := newClock()
	cfg := policy.DefaultConfig()
	cfg.LimitHour, cfg.LimitDay, cfg.MaxConcurrent = 10, 20, 2
	n := start(t, clock, actortest.WithPolicy(cfg))
	ctx := context.Background()

	for _, id := range []string{"c1", "c2"} {
		if v := admit(t, n.Callers, id); v.Verdict != schema.Pass {
			t.Fatalf("%s: got %+v, want pass (within the limit)", id, v)
		}
	}
	v := admit(t, n.Callers, "c3")
	if v.Verdict != schema.Challenge || v.Rule != schema.RuleConcurrent || v.Reason != "3 calls up at once, limit 2" {
		t.Fatalf("c3: got %+v, want a challenge by the concurrency rule", v)
	}
	// A retried Admit of a call up is not counted twice.
	if v := admit(t, n.Callers, "c2"); !v.Repeated || v.Verdict != schema.Pass {
		t.Fatalf("retried c2: got %+v, want the recorded pass", v)
	}

	// Two calls end: the next call is the second one up.
	for _, id := range []string{"c1", "c3"} {
		if err := n.Callers.Ended(ctx, number, caller.Ended{CallID: id}); err != nil {
			t.Fatalf("Ended %s: %v", id, err)
		}
	}
	if v := admit(t, n.Callers, "c4"); v.Verdict != schema.Pass {
		t.Fatalf("c4 after two ends: got %+v, want pass", v)
	}
	if v := admit(t, n.Callers, "c5"); v.Verdict != schema.Challenge || v.Rule != schema.RuleConcurrent {
		t.Fatalf("c5: got %+v, want a challenge (c2, c4 and c5 up)", v)
	}

	// Ends that never come: the calls stop counting after OpenCallFor.
	clock.Advance(caller.DefaultOpenCallFor + time.Second)
	if v := admit(t, n.Callers, "c6"); v.Verdict != schema.Pass {
		t.Fatalf("c6 after the open calls expired: got %+v, want pass", v)
	}

	evs, err := events.ReadWholeStream(ctx, n.Store, schema.CallerStream(number), 0)
	if err != nil {
		t.Fatal(err)
	}
	reg := schema.NewRegistry()
	want := map[string]int{"c1": 0, "c2": 2, "c3": 3, "c4": 2, "c5": 3, "c6": 0}
	for _, ev := range evs {
		p, err := reg.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if cr, ok := p.(*schema.CallReceived); ok && cr.Concurrent != want[cr.CallID] {
			t.Errorf("%s: CallReceived.Concurrent = %d, want %d", cr.CallID, cr.Concurrent, want[cr.CallID])
		}
	}
}
