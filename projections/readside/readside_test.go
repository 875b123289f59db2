package readside

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zone must not depend on the machine

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

var start = time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openStore(t testing.TB, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), dir, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func moscow(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func openReadSide(t testing.TB, dir string, store events.Store, clock func() time.Time, batch int) *ReadSide {
	t.Helper()
	rs, err := Open(context.Background(), Config{
		Dir: dir, Store: store, Clock: clock, Logger: quiet(),
		Reports: reports.Config{Location: moscow(t), TariffPerMinute: 2.5, Currency: "RUB", AssumedMinutes: 2},
		Runner:  runner.Options{BatchSize: batch, SequentialPositions: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	return rs
}

// models is everything the read side answers, read at one moment.
type models struct {
	Dumps     map[string]map[string]string
	Blacklist lists.Page[lists.BlacklistEntry]
	Whitelist lists.Page[lists.WhitelistEntry]
	Expired   lists.Page[lists.BlacklistEntry]
	Profiles  profiles.Page
	Daily     reports.Daily
	Callee    reports.Daily
	Top       reports.Top
}

func readModels(t testing.TB, rs *ReadSide) models {
	t.Helper()
	ctx := context.Background()
	var m models
	var err error
	m.Dumps = map[string]map[string]string{}
	for _, name := range rs.Runner.Names() {
		if m.Dumps[name], err = rs.Runner.Dump(name); err != nil {
			t.Fatal(err)
		}
	}
	if m.Blacklist, err = rs.Lists.Blacklist(ctx, lists.Query{Limit: lists.Unlimited}); err != nil {
		t.Fatal(err)
	}
	if m.Expired, err = rs.Lists.Blacklist(ctx, lists.Query{Limit: lists.Unlimited, IncludeExpired: true}); err != nil {
		t.Fatal(err)
	}
	if m.Whitelist, err = rs.Lists.Whitelist(ctx, lists.Query{Limit: lists.Unlimited, IncludeExpired: true}); err != nil {
		t.Fatal(err)
	}
	if m.Profiles, err = rs.Profiles.Search(ctx, profiles.Query{Limit: profiles.MaxLimit}); err != nil {
		t.Fatal(err)
	}
	if m.Daily, err = rs.Reports.Daily(ctx, reports.Query{From: "2026-11-01", To: "2026-11-08"}); err != nil {
		t.Fatal(err)
	}
	if m.Callee, err = rs.Reports.Daily(ctx, reports.Query{From: "2026-11-01", To: "2026-11-08", Callee: simtest.Callees[0]}); err != nil {
		t.Fatal(err)
	}
	if m.Top, err = rs.Reports.Top(ctx, reports.TopQuery{From: "2026-11-01", To: "2026-11-08", Limit: 50}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRebuildEqualsLive projects a mixed run of calls, challenges, admin
// commands and expiries live, as it is appended, then rebuilds every
// projection from the start of the log and compares the read models
// field by field, and byte by byte in the database.
func TestRebuildEqualsLive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := openStore(t, filepath.Join(dir, "events"))
	var now time.Time
	clock := func() time.Time { return now }
	rs := openReadSide(t, dir, store, clock, 64)
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sim := simtest.New(t, store, policy.DefaultConfig())
	sim.Buffer = 150 // appends land while the projections run
	calls := 2500
	if testing.Short() {
		calls = 600
	}
	end := sim.Mixed(rand.New(rand.NewPCG(1, 2)), 150, calls, start, 3)
	now = end.Add(time.Hour)
	if err := rs.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	live := readModels(t, rs)
	if len(live.Blacklist.Items) == 0 || len(live.Whitelist.Items) == 0 || live.Daily.Total.CallsIn != calls {
		t.Fatalf("the run is not mixed enough: %d blacklisted, %d whitelisted, %d calls in (want %d)",
			len(live.Blacklist.Items), len(live.Whitelist.Items), live.Daily.Total.CallsIn, calls)
	}
	checkAgainstPolicy(t, sim, live, now)

	if err := rs.Runner.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	rebuilt := readModels(t, rs)
	if d := simtest.Diff(live, rebuilt); len(d) > 0 {
		t.Fatalf("rebuilt read models differ from the live ones:\n%v", d)
	}
	t.Logf("%d events: %d blacklisted (%d with lapsed), %d whitelisted, %d profiles; %d calls, %d unbilled, saved %.2f",
		sim.Events, len(live.Blacklist.Items), len(live.Expired.Items), len(live.Whitelist.Items), len(live.Profiles.Items),
		live.Daily.Total.CallsIn, live.Daily.Total.Unbilled, live.Daily.Total.Saved)
}

// checkAgainstPolicy checks the lists and profiles against where the
// policy itself says each number stands at now.
func checkAgainstPolicy(t *testing.T, sim *simtest.Sim, m models, now time.Time) {
	t.Helper()
	black := map[string]lists.BlacklistEntry{}
	for _, e := range m.Blacklist.Items {
		black[e.Number] = e
	}
	white := map[string]lists.WhitelistEntry{}
	for _, e := range m.Whitelist.Items {
		if !e.Expired {
			white[e.Number] = e
		}
	}
	prof := map[string]profiles.Profile{}
	for _, p := range m.Profiles.Items {
		prof[p.Number] = p
	}
	for _, key := range sim.Keys() {
		st := sim.Status(key, now)
		b, inBlack := black[key]
		switch {
		case st.Level > 0 != inBlack:
			t.Errorf("%s: policy level %d, blacklisted %v", key, st.Level, inBlack)
		case inBlack && (b.Level != st.Level || b.Kind != st.Kind || b.Rule != st.Rule || !b.Since.Equal(st.Since) || !equalUntil(b.Until, st.Until)):
			t.Errorf("%s: blacklist %+v, policy %+v", key, b, st)
		}
		w, inWhite := white[key]
		switch {
		case st.Whitelisted != inWhite:
			t.Errorf("%s: policy whitelisted %v, whitelist %v", key, st.Whitelisted, inWhite)
		case inWhite && !equalUntil(w.Until, st.WhitelistUntil):
			t.Errorf("%s: whitelist until %v, policy %v", key, w.Until, st.WhitelistUntil)
		}
		p, ok := prof[key]
		if !ok {
			t.Errorf("%s: no profile", key)
			continue
		}
		if p.State.Level != st.Level || p.State.Whitelisted != st.Whitelisted || !equalUntil(p.State.VerifiedUntil, st.VerifiedUntil) {
			t.Errorf("%s: profile state %+v, policy %+v", key, p.State, st)
		}
	}
}

func equalUntil(a *time.Time, b time.Time) bool {
	if a == nil {
		return b.IsZero()
	}
	return a.Equal(b)
}
