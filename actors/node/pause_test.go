package node

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The pause detector fences a node whose ticks stopped for longer than the
// limit, whether the ticker or a grain notices first, and only a read of
// etcd started after the pause confirms it again.
func TestPauseDetectorFencesAfterAGap(t *testing.T) {
	const limit = time.Second
	type step struct {
		name string
		do   func(p *pauseDetector, c *fakeClock) // then check is asserted
		// fenced is what check must say after do.
		fenced bool
	}
	tickEvery := func(n int) func(p *pauseDetector, c *fakeClock) {
		return func(p *pauseDetector, c *fakeClock) {
			for range n {
				c.Advance(100 * time.Millisecond)
				if p.tick() {
					t.Fatal("a tick on time reported a pause")
				}
			}
		}
	}
	var readStarted time.Time
	cases := []struct {
		name  string
		steps []step
	}{
		{"ticks on time: never fenced", []step{
			{"ten ticks", tickEvery(10), false},
			{"slow tick under the limit", func(p *pauseDetector, c *fakeClock) {
				c.Advance(limit)
				if p.tick() {
					t.Fatal("a gap of exactly the limit reported a pause")
				}
			}, false},
		}},
		{"the ticker notices the gap", []step{
			{"ticks", tickEvery(3), false},
			{"paused 7 s, then a tick", func(p *pauseDetector, c *fakeClock) {
				c.Advance(7 * time.Second)
				if !p.tick() {
					t.Fatal("a 7 s gap was not reported")
				}
			}, true},
			{"ticks on time again, not confirmed", tickEvery(5), true},
			{"a read confirms", func(p *pauseDetector, c *fakeClock) {
				if !p.confirm(c.Now()) {
					t.Fatal("a read started after the pause did not confirm")
				}
			}, false},
		}},
		{"a grain checks before the ticker woke", []step{
			{"ticks", tickEvery(2), false},
			{"paused, no tick yet", func(_ *pauseDetector, c *fakeClock) { c.Advance(1500 * time.Millisecond) }, true},
			{"the late tick keeps it fenced", func(p *pauseDetector, c *fakeClock) {
				c.Advance(time.Millisecond)
				p.tick()
			}, true},
		}},
		{"a read started before the pause confirms nothing", []step{
			{"a read starts", func(_ *pauseDetector, c *fakeClock) { readStarted = c.Now() }, false},
			{"paused 4 s", func(p *pauseDetector, c *fakeClock) {
				c.Advance(4 * time.Second)
				p.tick()
			}, true},
			{"the old read answers", func(p *pauseDetector, _ *fakeClock) {
				if p.confirm(readStarted) {
					t.Fatal("a read that started before the pause confirmed the node")
				}
			}, true},
			{"a new read answers", func(p *pauseDetector, c *fakeClock) { p.confirm(c.Now()) }, false},
		}},
		{"a stopped watch's silence is no pause", []step{
			{"stopped", func(p *pauseDetector, c *fakeClock) {
				p.stop()
				c.Advance(time.Minute)
			}, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			p := newPauseDetector(c.Now, limit)
			for _, s := range tc.steps {
				s.do(p, c)
				err := p.check()
				if got := err != nil; got != s.fenced {
					t.Fatalf("after %q: fenced=%v (%v), want %v", s.name, got, err, s.fenced)
				}
				if err != nil && !errors.Is(err, ErrFenced) {
					t.Fatalf("after %q: %v does not wrap ErrFenced", s.name, err)
				}
			}
		})
	}
}

// A Watch's Fence trips on a gap in its ticks even while etcd is not
// asked (no client needed: the check is the clock's), asks for a probe,
// and says lost once the membership is lost.
func TestWatchFenceTripsOnPauseAndLoss(t *testing.T) {
	c := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	w := &Watch{
		key: "k", lost: make(chan struct{}), log: slog.New(slog.DiscardHandler), now: c.Now,
		pause: newPauseDetector(c.Now, time.Second), wake: make(chan struct{}, 1),
	}
	if err := w.Fence(); err != nil {
		t.Fatalf("fresh watch fenced: %v", err)
	}
	c.Advance(2 * time.Second)
	if err := w.Fence(); !errors.Is(err, ErrFenced) {
		t.Fatalf("after a 2 s gap: %v, want ErrFenced", err)
	}
	select {
	case <-w.wake:
	default:
		t.Fatal("a tripped fence did not ask for a probe")
	}
	w.pause.confirm(c.Now())
	w.pause.tick()
	if err := w.Fence(); err != nil {
		t.Fatalf("confirmed watch fenced: %v", err)
	}
	w.loseMembership("key %s gone", w.key)
	if err := w.Fence(); !errors.Is(err, ErrFenced) || !errors.Is(err, ErrMembershipLost) {
		t.Fatalf("lost membership: %v, want ErrFenced and ErrMembershipLost", err)
	}
}
