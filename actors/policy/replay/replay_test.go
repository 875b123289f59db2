package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.*")

var day0 = time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return day0.Add(d) }

// writer plays one caller through the real policy into a store the way the
// caller grain does: decide, append with the expected revision, then fold.
type writer struct {
	t     testing.TB
	store events.Store
	pol   *policy.Policy
	key   string
	st    policy.State
	rev   uint64
	exist bool
}

func newWriter(t testing.TB, store events.Store, key string) *writer {
	t.Helper()
	pol, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &writer{t: t, store: store, pol: pol, key: key}
}

func (w *writer) append(recs []schema.Record, actor string) {
	w.t.Helper()
	props, err := schema.Proposals(recs, events.Metadata{Actor: actor})
	if err != nil {
		w.t.Fatal(err)
	}
	w.appendRaw(props...)
	for _, r := range recs {
		if err := w.pol.Apply(&w.st, r.Payload); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *writer) appendRaw(props ...events.Proposed) {
	w.t.Helper()
	res, err := w.store.Append(context.Background(), schema.CallerStream(w.key), events.ExactOrNoStream(w.rev, w.exist), props...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.rev, w.exist = res.LastRevision, true
}

func (w *writer) call(id string, when time.Time) schema.Verdict {
	w.t.Helper()
	d, err := w.pol.Decide(&w.st, policy.Call{ID: id, Caller: phone.Number{Key: w.key}}, when)
	if err != nil {
		w.t.Fatal(err)
	}
	w.append(d.Records, "grain")
	return d.Verdict
}

func (w *writer) calls(prefix string, n int, from time.Time, every time.Duration) {
	w.t.Helper()
	for i := range n {
		w.call(prefix+string(rune('1'+i)), from.Add(time.Duration(i)*every))
	}
}

func (w *writer) outcome(id string, o schema.Outcome, when time.Time) {
	w.t.Helper()
	recs, err := w.pol.Outcome(&w.st, w.key, id, o, when)
	if err != nil {
		w.t.Fatal(err)
	}
	w.append(recs, "call")
}

func (w *writer) command(do func(*policy.Policy, *policy.State, string, policy.Command, time.Time) ([]schema.Record, error), cmd policy.Command, when time.Time) {
	w.t.Helper()
	recs, err := do(w.pol, &w.st, w.key, cmd, when)
	if err != nil {
		w.t.Fatal(err)
	}
	w.append(recs, "admin:"+cmd.By)
}

const (
	keyA = "+79990000001" // breaks the hourly limit, passes the challenge
	keyB = "+79990000002" // four calls in an hour: under the default limit
	keyC = "+79990000003" // whitelisted, calls often
	keyD = "+79990000004" // manually blocked
)

// seed writes four callers' histories at the default limits, plus events
// that are not a caller's (another stream) or not the policy's (a type of
// a later build), which the replay must leave out.
func seed(t testing.TB, store events.Store) {
	t.Helper()
	a := newWriter(t, store, keyA)
	a.calls("a", 6, at(0), time.Minute)
	a.outcome("a6", schema.Passed, at(5*time.Minute+10*time.Second))

	b := newWriter(t, store, keyB)
	b.calls("b", 4, at(0), time.Minute)
	b.appendRaw(events.Proposed{ID: events.DeriveID("test", "b4", "recording"), Type: "CallRecorded", Version: 1,
		Data: json.RawMessage(`{"callId":"b4"}`)})

	c := newWriter(t, store, keyC)
	c.command((*policy.Policy).Whitelist, policy.Command{ID: "k1", By: "alice", Why: "corporate client"}, at(0))
	c.calls("c", 7, at(time.Minute), time.Minute)

	d := newWriter(t, store, keyD)
	d.calls("d", 2, at(0), time.Minute)
	d.command((*policy.Policy).Block, policy.Command{ID: "k2", By: "bob", Why: "fraud", Level: 7}, at(2*time.Minute))
	if v := d.call("d3", at(3*time.Minute)); v != schema.Reject {
		t.Fatalf("d3 got %s, want reject", v)
	}

	if _, err := store.Append(context.Background(), "call-a1", events.Any, events.Proposed{
		ID: events.DeriveID("test", "call-a1"), Type: "CallStarted", Version: 1, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func config(change func(*policy.Config)) policy.Config {
	c := policy.DefaultConfig()
	if change != nil {
		change(&c)
	}
	return c
}

// want is what a test expects of a Report, in a form that reads as the
// expectation: numbers by key with the fields that differ.
type want struct {
	changed, callersChanged, unresolved int
	transitions                         []Transition
	numbers                             map[string][]string
}

func TestRun(t *testing.T) {
	store := openStore(t)
	seed(t, store)
	ctx := context.Background()

	tests := []struct {
		name string
		cfg  policy.Config
		opts []Option
		want want
	}{
		{
			name: "same settings change nothing",
			cfg:  config(nil),
			want: want{numbers: map[string][]string{}},
		},
		{
			// A and B get challenged from the fourth call. A ends the same
			// (its block is set earlier, but extended to the same expiry by
			// a6, and a6's passed challenge still verifies it); B ends
			// blocked where today it is not.
			name: "lower hourly limit",
			cfg:  config(func(c *policy.Config) { c.LimitHour = 3 }),
			want: want{
				changed: 3, callersChanged: 2, unresolved: 3,
				transitions: []Transition{{From: schema.Pass, To: schema.Challenge, Calls: 3}},
				numbers:     map[string][]string{keyB: {"level", "kind", "rule", "until"}},
			},
		},
		{
			// a6 passes: A is never blocked, and its passed challenge (a
			// call these settings do not challenge) no longer verifies it.
			name: "higher hourly limit",
			cfg:  config(func(c *policy.Config) { c.LimitHour = 10 }),
			want: want{
				changed: 1, callersChanged: 1,
				transitions: []Transition{{From: schema.Challenge, To: schema.Pass, Calls: 1}},
				numbers:     map[string][]string{keyA: {"level", "kind", "rule", "until", "verifiedUntil"}},
			},
		},
		{
			name: "limits off",
			cfg:  config(func(c *policy.Config) { c.LimitHour, c.LimitDay = 0, 0 }),
			want: want{
				changed: 1, callersChanged: 1,
				transitions: []Transition{{From: schema.Challenge, To: schema.Pass, Calls: 1}},
				numbers:     map[string][]string{keyA: {"level", "kind", "rule", "until", "verifiedUntil"}},
			},
		},
		{
			// Two days on, B's would-be block has run out: the calls were
			// still decided differently, but B stands as it does today.
			name: "lower hourly limit as of two days later",
			cfg:  config(func(c *policy.Config) { c.LimitHour = 3 }),
			opts: []Option{AsOf(at(48 * time.Hour))},
			want: want{
				changed: 3, callersChanged: 2, unresolved: 3,
				transitions: []Transition{{From: schema.Pass, To: schema.Challenge, Calls: 3}},
				numbers:     map[string][]string{},
			},
		},
		{
			name: "small pages",
			cfg:  config(func(c *policy.Config) { c.LimitHour = 3 }),
			opts: []Option{PageSize(2)},
			want: want{
				changed: 3, callersChanged: 2, unresolved: 3,
				transitions: []Transition{{From: schema.Pass, To: schema.Challenge, Calls: 3}},
				numbers:     map[string][]string{keyB: {"level", "kind", "rule", "until"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Run(ctx, store, tt.cfg, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if r.Callers != 4 || r.Calls != 20 || r.Skipped != 1 {
				t.Errorf("scanned %d callers, %d calls, skipped %d; want 4, 20, 1", r.Callers, r.Calls, r.Skipped)
			}
			if r.CallsChanged != tt.want.changed || r.CallersChanged != tt.want.callersChanged || r.Unresolved != tt.want.unresolved {
				t.Errorf("changed %d calls of %d callers, unresolved %d; want %d, %d, %d",
					r.CallsChanged, r.CallersChanged, r.Unresolved, tt.want.changed, tt.want.callersChanged, tt.want.unresolved)
			}
			if tt.want.transitions == nil {
				tt.want.transitions = []Transition{}
			}
			if !reflect.DeepEqual(r.Transitions, tt.want.transitions) {
				t.Errorf("transitions %+v, want %+v", r.Transitions, tt.want.transitions)
			}
			got := map[string][]string{}
			for _, n := range r.Numbers {
				got[n.Key] = n.Differs
				if len(n.Changes) != n.CallsChanged {
					t.Errorf("%s lists %d changes of %d", n.Key, len(n.Changes), n.CallsChanged)
				}
			}
			if !reflect.DeepEqual(got, tt.want.numbers) || r.NumbersChanged != len(r.Numbers) {
				t.Errorf("numbers %v (count %d), want %v", got, r.NumbersChanged, tt.want.numbers)
			}
		})
	}
}

// TestRunChangesNothing runs a replay through a store that refuses every
// write and checks that the log's head and the snapshots are as they were.
func TestRunChangesNothing(t *testing.T) {
	store := openStore(t)
	seed(t, store)
	ctx := context.Background()
	before, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ro := &readOnly{Store: store}
	if _, err := Run(ctx, ro, config(func(c *policy.Config) { c.LimitHour = 3 })); err != nil {
		t.Fatal(err)
	}
	if n := ro.writes.Load(); n != 0 {
		t.Errorf("Run tried %d writes", n)
	}
	after, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("head moved from %v to %v", before, after)
	}
	for _, key := range []string{keyA, keyB, keyC, keyD} {
		if _, ok, err := store.LoadSnapshot(ctx, schema.CallerStream(key)); err != nil || ok {
			t.Errorf("%s: snapshot %v, err %v; want none", key, ok, err)
		}
	}
}

// TestRunStopsAtHead: events appended after Run read the head are not part
// of the report, so it describes one cut of the log. The store's head is
// pinned before B's fourth call and everything after it.
func TestRunStopsAtHead(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	a := newWriter(t, store, keyA)
	a.calls("a", 6, at(0), time.Minute)
	b := newWriter(t, store, keyB)
	b.calls("b", 3, at(0), time.Minute)
	cut, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.call("b4", at(3*time.Minute))
	newWriter(t, store, keyC).calls("c", 2, at(0), time.Minute)

	r, err := Run(ctx, pinned{Store: store, head: cut}, config(func(c *policy.Config) { c.LimitHour = 3 }))
	if err != nil {
		t.Fatal(err)
	}
	if r.Callers != 2 || r.Calls != 9 || r.Through != cut.String() {
		t.Errorf("callers %d, calls %d through %s; want 2, 9 through %s", r.Callers, r.Calls, r.Through, cut)
	}
	// Only A's fourth and fifth calls change: B's fourth is past the cut.
	if r.CallsChanged != 2 {
		t.Errorf("changed %d calls, want 2", r.CallsChanged)
	}
}

func TestRunEmptyStore(t *testing.T) {
	r, err := Run(context.Background(), openStore(t), policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if r.Callers != 0 || r.Calls != 0 || r.Through != "0" {
		t.Errorf("report of an empty store: %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"numbers":[]`)) || !bytes.Contains(b, []byte(`"transitions":[]`)) {
		t.Errorf("lists should be empty, not null: %s", b)
	}
}

func TestRunErrors(t *testing.T) {
	store := openStore(t)
	seed(t, store)
	t.Run("bad config", func(t *testing.T) {
		_, err := Run(context.Background(), store, config(func(c *policy.Config) { c.LimitHour = -1 }))
		if !errors.Is(err, policy.ErrConfig) {
			t.Fatalf("got %v, want ErrConfig", err)
		}
	})
	t.Run("bad page size", func(t *testing.T) {
		_, err := Run(context.Background(), store, policy.DefaultConfig(), PageSize(0))
		if !errors.Is(err, events.ErrInvalid) {
			t.Fatalf("got %v, want ErrInvalid", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Run(ctx, store, policy.DefaultConfig())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("corrupt event", func(t *testing.T) {
		bad := openStore(t)
		w := newWriter(t, bad, keyA)
		w.appendRaw(events.Proposed{ID: events.DeriveID("bad"), Type: schema.TypeCallReceived, Version: 1,
			Data: json.RawMessage(`{"callId":"x","at":"noon"}`)})
		_, err := Run(context.Background(), bad, policy.DefaultConfig())
		if err == nil || !strings.Contains(err.Error(), "replay "+keyA) {
			t.Fatalf("got %v, want a decode error naming the caller", err)
		}
	})
}

// TestGolden pins the text and JSON of one report (a lower hourly limit
// over the seed); -update rewrites them.
func TestGolden(t *testing.T) {
	store := openStore(t)
	seed(t, store)
	r, err := Run(context.Background(), store, config(func(c *policy.Config) { c.LimitHour = 3 }))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text, time.UTC); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "limit_hour_3.golden.txt"), text.Bytes())
	golden(t, filepath.Join("testdata", "limit_hour_3.golden.json"), append(js, '\n'))
}

func TestMaxChanges(t *testing.T) {
	store := openStore(t)
	w := newWriter(t, store, keyA)
	for i := range MaxChanges + 10 {
		w.call("x"+strconv.Itoa(i), at(time.Duration(i)*2*time.Hour))
	}
	// A call every two hours (twelve a day) never breaks the defaults; a
	// daily limit of one challenges every call after the first.
	r, err := Run(context.Background(), store, config(func(c *policy.Config) { c.LimitHour, c.LimitDay = 1, 1 }))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Numbers) != 1 {
		t.Fatalf("numbers %+v", r.Numbers)
	}
	n := r.Numbers[0]
	if n.CallsChanged != MaxChanges+9 || len(n.Changes) != MaxChanges || n.MoreChanges != 9 {
		t.Errorf("changed %d, listed %d, more %d", n.CallsChanged, len(n.Changes), n.MoreChanges)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text, time.UTC); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "... and 9 more") {
		t.Errorf("text does not say how many changes it left out:\n%s", text.String())
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 6 * time.Hour: "6h", 90 * time.Minute: "1h30m",
		30 * time.Second: "30s", 0: "0s", 10 * time.Minute: "10m", 500 * time.Millisecond: "500ms",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// readOnly is a store that counts and refuses every write.
type readOnly struct {
	events.Store
	writes atomic.Int64
}

var errReadOnly = errors.New("read-only store written to")

func (s *readOnly) Append(context.Context, string, events.Expected, ...events.Proposed) (events.AppendResult, error) {
	s.writes.Add(1)
	return events.AppendResult{}, errReadOnly
}

func (s *readOnly) SaveSnapshot(context.Context, events.Snapshot) error {
	s.writes.Add(1)
	return errReadOnly
}

// pinned is a store whose head stays at head, as if the later events were
// appended after Run read it.
type pinned struct {
	events.Store
	head events.Position
}

func (s pinned) Head(context.Context) (events.Position, error) { return s.head, nil }

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update and review the diff):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}
