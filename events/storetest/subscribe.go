package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

// promptly is how soon Subscribe must return once its context is done or
// its handler failed.
const promptly = 2 * time.Second

// delivery is how long the suite waits for a subscriber to see an event.
const delivery = 10 * time.Second

// subscription runs Store.Subscribe in a goroutine and records what its
// handler sees.
type subscription struct {
	h      *harness
	cancel context.CancelFunc
	// hook, if set, is called for each of the case's events after it is
	// recorded; its error is the handler's.
	hook func(ctx context.Context, ev events.Event) error

	inflight atomic.Int32
	finished chan struct{} // closed when Subscribe returned
	err      error         // what Subscribe returned, once finished

	mu      sync.Mutex
	got     []events.Event // the case's events, as delivered
	last    events.Position
	failed  bool  // the handler returned an error
	problem error // the first broken promise seen by the handler
}

// subscribe starts a subscription from from. A cleanup stops it before the
// store is closed.
func (h *harness) subscribe(from events.Position, hook func(ctx context.Context, ev events.Event) error) *subscription {
	ctx, cancel := context.WithCancel(h.ctx)
	s := &subscription{h: h, cancel: cancel, hook: hook, finished: make(chan struct{}), last: from}
	go func() {
		defer close(s.finished)
		s.err = h.s.Subscribe(ctx, from, s.handle)
	}()
	t := h.t
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.finished:
		case <-time.After(delivery):
			t.Errorf("Subscribe from %v did not return within %v of its context's cancellation", from, delivery)
		}
	})
	return s
}

func (s *subscription) handle(ctx context.Context, ev events.Event) error {
	if n := s.inflight.Add(1); n != 1 {
		s.report(fmt.Errorf("handler called by %d goroutines at once", n))
	}
	defer s.inflight.Add(-1)

	s.mu.Lock()
	if s.failed {
		s.problemLocked(fmt.Errorf("handler called with %s@%d after it returned an error", ev.Stream, ev.Revision))
	}
	if err := s.h.follows(s.last, ev.Position); err != nil {
		s.problemLocked(fmt.Errorf("%s@%d delivered after %v: %v (a gap, a duplicate or out of order)", ev.Stream, ev.Revision, s.last, err))
	}
	s.last = ev.Position
	mine := s.h.mine(ev)
	if mine {
		s.got = append(s.got, ev)
	}
	s.mu.Unlock()

	if !mine || s.hook == nil {
		return nil
	}
	err := s.hook(ctx, ev)
	if err != nil {
		s.mu.Lock()
		s.failed = true
		s.mu.Unlock()
	}
	return err
}

func (s *subscription) report(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problemLocked(err)
}

func (s *subscription) problemLocked(err error) {
	if s.problem == nil {
		s.problem = err
	}
}

// events returns the case's events delivered so far, and fails the test on
// a broken promise.
func (s *subscription) events(t *testing.T) []events.Event {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problem != nil {
		t.Fatalf("subscription: %v", s.problem)
	}
	return append([]events.Event(nil), s.got...)
}

// waitFor waits until n of the case's events were delivered, then checks
// that they are exactly want, at the positions the log has them.
func (s *subscription) waitFor(t *testing.T, want []events.Event) {
	t.Helper()
	checkFor(t, delivery, 2*time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.problem != nil {
			return nil // reported below
		}
		select {
		case <-s.finished:
			return nil // reported below
		default:
		}
		// Delivery is in order: once past the last event wanted, a missing
		// one will never come.
		if len(s.got) < len(want) && s.last.Less(want[len(want)-1].Position) {
			return fmt.Errorf("subscriber saw %d of %d events", len(s.got), len(want))
		}
		return nil
	})
	got := s.events(t)
	select {
	case <-s.finished:
		if len(got) < len(want) {
			t.Fatalf("Subscribe returned %v after delivering %d of %d events", s.err, len(got), len(want))
		}
	default:
	}
	wantIDs(t, "subscription", got, ids(want))
	for i := range got {
		if got[i].Position != want[i].Position || got[i].Stream != want[i].Stream || got[i].Revision != want[i].Revision {
			t.Fatalf("subscription delivered %s@%d at %v, the log has %s@%d at %v",
				got[i].Stream, got[i].Revision, got[i].Position, want[i].Stream, want[i].Revision, want[i].Position)
		}
	}
}

// wait waits for Subscribe to return by itself and returns its error.
func (s *subscription) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-s.finished:
		return s.err
	case <-time.After(within):
		t.Fatalf("Subscribe still running after %v", within)
		return nil
	}
}

// stop cancels the subscription and checks that Subscribe returns
// promptly with context.Canceled.
func (s *subscription) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	start := time.Now()
	err := s.wait(t, promptly)
	wantErrIs(t, "Subscribe after cancel", err, context.Canceled)
	t.Logf("Subscribe returned %v after %v", err, time.Since(start).Round(time.Microsecond))
	s.events(t) // any broken promise
}

// writeConcurrently has writers append n single- or double-event appends
// each to their own streams, counting appends in progress.
func (h *harness) writeConcurrently(t *testing.T, name string, writers, n int, progress *atomic.Int64) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := h.stream(name + "-" + strconv.Itoa(w))
			exp, next := events.NoStream, 0
			for a := range n {
				size := 1 + a%2
				res, err := h.s.Append(h.ctx, stream, exp, h.batch(stream, next, size)...)
				if err != nil {
					t.Errorf("%s: Append: %v", stream, err)
					return
				}
				exp, next = events.Exact(res.LastRevision), next+size
				if progress != nil {
					progress.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// testSubscribeCatchUpToLive: subscribers started before, while and after
// writers append see every event after from exactly once, in order, the
// stored ones and then the live ones, with no gap or duplicate where
// catch-up turns into live.
func testSubscribeCatchUpToLive(t *testing.T, h *harness) {
	for i := range 3 {
		s := h.stream("stored-" + strconv.Itoa(i))
		for a := range 4 {
			h.append(s, events.Any, h.batch(s, 5*a, 5)...)
		}
	}

	const writers, appends = 3, 40
	var progress atomic.Int64
	subs := []*subscription{h.subscribe(h.base, nil)}
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Start more subscribers while the writers are at a quarter, a
		// half and three quarters of their work.
		defer close(started)
		for _, part := range []int64{1, 2, 3} {
			for progress.Load() < part*writers*appends/4 {
				select {
				case <-h.ctx.Done():
					return
				case <-time.After(200 * time.Microsecond):
				}
			}
			subs = append(subs, h.subscribe(h.base, nil))
		}
	})
	h.writeConcurrently(t, "live", writers, appends, &progress)
	<-started
	wg.Wait()
	subs = append(subs, h.subscribe(h.base, nil))

	want := h.log()
	if n := 60 + writers*appends*3/2; len(want) != n {
		t.Fatalf("global log has %d of the case's events, want %d", len(want), n)
	}
	for _, s := range subs {
		s.waitFor(t, want)
	}
	// All of them are live now: one more event reaches each once.
	h.append(h.stream("stored-0"), events.Exact(19), h.event("last", 0))
	want = h.log()
	for _, s := range subs {
		s.waitFor(t, want)
	}
	for _, s := range subs {
		s.stop(t)
	}
}

// testSubscribeSlowHandler: a handler that stalls while writers append
// (so that the subscription falls far behind the live log) still sees
// every event once, in order.
func testSubscribeSlowHandler(t *testing.T, h *harness) {
	stream := h.stream("before")
	h.append(stream, events.NoStream, h.batch(stream, 0, 10)...)

	release := make(chan struct{})
	var stalled atomic.Bool
	sub := h.subscribe(h.base, func(ctx context.Context, ev events.Event) error {
		if stalled.CompareAndSwap(false, true) {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	checkFor(t, delivery, time.Millisecond, func() error {
		if !stalled.Load() {
			return errors.New("the handler was not called")
		}
		return nil
	})
	h.writeConcurrently(t, "behind", 3, 60, nil)
	close(release)

	want := h.log()
	if len(want) != 10+3*90 {
		t.Fatalf("global log has %d of the case's events, want %d", len(want), 10+3*90)
	}
	sub.waitFor(t, want)
	h.append(stream, events.Exact(9), h.event("after", 0))
	sub.waitFor(t, h.log())
	sub.stop(t)
}

// testSubscribeFromMiddle: a subscription from a position starts right
// after it, and one from Head sees only new events.
func testSubscribeFromMiddle(t *testing.T, h *harness) {
	a, b := h.stream("mid-a"), h.stream("mid-b")
	for i := range 5 {
		s := a
		if i%2 == 1 {
			s = b
		}
		h.append(s, events.Any, h.batch("mid", 2*i, 2)...)
	}
	all := h.log()
	middle := h.subscribe(all[4].Position, nil)
	middle.waitFor(t, all[5:])
	fromHead := h.subscribe(h.head(), nil)
	var fromStart *subscription
	if !h.features.SharedLog {
		fromStart = h.subscribe(events.Start, nil)
		fromStart.waitFor(t, all)
	}

	h.append(a, events.Any, h.batch("mid", 10, 2)...)
	all = h.log()
	middle.waitFor(t, all[5:])
	fromHead.waitFor(t, all[10:])
	if fromStart != nil {
		fromStart.waitFor(t, all)
		fromStart.stop(t)
	}
	middle.stop(t)
	fromHead.stop(t)
}

// testSubscribeHandlerError: a handler's error ends Subscribe with that
// error, during catch-up and live, and the handler is not called again.
func testSubscribeHandlerError(t *testing.T, h *harness) {
	stream := h.stream("fail")
	h.append(stream, events.NoStream, h.batch(stream, 0, 5)...)

	errCatchUp := errors.New("handler failed during catch-up")
	var calls atomic.Int32
	sub := h.subscribe(h.base, func(context.Context, events.Event) error {
		if calls.Add(1) == 3 {
			return errCatchUp
		}
		return nil
	})
	wantErrIs(t, "Subscribe with a failing handler", sub.wait(t, promptly+delivery), errCatchUp)
	if got := sub.events(t); len(got) != 3 || calls.Load() != 3 {
		t.Fatalf("handler saw %d events (%d calls), want 3: it failed on the third", len(got), calls.Load())
	}

	errLive := errors.New("handler failed on a live event")
	var liveCalls atomic.Int32
	live := h.subscribe(h.head(), func(context.Context, events.Event) error {
		liveCalls.Add(1)
		return errLive
	})
	for i := range 3 {
		h.append(stream, events.Exact(uint64(4+i)), h.event("live", i))
	}
	wantErrIs(t, "Subscribe with a handler failing live", live.wait(t, promptly+delivery), errLive)
	if got := live.events(t); len(got) != 1 || liveCalls.Load() != 1 {
		t.Fatalf("handler saw %d events (%d calls), want 1: it failed on the first", len(got), liveCalls.Load())
	}
}

// testSubscribeCancel: cancelling the context ends Subscribe promptly with
// context.Canceled, whether it is catching up, live, or in the handler;
// a deadline ends it with context.DeadlineExceeded.
func testSubscribeCancel(t *testing.T, h *harness) {
	stream := h.stream("cancel")
	h.append(stream, events.NoStream, h.batch(stream, 0, 3)...)

	// Live, waiting for events.
	live := h.subscribe(h.base, nil)
	live.waitFor(t, h.log())
	live.stop(t)

	// In the handler, which waits for its context.
	var entered atomic.Bool
	inHandler := h.subscribe(h.base, func(ctx context.Context, ev events.Event) error {
		entered.Store(true)
		<-ctx.Done()
		return ctx.Err()
	})
	checkFor(t, delivery, time.Millisecond, func() error {
		if !entered.Load() {
			return errors.New("the handler was not called")
		}
		return nil
	})
	inHandler.stop(t)

	// Before the first event: a new stream's worth of nothing.
	quiet := h.subscribe(h.head(), nil)
	quiet.stop(t)

	ctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.s.Subscribe(ctx, h.base, func(context.Context, events.Event) error { return nil }) }()
	select {
	case err := <-done:
		wantErrIs(t, "Subscribe past its deadline", err, context.DeadlineExceeded)
	case <-time.After(100*time.Millisecond + promptly):
		t.Fatalf("Subscribe still running %v after its deadline", promptly)
	}
}
