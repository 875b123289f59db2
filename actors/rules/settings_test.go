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

func ptr[T any](v T) *T { return &v }

// TestOverridesOrder: a line's settings first, then the schedules for
// every line, then the line's own schedules, each by name; a schedule
// outside its window, an expired one and another line's are left out.
func TestOverridesOrder(t *testing.T) {
	tb := Empty()
	var rev uint64
	apply := func(rec *schema.Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if tb, err = tb.Fold(rev, rec.Payload); err != nil {
			t.Fatal(err)
		}
		rev++
	}
	win := func(days, from, to string) schema.Window {
		w, err := schema.ParseWindow(days, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	const line = "+78005553535"
	sched := func(name, l string, w schema.Window, until time.Time) SettingsCommand {
		return SettingsCommand{Name: name, Line: l, Window: w, Zone: "UTC", Until: until, Settings: schema.Settings{LimitHour: ptr(2)},
			CommandID: name, By: "alice", Why: "test"}
	}
	// t0 is Monday 2026-11-02 09:00 UTC.
	apply(tb.AddSchedule(sched("z-all", "", win("", "08:00", "10:00"), time.Time{}), t0))
	apply(tb.AddSchedule(sched("a-all", "", win("mon", "22:00", "10:00"), time.Time{}), t0))
	apply(tb.AddSchedule(sched("b-line", line, win("", "00:00", "00:00"), time.Time{}), t0))
	apply(tb.AddSchedule(sched("c-other", "+78001000000", win("", "00:00", "00:00"), time.Time{}), t0))
	apply(tb.AddSchedule(sched("d-later", "", win("", "11:00", "12:00"), time.Time{}), t0))
	apply(tb.AddSchedule(sched("e-expiring", "", win("", "00:00", "00:00"), t0.Add(time.Minute)), t0))
	apply(tb.SetLine(SettingsCommand{Line: line, Settings: schema.Settings{LimitDay: ptr(9)}, CommandID: "l1", By: "bob", Why: "x"}, t0))

	var got []string
	for _, o := range tb.Overrides(line, t0.Add(2*time.Minute)) {
		got = append(got, o.Source+":"+o.Name+o.Line)
	}
	want := []string{"line:" + line, "schedule:z-all", "schedule:b-line" + line}
	if len(got) != len(want) {
		t.Fatalf("Overrides = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Overrides = %v, want %v", got, want)
		}
	}
	// "a-all" starts Monday 22:00: it holds on Tuesday 09:00, not Monday's.
	if os := tb.Overrides("+78009999999", t0.Add(24*time.Hour)); len(os) != 2 || os[0].Name != "a-all" || os[1].Name != "z-all" {
		t.Fatalf("Tuesday 09:00: %+v", os)
	}
	if os := Empty().Overrides(line, t0); os != nil {
		t.Fatalf("empty table: %+v", os)
	}
	// A retried command is answered as done; another with the same name
	// is ErrExists; setting a line merges.
	if rec, err := tb.AddSchedule(sched("z-all", "", win("", "08:00", "10:00"), time.Time{}), t0); rec != nil || err != nil {
		t.Fatalf("retry: %v, %v", rec, err)
	}
	c := sched("z-all", "", win("", "08:00", "10:00"), time.Time{})
	c.CommandID = "other"
	if _, err := tb.AddSchedule(c, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("same name: %v", err)
	}
	rec, err := tb.SetLine(SettingsCommand{Line: line, Settings: schema.Settings{LimitHour: ptr(1)}, CommandID: "l2", By: "bob", Why: "x"}, t0)
	if err != nil || rec.Payload.(schema.LineSettingsSet).Settings.String() != "limit-hour=1 limit-day=9" {
		t.Fatalf("merge: %+v, %v", rec, err)
	}
	if _, err := tb.RemoveSchedule("nope", "r", "bob", "x", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	if _, err := tb.AddSchedule(SettingsCommand{Name: "z", Window: win("", "01:00", "02:00"), Zone: "Mars/Base", Settings: schema.Settings{LimitHour: ptr(1)}, By: "a", Why: "b"}, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad zone: %v", err)
	}
}

// TestSettingsThroughTheStore: the writer appends settings and schedule
// commands to the rules stream and the node's table folds them; a fresh
// Read gives the same overrides (as a node that starts later).
func TestSettingsThroughTheStore(t *testing.T) {
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
	const line = "+78005553535"
	if a, err := w.SetLine(ctx, SettingsCommand{Line: line, Settings: schema.Settings{LimitHour: ptr(1)}, CommandID: "k1", By: "alice", Why: "card"}); err != nil || a.Event != schema.TypeLineSettingsSet {
		t.Fatalf("SetLine: %+v, %v", a, err)
	}
	all, _ := schema.ParseWindow("", "00:00", "00:00")
	if a, err := w.AddSchedule(ctx, SettingsCommand{Name: "always", Window: all, Zone: "Europe/Moscow", Settings: schema.Settings{LimitDay: ptr(3)}, CommandID: "k2", By: "bob", Why: "tight"}); err != nil || a.Revision != 1 {
		t.Fatalf("AddSchedule: %+v, %v", a, err)
	}
	if a, err := w.AddSchedule(ctx, SettingsCommand{Name: "always", Window: all, Zone: "Europe/Moscow", Settings: schema.Settings{LimitDay: ptr(3)}, CommandID: "k2", By: "bob", Why: "tight"}); err != nil || !a.Repeated {
		t.Fatalf("retried AddSchedule: %+v, %v", a, err)
	}
	if os := live.Overrides(line, time.Now()); len(os) != 2 || os[0].By != "alice" || os[1].Name != "always" || os[1].Zone != "Europe/Moscow" {
		t.Fatalf("live overrides: %+v", os)
	}
	if _, err := w.ClearLine(ctx, line, "k3", "alice", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RemoveSchedule(ctx, "always", "k4", "bob", "done"); err != nil {
		t.Fatal(err)
	}
	if os := live.Overrides(line, time.Now()); os != nil {
		t.Fatalf("after clear and remove: %+v", os)
	}
	tb, err := Read(ctx, st, schema.NewRegistry())
	if err != nil || len(tb.Lines()) != 0 || len(tb.Schedules()) != 0 {
		t.Fatalf("Read: %v", err)
	}
	evs, err := events.ReadWholeStream(ctx, st, schema.RulesStream, 0)
	if err != nil || len(evs) != 4 || evs[0].Meta.Actor != "admin:alice" {
		t.Fatalf("stream: %d events, %v", len(evs), err)
	}
}
