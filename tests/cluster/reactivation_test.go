package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/siptest"
)

// probeNumbers whitelists n numbers through the admin API and returns
// those whose grain lives on node (the node that wrote their Whitelisted
// event): the numbers scenario 1 watches move.
func (s *scenario) probeNumbers(node *Node, n int) []string {
	s.t.Helper()
	c := s.c
	var all []string
	for i := range n {
		num := fmt.Sprintf("+7991%03d%04d", time.Now().UnixNano()%1000, i)
		res, err := c.Nodes[i%len(c.Nodes)].Client().Whitelist(s.ctx, adminapi.WhitelistRequest{
			Number: num, By: "failure-suite", Reason: "re-activation probe", IdempotencyKey: fmt.Sprintf("%s-probe-%d", c.name, i),
		})
		if err != nil {
			s.t.Fatalf("whitelist probe %s: %v", num, err)
		}
		s.acks.add(res)
		all = append(all, res.Number)
	}
	store, err := c.openStore(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer store.Close()
	var mine []string
	for _, num := range all {
		evs, err := store.ReadStream(s.ctx, schema.CallerStream(num), events.Backward, ^uint64(0), 1)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(evs) == 1 && evs[0].Meta.Node == node.Name() {
			mine = append(mine, num)
		}
	}
	if len(mine) == 0 {
		s.t.Fatalf("none of %d probe numbers has its grain on %s", n, node.Name())
	}
	c.Logf("%d of %d probe numbers have their grain on %s", len(mine), n, node.Name())
	return mine
}

// Reactivation is how long the numbers of a dead node took to be decided
// by a grain on another node again: for each number, from the kill to the
// decision time of the first call a survivor's grain recorded.
type Reactivation struct {
	Times   []time.Duration
	Min     time.Duration
	Median  time.Duration
	Max     time.Duration
	Missing int // numbers not re-activated within 30 s
}

func (r Reactivation) String() string {
	return fmt.Sprintf("%d numbers: min %v, median %v, max %v (%d not re-activated within 30 s)",
		len(r.Times), r.Min.Round(10*time.Millisecond), r.Median.Round(10*time.Millisecond), r.Max.Round(10*time.Millisecond), r.Missing)
}

// measureReactivation calls each probe number through the survivors,
// one call at a time, until a survivor's grain records one.
func (s *scenario) measureReactivation(killed time.Time, probes []string, survivors []*Node) Reactivation {
	s.t.Helper()
	store, err := s.c.openStore(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer store.Close()
	var mu sync.Mutex
	var r Reactivation
	var wg sync.WaitGroup
	for i, num := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, ok := s.reactivated(store, killed, num, survivors[i%len(survivors)], i)
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				r.Missing++
				return
			}
			r.Times = append(r.Times, d)
		}()
	}
	wg.Wait()
	slices.Sort(r.Times)
	if len(r.Times) > 0 {
		r.Min, r.Median, r.Max = r.Times[0], r.Times[len(r.Times)/2], r.Times[len(r.Times)-1]
	}
	return r
}

// reactivated places a call from num through via every 250 ms until one
// of them is recorded by a grain, and returns the earliest decision time
// recorded, from the kill. Calls overlap: one that waits on the dead
// grain does not hold back the next.
func (s *scenario) reactivated(store events.Store, killed time.Time, num string, via *Node, idx int) (time.Duration, bool) {
	deadline := killed.Add(30 * time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	for k := 0; time.Now().Before(deadline); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := siptest.LoadRun(s.ctx, via.SIP, 1, time.Second, siptest.LoadOptions{
				Run:     fmt.Sprintf("%s-probe%d-%d", s.c.name, idx, k),
				Caller:  func(int) string { return num },
				Timeout: 6 * time.Second,
			})
			if err != nil {
				s.c.Logf("probe %s: %v", num, err)
			}
		}()
		time.Sleep(250 * time.Millisecond)
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		evs, err := store.ReadStream(ctx, schema.CallerStream(num), events.Forward, 0, 1000)
		cancel()
		if err != nil {
			continue
		}
		var first time.Time
		for _, ev := range evs {
			if ev.Type != schema.TypeCallReceived {
				continue
			}
			var p schema.CallReceived
			if json.Unmarshal(ev.Data, &p) != nil || !p.At.After(killed) {
				continue
			}
			if first.IsZero() || p.At.Before(first) {
				first = p.At
			}
		}
		if !first.IsZero() {
			return first.Sub(killed), true
		}
	}
	return 0, false
}
