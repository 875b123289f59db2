package lists

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/runner"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// world is a store with the lists projection running over it, a
// simulation writing to it through the real policy, and a clock.
type world struct {
	t     *testing.T
	sim   *simtest.Sim
	r     *runner.Runner
	lists *Lists
	store *embedded.Store
	mu    sync.Mutex
	now   time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	store, err := embedded.Open(context.Background(), filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	w := &world{t: t, now: at, store: store}
	r, err := runner.Open(context.Background(), filepath.Join(dir, runner.DirName), store,
		[]runner.Projection{NewProjection()}, runner.Options{Logger: quiet(), Clock: w.clock, SequentialPositions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.r, w.sim, w.lists = r, simtest.New(t, store, policy.DefaultConfig()), New(r, w.clock)
	return w
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) set(t time.Time) {
	w.mu.Lock()
	w.now = t
	w.mu.Unlock()
}

func (w *world) catchUp() {
	w.t.Helper()
	if err := w.r.CatchUp(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) command(verb, key string, cmd policy.Command) {
	w.t.Helper()
	if err := w.sim.Command(verb, key, cmd, w.clock()); err != nil {
		w.t.Fatal(err)
	}
}

func cmd(id, by, why string) policy.Command { return policy.Command{ID: id, By: by, Why: why} }

func TestQueries(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	// Six calls in a minute: the sixth breaks the hourly limit (auto
	// block at level 3 for 24 h).
	for i := range 6 {
		w.sim.Place(simtest.Call{Caller: "+79990000001", Callee: "+78005553535", At: at.Add(time.Duration(i) * time.Second), Outcome: schema.Passed})
	}
	b := cmd("k1", "bob", "fraud")
	b.Level = 7
	w.command("block", "+79990000002", b)
	b = cmd("k2", "bob", "annoying")
	b.Level, b.Until = 2, at.Add(time.Hour)
	w.command("block", "+79110000003", b)
	wl := cmd("k3", "alice", "VIP")
	w.command("whitelist", "+79990000004", wl)
	wl = cmd("k4", "alice", "=HYPERLINK(\"x\")") // a formula, defused in CSV
	wl.Until = at.Add(2 * time.Hour)
	w.command("whitelist", "+79990000005", wl)
	w.catchUp()

	page, err := w.lists.Blacklist(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, e := range page.Items {
		got = append(got, fmt.Sprintf("%s %d %s %s %s", e.Number, e.Level, e.Effect, e.Kind, e.Rule))
	}
	want := []string{
		"+79110000003 2 challenge manual manual",
		"+79990000001 3 challenge auto hourly-limit",
		"+79990000002 7 reject manual manual",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || page.Total != 3 || page.Next != "" {
		t.Fatalf("blacklist:\n%s\nwant\n%s\n(total %d, next %q)", strings.Join(got, "\n"), strings.Join(want, "\n"), page.Total, page.Next)
	}
	auto := page.Items[1]
	if auto.By != "policy" || auto.Reason != "6 calls in the last hour, limit 5" || auto.Until == nil || !auto.Until.Equal(at.Add(5*time.Second+24*time.Hour)) {
		t.Fatalf("automatic block entry %+v", auto)
	}

	filters := []struct {
		q    Query
		want []string
	}{
		{Query{Level: 7}, []string{"+79990000002"}},
		{Query{Kind: schema.Auto}, []string{"+79990000001"}},
		{Query{Rule: schema.RuleManual}, []string{"+79110000003", "+79990000002"}},
		{Query{Prefix: "+7999"}, []string{"+79990000001", "+79990000002"}},
		{Query{Prefix: "+7911"}, []string{"+79110000003"}},
		{Query{Prefix: "+7912"}, nil},
	}
	for _, f := range filters {
		p, err := w.lists.Blacklist(ctx, f.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range p.Items {
			got = append(got, e.Number)
		}
		if fmt.Sprint(got) != fmt.Sprint(f.want) || p.Total != len(f.want) {
			t.Errorf("%+v: %v (total %d), want %v", f.q, got, p.Total, f.want)
		}
	}

	// Keyset paging: pages of one, following Next.
	var paged []string
	q := Query{Limit: 1}
	for {
		p, err := w.lists.Blacklist(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 3 {
			t.Fatalf("total %d on the page after %q", p.Total, q.After)
		}
		for _, e := range p.Items {
			paged = append(paged, e.Number)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if fmt.Sprint(paged) != "[+79110000003 +79990000001 +79990000002]" {
		t.Fatalf("paged %v", paged)
	}

	// An hour later the level 2 block has run out: not listed, though no
	// BlockExpired was written, unless asked for.
	w.set(at.Add(time.Hour))
	p, err := w.lists.Blacklist(ctx, Query{})
	if err != nil || p.Total != 2 {
		t.Fatalf("after the expiry: %+v, %v", p, err)
	}
	p, err = w.lists.Blacklist(ctx, Query{IncludeExpired: true})
	if err != nil || p.Total != 3 || !p.Items[0].Expired {
		t.Fatalf("with expired: %+v, %v", p, err)
	}

	wp, err := w.lists.Whitelist(ctx, Query{})
	if err != nil || wp.Total != 2 || wp.Items[0].Number != "+79990000004" || wp.Items[0].By != "alice" || wp.Items[0].Until != nil {
		t.Fatalf("whitelist %+v, %v", wp, err)
	}

	for _, bad := range []Query{{Limit: MaxLimit + 1}, {Limit: -2}, {Level: 10}, {Kind: "both"}} {
		if _, err := w.lists.Blacklist(ctx, bad); !errors.Is(err, ErrQuery) {
			t.Errorf("Blacklist(%+v) = %v, want ErrQuery", bad, err)
		}
	}
	if _, err := w.lists.Whitelist(ctx, Query{Level: 3}); !errors.Is(err, ErrQuery) {
		t.Errorf("a whitelist query with a level = %v", err)
	}

	var text bytes.Buffer
	if err := WriteBlacklistText(&text, p, time.UTC); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+79110000003  2      challenge (expired)", "3 numbers"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("no %q in\n%s", want, text.String())
		}
	}
	text.Reset()
	if err := WriteWhitelistText(&text, wp, time.UTC); err != nil || !strings.Contains(text.String(), "2026-11-02 12:00:00") {
		t.Errorf("whitelist text %v\n%s", err, text.String())
	}

	var csvOut bytes.Buffer
	if err := WriteWhitelistCSV(&csvOut, wp.Items); err != nil {
		t.Fatal(err)
	}
	wantCSV := "number,since,until,by,reason\n" +
		"+79990000004,2026-11-02T10:00:00Z,,alice,VIP\n" +
		"+79990000005,2026-11-02T10:00:00Z,2026-11-02T12:00:00Z,alice,\"'=HYPERLINK(\"\"x\"\")\"\n"
	if csvOut.String() != wantCSV {
		t.Fatalf("whitelist CSV:\n%s\nwant\n%s", csvOut.String(), wantCSV)
	}
	csvOut.Reset()
	if err := WriteBlacklistCSV(&csvOut, p.Items[1:2]); err != nil {
		t.Fatal(err)
	}
	wantCSV = "number,level,effect,kind,rule,since,until,by,reason\n" +
		"+79990000001,3,challenge,auto,hourly-limit,2026-11-02T10:00:05Z,2026-11-03T10:00:05Z,policy,\"6 calls in the last hour, limit 5\"\n"
	if csvOut.String() != wantCSV {
		t.Fatalf("blacklist CSV:\n%s\nwant\n%s", csvOut.String(), wantCSV)
	}
}
