package trust

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultMaxTracked is how many distinct refused source addresses a
// Refused counter tracks by default. At about 100 bytes an entry (the map
// slot, the address, the counter) that is under 100 KiB however many
// sources send.
const DefaultMaxTracked = 1024

// Refused counts requests refused because their source is not trusted, per
// source address, in bounded memory.
//
// Bound: at most max distinct addresses are tracked individually; they are
// the first max distinct addresses seen since the last Reset. Refusals from
// any other address are added to one Untracked counter instead, so a flood
// from spoofed or rotating addresses (an IPv6 attacker has 2^64 addresses
// in one /64) costs a fixed amount of memory and is still visible in Total
// and Untracked. Entries are never evicted one by one: eviction would let a
// flood push out the few real offenders an operator wants to see. Reset
// (for example after each metrics scrape or report) starts over.
//
// The hot path (a source already tracked) takes a read lock and one atomic
// add; a new source takes the write lock once.
type Refused struct {
	max       int
	total     atomic.Uint64
	untracked atomic.Uint64

	mu     sync.RWMutex
	counts map[netip.Addr]*atomic.Uint64
}

// NewRefused returns a counter tracking at most max distinct sources
// (DefaultMaxTracked if max < 1).
func NewRefused(max int) *Refused {
	if max < 1 {
		max = DefaultMaxTracked
	}
	return &Refused{max: max, counts: make(map[netip.Addr]*atomic.Uint64)}
}

// Add counts one refusal from a. The address is unmapped and stripped of
// its zone so one peer has one entry.
func (r *Refused) Add(a netip.Addr) {
	r.total.Add(1)
	a = a.Unmap().WithZone("")
	r.mu.RLock()
	c := r.counts[a]
	r.mu.RUnlock()
	if c != nil {
		c.Add(1)
		return
	}
	r.mu.Lock()
	c = r.counts[a]
	if c == nil {
		if len(r.counts) >= r.max {
			r.mu.Unlock()
			r.untracked.Add(1)
			return
		}
		c = new(atomic.Uint64)
		r.counts[a] = c
	}
	r.mu.Unlock()
	c.Add(1)
}

// Total returns all refusals counted since the last Reset.
func (r *Refused) Total() uint64 { return r.total.Load() }

// Untracked returns the refusals from sources that were not tracked
// individually because the bound was reached.
func (r *Refused) Untracked() uint64 { return r.untracked.Load() }

// Max returns the bound on individually tracked sources.
func (r *Refused) Max() int { return r.max }

// SourceCount is one refused source and its count.
type SourceCount struct {
	Addr  netip.Addr
	Count uint64
}

// Top returns up to n tracked sources with the highest counts, highest
// first (ties by address); n < 1 returns all of them.
func (r *Refused) Top(n int) []SourceCount {
	r.mu.RLock()
	out := make([]SourceCount, 0, len(r.counts))
	for a, c := range r.counts {
		out = append(out, SourceCount{Addr: a, Count: c.Load()})
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b SourceCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Count returns the refusals counted for a (0 if a is not tracked).
func (r *Refused) Count(a netip.Addr) uint64 {
	r.mu.RLock()
	c := r.counts[a.Unmap().WithZone("")]
	r.mu.RUnlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// Reset forgets every count.
func (r *Refused) Reset() {
	r.mu.Lock()
	r.counts = make(map[netip.Addr]*atomic.Uint64)
	r.total.Store(0)
	r.untracked.Store(0)
	r.mu.Unlock()
}
