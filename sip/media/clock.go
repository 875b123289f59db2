package media

import "time"

// Clock is the time source of the RTP sender: it reads the time and waits
// for deadlines. Production code uses SystemClock; tests inject a fake that
// advances on command, so pacing is checked to the nanosecond without
// sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the sender uses.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Reset re-arms the timer to fire d from now.
	Reset(d time.Duration)
	// Stop stops the timer; it reports whether it was still armed.
	Stop() bool
}

// SystemClock is the wall clock, with Go runtime timers.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (s systemTimer) C() <-chan time.Time   { return s.t.C }
func (s systemTimer) Reset(d time.Duration) { s.t.Reset(d) }
func (s systemTimer) Stop() bool            { return s.t.Stop() }
