package console

import (
	"sync"
	"time"
)

// Sign-in attempts: a name or a client address with this many failures
// inside the window is refused until the oldest of them leaves it. Five
// per name stops guessing one user's password; the address bound is
// higher because a whole call centre may sit behind one NAT.
const (
	limitWindow     = 15 * time.Minute
	limitPerName    = 5
	limitPerAddress = 20
	// limitKeys bounds the memory the limiter holds; past it the oldest
	// records are forgotten first.
	limitKeys = 10000
)

// limiter counts failed sign-ins per name and per client address.
type limiter struct {
	clock func() time.Time
	mu    sync.Mutex
	fails map[string][]time.Time
}

func newLimiter(clock func() time.Time) *limiter {
	return &limiter{clock: clock, fails: make(map[string][]time.Time)}
}

func nameKey(name string) string { return "n:" + name }
func addrKey(addr string) string { return "a:" + addr }

// allowed reports whether a sign-in as name from addr may be tried now.
func (l *limiter) allowed(name, addr string) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(nameKey(name), now)) < limitPerName && len(l.recent(addrKey(addr), now)) < limitPerAddress
}

// failed records a failed sign-in.
func (l *limiter) failed(name, addr string) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= limitKeys {
		for k := range l.fails {
			if len(l.recent(k, now)) == 0 {
				delete(l.fails, k)
			}
		}
		if len(l.fails) >= limitKeys {
			clear(l.fails) // under a flood: forget rather than grow
		}
	}
	for _, k := range []string{nameKey(name), addrKey(addr)} {
		l.fails[k] = append(l.recent(k, now), now)
	}
}

// succeeded forgets a name's failures (not the address's: a guesser who
// knows one password must not reset the count for the rest).
func (l *limiter) succeeded(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, nameKey(name))
}

// recent returns k's failures inside the window, dropping older ones.
func (l *limiter) recent(k string, now time.Time) []time.Time {
	ts := l.fails[k]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= limitWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, k)
		return nil
	}
	l.fails[k] = ts
	return ts
}
