package runner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
)

// fakeTimer is Options.After under the test's control: nothing fires
// until Fire.
type fakeTimer struct {
	mu      sync.Mutex
	pending []chan time.Time
}

func (f *fakeTimer) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.mu.Lock()
	f.pending = append(f.pending, ch)
	f.mu.Unlock()
	return ch
}

// Fire fires every timer armed so far and says how many.
func (f *fakeTimer) Fire() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.pending {
		ch <- t0
	}
	n := len(f.pending)
	f.pending = nil
	return n
}

func (f *fakeTimer) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// eventually polls cond for up to 5 s of real time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCadence: a live projection commits when BatchSize events are
// pending or when the timer armed by the first of them fires, whichever
// comes first; a waiter has them committed at once. The timer is fake,
// so "not yet" is exact: nothing else can commit.
func TestCadence(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		batch  int
		append int
		// fire: fire the timer (else wait for the size bound or a waiter).
		fire, wait bool
		// wantCommits is the number of commits after the events are in.
		wantCommits uint64
	}{
		{name: "size bound", batch: 4, append: 8, wantCommits: 2},
		{name: "interval", batch: 100, append: 3, fire: true},
		{name: "waiter", batch: 100, append: 3, wait: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			timer := &fakeTimer{}
			c := &counter{name: "count", version: "1"}
			r := e.open(Options{BatchSize: tc.batch, CommitInterval: time.Hour, After: timer.After, SequentialPositions: true}, c)
			defer r.Close()
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			e.append("A", tc.append)
			want := uint64(tc.append)
			switch {
			case tc.fire:
				// The first arrival arms the timer; until it fires,
				// nothing is committed.
				eventually(t, "the timer armed", func() bool { return timer.Pending() > 0 })
				if st := status(t, r, "count"); st.Checkpoint != "0" || st.Commits != 0 {
					t.Fatalf("committed before the interval: %+v", st)
				}
				// Events that arrive after a commit arm the timer again.
				eventually(t, "every event committed", func() bool {
					timer.Fire()
					return status(t, r, "count").Position.Commit == want
				})
			case tc.wait:
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := r.WaitFor(wctx, events.Position{Commit: want}, "count"); err != nil {
					t.Fatalf("WaitFor = %v", err)
				}
			default:
				eventually(t, "the size bound commits", func() bool { return status(t, r, "count").Position.Commit == want })
			}
			st := status(t, r, "count")
			if st.Position.Commit != want || st.Events != want {
				t.Fatalf("status %+v", st)
			}
			if tc.wantCommits != 0 && st.Commits != tc.wantCommits {
				t.Fatalf("%d commits, want %d", st.Commits, tc.wantCommits)
			}
			if st.Commits > want {
				t.Fatalf("%d commits for %d events", st.Commits, want)
			}
			if got := counts(t, r, "count"); got["A"] != want {
				t.Fatalf("counts %v", got)
			}
		})
	}
}

// failingCommits makes the runner's commits fail as a full disk does
// while fail is set; with lie set, the next commit is written but
// reported failed (an fsync error after the write went through).
type failingCommits struct {
	fail, lie atomic.Bool
	failed    atomic.Int32
}

func (f *failingCommits) commit(tx *bolt.Tx) error {
	if f.fail.Load() {
		f.failed.Add(1)
		_ = tx.Rollback()
		return syscall.ENOSPC
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if f.lie.CompareAndSwap(true, false) {
		f.failed.Add(1)
		return syscall.EIO
	}
	return nil
}

// TestWriteFailureRecovers: a projection whose commits fail is Retrying,
// not Failed; reads of it say they lag and why; once writes work again
// it resumes by itself, and every event is applied exactly once — also
// when a commit that reported failure had in fact reached the file.
func TestWriteFailureRecovers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 5)
	c := &counter{name: "count", version: "1"}
	r := e.open(Options{BatchSize: 100, CommitInterval: -1, SequentialPositions: true}, c)
	defer r.Close()
	fc := &failingCommits{}
	fc.fail.Store(true)
	r.commitTx = fc.commit
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// It retries with a pause (100 ms, then 200 ms): two attempts.
	eventually(t, "two failed commits", func() bool {
		st := status(t, r, "count")
		return st.State == Retrying && st.Failure != nil && st.Failure.Attempts >= 2
	})
	st := status(t, r, "count")
	if !st.Failure.Retrying || !strings.Contains(st.Failure.Error, "no space left on device") || st.Checkpoint != "0" || st.LagEvents != 5 {
		t.Fatalf("status while the disk is full: %+v %+v", st, st.Failure)
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	fr, err := r.Await(actx, "count")
	cancel()
	if err != nil || fr.Status != ReadLagging || !strings.Contains(fr.Reason, "retries by itself") || fr.Head != "5" || fr.Checkpoint != "0" {
		t.Fatalf("Await while the disk is full = %+v, %v", fr, err)
	}
	if got := counts(t, r, "count"); len(got) != 0 {
		t.Fatalf("a failed commit left %v", got)
	}

	// The disk is freed; the next commit goes through but reports an
	// error. The retry must resume from the checkpoint in the file, not
	// apply the batch again.
	fc.lie.Store(true)
	fc.fail.Store(false)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.CatchUp(cctx); err != nil {
		t.Fatal(err)
	}
	e.append("B", 2)
	if err := r.CatchUp(cctx); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, r, "count"); got["A"] != 5 || got["B"] != 2 {
		t.Fatalf("counts after recovery %v: each event must be applied exactly once", got)
	}
	st = status(t, r, "count")
	if st.State != Running || st.Failure != nil || st.Checkpoint != "7" || st.Events != 7 {
		t.Fatalf("status after recovery %+v", st)
	}
	if fc.lie.Load() {
		t.Fatal("the commit that lied was not reached")
	}
	if fr, err := r.Await(cctx); err != nil || fr.Status != ReadCurrent || fr.Checkpoint != "7" {
		t.Fatalf("Await after recovery = %+v, %v", fr, err)
	}
}

// gated blocks in Apply until its gate is open.
type gated struct {
	counter
	gate chan struct{}
}

func (g *gated) Begin(root *bolt.Bucket) Batch {
	<-g.gate
	return g.counter.Begin(root)
}

// TestAwait: a read says whether the projections it reads had caught up
// with the head of the log when it began, lag behind, or failed.
func TestAwait(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.append("A", 3)
	slow := &gated{counter: counter{name: "slow", version: "1"}, gate: make(chan struct{})}
	bad := &counter{name: "bad", version: "1"}
	bad.poisoned.Store(true)
	good := &counter{name: "good", version: "1"}
	r := e.open(Options{SequentialPositions: true}, slow, bad, good)
	defer r.Close()
	if _, err := r.Await(ctx, "good"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Await before Start = %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.append("Poison", 1)
	e.append("A", 1)

	short := func(names ...string) Freshness {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		fr, err := r.Await(actx, names...)
		if err != nil {
			t.Fatalf("Await(%v) = %v", names, err)
		}
		return fr
	}
	// The workers reach the new events in their own time (slowly under
	// -race on a busy machine): wait until the good one has caught up and
	// the poisoned one has stopped, rather than give each 50 ms.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if short("good").Status == ReadCurrent && short("bad").Status == ReadFailed {
			break
		}
	}
	for _, tc := range []struct {
		names  []string
		status Currency
		reason string
	}{
		{names: []string{"good"}, status: ReadCurrent},
		{names: []string{"slow"}, status: ReadLagging, reason: "slow had not caught up"},
		{names: []string{"bad"}, status: ReadFailed, reason: "bad stopped at 4 (Poison): poisoned event; rebuild"},
		{names: []string{"slow", "bad", "good"}, status: ReadFailed, reason: "bad stopped at 4"},
	} {
		fr := short(tc.names...)
		if fr.Status != tc.status || !strings.Contains(fr.Reason, tc.reason) || fr.Head != "5" {
			t.Errorf("Await(%v) = %+v, want %s (%q)", tc.names, fr, tc.status, tc.reason)
		}
	}
	if fr := short("good"); fr.Checkpoint != "5" {
		t.Errorf("checkpoint of a current read %+v", fr)
	}
	if _, err := r.Await(ctx, "nope"); !errors.Is(err, ErrUnknownProjection) {
		t.Fatalf("Await(nope) = %v", err)
	}
	close(slow.gate)
	// The slow one now folds the whole log; give it as long as the good one
	// had above rather than one 50 ms read.
	var fr Freshness
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fr = short("slow"); fr.Status == ReadCurrent {
			break
		}
	}
	if fr.Status != ReadCurrent {
		t.Errorf("once caught up: %+v", fr)
	}
}
