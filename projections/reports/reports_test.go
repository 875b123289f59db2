package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zone must not depend on the machine

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/runner"
)

const (
	lineA = "+78005553535"
	lineB = "+78002000600"
)

func TestFolds(t *testing.T) {
	var c Counters
	var cc CallerCounters
	c, cc = Received(c, cc, schema.CallReceived{Verdict: schema.Challenge}, 15)
	c, cc = Outcome(c, cc, schema.Failed)
	if c.CallsIn != 1 || c.Challenged != 1 || c.ChallengesFailed != 1 || c.Hours[15] != 1 || cc.Calls != 1 || cc.Failed != 1 {
		t.Fatalf("challenge: %+v %+v", c, cc)
	}
	// A store-down call counts in; a decided one was counted by its
	// CallReceived already.
	call := Call{Hour: 3}
	c2, call := Decided(Counters{}, call, schema.CallDecided{Action: schema.Pass, StoreDown: true})
	if c2.CallsIn != 1 || c2.StoreDown != 1 || c2.Hours[3] != 1 || !call.Offered {
		t.Fatalf("store down: %+v %+v", c2, call)
	}
	// A call the node was too busy to decide counts in, as busy, and is
	// never offered to the PBX.
	c4, busy := Decided(Counters{}, Call{Hour: 4}, schema.CallDecided{Action: schema.Reject, Busy: true})
	if c4.CallsIn != 1 || c4.Busy != 1 || c4.StoreDown != 0 || c4.Hours[4] != 1 || busy.Offered {
		t.Fatalf("busy: %+v %+v", c4, busy)
	}
	if c3, _ := Decided(Counters{}, Call{}, schema.CallDecided{Verdict: schema.Pass, Action: schema.Pass}); c3.CallsIn != 0 {
		t.Fatalf("a decided call counted twice: %+v", c3)
	}
	answered := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		call Call
		end  schema.CallEnded
		want Counters
	}{
		{"connected and billed", Call{Offered: true, Connected: true, Verdict: schema.Pass},
			schema.CallEnded{AnsweredAt: &answered, DurationMs: 61_000, Billed: true},
			Counters{Tracked: 1, Offered: 1, Connected: 1, ConnectedBilled: 1, ConnectedMs: 61_000, ConnectedMinutes: 2, BilledCalls: 1, BilledMs: 61_000, BilledMinutes: 2}},
		{"offered, not answered", Call{Offered: true, Verdict: schema.Pass},
			schema.CallEnded{},
			Counters{Tracked: 1, Unbilled: 1, Offered: 1, Unanswered: 1}},
		{"a challenge that failed inside the grace interval", Call{Verdict: schema.Challenge, Outcome: schema.Failed},
			schema.CallEnded{AnsweredAt: &answered, DurationMs: 2_000},
			Counters{Tracked: 1, Unbilled: 1, AnsweredUnbilled: 1}},
		{"a rejected call billed all the same", Call{Verdict: schema.Reject, Action: schema.Reject},
			schema.CallEnded{AnsweredAt: &answered, DurationMs: 5_000, Billed: true},
			Counters{Tracked: 1, BilledCalls: 1, BilledMs: 5_000, BilledMinutes: 1, BlockedBilledMs: 5_000, BlockedBilledMinutes: 1}},
	}
	for _, tt := range tests {
		if got := Ended(Counters{}, tt.call, tt.end); got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// day writes the scripted day described in TestScriptedDay.
func scriptedDay(t *testing.T, sim *simtest.Sim, msk *time.Location) {
	t.Helper()
	at := func(day, hour, min int) time.Time { return time.Date(2026, 11, day, hour, min, 0, 0, msk) }
	talk := func(d time.Duration) time.Duration { return d }
	for _, k := range []struct {
		key   string
		level int
	}{{"+79990000701", 7}, {"+79990000702", 2}, {"+79990000703", 4}} {
		if err := sim.Command("block", k.key, policy.Command{ID: "k" + k.key, By: "bob", Why: "by hand", Level: k.level}, at(2, 8, 0)); err != nil {
			t.Fatal(err)
		}
	}
	place := func(c simtest.Call) schema.Verdict { return sim.Place(c) }
	// P1: three calls, each answered and 125 s long (3 started minutes).
	for _, h := range []int{9, 11, 13} {
		place(simtest.Call{Caller: "+79990000101", Callee: lineA, At: at(2, h, 0), PBX: simtest.PBXAnswers, Talk: talk(125 * time.Second)})
	}
	place(simtest.Call{Caller: "+79990000102", Callee: lineB, At: at(2, 10, 15), PBX: simtest.PBXNoAnswer})
	place(simtest.Call{Caller: "+79990000103", Callee: lineA, At: at(2, 10, 30), PBX: simtest.CallerGivesUp})
	place(simtest.Call{Caller: "+79990000104", Callee: lineB, At: at(2, 14, 0), PBX: simtest.PBXBusy})
	// A dialler: five calls pass, the sixth breaks the hourly limit and
	// is challenged, as are the next two; three failures escalate to a
	// hard block, and the ninth call is rejected.
	want := []schema.Verdict{schema.Pass, schema.Pass, schema.Pass, schema.Pass, schema.Pass,
		schema.Challenge, schema.Challenge, schema.Challenge, schema.Reject}
	for i, v := range want {
		got := place(simtest.Call{Caller: "+79990000666", Callee: lineA, At: at(2, 15, i), PBX: simtest.PBXAnswers,
			Talk: talk(30 * time.Second), Outcome: schema.Failed})
		if got != v {
			t.Fatalf("dialler's call %d: %s, want %s", i+1, got, v)
		}
	}
	if v := place(simtest.Call{Caller: "+79990000701", Callee: lineA, At: at(2, 16, 0)}); v != schema.Reject {
		t.Fatalf("manually blocked caller: %s", v)
	}
	// Challenged and passes: 1 s to type, 3 s to the PBX's answer, 56 s
	// of talk: billed 60 s from the guard's answer, one minute.
	if v := place(simtest.Call{Caller: "+79990000702", Callee: lineA, At: at(2, 17, 0), Outcome: schema.Passed,
		PBX: simtest.PBXAnswers, Talk: talk(56 * time.Second)}); v != schema.Challenge {
		t.Fatalf("soft-blocked caller: %s", v)
	}
	if v := place(simtest.Call{Caller: "+79990000703", Callee: lineA, At: at(2, 18, 0), Outcome: schema.Abandoned}); v != schema.Challenge {
		t.Fatalf("soft-blocked caller: %s", v)
	}
	place(simtest.Call{Caller: "+79990000801", Callee: lineA, At: at(2, 19, 0), StoreDown: true, Action: schema.Pass,
		PBX: simtest.PBXAnswers, Talk: talk(60 * time.Second)})
	place(simtest.Call{Caller: "+79990000802", Callee: lineA, At: at(2, 20, 0), NoCallStream: true})
	place(simtest.Call{Caller: "+79990000105", Callee: lineA, At: at(2, 23, 30), PBX: simtest.PBXAnswers, Talk: talk(6 * time.Minute)})
	// 00:30 in Moscow is still the 2nd in UTC: it counts on the 3rd.
	place(simtest.Call{Caller: "+79990000101", Callee: lineA, At: at(3, 0, 30), PBX: simtest.PBXAnswers, Talk: talk(30 * time.Second)})
}

// TestScriptedDay checks every figure of a report against a day whose
// calls are scripted, with the counts worked out by hand.
func TestScriptedDay(t *testing.T) {
	ctx := context.Background()
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sim := simtest.New(t, store, policy.DefaultConfig())
	scriptedDay(t, sim, msk)
	r := caughtUp(ctx, t, dir, store, msk)
	defer r.Close()
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, msk)
	rep, err := New(r, Config{Location: msk, TariffPerMinute: 2.5, Currency: "RUB", AssumedMinutes: 2}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	d, err := rep.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-03"})
	if err != nil {
		t.Fatal(err)
	}
	share := func(f float64) *float64 { return &f }
	hours := func(hs ...int) (out [24]int) {
		for _, h := range hs {
			out[h]++
		}
		return out
	}
	wantA := Row{
		Day: "2026-11-02", Callee: lineA,
		// P1 ×3, P3, the dialler ×9, the manual blocks ×3, the store-down
		// call, the call without a call stream, P5.
		CallsIn: 19, Passed: 11, Challenged: 5, Rejected: 2, StoreDown: 1,
		ChallengesPassed: 1, ChallengesFailed: 3, ChallengesAbandoned: 1,
		// Every call but the one without a call stream.
		Tracked: 18,
		// P3 gave up; three failed and one abandoned challenge ended
		// inside the grace interval; two rejects.
		Unbilled: 7, AnsweredUnbilled: 4,
		// Passed calls with a call stream (10, the store-down one
		// included) and the passed challenge; P3's was not answered.
		Offered: 12, Connected: 11, Unanswered: 1, UnansweredShare: share(0.0833),
		// 3×3 + 5×1 + 1 + 1 + 6 minutes in 11 calls: 2 per call.
		BilledCalls: 11, BilledMinutes: 22, MinutesPerCall: 2,
		// (2 rejected + 3 failed) × 2 minutes × 2.5.
		SavedMinutes: 10, Saved: 25,
		Hours: hours(9, 11, 13, 10, 15, 15, 15, 15, 15, 15, 15, 15, 15, 16, 17, 18, 19, 20, 23),
	}
	wantB := Row{
		Day: "2026-11-02", Callee: lineB, CallsIn: 2, Passed: 2, Tracked: 2, Unbilled: 2,
		Offered: 2, Unanswered: 2, UnansweredShare: share(1),
		MinutesPerCall: 2, MinutesAssumed: true, Hours: hours(10, 14),
	}
	wantNext := Row{
		Day: "2026-11-03", Callee: lineA, CallsIn: 1, Passed: 1, Tracked: 1, Offered: 1, Connected: 1,
		UnansweredShare: share(0), BilledCalls: 1, BilledMinutes: 1, MinutesPerCall: 1, Hours: hours(0),
	}
	want := []Row{wantB, wantA, wantNext} // by day, then callee
	if diff := simtest.Diff(d.Rows, want); len(diff) > 0 {
		t.Fatalf("rows differ:\n%s", strings.Join(diff, "\n"))
	}
	if d.Total.CallsIn != 22 || d.Total.Offered != 15 || d.Total.Unanswered != 3 || d.Total.BilledMinutes != 23 ||
		d.Total.MinutesPerCall != 1.92 || d.Total.SavedMinutes != 9.58 || d.Total.Saved != 23.95 || *d.Total.UnansweredShare != 0.2 {
		t.Fatalf("total %+v", d.Total)
	}

	// One callee, and a day without calls filled in with zeros.
	d, err = rep.Daily(ctx, Query{From: "2026-11-01", To: "2026-11-02", Callee: lineB})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rows) != 2 || d.Rows[0].Day != "2026-11-01" || d.Rows[0].CallsIn != 0 || d.Rows[0].Callee != lineB ||
		d.Rows[1].CallsIn != 2 || d.Total.CallsIn != 2 {
		t.Fatalf("callee B: %+v", d.Rows)
	}

	top, err := rep.Top(ctx, TopQuery{From: "2026-11-02", To: "2026-11-02", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var byCalls, byBlocks []string
	for _, c := range top.ByCalls {
		byCalls = append(byCalls, fmt.Sprintf("%d %s %d", c.Rank, c.Number, c.Calls))
	}
	for _, c := range top.ByBlocks {
		byBlocks = append(byBlocks, fmt.Sprintf("%d %s %d/%d", c.Rank, c.Number, c.Blocks, c.Blocked))
	}
	if got, want := strings.Join(byCalls, "; "), "1 +79990000666 9; 2 +79990000101 3; 3 +79990000701 1"; got != want {
		t.Errorf("top by calls: %s, want %s", got, want)
	}
	if got, want := strings.Join(byBlocks, "; "), "1 +79990000666 2/4; 2 +79990000701 1/1; 3 +79990000702 1/1"; got != want {
		t.Errorf("top by blocks: %s, want %s", got, want)
	}
	if c := top.ByCalls[0]; c.Passed != 5 || c.Challenged != 3 || c.Rejected != 1 || c.ChallengesFailed != 3 {
		t.Errorf("the dialler: %+v", c)
	}

	// CSV: a header, the rows, a total; per second billing changes the
	// minutes.
	var b bytes.Buffer
	d, _ = rep.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-02", Callee: lineB})
	if err := d.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "day,callee,calls_in,") || !strings.HasSuffix(lines[0], ",h22,h23,challenged_by_attack") ||
		!strings.HasPrefix(lines[1], "2026-11-02,+78002000600,2,2,0,") || !strings.HasPrefix(lines[2], "total,+78002000600,2,") {
		t.Fatalf("CSV:\n%s", b.String())
	}
	perSecond, err := New(r, Config{Location: msk, TariffPerMinute: 2.5, AssumedMinutes: 2, Billing: BillPerSecond}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	d, _ = perSecond.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-02", Callee: lineA})
	// 3×125 + 5×30 + 60 + 60 + 360 s = 1005 s in 11 calls.
	if r := d.Rows[0]; r.BilledMinutes != 16.75 || r.MinutesPerCall != 1.52 {
		t.Fatalf("per second: %+v", r)
	}
	var text bytes.Buffer
	if err := d.WriteText(&text); err != nil || !strings.Contains(text.String(), "Calls per hour of day") {
		t.Fatalf("text: %v\n%s", err, text.String())
	}
}

func TestDates(t *testing.T) {
	now := time.Date(2026, 11, 10, 1, 0, 0, 0, time.UTC)
	msk, _ := time.LoadLocation("Europe/Moscow")
	rep, err := New(nil, Config{Location: msk}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	f, to, err := rep.dates("", "")
	if err != nil || f.Format("2006-01-02") != "2026-11-04" || to.Format("2006-01-02") != "2026-11-10" {
		t.Fatalf("default range %v %v %v", f, to, err)
	}
	for _, bad := range [][2]string{{"2026-11-31", ""}, {"yesterday", ""}, {"2026-11-05", "2026-11-04"}, {"2025-01-01", "2026-11-04"}} {
		if _, _, err := rep.dates(bad[0], bad[1]); !errors.Is(err, ErrDate) {
			t.Errorf("dates(%q, %q) = %v, want ErrDate", bad[0], bad[1], err)
		}
	}
	if _, err := rep.Top(context.Background(), TopQuery{Limit: MaxTop + 1}); !errors.Is(err, ErrQuery) {
		t.Errorf("Top with a limit over the maximum: %v", err)
	}
	if _, err := New(nil, Config{TariffPerMinute: -1}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("negative tariff: %v", err)
	}
}

// TestReadsSchemaNames pins the JSON names the reports read member by
// member to the schema's payloads: a renamed field must fail here, not
// read as zero.
func TestReadsSchemaNames(t *testing.T) {
	for _, tt := range []struct {
		p     schema.Payload
		names []string
	}{
		{schema.CallReceived{}, []string{"callId", "callee", "at", "verdict", "action", "rule"}},
		{schema.ChallengeOutcome{}, []string{"callId", "outcome", "at"}},
		{schema.BlockApplied{}, []string{"at"}},
		{schema.CallStarted{}, []string{"caller", "callee", "at"}},
		{schema.CallDecided{}, []string{"verdict", "action", "storeDown"}},
		{schema.ChallengeEnded{}, []string{"outcome"}},
		{schema.CallAnswered{}, []string{"by"}},
		{schema.CallEnded{}, []string{"answeredAt", "durationMs", "billed"}},
	} {
		p, names := tt.p, tt.names
		tags := map[string]bool{}
		typ := reflect.TypeOf(p)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			tags[name] = true
		}
		for _, n := range names {
			if !tags[n] {
				t.Errorf("%s has no member %q", p.EventType(), n)
			}
		}
	}
}

// TestShapesGiveTheSameReports writes the same mixed traffic twice, as
// the guard writes it now and as it wrote it before (a call stream from
// CallStarted to CallEnded for every call, the reject too), and holds
// the reports rebuilt over each log to each other: an old log keeps its
// reports, and the leaner shape loses nothing the reports show.
func TestShapesGiveTheSameReports(t *testing.T) {
	ctx := context.Background()
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, msk)
	build := func(shape simtest.Shape) (Daily, Top, int, int) {
		dir := t.TempDir()
		store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		sim := simtest.New(t, store, policy.DefaultConfig())
		sim.Shape, sim.Buffer = shape, 2000
		end := sim.Mixed(rand.New(rand.NewPCG(9, 17)), 300, 6000, start, 3)
		r := caughtUp(ctx, t, dir, store, msk)
		defer r.Close()
		rep, err := New(r, Config{Location: msk, TariffPerMinute: 2.5, Currency: "RUB", AssumedMinutes: 2}, func() time.Time { return end })
		if err != nil {
			t.Fatal(err)
		}
		from, to := start.Format(time.DateOnly), end.Format(time.DateOnly)
		d, err := rep.Daily(ctx, Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		top, err := rep.Top(ctx, TopQuery{From: from, To: to, Limit: MaxTop})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := store.ReadAll(ctx, events.Start, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		callStreams := map[string]bool{}
		for _, ev := range evs {
			if strings.HasPrefix(ev.Stream, schema.CallStreamPrefix) {
				callStreams[ev.Stream] = true
			}
		}
		return d, top, len(evs), len(callStreams)
	}
	legacy, legacyTop, legacyEvents, legacyStreams := build(simtest.Legacy)
	current, currentTop, currentEvents, currentStreams := build(simtest.Current)
	if !reflect.DeepEqual(legacy, current) {
		for i := range legacy.Rows {
			if i < len(current.Rows) && !reflect.DeepEqual(legacy.Rows[i], current.Rows[i]) {
				t.Errorf("row %d:\nlegacy  %+v\ncurrent %+v", i, legacy.Rows[i], current.Rows[i])
			}
		}
		t.Fatalf("daily reports differ:\nlegacy  total %+v\ncurrent total %+v", legacy.Total, current.Total)
	}
	if !reflect.DeepEqual(legacyTop, currentTop) {
		t.Fatalf("top callers differ:\nlegacy  %+v\ncurrent %+v", legacyTop, currentTop)
	}
	if legacy.Total.Rejected == 0 || legacy.Total.Tracked == 0 || legacy.Total.StoreDown == 0 || legacy.Total.Connected == 0 {
		t.Fatalf("the run lacks rejects, tracked, store-down or connected calls: %+v", legacy.Total)
	}
	t.Logf("%d calls (%d rejected): legacy %d events in %d call streams, current %d events in %d call streams",
		legacy.Total.CallsIn, legacy.Total.Rejected, legacyEvents, legacyStreams, currentEvents, currentStreams)
}

// TestObserveMode: a day in observe mode counts every call as passed and
// the verdicts it did not carry out apart, saves nothing, and says what
// enforcing would have changed from the calls' real billed minutes. A
// CallReceived without Action (a log from before) reads as enforced.
func TestObserveMode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sim := simtest.New(t, store, policy.DefaultConfig())
	at := func(hour, min int) time.Time { return time.Date(2026, 11, 2, hour, min, 0, 0, time.UTC) }
	const dialler, blocked = "+79990000666", "+79990000701"
	if err := sim.Command("block", blocked, policy.Command{ID: "k1", By: "bob", Why: "fraud", Level: 7}, at(8, 0)); err != nil {
		t.Fatal(err)
	}
	// The dialler: five passes, then two calls over the hourly limit the
	// policy challenges; observe mode passes them to the PBX, which
	// answers; 30 s each, one started minute.
	for i := range 7 {
		want := schema.Pass
		if i >= 5 {
			want = schema.Challenge
		}
		if v := sim.Place(simtest.Call{Caller: dialler, Callee: lineA, At: at(9, i), Mode: schema.Observe,
			PBX: simtest.PBXAnswers, Talk: 30 * time.Second}); v != want {
			t.Fatalf("dialler's call %d: %s, want %s", i+1, v, want)
		}
	}
	// The hard-blocked number: two would-be rejects, answered, 125 s each
	// (three started minutes).
	for i := range 2 {
		if v := sim.Place(simtest.Call{Caller: blocked, Callee: lineA, At: at(10, i), Mode: schema.Observe,
			PBX: simtest.PBXAnswers, Talk: 125 * time.Second}); v != schema.Reject {
			t.Fatalf("blocked caller: %s", v)
		}
	}
	// Enforcing from here on: the block earned while observing applies.
	if v := sim.Place(simtest.Call{Caller: blocked, Callee: lineA, At: at(11, 0)}); v != schema.Reject {
		t.Fatalf("blocked caller, enforcing: %s", v)
	}
	r := caughtUp(ctx, t, dir, store, time.UTC)
	defer r.Close()
	rep, err := New(r, Config{Location: time.UTC, TariffPerMinute: 2.5, Currency: "RUB", AssumedMinutes: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := rep.Daily(ctx, Query{From: "2026-11-02", To: "2026-11-02"})
	if err != nil {
		t.Fatal(err)
	}
	share := 0.0
	var hours [24]int
	hours[9], hours[10], hours[11] = 7, 2, 1
	want := Row{
		Day: "2026-11-02", Callee: lineA, CallsIn: 10,
		// Nine passed (observe mode), one rejected (enforcing).
		Passed: 9, Rejected: 1, WouldChallenge: 2, WouldReject: 2,
		Tracked: 10, Unbilled: 1, Offered: 9, Connected: 9, UnansweredShare: &share,
		// 7 × 1 + 2 × 3 minutes in 9 calls.
		BilledCalls: 9, BilledMinutes: 13, MinutesPerCall: 1.44,
		// Only the enforced reject saves: 1 × 13/9 minutes.
		SavedMinutes: 1.44, Saved: 3.6,
		// What enforcing would have changed: the two would-be rejects'
		// 6 billed minutes, and the would-be challenges' 2.
		WouldSaveMinutes: 6, WouldSave: 15, WouldChallengeMinutes: 2,
		Hours: hours,
	}
	if diff := simtest.Diff(d.Rows, []Row{want}); len(diff) > 0 {
		t.Fatalf("row differs:\n%s", strings.Join(diff, "\n"))
	}
	// No challenged call awaits an outcome that observe mode never gives.
	err = r.View(Name, func(root *bolt.Bucket) error {
		if b := rm.Sub(root, bucketOutcomes); b != nil && b.Stats().KeyN > 0 {
			t.Errorf("%d calls await a challenge outcome", b.Stats().KeyN)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := d.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Observe mode passed 4 calls that enforcing would have rejected (2) or challenged (2)",
		"the 2 would-be rejected calls were billed 6 minutes (15.00 RUB), which enforcing would have saved",
		"the 2 would-be challenged calls were billed 2 minutes",
	} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("text lacks %q:\n%s", line, text.String())
		}
	}
	var csvOut bytes.Buffer
	if err := d.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(csvOut.String(), "\n"); !strings.Contains(lines[0], ",would_challenge,would_reject,would_save_minutes,would_save,would_challenge_minutes,h00") ||
		!strings.Contains(lines[1], ",2,2,6,15,2,0,") {
		t.Errorf("CSV:\n%s", csvOut.String())
	}
	top, err := rep.Top(ctx, TopQuery{From: "2026-11-02", To: "2026-11-02"})
	if err != nil {
		t.Fatal(err)
	}
	var byBlocks []string
	for _, c := range top.ByBlocks {
		byBlocks = append(byBlocks, fmt.Sprintf("%s blocks %d blocked %d would %d", c.Number, c.Blocks, c.Blocked, c.WouldBlock))
	}
	if got, want := strings.Join(byBlocks, "; "), "+79990000701 blocks 1 blocked 1 would 2; +79990000666 blocks 1 blocked 0 would 2"; got != want {
		t.Errorf("top by blocks: %s, want %s", got, want)
	}

	// An event of the shape before Mode and Action: read as enforced.
	c, cc := Received(Counters{}, CallerCounters{}, schema.CallReceived{Verdict: schema.Reject}, 0)
	if c.Rejected != 1 || c.WouldReject != 0 || cc.Rejected != 1 || cc.Observed != 0 {
		t.Fatalf("old CallReceived: %+v %+v", c, cc)
	}
}

// caughtUp opens the reports projection's runner in dir over store and
// returns it started and caught up with the store's log.
func caughtUp(ctx context.Context, t *testing.T, dir string, store events.Store, loc *time.Location) *runner.Runner {
	t.Helper()
	r, err := runner.Open(ctx, filepath.Join(dir, runner.DirName), store, []runner.Projection{NewProjection(loc)}, runner.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		r.Close()
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		r.Close()
		t.Fatal(err)
	}
	return r
}
