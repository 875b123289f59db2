package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

// TestBuildFromEmbeddedStore appends each scenario's events to a real
// embedded store and checks that Build reads back the timeline FromEvents
// builds from the same events in memory.
func TestBuildFromEmbeddedStore(t *testing.T) {
	ctx := context.Background()
	store, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	for _, sc := range scenarios {
		evs := sc.events(t)
		for _, ev := range evs {
			p := events.Proposed{ID: ev.ID, Type: ev.Type, Version: ev.Version, Meta: ev.Meta, Data: ev.Data}
			if _, err := store.Append(ctx, ev.Stream, events.ExactOrNoStream(ev.Revision-1, ev.Revision > 0), p); err != nil {
				t.Fatalf("%s: append %s@%d: %v", sc.name, ev.Stream, ev.Revision, err)
			}
		}
		want, err := FromEvents(sc.key, evs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Build(ctx, store, sc.key)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		// An event this build cannot read is dated by the store's commit
		// time, which the store chose; everything else is domain time.
		for _, tl := range []*Timeline{&want, &got} {
			for i := range tl.Entries {
				if tl.Entries[i].Kind == KindOther {
					tl.Entries[i].At = time.Time{}
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Build from the store differs from FromEvents:\n got %s\nwant %s", sc.name, marshal(t, got), marshal(t, want))
		}
	}

	// Other callers' streams do not leak into a timeline.
	got, err := Build(ctx, store, scenarios[0].key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got.Entries {
		if e.Call != nil && !strings.HasPrefix(e.Call.CallID, "c") {
			t.Errorf("timeline of %s holds call %s", scenarios[0].key, e.Call.CallID)
		}
	}
}

func TestBuildUnknownNumber(t *testing.T) {
	ctx := context.Background()
	store, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	tl, err := Build(ctx, store, "+79990000000")
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Entries) != 0 || tl.Summary.Calls != 0 || !tl.Summary.State.AsOf.IsZero() {
		t.Errorf("timeline of an unknown number: %+v", tl)
	}
	b, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	// The admin API serves this: an empty list, not null, is what a client
	// iterating over entries expects.
	if !bytes.Contains(b, []byte(`"entries":[]`)) {
		t.Errorf("JSON of an empty timeline: %s", b)
	}
	var text bytes.Buffer
	if err := tl.WriteText(&text, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0 events, times in UTC", "No events", "never seen"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text of an empty timeline lacks %q:\n%s", want, text.String())
		}
	}
}

func TestBuildReadError(t *testing.T) {
	ctx := context.Background()
	store, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Build(ctx, store, "+79990001122")
	if !errors.Is(err, events.ErrClosed) || !strings.Contains(err.Error(), "audit +79990001122") {
		t.Fatalf("Build on a closed store: %v, want ErrClosed with the number", err)
	}
}

func TestFromEventsErrors(t *testing.T) {
	evs := scenarios[0].events(t)
	t.Run("other stream", func(t *testing.T) {
		_, err := FromEvents("+79990009999", evs)
		if !errors.Is(err, events.ErrInvalid) {
			t.Fatalf("got %v, want ErrInvalid", err)
		}
	})
	t.Run("corrupt payload", func(t *testing.T) {
		bad := append([]events.Event(nil), evs[:2]...)
		bad[1].Data = json.RawMessage(`{"callId":"c2","at":"yesterday"}`)
		_, err := FromEvents(scenarios[0].key, bad)
		if err == nil || !strings.Contains(err.Error(), "CallReceived") {
			t.Fatalf("got %v, want a decode error naming the type", err)
		}
	})
}

// TestBlockEvidence covers evidence the stream cannot fully back: a block
// whose count exceeds the calls it names (the policy keeps the newest IDs
// only), and a named call whose CallReceived is not in the stream.
func TestBlockEvidence(t *testing.T) {
	key := "+79990001122"
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	until := t0.Add(24 * time.Hour)
	evs := []events.Event{
		event(t, key, 0, schema.CallReceived{CallID: "x2", Caller: key, At: t0.Add(-time.Hour), Hour: 1, Day: 21, Verdict: schema.Pass}),
		event(t, key, 1, schema.CallReceived{CallID: "x3", Caller: key, At: t0, Hour: 2, Day: 22, Verdict: schema.Challenge, Level: 3,
			Rule: schema.RuleDailyLimit, Reason: "22 calls in the last day, limit 20"}),
		event(t, key, 2, schema.BlockApplied{Level: 3, Kind: schema.Auto, Rule: schema.RuleDailyLimit, At: t0, Until: &until,
			Limit: 20, Count: 22, Calls: []string{"x1", "x2", "x3"}, CallID: "x3", By: "policy", Why: "22 calls in the last day, limit 20"}),
	}
	tl, err := FromEvents(key, evs)
	if err != nil {
		t.Fatal(err)
	}
	blk := tl.Entries[2].Block
	want := []Counted{{CallID: "x1"}, {CallID: "x2", At: t0.Add(-time.Hour)}, {CallID: "x3", At: t0}}
	if !reflect.DeepEqual(blk.Counted, want) || blk.Unnamed != 19 {
		t.Fatalf("counted %+v, unnamed %d; want %+v and 19", blk.Counted, blk.Unnamed, want)
	}
	if s := tl.Entries[2].Summary; !strings.Contains(s, "counted: x1, x2 08:00:00, x3 09:00:00 and 19 older not named") {
		t.Errorf("block summary: %s", s)
	}
	st := tl.Summary.State
	if st.Level != 3 || st.Rule != schema.RuleDailyLimit || !st.Until.Equal(until) || !st.AsOf.Equal(t0) {
		t.Errorf("state %+v", st)
	}
}

// TestWriteTextZone: times follow the reader's zone, including those
// inside a line (evidence, expiry), and a counted call on another day than
// its block shows its date.
func TestWriteTextZone(t *testing.T) {
	key := "+79990001122"
	// 00:30 on the 6th in Moscow; the counted call an hour earlier is on
	// the 5th there, on the same day as the block in UTC.
	t0 := time.Date(2026, 1, 5, 21, 30, 0, 0, time.UTC)
	until := t0.Add(24 * time.Hour)
	evs := []events.Event{
		event(t, key, 0, schema.CallReceived{CallID: "y1", Caller: key, At: t0.Add(-time.Hour), Hour: 1, Day: 1, Verdict: schema.Pass}),
		event(t, key, 1, schema.BlockApplied{Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, At: t0, Until: &until,
			Limit: 1, Count: 1, Calls: []string{"y1"}, By: "policy", Why: "test"}),
	}
	tl, err := FromEvents(key, evs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tl.WriteText(&b, msk); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"2026-01-06 00:30:00  block",
		"counted: y1 2026-01-05 23:30:00;",
		"until 2026-01-07 00:30:00",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	if want := "counted: y1 20:30:00;"; !strings.Contains(tl.Entries[1].Summary, want) {
		t.Errorf("UTC summary %q lacks %q", tl.Entries[1].Summary, want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteTextError(t *testing.T) {
	tl, err := FromEvents(scenarios[0].key, scenarios[0].events(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.WriteText(failWriter{}, time.UTC); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("WriteText to a failing writer: %v", err)
	}
}

// openStore opens an embedded store in a fresh directory, quietly.
func openStore(t testing.TB) (*embedded.Store, error) {
	return embedded.Open(context.Background(), t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
}

func event(t testing.TB, key string, rev uint64, p schema.Payload) events.Event {
	t.Helper()
	prop, err := schema.Record{ID: events.DeriveID("test", key, p.EventType(), string(rune('a'+rev))), Payload: p}.Proposed(events.Metadata{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return events.Event{ID: prop.ID, Stream: schema.CallerStream(key), Type: prop.Type, Version: prop.Version,
		Revision: rev, Position: events.Position{Commit: rev + 1, Prepare: rev + 1}, Meta: prop.Meta, Data: prop.Data}
}

// TestCallOnTheWire: a call recorded in the current shape shows its SIP
// Call-ID, identity, transport and the action taken, and in observe mode
// the line says the verdict was not carried out.
func TestCallOnTheWire(t *testing.T) {
	key := "+79990001122"
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	evs := []events.Event{
		event(t, key, 0, schema.CallReceived{CallID: "o1", Caller: key, At: t0, Hour: 1, Day: 1, Verdict: schema.Reject, Level: 7,
			Rule: schema.RuleManual, SIPCallID: "abc@trunk", Identity: "<sip:+79990001122@trunk>", IdentityFrom: "pai",
			Transport: "UDP", Mode: schema.Observe, Action: schema.Pass}),
		event(t, key, 1, schema.CallReceived{CallID: "e1", Caller: key, At: t0.Add(time.Minute), Hour: 2, Day: 2, Verdict: schema.Reject, Level: 7,
			Rule: schema.RuleManual, SIPCallID: "def@trunk", Transport: "TCP", Mode: schema.Enforce, Action: schema.Reject}),
	}
	tl, err := FromEvents(key, evs)
	if err != nil {
		t.Fatal(err)
	}
	c := tl.Entries[0].Call
	if c.SIPCallID != "abc@trunk" || c.IdentityFrom != "pai" || c.Transport != "UDP" || c.Mode != schema.Observe || c.Action != schema.Pass {
		t.Fatalf("observed call %+v", c)
	}
	if s := tl.Entries[0].Summary; !strings.Contains(s, "PASS (observe mode), enforcing would REJECT level 7") {
		t.Errorf("observed call's line %q: want that observe mode passed it, and the verdict as what enforcing would do", s)
	}
	if s := tl.Summary; s.Pass != 1 || s.Reject != 1 || s.WouldReject != 1 || s.WouldChallenge != 0 {
		t.Errorf("summary %+v: want 1 pass (observed), 1 reject, 1 would-be reject", s)
	}
	if s := tl.Entries[1].Summary; strings.Contains(s, "mode:") {
		t.Errorf("enforced call's line %q names a mode", s)
	}
}

// TestChallengePassedByAFallback: a call whose challenge could not be
// carried out (a late offer without 100rel, GUARD_LATE_OFFER=pass) reads
// as passed for that reason, with the verdict it did not carry out, not
// as observe mode; it counts as a pass and leaves no challenge pending.
func TestChallengePassedByAFallback(t *testing.T) {
	key := "+79990001122"
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	why := "passed: late offer without 100rel (GUARD_LATE_OFFER=pass)"
	evs := []events.Event{
		event(t, key, 0, schema.CallReceived{CallID: "l1", Caller: key, At: t0, Hour: 1, Day: 1, Verdict: schema.Challenge, Level: 3,
			Rule: schema.RuleManual, SIPCallID: "late@trunk", Transport: "UDP", Mode: schema.Enforce, Action: schema.Pass, ActionReason: why}),
	}
	tl, err := FromEvents(key, evs)
	if err != nil {
		t.Fatal(err)
	}
	c := tl.Entries[0].Call
	if c.ActionReason != why || c.Observed() {
		t.Errorf("call %+v: want the reason kept, and not taken for observe mode", c)
	}
	if s := tl.Entries[0].Summary; !strings.Contains(s, "PASS ("+why+"), the verdict was CHALLENGE level 3") {
		t.Errorf("line %q: want the pass, its reason and the verdict not carried out", s)
	}
	if s := tl.Summary; s.Pass != 1 || s.Challenge != 0 || s.WouldChallenge != 0 {
		t.Errorf("summary %+v: want one pass, no challenge", s)
	}
}
