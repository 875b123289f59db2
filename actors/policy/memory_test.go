package policy

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Memory per caller matters: a guard keeps a grain per active caller, and
// the budget is 2,048 bytes per grain with a typical history. These
// tests measure the State alone (the grain adds its actor and key), with
// Call-IDs of the length real trunks send (a UUID and a host, 46 bytes).

// history is a kind of caller.
type history struct {
	name string
	// days of traffic, calls a day spread evenly; the last day ends at the
	// measuring time.
	days, perDay int
	// failed challenges on the last day (each after a challenged call).
	failures int
}

var histories = []history{
	// Most callers of a bank's line: a few calls a day, over a month (old
	// calls have left the window; this checks they do not linger).
	{"typical", 30, 3, 0},
	// A caller at the daily limit, blocked, who failed a challenge.
	{"at-daily-limit", 3, 21, 1},
	// A dialler: 500 calls a day (escalated after the default 3 failures).
	{"flood", 2, 500, 3},
}

func callID(i int) string {
	return fmt.Sprintf("%08x-8f1d-4c6a-9b7e-2d4f6a8c0e1b@10.0.0.1", i)
}

// build folds h into a fresh state through Decide, Outcome and Apply, as a
// grain would, and returns it.
func build(tb testing.TB, p *Policy, h history, seq int) *State {
	st := &State{}
	key := "+79990001122"
	gap := Day / time.Duration(h.perDay)
	at := t0
	n := 0
	for day := 0; day < h.days; day++ {
		for c := 0; c < h.perDay; c++ {
			n++
			id := callID(seq*1_000_000 + n)
			d, err := p.Decide(st, Call{ID: id, Caller: num(key)}, at)
			if err != nil {
				tb.Fatal(err)
			}
			if err := p.applyRecords(st, d.Records); err != nil {
				tb.Fatal(err)
			}
			last := day == h.days-1 && c >= h.perDay-h.failures
			if last && d.Verdict == schema.Challenge {
				recs, err := p.Outcome(st, key, id, schema.Failed, at.Add(10*time.Second))
				if err != nil {
					tb.Fatal(err)
				}
				if err := p.applyRecords(st, recs); err != nil {
					tb.Fatal(err)
				}
			}
			at = at.Add(gap)
		}
	}
	return st
}

// bytesPerState measures the heap that n states of history h hold.
func bytesPerState(tb testing.TB, p *Policy, h history, n int) float64 {
	states := make([]*State, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range states {
		states[i] = build(tb, p, h, i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(states)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

func TestStateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	p := mustPolicy(t, nil)
	budget := map[string]float64{"typical": 1024, "at-daily-limit": 2048}
	for _, h := range histories {
		n := 2000
		if h.perDay > 100 {
			n = 100
		}
		got := bytesPerState(t, p, h, n)
		t.Logf("%-15s %6.0f bytes/state", h.name, got)
		if b, ok := budget[h.name]; ok && got > b {
			t.Errorf("%s: %.0f bytes/state, budget %.0f", h.name, got, b)
		}
	}
}

// BenchmarkStateMemory reports bytes/state for each kind of history:
//
//	go test ./actors/policy -run XXX -bench StateMemory -benchtime 1x
func BenchmarkStateMemory(b *testing.B) {
	p := mustPolicy(b, nil)
	for _, h := range histories {
		b.Run(h.name, func(b *testing.B) {
			n := 10_000
			if h.perDay > 100 {
				n = 200
			}
			var got float64
			for range b.N {
				got = bytesPerState(b, p, h, n)
			}
			b.ReportMetric(got, "bytes/state")
		})
	}
}

// BenchmarkDecide measures the pure work of one call: Decide and folding
// its records, for a caller with a typical history.
func BenchmarkDecide(b *testing.B) {
	p := mustPolicy(b, nil)
	st := build(b, p, histories[0], 0)
	at := t0.Add(31 * Day)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Calls a day apart keep the caller typical: no block builds up.
		at = at.Add(8 * time.Hour)
		d, err := p.Decide(st, Call{ID: "call", Caller: num("+79990001122")}, at)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.applyRecords(st, d.Records); err != nil {
			b.Fatal(err)
		}
		_ = i
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
