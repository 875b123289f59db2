package caller_test

import (
	"context"
	"strings"
	"testing"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// TestAdmitLooksUpRangeRules: the grain decides with the rules its node's
// table matches for the caller, records them in CallReceived, and shows
// them in the caller's status.
func TestAdmitLooksUpRangeRules(t *testing.T) {
	clock := newClock()
	tb := rules.Empty()
	rec, err := tb.Add(rules.Command{List: schema.RangeBlock, Range: "+7999000", Level: 7, CommandID: "k1", By: "alice", Why: "fraud"}, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tb, err = tb.Fold(0, rec.Payload); err != nil {
		t.Fatal(err)
	}
	n := start(t, clock, actortest.WithRanges(tb.Lookup))

	v := admit(t, n.Callers, "call-1")
	if v.Verdict != schema.Reject || v.Level != 7 || v.Rule != schema.RuleRangeBlock || !strings.Contains(v.Reason, "blocked by prefix +7999000") {
		t.Fatalf("got %+v, want a reject by the range block", v)
	}
	evs, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("stream: %d events, %v", len(evs), err)
	}
	p, err := schema.NewRegistry().Decode(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	got := p.(*schema.CallReceived)
	if len(got.Ranges) != 1 || got.Ranges[0].Range != "+7999000" || got.Ranges[0].By != "alice" {
		t.Fatalf("CallReceived.Ranges = %+v, want the rule", got.Ranges)
	}
	st, err := n.Callers.Status(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Next != schema.Reject || st.Status.NextRule != schema.RuleRangeBlock || len(st.Status.Ranges) != 1 {
		t.Fatalf("status %+v, want the next call rejected by the range", st.Status)
	}
}
