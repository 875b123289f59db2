package reports

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

// The daily report counts the calls challenged by the attack rule apart
// and lists each line's attack periods overlapping its range, with how
// they started and ended.
func TestAttackPeriodsAndChallenges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	at := func(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }
	appendTo := func(stream string, p schema.Payload, id string) {
		t.Helper()
		prop, err := schema.Record{ID: events.DeriveID("test", id), Payload: p}.Proposed(events.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, stream, events.Any, prop); err != nil {
			t.Fatal(err)
		}
	}
	since := at(10, 0)
	appendTo(schema.LineStream(lineA), schema.LineAttackStarted{Line: lineA, At: since, Rate: 31.5, Threshold: 10, By: "policy", Why: "flood"}, "s1")
	attack := &schema.LineAttack{Since: since}
	for i, c := range []struct {
		caller string
		v      schema.Verdict
		rule   schema.Rule
	}{
		{"+79910000001", schema.Challenge, schema.RuleAttack},
		{"+79910000002", schema.Challenge, schema.RuleAttack},
		{"+79910000003", schema.Challenge, schema.RuleHourlyLimit},
		{"+79990000004", schema.Pass, schema.RuleWhitelist},
	} {
		id := "c" + string(rune('1'+i))
		appendTo(schema.CallerStream(c.caller), schema.CallReceived{CallID: id, Caller: c.caller, Callee: lineA, At: at(10, 1+i),
			Verdict: c.v, Rule: c.rule, Action: c.v, Mode: schema.Enforce, Attack: attack}, id)
	}
	appendTo(schema.LineStream(lineA), schema.LineAttackEnded{Line: lineA, Since: since, At: at(11, 0), Peak: 40, Threshold: 10, By: "policy", Why: "calm"}, "e1")
	appendTo(schema.LineStream(lineB), schema.LineAttackStarted{Line: lineB, At: at(12, 0), Manual: true, Hold: true, By: "alice", Why: "warned"}, "s2")

	r := caughtUp(ctx, t, dir, store, time.UTC)
	defer r.Close()
	rep, err := New(r, Config{Location: time.UTC}, func() time.Time { return at(23, 0) })
	if err != nil {
		t.Fatal(err)
	}
	d, err := rep.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-02"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Total.Challenged != 3 || d.Total.ChallengedByAttack != 2 {
		t.Fatalf("challenged %d, by attack %d; want 3 and 2", d.Total.Challenged, d.Total.ChallengedByAttack)
	}
	if len(d.Attacks) != 2 {
		t.Fatalf("attacks %+v, want two periods", d.Attacks)
	}
	a, b := d.Attacks[0], d.Attacks[1]
	if a.Line != lineB || !a.Manual || a.By != "alice" || a.Until != nil {
		t.Errorf("first period %+v, want lineB's manual one, still on", a) // lines sort by number: +7800200... first
	}
	if b.Line != lineA || b.Manual || b.Rate != 31.5 || b.Until == nil || !b.Until.Equal(at(11, 0)) || b.Peak != 40 || b.EndedBy != "policy" {
		t.Errorf("second period %+v, want lineA's automatic one, ended at 11:00, peak 40", b)
	}
	// Limited to a line, and to days the period does not touch.
	if d, _ := rep.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-02", Callee: lineA}); len(d.Attacks) != 1 || d.Attacks[0].Line != lineA {
		t.Errorf("callee A: %+v", d.Attacks)
	}
	if d, _ := rep.Daily(ctx, Query{From: "2026-11-01", To: "2026-11-01"}); len(d.Attacks) != 0 {
		t.Errorf("a day before: %+v", d.Attacks)
	}
	var text, csv strings.Builder
	if err := d.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "Under attack: 2 calls challenged") || !strings.Contains(text.String(), "by alice: warned") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := d.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(csv.String(), "\n"); !strings.HasSuffix(lines[0], ",h23,challenged_by_attack") || !strings.HasSuffix(lines[len(lines)-2], ",2") {
		t.Errorf("CSV:\n%s", csv.String())
	}
}
