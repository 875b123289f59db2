package guard

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// boundedListener bounds the guard's SIP TCP side, which sipgo v1.7.3
// leaves open: its TransportTCP accepts every connection and keeps it
// until the peer closes it (no cap, no idle close), and one Accept error
// ends its Serve loop for good. Wrapped around the listener handed to
// sipgo, it
//
//   - closes a connection at once when max are open (counted by shed),
//     rather than leaving it in the kernel's backlog where the peer
//     believes it connected;
//   - gives each accepted connection a read deadline renewed by every
//     read, so one on which nothing arrives for idle is closed (sipgo's
//     reader sees the timeout and drops the connection; a trunk's
//     keep-alives or traffic renew it);
//   - retries temporary Accept errors (EMFILE under a flood) after a
//     short pause instead of returning them to sipgo.
type boundedListener struct {
	net.Listener
	max  int64
	idle time.Duration
	shed func() // a connection closed at accept for max

	open atomic.Int64
}

func newBoundedListener(l net.Listener, max int, idle time.Duration, shed func()) *boundedListener {
	return &boundedListener{Listener: l, max: int64(max), idle: idle, shed: shed}
}

// Accept returns the next connection within the bound.
func (l *boundedListener) Accept() (net.Conn, error) {
	pause := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				time.Sleep(pause)
				pause = min(2*pause, time.Second)
				continue
			}
			return nil, err
		}
		pause = 5 * time.Millisecond
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.shed() // counted before the peer can see the close
			c.Close()
			continue
		}
		return &idleConn{Conn: c, idle: l.idle, done: func() { l.open.Add(-1) }}, nil
	}
}

// Open is the accepted connections open now.
func (l *boundedListener) Open() int { return int(l.open.Load()) }

// isTemporary reports an Accept error worth retrying (out of descriptors,
// a connection reset before it was accepted).
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// idleConn is an accepted connection whose reads time out after idle
// without data; its slot is released once when it is closed.
type idleConn struct {
	net.Conn
	idle time.Duration
	once sync.Once
	done func()
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *idleConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
