package actortest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	c := actortest.NewClock(actortest.Epoch)
	if got := c.Now(); !got.Equal(actortest.Epoch) {
		t.Fatalf("new clock shows %v, want %v", got, actortest.Epoch)
	}
	if got := c.Advance(90 * time.Second); !got.Equal(actortest.Epoch.Add(90*time.Second)) || !c.Now().Equal(got) {
		t.Fatalf("Advance returned %v, Now %v; want both %v", got, c.Now(), actortest.Epoch.Add(90*time.Second))
	}
	back := actortest.Epoch.Add(-time.Hour)
	c.Set(back)
	if got := c.Now(); !got.Equal(back) {
		t.Fatalf("after Set, Now %v, want %v", got, back)
	}
}

func TestSleepMovesTheClockAndIsRemembered(t *testing.T) {
	c := actortest.NewClock(actortest.Epoch)
	c.Sleep(100 * time.Millisecond)
	c.Sleep(200 * time.Millisecond)
	if got, want := c.Now(), actortest.Epoch.Add(300*time.Millisecond); !got.Equal(want) {
		t.Fatalf("after two sleeps Now is %v, want %v", got, want)
	}
	if got := c.Slept(); len(got) != 2 || got[0] != 100*time.Millisecond || got[1] != 200*time.Millisecond {
		t.Fatalf("Slept() = %v, want [100ms 200ms]", got)
	}
	c.Advance(time.Second)
	if got := c.Slept(); len(got) != 2 {
		t.Fatalf("Advance counted as a sleep: %v", got)
	}
}

// Run with -race: readers on other goroutines while the test advances.
func TestClockIsSafeForConcurrentUse(t *testing.T) {
	c := actortest.NewClock(actortest.Epoch)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				c.Advance(time.Millisecond)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), actortest.Epoch.Add(4*time.Second); !got.Equal(want) {
		t.Fatalf("after 4000 advances of 1 ms: %v, want %v", got, want)
	}
}

func TestFixedRandMakesTheCodeKnown(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		code, err := call.DrawCode(actortest.FixedRand("47"), n)
		if err != nil {
			t.Fatal(err)
		}
		if want := "47474"[:n]; code != want {
			t.Errorf("%d-digit code %q, want %q", n, code, want)
		}
	}
	// Each Read starts again: two codes from one source are equal.
	r := actortest.FixedRand("123")
	a, _ := call.DrawCode(r, 3)
	b, _ := call.DrawCode(r, 3)
	if a != "123" || b != "123" {
		t.Errorf("codes %q and %q from one source, want 123 twice", a, b)
	}
}

func TestEventuallyWaitsForTheCheck(t *testing.T) {
	var calls atomic.Int32
	start := time.Now()
	actortest.Eventually(t, 5*time.Second, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("check called %d times, want 3 (stop at the first nil)", n)
	}
	if took := time.Since(start); took < 2*actortest.PollInterval {
		t.Errorf("3 checks took %v: Eventually does not wait between checks", took)
	}
}

// recorder is a testing.TB that keeps what a helper reports.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = fmt.Sprintf(format, args...)
	r.mu.Unlock()
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	rec := &recorder{TB: t}
	var n int
	start := time.Now()
	actortest.Eventually(rec, 50*time.Millisecond, func() error {
		n++
		return fmt.Errorf("attempt %d failed", n)
	})
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", took)
	}
	if want := fmt.Sprintf("attempt %d failed", n); n < 2 || !strings.Contains(rec.failed, want) {
		t.Errorf("failure %q after %d checks, want one naming the last error %q", rec.failed, n, want)
	}
}

// countingStore counts appends, to show the wrapper is what grains use.
type countingStore struct {
	events.Store
	appends atomic.Int32
}

func (s *countingStore) Append(ctx context.Context, stream string, exp events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	s.appends.Add(1)
	return s.Store.Append(ctx, stream, exp, evs...)
}

func TestNodeHostsGrainsOnItsStore(t *testing.T) {
	clock := actortest.NewClock(actortest.Epoch)
	var counting *countingStore
	n, err := actortest.Start(context.Background(),
		actortest.WithClock(clock.Now),
		actortest.WithStoreWrapper(func(s events.Store) events.Store {
			counting = &countingStore{Store: s}
			return counting
		}))
	if err != nil {
		t.Fatal(err)
	}
	if n.Store != events.Store(counting) || n.Deps.Store != n.Store {
		t.Fatalf("node store %T, grains' %T: want the wrapper for both", n.Store, n.Deps.Store)
	}
	const number = "+79990001122"
	v, err := n.Callers.Admit(context.Background(), number, caller.Admit{CallID: "c1", Kind: phone.KindE164})
	if err != nil {
		t.Fatal(err)
	}
	if v.Verdict != schema.Pass || counting.appends.Load() != 1 {
		t.Fatalf("verdict %+v after %d appends through the wrapper, want a pass after 1", v, counting.appends.Load())
	}
	evs, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("caller stream %v, %v: want the one CallReceived", evs, err)
	}
	p, err := schema.NewRegistry().Decode(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	if cr, ok := p.(*schema.CallReceived); !ok || !cr.At.Equal(actortest.Epoch) {
		t.Fatalf("first event %+v, want a CallReceived at the fake clock's %v", p, actortest.Epoch)
	}
	dir := n.Dir
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary store directory %s left behind: %v", dir, err)
	}
}
