package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeLog is a global log the fake subscriptions read: record i is at
// position i+1.
type fakeLog struct {
	mu   sync.Mutex
	recs []item
	wake chan struct{}
}

func newFakeLog() *fakeLog { return &fakeLog{wake: make(chan struct{})} }

// add appends an event; keep false makes it a system event the store
// filters out.
func (l *fakeLog) add(keep bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := uint64(len(l.recs) + 1)
	p := events.Position{Commit: n, Prepare: n}
	it := item{event: true, pos: p, keep: keep}
	if keep {
		it.ev = events.Event{Stream: "s", Revision: n, Position: p}
	}
	l.recs = append(l.recs, it)
	close(l.wake)
	l.wake = make(chan struct{})
}

// fakeDialer scripts subscriptions over a fakeLog: each dial starts at an
// index of the log (overlap, to model a server that repeats the event it
// was asked to start after) and drops after a number of items.
type fakeDialer struct {
	log *fakeLog

	mu      sync.Mutex
	froms   []events.Position // what each dial asked for
	fails   []error           // errors for the next dials, in order
	dropAt  []int             // per successful dial: drop after this many items (0: never)
	overlap int               // how many events before from each dial repeats
	notices bool              // send a checkpoint notice before each event
}

func (d *fakeDialer) dial(ctx context.Context, from events.Position) (feed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.froms = append(d.froms, from)
	if len(d.fails) > 0 {
		err := d.fails[0]
		d.fails = d.fails[1:]
		return nil, err
	}
	start := max(int(from.Commit)-d.overlap, 0)
	drop := 0
	if len(d.dropAt) > 0 {
		drop, d.dropAt = d.dropAt[0], d.dropAt[1:]
	}
	return &fakeFeed{ctx: ctx, log: d.log, next: start, drop: drop, notices: d.notices}, nil
}

func (d *fakeDialer) dials() []events.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.froms)
}

type fakeFeed struct {
	ctx     context.Context
	log     *fakeLog
	next    int
	drop    int
	sent    int
	notices bool
	noticed bool
	closed  bool
}

var errDropped = errors.New("fake subscription dropped")

func (f *fakeFeed) Recv() (item, error) {
	for {
		if f.drop > 0 && f.sent == f.drop {
			return item{}, errDropped
		}
		f.log.mu.Lock()
		wake := f.log.wake
		var it item
		ok := f.next < len(f.log.recs)
		if ok {
			it = f.log.recs[f.next]
		}
		f.log.mu.Unlock()
		if ok {
			if f.notices && !f.noticed {
				f.noticed = true
				return item{}, nil
			}
			f.noticed = false
			f.next++
			f.sent++
			return it, nil
		}
		select {
		case <-wake:
		case <-f.ctx.Done():
			return item{}, f.ctx.Err()
		}
	}
}

func (f *fakeFeed) Close() { f.closed = true }

// recorder is a handler that records what it gets and checks order.
type recorder struct {
	mu   sync.Mutex
	got  []events.Position
	bad  error
	fail func(n int) error // error for the n-th call (1-based), if any
}

func (r *recorder) handle(_ context.Context, ev events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.got); n > 0 && !r.got[n-1].Less(ev.Position) && r.bad == nil {
		r.bad = fmt.Errorf("%v delivered after %v", ev.Position, r.got[n-1])
	}
	r.got = append(r.got, ev.Position)
	if r.fail != nil {
		return r.fail(len(r.got))
	}
	return nil
}

func (r *recorder) positions() []events.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func positions(ns ...uint64) []events.Position {
	out := make([]events.Position, len(ns))
	for i, n := range ns {
		out[i] = events.Position{Commit: n, Prepare: n}
	}
	return out
}

// sleeps records the pauses of a resubscriber instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ds)
}

func newResubscriber(d *fakeDialer, sl *sleeps) *resubscriber {
	return &resubscriber{dial: d.dial, log: slog.New(slog.DiscardHandler), min: 100 * time.Millisecond, max: 5 * time.Second, sleep: sl.sleep}
}

// waitUntil polls cond (tests poll, they do not sleep).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// runSub runs r in a goroutine and returns a function that cancels it and
// returns its error.
func runSub(t *testing.T, r *resubscriber, from events.Position, rec *recorder) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan error, 1)
	go func() { ch <- r.run(ctx, from, rec.handle) }()
	return func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}, ch
}

// A drop in the middle: the loop resubscribes after the last event it saw,
// and the server's overlap is not delivered again; system events are
// skipped but still move the place forward.
func TestResubscribeAfterDropNoDuplicateNoGap(t *testing.T) {
	log := newFakeLog()
	for i := range 10 {
		log.add(i != 4) // position 5 is a system event
	}
	d := &fakeDialer{log: log, dropAt: []int{3, 4, 0}, overlap: 2}
	sl := &sleeps{}
	rec := &recorder{}
	stop, _ := runSub(t, newResubscriber(d, sl), events.Start, rec)

	waitUntil(t, "10 events but one", func() bool { return len(rec.positions()) == 9 })
	log.add(true) // live, after the drops
	waitUntil(t, "the live event", func() bool { return len(rec.positions()) == 10 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("run after cancel = %v, want context.Canceled", err)
	}
	if rec.bad != nil {
		t.Fatal(rec.bad)
	}
	if got, want := rec.positions(), positions(1, 2, 3, 4, 6, 7, 8, 9, 10, 11); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	// First from the start, then after the last event seen: 3, then 5
	// (the system event at 5 counts as seen).
	if got, want := d.dials(), []events.Position{events.Start, positions(3)[0], positions(5)[0]}; !slices.Equal(got, want) {
		t.Fatalf("dials from %v, want %v", got, want)
	}
	if got := sl.all(); !slices.Equal(got, []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}) {
		t.Fatalf("pauses %v, want 100ms twice (each subscription delivered before it dropped)", got)
	}
}

func TestResubscribeFromPositionIsExclusive(t *testing.T) {
	log := newFakeLog()
	for range 6 {
		log.add(true)
	}
	d := &fakeDialer{log: log, overlap: 3}
	rec := &recorder{}
	stop, _ := runSub(t, newResubscriber(d, &sleeps{}), positions(4)[0], rec)
	waitUntil(t, "events 5 and 6", func() bool { return len(rec.positions()) == 2 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
	if got := rec.positions(); !slices.Equal(got, positions(5, 6)) {
		t.Fatalf("delivered %v, want 5, 6", got)
	}
}

// Failed dials are retried with a pause that doubles up to the maximum
// and goes back to the minimum once a subscription delivers.
func TestResubscribeBackoff(t *testing.T) {
	log := newFakeLog()
	log.add(true)
	unavailable := fmt.Errorf("%w: connection refused", events.ErrUnavailable)
	fails := make([]error, 9)
	for i := range fails {
		fails[i] = unavailable
	}
	d := &fakeDialer{log: log, fails: fails, dropAt: []int{1, 0}}
	sl := &sleeps{}
	rec := &recorder{}
	stop, _ := runSub(t, newResubscriber(d, sl), events.Start, rec)
	waitUntil(t, "the event", func() bool { return len(rec.positions()) == 1 })
	waitUntil(t, "the dial after the drop", func() bool { return len(d.dials()) == 11 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 5000 * ms, 100 * ms}
	if got := sl.all(); !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
}

func TestResubscribeHandlerErrorEndsIt(t *testing.T) {
	log := newFakeLog()
	for range 5 {
		log.add(true)
	}
	boom := errors.New("boom")
	d := &fakeDialer{log: log, notices: true}
	rec := &recorder{fail: func(n int) error {
		if n == 3 {
			return boom
		}
		return nil
	}}
	_, done := runSub(t, newResubscriber(d, &sleeps{}), events.Start, rec)
	select {
	case err := <-done:
		var hf *handlerFailed
		if !errors.As(err, &hf) || hf.err != boom {
			t.Fatalf("run = %v, want the handler's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the handler failed")
	}
	if got := rec.positions(); len(got) != 3 {
		t.Fatalf("handler called %d times, want 3", len(got))
	}
	if len(d.dials()) != 1 {
		t.Fatalf("dialled %d times, want 1", len(d.dials()))
	}
}

func TestResubscribeGivesUpOnPermanentErrors(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("subscribe: %w", events.ErrClosed),
		fmt.Errorf("%w: bad credentials", ErrPermission),
	} {
		d := &fakeDialer{log: newFakeLog(), fails: []error{err}}
		sl := &sleeps{}
		got := newResubscriber(d, sl).run(t.Context(), events.Start, (&recorder{}).handle)
		if !errors.Is(got, err) {
			t.Fatalf("run = %v, want %v", got, err)
		}
		if len(sl.all()) != 0 {
			t.Fatalf("paused %v before giving up", sl.all())
		}
	}
}

func TestResubscribeContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d := &fakeDialer{log: newFakeLog()}
	if err := newResubscriber(d, &sleeps{}).run(ctx, events.Start, (&recorder{}).handle); !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if len(d.dials()) != 0 {
		t.Fatal("dialled with a done context")
	}

	// A deadline while waiting for events.
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	log := newFakeLog()
	log.add(true)
	rec := &recorder{}
	if err := newResubscriber(&fakeDialer{log: log}, &sleeps{}).run(ctx, events.Start, rec.handle); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run = %v, want context.DeadlineExceeded", err)
	}
	if len(rec.positions()) != 1 {
		t.Fatalf("delivered %d events, want 1", len(rec.positions()))
	}
}

func TestSleepCtx(t *testing.T) {
	if err := sleepCtx(t.Context(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("sleepCtx with a done context = %v after %v", err, time.Since(start))
	}
}
