package cluster

import (
	"os"
	"testing"
	"time"
)

// TestMeasureNodes places calls at CALLGUARD_CLUSTER_RATE (default 500) for
// CALLGUARD_CLUSTER_SECONDS (default 12) over 1, 2 and 3 nodes and reports
// what each answered: decisions/s and INVITE→final p50/p99. No failure is
// injected; the log check runs as in the scenarios. It runs only with
// CALLGUARD_CLUSTER_MEASURE=1 (go tool task cluster-measure): it takes
// both cores for a minute and a half.
func TestMeasureNodes(t *testing.T) {
	if os.Getenv("CALLGUARD_CLUSTER_MEASURE") != "1" {
		t.Skip("set CALLGUARD_CLUSTER_MEASURE=1 to measure decisions/s over 1, 2 and 3 nodes (go tool task cluster-measure)")
	}
	r := envFloat(t, "CALLGUARD_CLUSTER_RATE", 500)
	for _, n := range []int{1, 2, 3} {
		t.Run(map[int]string{1: "one", 2: "two", 3: "three"}[n], func(t *testing.T) {
			s := newScenario(t, options{nodes: n})
			load, wait := s.c.startLoad(s.cs, r, loadDuration(t))
			wait()
			f := s.figures("measure", load)
			decided := f.Answered - f.Busy
			t.Logf("FIGURES %d node(s) at %.0f calls/s offered: %.0f calls/s placed, %.0f decided/s (%d of %d calls; %d answered 503, %d lost); INVITE→final p50 %v p99 %v",
				n, r, f.Rate, float64(decided)/load.elapsed.Seconds(), decided, f.Calls, f.Busy, f.Lost, f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond))
			// Overload may lose calls; those answered are checked in full.
			s.c.checkLog(s.ctx, load.Calls(), s.acks, func(c Call) bool { return !c.Answered() })
		})
	}
}
