package importer

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

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/runner"
)

var at = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// world is a store with the lists projection running over it and a
// Commander that applies commands to it through the real policy.
type world struct {
	t     *testing.T
	sim   *simtest.Sim
	r     *runner.Runner
	lists *lists.Lists
	mu    sync.Mutex
	now   time.Time
	seen  map[string]bool // commands applied, by key and ID
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	store, err := embedded.Open(context.Background(), filepath.Join(dir, "events"), embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	w := &world{t: t, now: at, seen: map[string]bool{}}
	r, err := runner.Open(context.Background(), filepath.Join(dir, runner.DirName), store,
		[]runner.Projection{lists.NewProjection()}, runner.Options{Logger: quiet(), Clock: w.clock, SequentialPositions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.r, w.sim, w.lists = r, simtest.New(t, store, policy.DefaultConfig()), lists.New(r, w.clock)
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

// Command implements Commander as the caller grain does: the real policy,
// errors classified alike, a command applied before answered as repeated.
// A reason of "store down" fails as the store would.
func (w *world) Command(_ context.Context, key string, cmd caller.Command) (caller.Applied, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(cmd.Command.Why, "store down") {
		return caller.Applied{}, fmt.Errorf("%w: disk full", caller.ErrStore)
	}
	id := key + "/" + cmd.Command.ID
	if w.seen[id] {
		return caller.Applied{Repeated: true}, nil
	}
	err := w.sim.Command(cmd.Verb, key, cmd.Command, w.now)
	switch {
	case errors.Is(err, policy.ErrWhitelisted), errors.Is(err, policy.ErrNotWhitelisted), errors.Is(err, policy.ErrNotBlocked):
		return caller.Applied{}, fmt.Errorf("%w: %v", caller.ErrState, err)
	case err != nil:
		return caller.Applied{}, fmt.Errorf("%w: %v", caller.ErrInvalid, err)
	}
	w.seen[id] = true
	return caller.Applied{Events: []string{"Whitelisted"}}, nil
}

func numbers(t *testing.T) *phone.Normalizer {
	t.Helper()
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func cmd(id, by, why string) policy.Command { return policy.Command{ID: id, By: by, Why: why} }

func ptime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.String()
}

func TestImportWhitelist(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	b := cmd("k1", "bob", "fraud")
	b.Level = 7
	w.command("block", "+79990000009", b)
	im := New(w, numbers(t), w.clock, quiet())
	file := "\ufeffNumber;Reason;Until;Note\n" + // a spreadsheet's export: BOM, semicolons, an extra column
		"+7 999 000-00-01;VIP;;first\n" +
		"89990000002;corporate;2026-11-03T00:00:00+03:00;\n" +
		"# a comment line\n" +
		"not a number;x;;\n" +
		"+79990000003;;;\n" + // no reason and no default: refused
		"+79990000001;again;;\n" + // the same number twice
		"+79990000004;late;2026-11-01T00:00:00Z;\n" + // expiry in the past
		"\n" +
		"+79990000005;\"two\nlines\";;\n" + // a control character in the reason
		"+79990000009;blocked;;\n" + // the policy refuses: blocked numbers can be whitelisted, fine
		"+79990000006;store down;;\n" // the grain's store fails: retry later
	res, err := im.ImportWhitelist(ctx, strings.NewReader(file), Defaults{By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range res.Errors {
		lines = append(lines, fmt.Sprintf("%d %s %s %s dup=%d value=%q retry=%v", e.Line, e.Number, e.Field, e.Code, e.DuplicateOf, e.Value, e.Retry))
	}
	wantLines := []string{
		`5 not a number number number dup=0 value="" retry=false`,
		`6 +79990000003 reason text dup=0 value="" retry=false`,
		`7 +79990000001 number duplicate dup=2 value="" retry=false`,
		`8 +79990000004 until until-past dup=0 value="2026-11-01T00:00:00Z" retry=false`,
		`10 +79990000005 reason text dup=0 value="" retry=false`,
		`13 +79990000006  retry dup=0 value="" retry=true`,
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("errors:\n%s\nwant\n%s\n%+v", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"), res.Errors)
	}
	if res.Rows != 9 || res.Applied != 3 || res.Repeated != 0 || res.Failed != 6 || fmt.Sprint(res.IgnoredColumns) != "[Note]" {
		t.Fatalf("result %+v", res)
	}
	w.catchUp()
	wp, err := w.lists.Whitelist(ctx, lists.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range wp.Items {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", e.Number, e.By, e.Reason, ptime(e.Until), e.CommandID))
	}
	want := []string{
		"+79990000001 alice VIP - whitelist:import:" + res.File + ":2",
		"+79990000002 alice corporate 2026-11-02 21:00:00 +0000 UTC whitelist:import:" + res.File + ":3",
		"+79990000009 alice blocked - whitelist:import:" + res.File + ":12",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("whitelist after import:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Importing the same file again writes nothing twice.
	again, err := im.ImportWhitelist(ctx, strings.NewReader(file), Defaults{By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if again.File != res.File || again.Applied != 0 || again.Repeated != 3 {
		t.Fatalf("re-import %+v", again)
	}

	for _, tc := range []struct{ name, file, code, text string }{
		{"empty", "", FileEmpty, "malformed CSV: the file is empty; want a header row with a number column"},
		{"no number", "phone number,reason\n+79990000001,x\n", FileNoNumber, `malformed CSV: the header "phone number,reason" has no number column (want number, until, by, reason)`},
		{"bad quoting", "number,reason\n+79990000001,\"x\n", FileSyntax, "malformed CSV: parse error on line 2, column 17: extraneous or missing \" in quoted-field"},
		{"not text", "number\n\xff\xfe\n", FileEncoding, "malformed CSV: the file is not UTF-8 text"},
		{"twice a column", "number,reason,why\n+79990000001,x,y\n", FileColumnTwice, "malformed CSV: column reason appears twice in the header"},
	} {
		_, err := im.ImportWhitelist(ctx, strings.NewReader(tc.file), Defaults{By: "a", Reason: "r"})
		var fe *FileError
		switch {
		case !errors.Is(err, ErrCSV) || !errors.As(err, &fe):
			t.Errorf("%s: %v, want a FileError that is ErrCSV", tc.name, err)
		case fe.Code != tc.code || fe.Error() != tc.text:
			t.Errorf("%s: code %q, %q; want %q, %q", tc.name, fe.Code, fe, tc.code, tc.text)
		}
	}
}

// TestExportImportRoundTrip exports a whitelist as CSV, imports it into
// another store, and exports that: the same entries (numbers, expiries,
// who and why) come out.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newWorld(t)
	for i, by := range []string{"alice", "bob", "Ольга Петрова", "-dash"} {
		c := cmd(fmt.Sprintf("k%d", i), by, fmt.Sprintf("reason %d, with a comma and \"quotes\"", i))
		if i%2 == 1 {
			c.Until = at.Add(time.Duration(i) * time.Hour)
		}
		src.command("whitelist", fmt.Sprintf("+7999000000%d", i), c)
	}
	src.catchUp()
	export := func(w *world) (string, []lists.WhitelistEntry) {
		p, err := w.lists.Whitelist(ctx, lists.Query{Limit: lists.Unlimited})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := lists.WriteWhitelistCSV(&b, p.Items); err != nil {
			t.Fatal(err)
		}
		return b.String(), p.Items
	}
	csv1, entries1 := export(src)

	dst := newWorld(t)
	dst.set(at.Add(time.Minute))
	res, err := New(dst, numbers(t), dst.clock, quiet()).ImportWhitelist(ctx, strings.NewReader(csv1), Defaults{})
	if err != nil || res.Applied != 4 || res.Failed != 0 {
		t.Fatalf("import %+v, %v", res, err)
	}
	dst.catchUp()
	_, entries2 := export(dst)
	if len(entries1) != len(entries2) {
		t.Fatalf("%d entries exported, %d after the round trip", len(entries1), len(entries2))
	}
	for i := range entries1 {
		a, b := entries1[i], entries2[i]
		if a.Number != b.Number || a.By != b.By || a.Reason != b.Reason || ptime(a.Until) != ptime(b.Until) {
			t.Errorf("entry %d: exported %+v, round trip %+v", i, a, b)
		}
	}
}

// The until column reads what --until reads: durations, dates (through
// that day in the guard's zone) and RFC 3339 times.
func TestParseUntil(t *testing.T) {
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"720h":                      now.Add(720 * time.Hour),
		"90m":                       now.Add(90 * time.Minute),
		"30d":                       now.AddDate(0, 0, 30),
		"2026-12-31":                time.Date(2026, 12, 31, 21, 0, 0, 0, time.UTC), // midnight after the 31st in Moscow
		"2026-12-31T23:59:59+03:00": time.Date(2026, 12, 31, 20, 59, 59, 0, time.UTC),
		" 2026-12-31T20:00:00Z ":    time.Date(2026, 12, 31, 20, 0, 0, 0, time.UTC),
	} {
		got, err := ParseUntil(in, now, msk)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "31.12.2026", "2026-13-01", "d", "-d", "2026-12-31T23:59:59"} {
		if got, err := ParseUntil(bad, now, msk); !errors.Is(err, ErrUntil) || !strings.Contains(err.Error(), "Europe/Moscow") {
			t.Errorf("ParseUntil(%q) = %v, %v; want ErrUntil naming the zone", bad, got, err)
		}
	}
}
