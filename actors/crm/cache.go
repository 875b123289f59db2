package crm

import (
	"sync"
	"time"
)

// cache keeps answers by number until their expiry, at most size of them.
// When full, expired entries of a random sample go first, else one
// arbitrary entry (map order): bounded memory and a cheap insert matter
// more here than the best hit rate, and a number evicted costs one more
// request within the budget.
type cache struct {
	mu   sync.Mutex
	size int
	m    map[string]entry
}

type entry struct {
	a       Answer
	expires time.Time
}

func newCache(size int) *cache { return &cache{size: size, m: make(map[string]entry)} }

func (c *cache) get(number string, now time.Time) (Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[number]
	if !ok {
		return Answer{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, number)
		return Answer{}, false
	}
	return e.a, true
}

// put keeps a for ttl from now (nothing when ttl is 0).
func (c *cache) put(number string, a Answer, now time.Time, ttl time.Duration) {
	if ttl <= 0 || c.size == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[number]; !ok && len(c.m) >= c.size {
		c.evict(now)
	}
	c.m[number] = entry{a: a, expires: now.Add(ttl)}
}

// evictSample is how many entries evict looks at: enough to find expired
// ones when many are, cheap under the lock when none is.
const evictSample = 32

// evict makes room for one entry: it drops the expired entries among a
// sample (map order is random), or the first entry sampled when none had
// expired.
func (c *cache) evict(now time.Time) {
	var first string
	seen, dropped := 0, 0
	for k, e := range c.m {
		if seen == 0 {
			first = k
		}
		if !now.Before(e.expires) {
			delete(c.m, k)
			dropped++
		}
		if seen++; seen == evictSample {
			break
		}
	}
	if dropped == 0 {
		delete(c.m, first)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
