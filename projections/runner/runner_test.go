package runner

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// counter counts events by type in its bucket, and fails on events of
// type "Poison" while poisoned is set.
type counter struct {
	name     string
	version  string
	poisoned atomic.Bool
	batches  atomic.Int64
}

func (c *counter) Name() string    { return c.name }
func (c *counter) Version() string { return c.version }
func (c *counter) Begin(root *bolt.Bucket) Batch {
	c.batches.Add(1)
	return &counterBatch{c: c, root: root}
}

type counterBatch struct {
	c    *counter
	root *bolt.Bucket
}

func (b *counterBatch) Apply(ev events.Event) error {
	if ev.Type == "Poison" && b.c.poisoned.Load() {
		return errors.New("poisoned event")
	}
	k := []byte(ev.Type)
	n := uint64(0)
	if v := b.root.Get(k); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	return b.root.Put(k, binary.BigEndian.AppendUint64(nil, n+1))
}

func (b *counterBatch) Flush() error { return nil }

// fakeClock is a settable clock safe for the runner's goroutines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

type env struct {
	t     *testing.T
	dir   string
	store *embedded.Store
	clock *fakeClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	clock := &fakeClock{t: t0}
	store, err := embedded.Open(context.Background(), filepath.Join(dir, "events"), embedded.WithLogger(quiet()), embedded.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &env{t: t, dir: dir, store: store, clock: clock}
}

func (e *env) open(opts Options, ps ...Projection) *Runner {
	e.t.Helper()
	if opts.Clock == nil {
		opts.Clock = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	r, err := Open(context.Background(), filepath.Join(e.dir, DirName), e.store, ps, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) append(typ string, n int) {
	e.t.Helper()
	for i := range n {
		stream := fmt.Sprintf("s-%d", i%3)
		if _, err := e.store.Append(context.Background(), stream, events.Any,
			events.Proposed{Type: typ, Version: 1, Data: json.RawMessage(`{}`)}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func counts(t *testing.T, r *Runner, name string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := r.View(name, func(root *bolt.Bucket) error {
		if root == nil {
			return nil
		}
		return root.ForEach(func(k, v []byte) error {
			out[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func status(t *testing.T, r *Runner, name string) Status {
	t.Helper()
	sts, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status of %s", name)
	return Status{}
}

func TestCatchUpLiveAndResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 10)
	c := &counter{name: "count", version: "1"}
	r := e.open(Options{BatchSize: 4, SequentialPositions: true}, c)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	e.append("B", 5) // live
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "count"); got["A"] != 10 || got["B"] != 5 {
		t.Fatalf("counts %v", got)
	}
	st := status(t, r, "count")
	if st.State != Running || st.Checkpoint != "15" || st.LagEvents != 0 || st.LagSeconds != 0 || st.Events != 15 {
		t.Fatalf("status %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart resumes from the checkpoint: events appended while it was
	// down are applied once, the old ones not again.
	e.append("C", 3)
	r = e.open(Options{SequentialPositions: true}, c)
	defer r.Close()
	if st := status(t, r, "count"); st.State != Stopped || st.LagEvents != 3 {
		t.Fatalf("status before start %+v", st)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "count"); got["A"] != 10 || got["B"] != 5 || got["C"] != 3 {
		t.Fatalf("counts after restart %v", got)
	}
}

// TestLag measures a projection that has applied nothing against five
// events recorded 90 s ago.
func TestLag(t *testing.T) {
	for _, seq := range []bool{true, false} {
		t.Run(fmt.Sprintf("sequential=%v", seq), func(t *testing.T) {
			e := newEnv(t)
			e.append("A", 5)
			e.clock.Set(t0.Add(90 * time.Second))
			r := e.open(Options{SequentialPositions: seq, MaxLagCount: 3}, &counter{name: "count", version: "1"})
			defer r.Close()
			st := status(t, r, "count")
			wantEvents, atLeast := uint64(5), false
			if !seq {
				wantEvents, atLeast = 3, true // counting stops at MaxLagCount
			}
			if st.LagEvents != wantEvents || st.LagAtLeast != atLeast || st.LagSeconds != 90 || st.Head != "5" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestFailureStopsAtTheEvent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 6)
	e.append("Poison", 1) // position 7
	e.append("A", 4)
	bad := &counter{name: "bad", version: "1"}
	bad.poisoned.Store(true)
	good := &counter{name: "good", version: "1"}
	r := e.open(Options{BatchSize: 100, SequentialPositions: true}, bad, good)
	defer r.Close()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := r.CatchUp(ctx)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("CatchUp = %v, want ErrFailed", err)
	}
	st := status(t, r, "bad")
	if st.State != Failed || st.Failure == nil || st.Failure.At != "7" || st.Failure.Type != "Poison" ||
		st.Failure.Error != "poisoned event" || st.Checkpoint != "6" || st.LagEvents != 5 {
		t.Fatalf("status of the failed projection %+v %+v", st, st.Failure)
	}
	// The events before the poison are applied (committed on their own),
	// none after it.
	if got := counts(t, r, "bad"); got["A"] != 6 || got["Poison"] != 0 {
		t.Fatalf("counts of the failed projection %v", got)
	}
	// The other projection is not held up.
	deadline := time.Now().Add(5 * time.Second)
	for status(t, r, "good").Checkpoint != "11" {
		if time.Now().After(deadline) {
			t.Fatalf("the healthy projection stalled: %+v", status(t, r, "good"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A failed projection stays failed until rebuilt; once the code is
	// fixed, a rebuild replays everything.
	bad.poisoned.Store(false)
	if err := r.Rebuild(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "bad"); got["A"] != 10 || got["Poison"] != 1 {
		t.Fatalf("counts after rebuild %v", got)
	}
	if st := status(t, r, "bad"); st.State != Running || st.Failure != nil {
		t.Fatalf("status after rebuild %+v", st)
	}
}

func TestRebuildAndVersionChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 20)
	c := &counter{name: "count", version: "1"}
	r := e.open(Options{BatchSize: 7, SequentialPositions: true}, c)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(ctx, "nope"); !errors.Is(err, ErrUnknownProjection) {
		t.Fatalf("Rebuild(nope) = %v", err)
	}
	if err := r.Rebuild(ctx, "count"); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "count"); got["A"] != 20 {
		t.Fatalf("counts after rebuild %v (a rebuild must not add to the old model)", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The same version reopens as it was; another version starts over.
	c.batches.Store(0)
	r = e.open(Options{SequentialPositions: true}, c)
	if st := status(t, r, "count"); st.Checkpoint != "20" {
		t.Fatalf("same version: checkpoint %s", st.Checkpoint)
	}
	_ = r.Close()
	r = e.open(Options{SequentialPositions: true}, &counter{name: "count", version: "2"})
	defer r.Close()
	if st := status(t, r, "count"); st.Checkpoint != "0" || st.Version != "2" || st.LagEvents != 20 {
		t.Fatalf("new version: status %+v", st)
	}
	if got := counts(t, r, "count"); len(got) != 0 {
		t.Fatalf("new version kept the old model: %v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newEnv(t)
	r := e.open(Options{}, &counter{name: "count", version: "1"})
	defer r.Close()
	_, err := Open(context.Background(), filepath.Join(e.dir, DirName), e.store, []Projection{&counter{name: "count", version: "1"}}, Options{Logger: quiet()})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	for _, ps := range [][]Projection{
		{&counter{name: "Bad Name", version: "1"}},
		{&counter{name: "x", version: "1"}, &counter{name: "x", version: "1"}},
	} {
		if _, err := Open(context.Background(), t.TempDir(), e.store, ps, Options{Logger: quiet()}); err == nil {
			t.Errorf("Open accepted %v", ps)
		}
	}
	if err := r.CatchUp(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("CatchUp before Start = %v", err)
	}
	if err := r.View("nope", func(*bolt.Bucket) error { return nil }); !errors.Is(err, ErrUnknownProjection) {
		t.Fatalf("View(nope) = %v", err)
	}
}

// TestSubscriptionErrorResumes: a subscription that ends with a store
// error is resumed from the checkpoint, and nothing is applied twice.
func TestSubscriptionErrorResumes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 5)
	flaky := &flakyStore{Store: e.store}
	flaky.fail.Store(2)
	c := &counter{name: "count", version: "1"}
	opts := Options{Clock: e.clock.Now, Logger: quiet(), SequentialPositions: true}
	r, err := Open(ctx, filepath.Join(e.dir, DirName), flaky, []Projection{c}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.CatchUp(cctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "count"); got["A"] != 5 {
		t.Fatalf("counts %v", got)
	}
	if flaky.fail.Load() > 0 {
		t.Fatal("the failures were not hit")
	}
}

// flakyStore fails its first subscriptions after one event.
type flakyStore struct {
	events.Store
	fail atomic.Int32
}

func (f *flakyStore) Subscribe(ctx context.Context, from events.Position, h events.Handler) error {
	if f.fail.Add(-1) >= 0 {
		n := 0
		err := f.Store.Subscribe(ctx, from, func(ctx context.Context, ev events.Event) error {
			if n++; n > 1 {
				return events.ErrUnavailable
			}
			return h(ctx, ev)
		})
		return err
	}
	return f.Store.Subscribe(ctx, from, h)
}

func TestWriteText(t *testing.T) {
	var b strings.Builder
	err := WriteText(&b, []Status{
		{Name: "lists", State: Running, Checkpoint: "10", Head: "10", Version: "1"},
		{Name: "reports", State: Failed, Checkpoint: "6", Head: "10", LagEvents: 4, LagSeconds: 2.5, Version: "1",
			Failure: &Failure{At: "7", Stream: "call-1", Revision: 2, Type: "CallEnded", Error: "bad payload"}},
		{Name: "profiles", State: Retrying, Checkpoint: "8", Head: "10", LagEvents: 2, Version: "1",
			Failure: &Failure{At: "10", Error: "no space left on device", Since: t0, Retrying: true, Attempts: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reports     failed", "reports stopped at 7 (call-1@2, CallEnded): bad payload", "callguard projections rebuild reports",
		"profiles    retrying", "profiles cannot write its database since 2026-11-02T10:00:00Z (4 attempts): no space left on device\n  it retries by itself"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "rebuild profiles") {
		t.Errorf("a retrying projection needs no rebuild:\n%s", b.String())
	}
}
