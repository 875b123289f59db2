package readside

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
)

// benchEvents is the size of BenchmarkRebuild's log; CALLGUARD_BENCH_EVENTS
// overrides it for a quicker run.
func benchEvents(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("CALLGUARD_BENCH_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CALLGUARD_BENCH_EVENTS=%q", s)
		}
		n = v
	}
	return n
}

// BenchmarkRebuild rebuilds every projection (lists, profiles, reports)
// from the start of a log of a million events: a mixed run of calls from
// thousands of callers with their call streams, challenges, admin
// commands and expiries, on the embedded store, with the default batch
// size and an fsync per batch. It reports the events of the log
// projected per second of wall time, all projections together.
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	store := openStore(b, filepath.Join(dir, "events"))
	want := benchEvents(b)
	sim := simtest.New(b, store, policy.DefaultConfig())
	sim.Buffer = 50_000
	// About 4.25 events per call (caller stream and call stream).
	calls := want * 100 / 425
	setup := time.Now()
	sim.Mixed(rand.New(rand.NewPCG(7, 11)), max(100, calls/8), calls, start, 30)
	head, err := store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("log of %d events (%d calls) written in %v", head.Commit, calls, time.Since(setup).Round(time.Millisecond))
	rs := openReadSide(b, dir, store, time.Now, 0)
	if err := rs.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := rs.Runner.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := rs.Runner.Rebuild(ctx); err != nil {
			b.Fatal(err)
		}
		if err := rs.Runner.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(head.Commit)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLiveLag measures how far the projections trail a log that is
// being written: calls are appended in group-committed bursts of about
// 500 events (a busy line: several hundred calls a second) while a
// sampler reads every projection's lag every 5 ms. It reports the 99th
// percentile and the maximum of the largest lag of any projection, in
// seconds, and the rate the log was written at.
func BenchmarkLiveLag(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		dir := b.TempDir()
		store := openStore(b, filepath.Join(dir, "events"))
		rs := openReadSide(b, dir, store, time.Now, 0)
		txBefore := commits(b, rs)
		if err := rs.Start(ctx); err != nil {
			b.Fatal(err)
		}
		sim := simtest.New(b, store, policy.DefaultConfig())
		sim.Buffer = 500
		stop := make(chan struct{})
		samples := make(chan []float64, 1)
		go func() {
			var lags []float64
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					samples <- lags
					return
				case <-tick.C:
				}
				sts, err := rs.Runner.Status(ctx)
				if err != nil {
					continue
				}
				worst := 0.0
				for _, st := range sts {
					worst = max(worst, st.LagSeconds)
				}
				lags = append(lags, worst)
			}
		}()
		began := time.Now()
		sim.Mixed(rand.New(rand.NewPCG(5, 6)), 2000, 20_000, start, 1)
		elapsed := time.Since(began)
		if err := rs.Runner.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		close(stop)
		lags := <-samples
		if len(lags) == 0 {
			b.Fatal("no samples")
		}
		sort.Float64s(lags)
		b.ReportMetric(lags[len(lags)*99/100], "p99-lag-s")
		b.ReportMetric(lags[len(lags)-1], "max-lag-s")
		b.ReportMetric(float64(sim.Events)/elapsed.Seconds(), "appended-events/s")
		n := commits(b, rs) - txBefore
		b.ReportMetric(float64(n)/elapsed.Seconds(), "commits/s")
		b.ReportMetric(float64(sim.Events)*float64(len(rs.Runner.Names()))/float64(n), "events/commit")
		b.ReportMetric(0, "ns/op")
	}
}

// commits counts the write transactions committed in every projection's
// file so far: the sum of their bbolt transaction IDs.
func commits(b *testing.B, rs *ReadSide) uint64 {
	b.Helper()
	var n uint64
	for _, name := range rs.Runner.Names() {
		err := rs.Runner.View(name, func(root *bolt.Bucket) error {
			if root != nil {
				n += uint64(root.Tx().ID())
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// BenchmarkSteadyRate writes calls at a steady 500 a second, each call's
// events appended as the call makes them (its caller stream and its call
// stream, no buffering across calls), for 3 s, and reports the
// projections' commits per second and events per commit, all projections
// together, and the CPU time of the process (writer, store and
// projections) per call.
func BenchmarkSteadyRate(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		dir := b.TempDir()
		store := openStore(b, filepath.Join(dir, "events"))
		rs := openReadSide(b, dir, store, time.Now, 0)
		txBefore := commits(b, rs)
		if err := rs.Start(ctx); err != nil {
			b.Fatal(err)
		}
		sim := simtest.New(b, store, policy.DefaultConfig())
		sim.Buffer = 1 // each append is flushed as it is made
		const rate, span = 500, 3 * time.Second
		tick := time.NewTicker(time.Second / rate)
		cpu0 := cpuTime(b)
		began := time.Now()
		at := start
		n := 0
		for time.Since(began) < span {
			<-tick.C
			at = at.Add(time.Second / rate)
			sim.Place(simtest.Call{Caller: fmt.Sprintf("+7999%07d", n), Callee: "+78001234567", At: at})
			sim.Flush()
			n++
		}
		tick.Stop()
		elapsed := time.Since(began)
		if err := rs.Runner.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		cpu := cpuTime(b) - cpu0
		c := commits(b, rs) - txBefore
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/call")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "calls/s")
		b.ReportMetric(float64(sim.Events)/elapsed.Seconds(), "appended-events/s")
		b.ReportMetric(float64(c)/elapsed.Seconds(), "commits/s")
		b.ReportMetric(float64(sim.Events)*float64(len(rs.Runner.Names()))/float64(c), "events/commit")
		b.ReportMetric(0, "ns/op")
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
