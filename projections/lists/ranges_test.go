package lists

import (
	"context"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

func (w *world) rule(p schema.Payload) {
	w.t.Helper()
	props, err := schema.Proposals([]schema.Record{{Payload: p}}, events.Metadata{Actor: "admin:test"})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.Append(context.Background(), schema.RulesStream, events.Any, props...); err != nil {
		w.t.Fatal(err)
	}
}

func TestRangesAreListed(t *testing.T) {
	w := newWorld(t)
	until := at.Add(time.Hour)
	w.rule(schema.RangeBlocked{Range: "+7999123", Level: 7, At: at, CommandID: "k1", By: "alice", Why: "fraud"})
	w.rule(schema.RangeBlocked{Range: "+79991230000-+79991230099", Level: 3, At: at, Until: &until, By: "alice", Why: "storm"})
	w.rule(schema.RangeWhitelisted{Range: "+7495", At: at, By: "bob", Why: "branch"})
	w.rule(schema.RangeBlocked{Range: "+44", Level: 9, At: at, By: "bob", Why: "gone soon"})
	w.rule(schema.RangeRemoved{Range: "+44", List: schema.RangeBlock, At: at, By: "bob", Why: "cleared"})
	w.catchUp()

	page, err := w.lists.Ranges(context.Background(), RangeQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Items {
		got = append(got, string(e.List)+" "+e.Range+" "+string(e.Effect))
	}
	want := []string{"block +7999123 reject", "block +79991230000-+79991230099 challenge", "whitelist +7495 pass"}
	if len(got) != len(want) || page.Total != 3 {
		t.Fatalf("ranges %q (total %d), want %q", got, page.Total, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ranges %q, want %q", got, want)
		}
	}
	if e := page.Items[0]; e.By != "alice" || e.Reason != "fraud" || e.CommandID != "k1" {
		t.Errorf("first entry %+v, want who and why", e)
	}

	// Paging: one a page, following Next.
	var seen []string
	q := RangeQuery{Limit: 1}
	for i := 0; i < 5; i++ {
		p, err := w.lists.Ranges(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Items {
			seen = append(seen, e.Range)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if len(seen) != 3 {
		t.Fatalf("paged through %q, want 3 rules", seen)
	}

	// Filters, and a rule past its expiry is left out unless asked for.
	w.set(until)
	p, err := w.lists.Ranges(context.Background(), RangeQuery{List: schema.RangeBlock, Prefix: "+7999"})
	if err != nil || len(p.Items) != 1 || p.Items[0].Range != "+7999123" {
		t.Fatalf("blocks under +7999 after the storm's expiry: %+v, %v", p.Items, err)
	}
	p, err = w.lists.Ranges(context.Background(), RangeQuery{List: schema.RangeBlock, IncludeExpired: true})
	if err != nil || len(p.Items) != 2 || !p.Items[1].Expired {
		t.Fatalf("with expired: %+v, %v", p.Items, err)
	}
	if _, err := w.lists.Ranges(context.Background(), RangeQuery{List: "grey"}); err == nil {
		t.Error("an unknown list was accepted")
	}
}
