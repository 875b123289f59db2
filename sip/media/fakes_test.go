package media

import (
	"net"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test says. Every timer it
// arms is announced on armed with its deadline, so a test can wait for the
// sender to go to sleep and see exactly when it asked to wake up.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan time.Time
	// auto fires every timer as soon as it is armed, moving the clock to
	// its deadline: media plays at full speed with exact timestamps.
	auto bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC), armed: make(chan time.Time, 1024)}
}

type fakeTimer struct {
	c     *fakeClock
	ch    chan time.Time
	when  time.Time
	armed bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	select { // drop a stale tick, as time.Timer does since Go 1.23
	case <-t.ch:
	default:
	}
	t.when, t.armed = c.now.Add(d), true
	when := t.when
	if c.auto {
		c.now = when
		t.fireLocked()
	}
	c.mu.Unlock()
	if !c.auto {
		c.armed <- when
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}

func (t *fakeTimer) fireLocked() {
	t.armed = false
	t.ch <- t.c.now
}

// set moves the clock to at and fires the timers due by then.
func (c *fakeClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	for _, t := range c.timers {
		if t.armed && !t.when.After(at) {
			t.fireLocked()
		}
	}
}

// nextDeadline waits for the sender to arm a timer and returns its deadline.
func (c *fakeClock) nextDeadline(t *testing.T) time.Time {
	t.Helper()
	select {
	case d := <-c.armed:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("sender armed no timer")
		return time.Time{}
	}
}

// sentPacket is one datagram a capture conn received, with the fake time.
type sentPacket struct {
	b  []byte
	at time.Time
	to net.Addr
}

// captureConn is a PacketConn that records what is written to it.
type captureConn struct {
	clock *fakeClock
	mu    sync.Mutex
	sent  []sentPacket
}

func (c *captureConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, sentPacket{append([]byte(nil), b...), c.clock.Now(), addr})
	return len(b), nil
}

func (c *captureConn) packets() []sentPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentPacket(nil), c.sent...)
}

func (c *captureConn) ReadFrom([]byte) (int, net.Addr, error) { select {} }
func (c *captureConn) Close() error                           { return nil }
func (c *captureConn) LocalAddr() net.Addr                    { return &net.UDPAddr{} }
func (c *captureConn) SetDeadline(time.Time) error            { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error        { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error       { return nil }
