package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// Latency of the guard's decisions, INVITE to final response, measured by
// siptest.LoadRun with Go's monotonic clock. SIPp 3.6 stamps its response
// times with CLOCK_MONOTONIC_COARSE (4 ms ticks on these machines), so its
// figures read 0, 4 or 8 ms on loopback; these are the figures to quote.
//
// The benchmarks run against a guard that is already running (they do not
// start one, so repeated runs measure one warm process):
//
//	CALLGUARD_SIP_TARGET  the guard's SIP address, host:port on loopback (required)
//	CALLGUARD_BLOCKED     a caller hard-blocked there (reject path; default +79990003344)
//	CALLGUARD_LOAD_RATE   calls per second (default 500)
//
// b.N is the number of calls, placed at the rate: -benchtime 5000x at 500
// calls/s is a 10 s run. tests/sipp/load.sh starts a guard, blocks the
// number and runs them:
//
//	CALLGUARD_SIP_TARGET=127.0.0.1:5060 go test -run '^$' -bench RejectPathLatency -benchtime 5000x ./tests/
//
// TestLoadAt500 is the same measurement as a self-contained test, gated by
// CALLGUARD_LOAD=1: it starts its own guard and PBX.

func loadRate(tb testing.TB) float64 {
	tb.Helper()
	s := os.Getenv("CALLGUARD_LOAD_RATE")
	if s == "" {
		return 500
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r <= 0 {
		tb.Fatalf("CALLGUARD_LOAD_RATE=%q: want a positive number of calls per second", s)
	}
	return r
}

func benchTarget(b *testing.B) string {
	b.Helper()
	t := os.Getenv("CALLGUARD_SIP_TARGET")
	if t == "" {
		b.Skip("set CALLGUARD_SIP_TARGET to a running guard's SIP address, with CALLGUARD_BLOCKED hard-blocked there (tests/sipp/load.sh does both)")
	}
	return t
}

// freshNumbers hands out caller numbers unused in this process, from a
// random start, so that no number reaches the guard's hourly limit.
var freshNumbers = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(time.Now().UnixNano() % 1_000_000 * 100)
	return &n
}()

func freshCaller(int) string {
	return fmt.Sprintf("+7998%07d", freshNumbers.Add(1)%10_000_000) // +7 998 xxx xx xx: a possible Russian mobile number
}

// runLoad places b.N (or n) calls at rate and reports the latencies.
func runLoad(tb testing.TB, target string, n int, rate float64, want int, opts siptest.LoadOptions) siptest.LoadResult {
	tb.Helper()
	d := time.Duration(float64(n) / rate * float64(time.Second))
	if opts.MaxCalls == 0 {
		opts.MaxCalls = 1_000_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	res, err := siptest.LoadRun(ctx, target, rate, d, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Failed(want) != 0 || res.Timeouts != 0 || res.ByeFailures != 0 {
		tb.Errorf("%s: want every call answered %d", res, want)
	}
	if res.Late > res.Calls/100 {
		tb.Logf("%d of %d INVITEs left late: the client was short of CPU, the rate is not what was asked", res.Late, res.Calls)
	}
	return res
}

func report(b *testing.B, res siptest.LoadResult) {
	b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.Max.Microseconds()), "max-µs")
	b.ReportMetric(res.Rate, "calls/s")
	b.ReportMetric(float64(res.Calls-res.Finals[603]-res.Finals[200]), "failed")
	b.ReportMetric(0, "ns/op") // the rate, not the code, sets the time per call
	b.Log(res)
}

// BenchmarkRejectPathLatency: a hard-blocked caller, answered 603 by the
// guard after its decision is durable.
func BenchmarkRejectPathLatency(b *testing.B) {
	target := benchTarget(b)
	blocked := os.Getenv("CALLGUARD_BLOCKED")
	if blocked == "" {
		blocked = "+79990003344"
	}
	b.ResetTimer()
	res := runLoad(b, target, b.N, loadRate(b), 603, siptest.LoadOptions{Caller: func(int) string { return blocked }})
	b.StopTimer()
	report(b, res)
}

// BenchmarkPassPathLatency: fresh callers, passed to the guard's PBX (which
// must answer: load.sh runs SIPp's uas_pbx.xml), each hung up at once.
func BenchmarkPassPathLatency(b *testing.B) {
	target := benchTarget(b)
	b.ResetTimer()
	res := runLoad(b, target, b.N, loadRate(b), 200, siptest.LoadOptions{Caller: freshCaller})
	b.StopTimer()
	report(b, res)
}

// TestLoadAt500 measures both paths at CALLGUARD_LOAD_RATE (500) calls/s
// for 10 s each against a guard it starts, with siptest's PBX answering.
// It takes a minute and most of two cores, so it runs only with
// CALLGUARD_LOAD=1.
func TestLoadAt500(t *testing.T) {
	if os.Getenv("CALLGUARD_LOAD") != "1" {
		t.Skip("set CALLGUARD_LOAD=1 to run the load measurement (a minute, two cores)")
	}
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{
		NoInBandDetection: true,
		Behave:            func(*siptest.PBXCall) siptest.Behaviour { return siptest.Behaviour{NoRinging: true, Quiet: true} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	_, target, env := guardSIP(t, pbx.URI())
	const blocked = "+79990003344"
	if out, stderr, code := runCLI(t, env, "block", blocked, "--level", "7", "--reason", "load test"); code != 0 {
		t.Fatalf("block: exit %d %s %s", code, out, stderr)
	}
	rate := loadRate(t)
	n := int(rate * 10)
	// A short warm-up, so the first calls' one-off costs are not measured.
	runLoad(t, target, int(rate), rate, 603, siptest.LoadOptions{Caller: func(int) string { return blocked }})
	rej := runLoad(t, target, n, rate, 603, siptest.LoadOptions{Caller: func(int) string { return blocked }})
	t.Logf("reject path: %s", rej)
	pass := runLoad(t, target, n, rate, 200, siptest.LoadOptions{Caller: freshCaller})
	t.Logf("pass path: %s", pass)
	if pass.P99 > 10*time.Millisecond {
		t.Logf("pass path p99 %v is above the 10 ms target", pass.P99)
	}
}
