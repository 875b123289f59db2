package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zone must not depend on the machine

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/runner"
)

func moscow(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestFoldAndView(t *testing.T) {
	msk := moscow(t)
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, msk) }
	verified := at(3, 4)
	until := at(4, 0)
	evs := []schema.Payload{
		schema.Whitelisted{At: at(1, 9), By: "alice", Why: "VIP", Until: &until},
		schema.CallReceived{CallID: "c1", Callee: "+78005553535", At: at(2, 22), Verdict: schema.Pass},
		&schema.CallReceived{CallID: "c2", Callee: "+78005553535", At: at(2, 23), Verdict: schema.Challenge},
		&schema.ChallengeOutcome{CallID: "c2", Outcome: schema.Passed, At: at(2, 23), VerifiedUntil: &verified},
		// 00:30 in Moscow: a new day there, though not in UTC.
		schema.CallReceived{CallID: "c3", Callee: "+78002000600", At: at(3, 0).Add(30 * time.Minute), Verdict: schema.Reject},
		schema.BlockApplied{Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, At: at(3, 1), By: "bob", Why: "fraud"},
		schema.ChallengeOutcome{CallID: "c4", Outcome: schema.Abandoned, At: at(3, 2)},
	}
	var r Record
	for _, e := range evs {
		var changed bool
		r, changed = Fold(r, e, msk)
		if !changed || !Folds(e.EventType()) {
			t.Fatalf("%s not folded", e.EventType())
		}
	}
	if _, changed := Fold(r, schema.CallEnded{}, msk); changed {
		t.Fatal("a call stream event changed a profile")
	}
	if r.Calls != 3 || r.Day != "2026-11-03" || r.DayCalls != 1 || r.Passed != 1 || r.Challenged != 1 || r.Rejected != 1 ||
		r.ChallengesPassed != 1 || r.ChallengesAbandoned != 1 || r.Blocks != 1 || r.LastCallID != "c3" || !r.FirstSeen.Equal(at(1, 9)) {
		t.Fatalf("record %+v", r)
	}
	p := View("+79990000001", r, at(3, 3), msk)
	if p.CallsToday != 1 || p.State.Level != 7 || p.State.Effect != schema.Pass || !p.State.Whitelisted ||
		p.State.VerifiedUntil == nil || p.LastVerdict != schema.Reject || p.LastCallee != "+78002000600" {
		t.Fatalf("view on the 3rd %+v", p)
	}
	// A day later: no calls today, the whitelist entry and the
	// verification have run out, the manual block stays.
	p = View("+79990000001", r, at(4, 12), msk)
	if p.CallsToday != 0 || p.State.Whitelisted || p.State.VerifiedUntil != nil || p.State.Level != 7 || p.State.Effect != schema.Reject {
		t.Fatalf("view on the 4th %+v", p)
	}
}

// TestObserveMode: a call observe mode passed counts as passed, and
// apart as one enforcing would have blocked; the latest says both.
func TestObserveMode(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var r Record
	for _, e := range []schema.CallReceived{
		{CallID: "c1", At: at, Verdict: schema.Pass, Mode: schema.Observe, Action: schema.Pass},
		{CallID: "c2", At: at, Verdict: schema.Challenge, Mode: schema.Observe, Action: schema.Pass},
		{CallID: "c3", At: at, Verdict: schema.Reject, Mode: schema.Observe, Action: schema.Pass},
	} {
		r, _ = Fold(r, e, time.UTC)
	}
	if r.Passed != 3 || r.Challenged != 0 || r.Rejected != 0 || r.Observed != 2 || r.LastVerdict != schema.Reject || r.LastAction != schema.Pass {
		t.Fatalf("record %+v", r)
	}
	raw := encode(&r)
	back, err := decode(raw)
	if err != nil || back.Observed != 2 || back.LastAction != schema.Pass {
		t.Fatalf("decoded %+v %v", back, err)
	}
	var text strings.Builder
	if err := WriteText(&text, Page{Items: []Profile{View("+79990000001", r, at, time.UTC)}}, time.UTC); err != nil ||
		!strings.Contains(text.String(), "reject (observe mode: pass)") {
		t.Fatalf("text %v:\n%s", err, text.String())
	}
	// Enforcing: the latest call's action is its verdict again.
	r, _ = Fold(r, schema.CallReceived{CallID: "c4", At: at, Verdict: schema.Reject, Mode: schema.Enforce, Action: schema.Reject}, time.UTC)
	if r.Rejected != 1 || r.LastAction != "" || r.Observed != 2 {
		t.Fatalf("record after enforcing %+v", r)
	}
}

func TestSearch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sim := simtest.New(t, store, policy.DefaultConfig())
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i, n := range []string{"+79990000001", "+79990000002", "+79990000003", "+79110000001", "+79990000002"} {
		sim.Place(simtest.Call{Caller: n, Callee: "+78005553535", At: at.Add(time.Duration(i) * time.Minute)})
	}
	r, err := runner.Open(ctx, filepath.Join(dir, runner.DirName), store, []runner.Projection{NewProjection(time.UTC)}, runner.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	ps := New(r, time.UTC, func() time.Time { return at.Add(time.Hour) })
	var got []string
	q := Query{Prefix: "+7999", Limit: 2}
	for {
		page, err := ps.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			got = append(got, fmt.Sprintf("%s:%d/%d", p.Number, p.Calls, p.CallsToday))
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if fmt.Sprint(got) != "[+79990000001:1/1 +79990000002:2/2 +79990000003:1/1]" {
		t.Fatalf("search %v", got)
	}
	if p, ok, err := ps.Get(ctx, "+79110000001"); err != nil || !ok || p.Calls != 1 {
		t.Fatalf("get %+v %v %v", p, ok, err)
	}
	if _, ok, err := ps.Get(ctx, "+70000000000"); err != nil || ok {
		t.Fatalf("get of a number never seen: %v %v", ok, err)
	}
	page, err := ps.Search(ctx, Query{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := WriteText(&text, page, time.UTC); err != nil || !strings.Contains(text.String(), "+79110000001  1      1      2026-11-02 10:03:00") ||
		!strings.Contains(text.String(), "more: --after +79990000001") {
		t.Fatalf("text %v\n%s", err, text.String())
	}
	if _, err := ps.Search(ctx, Query{Limit: MaxLimit + 1}); !errors.Is(err, ErrQuery) {
		t.Fatalf("limit over the maximum: %v", err)
	}
}
