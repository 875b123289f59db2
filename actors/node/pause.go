package node

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFenced is the sentinel of Fence's errors: this node may no longer own
// the grains it hosts, so they must not write.
var ErrFenced = errors.New("membership unconfirmed: this node's grains must not write")

// Pause detection: a process stopped (SIGSTOP, a VM freeze, a long GC or a
// starved scheduler) for longer than its etcd lease has been removed by the
// others and its numbers re-activated elsewhere, yet after it resumes its
// stale grains run before any watch or probe of etcd could tell it so. The
// store's expected revision fences their first append, but a grain that
// reloads and appends again would write between the new owner's writes.
// So the node times itself: a ticker notes each tick; a gap between ticks
// (or since the last tick, for a check that runs before the ticker's own
// goroutine woke) longer than the limit, well under the lease TTL, means
// the lease may be gone. The node is then unconfirmed, and its grains
// fenced, until a read of its own key that started after the gap finds the
// registration intact (or finds it gone: the membership is lost).

// DefaultPauseLimit is the gap between pause-detector ticks past which a
// node's membership must be confirmed again: a third of the lease TTL,
// so a node that was stopped long enough to lose its lease never writes
// before it has asked etcd.
const DefaultPauseLimit = EtcdLeaseTTL / 3

// DefaultPauseTick is how often the pause detector ticks.
const DefaultPauseTick = 100 * time.Millisecond

// pauseDetector is the clock side of fencing, apart from etcd so that
// tests can drive it with a fake clock.
type pauseDetector struct {
	now   func() time.Time
	limit time.Duration

	mu   sync.Mutex
	last time.Time // the last tick (with its monotonic reading)
	// suspect is when the node became unconfirmed; zero while confirmed.
	suspect time.Time
	// stopped: ticks no longer come (the watch stopped), so their absence
	// says nothing.
	stopped bool
}

func newPauseDetector(now func() time.Time, limit time.Duration) *pauseDetector {
	return &pauseDetector{now: now, limit: limit, last: now()}
}

// tick records a tick; it reports whether the gap since the previous one
// made the node unconfirmed (so that the caller asks etcd at once).
func (p *pauseDetector) tick() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	gap := now.Sub(p.last)
	p.last = now
	if gap > p.limit {
		if p.suspect.IsZero() {
			p.suspect = now
		}
		return true
	}
	return false
}

// check is nil while the node is confirmed and its ticks are on time.
func (p *pauseDetector) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.stopped {
		if gap := now.Sub(p.last); gap > p.limit && p.suspect.IsZero() {
			// The ticker has not run for longer than the limit: this
			// goroutine woke first after a pause.
			p.suspect = now
		}
	}
	if !p.suspect.IsZero() {
		return fmt.Errorf("%w: no tick for over %v (process paused or starved) since %s; waiting for etcd to confirm the registration",
			ErrFenced, p.limit, p.suspect.Format(time.RFC3339Nano))
	}
	return nil
}

// confirm clears the suspicion when a read of the node's key that started
// at readStarted, after the node became unconfirmed, found it intact. A
// read started before could have been answered while the lease was alive.
func (p *pauseDetector) confirm(readStarted time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.suspect.IsZero() || readStarted.Before(p.suspect) {
		return false
	}
	p.suspect = time.Time{}
	// The gap is accounted for: a tick yet to come after it is no new
	// pause.
	p.last = p.now()
	return true
}

// stop marks that no more ticks come.
func (p *pauseDetector) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
}
