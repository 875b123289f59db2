package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/sip/siptest"
)

// Kind is the sort of caller a call comes from.
type Kind string

const (
	Fresh       Kind = "fresh"       // a number never heard before: passed
	Abusive     Kind = "abusive"     // one of a few numbers calling again and again: passed up to the hourly limit, then rejected
	Whitelisted Kind = "whitelisted" // whitelisted by an admin command: always passed
	Blocked     Kind = "blocked"     // blocked at level 7 by an admin command: always rejected
)

// mix is the share of each kind, out of ten calls.
var mix = [10]Kind{Fresh, Fresh, Fresh, Fresh, Fresh, Abusive, Abusive, Whitelisted, Blocked, Fresh}

// Callers hands out the numbers of a scenario's calls.
type Callers struct {
	fresh     int64
	mu        sync.Mutex
	abusive   []string
	whitelist []string
	blocked   []string
	rnd       *rand.Rand
}

func newCallers(seed uint64) *Callers {
	c := &Callers{fresh: int64(seed % 1_000_000 * 10), rnd: rand.New(rand.NewPCG(seed, 11))}
	for i := range 15 {
		c.abusive = append(c.abusive, fmt.Sprintf("+7997%03d%04d", seed%1000, i))
	}
	for i := range 5 {
		c.whitelist = append(c.whitelist, fmt.Sprintf("+7996%03d%04d", seed%1000, i))
		c.blocked = append(c.blocked, fmt.Sprintf("+7995%03d%04d", seed%1000, i))
	}
	return c
}

// next returns the kind and number of the next call.
func (c *Callers) next() (Kind, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := mix[c.rnd.IntN(len(mix))]
	switch k {
	case Abusive:
		return k, c.abusive[c.rnd.IntN(len(c.abusive))]
	case Whitelisted:
		return k, c.whitelist[c.rnd.IntN(len(c.whitelist))]
	case Blocked:
		return k, c.blocked[c.rnd.IntN(len(c.blocked))]
	}
	c.fresh++
	return Fresh, fmt.Sprintf("+7998%07d", c.fresh%10_000_000)
}

// callTimeout is how long a load call waits for its final response.
const callTimeout = 10 * time.Second

// Call is one call of the load and what became of it.
type Call struct {
	Node    int // index of the node it was sent to
	Kind    Kind
	Caller  string
	CallID  string // SIP Call-ID
	Sent    time.Time
	Status  int // final status; 0 for none within the timeout
	Latency time.Duration
}

// Answered reports whether the call got a final response: 200 (passed,
// answered by the PBX), 603 (rejected) or 503 (busy, or the store-down
// policy failing closed).
func (c Call) Answered() bool { return c.Status != 0 }

// Decided reports whether the call got a verdict's status.
func (c Call) Decided() bool { return c.Status == 200 || c.Status == 603 }

// Load is the calls of a scenario, placed on every node at once.
type Load struct {
	c       *Cluster
	callers *Callers
	mu      sync.Mutex
	calls   []*Call
	runs    []siptest.LoadResult
	elapsed time.Duration
}

// setupCallers whitelists and blocks the scenario's numbers through the
// admin API (spread over the nodes) and returns the callers; every
// acknowledged command is kept for the log check.
func (c *Cluster) setupCallers(ctx context.Context, acks *Acks) *Callers {
	c.t.Helper()
	cs := newCallers(uint64(time.Now().UnixNano()))
	nodes := c.nodes()
	for i, num := range cs.whitelist {
		cl := nodes[i%len(nodes)].Client()
		key := fmt.Sprintf("%s-wl-%d", c.name, i)
		res, err := cl.Whitelist(ctx, adminapi.WhitelistRequest{Number: num, By: "failure-suite", Reason: "trusted caller", IdempotencyKey: key})
		if err != nil {
			c.t.Fatalf("whitelist %s on node%d: %v", num, i%len(nodes)+1, err)
		}
		acks.add(res)
	}
	for i, num := range cs.blocked {
		cl := nodes[(i+1)%len(nodes)].Client()
		key := fmt.Sprintf("%s-bl-%d", c.name, i)
		res, err := cl.Block(ctx, num, adminapi.BlockRequest{Level: 7, By: "failure-suite", Reason: "known abuser", IdempotencyKey: key})
		if err != nil {
			c.t.Fatalf("block %s on node%d: %v", num, (i+1)%len(nodes)+1, err)
		}
		acks.add(res)
	}
	return cs
}

// rate is the total calls/s of the load (CALLGUARD_CLUSTER_RATE).
func rate(t testing.TB) float64 {
	return envFloat(t, "CALLGUARD_CLUSTER_RATE", 60)
}

// loadSeconds is how long a scenario's load lasts (CALLGUARD_CLUSTER_SECONDS).
func loadDuration(t testing.TB) time.Duration {
	return time.Duration(envFloat(t, "CALLGUARD_CLUSTER_SECONDS", 12) * float64(time.Second))
}

func envFloat(t testing.TB, name string, def float64) float64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// startLoad places calls at total rate/s for d, spread evenly over the
// nodes that exist when it starts (one load client per node). It returns
// at once; Wait waits for every call to end.
func (c *Cluster) startLoad(cs *Callers, total float64, d time.Duration) (*Load, func()) {
	return c.startLoadOn(cs, total, d, c.nodes())
}

// startLoadOn is startLoad on the given nodes.
func (c *Cluster) startLoadOn(cs *Callers, total float64, d time.Duration, nodes []*Node) (*Load, func()) {
	l := &Load{c: c, callers: cs}
	per := total / float64(len(nodes))
	var wg sync.WaitGroup
	start := time.Now()
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(n, per, d)
		}()
	}
	c.Logf("load: %.0f calls/s over %d nodes for %v", total, len(nodes), d)
	return l, func() {
		wg.Wait()
		l.elapsed = time.Since(start)
	}
}

// run places calls on one node.
func (l *Load) run(n *Node, rate float64, d time.Duration) {
	var mu sync.Mutex
	byIndex := map[int]*Call{}
	opts := siptest.LoadOptions{
		// A carrier that got 100 Trying waits for the final response far
		// longer than this (Timer B, 32 s); 10 s outlasts a paused node.
		Timeout:  callTimeout,
		MaxCalls: 1_000_000,
		Caller: func(i int) string {
			k, num := l.callers.next()
			call := &Call{Node: n.Index, Kind: k, Caller: num}
			mu.Lock()
			byIndex[i] = call
			mu.Unlock()
			l.mu.Lock()
			l.calls = append(l.calls, call)
			l.mu.Unlock()
			return num
		},
		OnDone: func(lc siptest.LoadCall) {
			mu.Lock()
			call := byIndex[lc.I]
			mu.Unlock()
			l.mu.Lock()
			call.CallID, call.Sent, call.Status, call.Latency = lc.CallID, lc.Sent, lc.Status, lc.Latency
			l.mu.Unlock()
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	res, err := siptest.LoadRun(ctx, n.SIP, rate, d, opts)
	if err != nil {
		l.c.Logf("load on node%d: %v", n.Index+1, err)
	}
	l.mu.Lock()
	l.runs = append(l.runs, res)
	l.mu.Unlock()
}

// Calls returns the calls placed.
func (l *Load) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Call, 0, len(l.calls))
	for _, c := range l.calls {
		out = append(out, *c)
	}
	return out
}

// Figures summarises the load: calls placed, answered, not answered, by
// node and kind, and the rate achieved.
type Figures struct {
	Calls, Answered, Lost int
	Busy                  int // answered 503
	Statuses              map[int]int
	LostByNode            map[int]int
	Rate                  float64 // calls/s placed
	AnsweredRate          float64
	P50, P99              time.Duration
	// Slowest is the longest INVITE→final of an answered call, by node.
	Slowest map[int]time.Duration
}

func (l *Load) Figures() Figures {
	calls := l.Calls()
	f := Figures{Calls: len(calls), Statuses: map[int]int{}, LostByNode: map[int]int{}, Slowest: map[int]time.Duration{}}
	var lat []time.Duration
	var first, last time.Time
	for _, c := range calls {
		f.Statuses[c.Status]++
		if c.Answered() {
			f.Answered++
			lat = append(lat, c.Latency)
			f.Slowest[c.Node] = max(f.Slowest[c.Node], c.Latency)
			if c.Status == 503 {
				f.Busy++
			}
		} else {
			f.Lost++
			f.LostByNode[c.Node]++
		}
		if first.IsZero() || c.Sent.Before(first) {
			first = c.Sent
		}
		if c.Sent.After(last) {
			last = c.Sent
		}
	}
	if span := last.Sub(first).Seconds(); span > 0 {
		f.Rate = float64(len(calls)) / span
		f.AnsweredRate = float64(f.Answered) / span
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.P50, f.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return f
}

func (f Figures) String() string {
	slowest := map[int]int{}
	for n, d := range f.Slowest {
		slowest[n] = int(d.Milliseconds())
	}
	return fmt.Sprintf("%d calls placed at %.0f/s: %d answered (%.0f/s; of them %d with 503), %d lost (no final response) %v; statuses %v; INVITE→final p50 %v p99 %v, slowest in ms %v",
		f.Calls, f.Rate, f.Answered, f.AnsweredRate, f.Busy, f.Lost, nodeCounts(f.LostByNode), f.Statuses, f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond), nodeCounts(slowest))
}

func nodeCounts(m map[int]int) string {
	s := "{"
	for i := range 8 {
		if m[i] > 0 {
			if len(s) > 1 {
				s += " "
			}
			s += fmt.Sprintf("node%d:%d", i+1, m[i])
		}
	}
	return s + "}"
}
