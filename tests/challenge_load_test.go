package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// TestChallengeCapacity measures how many concurrent challenged calls one
// node holds with its RTP timing intact: N callers without a number (the
// anonymous policy challenges them) all hear the announcement at once; the
// carrier side records the arrival of every RTP packet. It reports the
// packet spacing (jitter against 20 ms), lost packets, and the guard's CPU
// and memory. A load run, not a test of behaviour: set CALLGUARD_LOAD=1.
//
//	CALLGUARD_LOAD=1 go test -run ChallengeCapacity -v -timeout 10m ./tests/
func TestChallengeCapacity(t *testing.T) {
	if os.Getenv("CALLGUARD_LOAD") == "" {
		t.Skip("load run: set CALLGUARD_LOAD=1 to measure challenge capacity")
	}
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, sipAddr, _ := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en", "GUARD_GRACE=3s")
	pid := g.cmd.Process.Pid
	levels := []int{25, 50, 100, 200}
	if s := os.Getenv("CALLGUARD_LOAD_LEVELS"); s != "" {
		levels = nil
		for _, f := range strings.Fields(s) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			levels = append(levels, n)
		}
	}
	for _, n := range levels {
		trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cpu0, wall0 := cpuTicks(t, pid), time.Now()
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			gaps   []time.Duration
			lost   int
			failed int
			peak   int64
		)
		for i := range n {
			time.Sleep(time.Second / time.Duration(n)) // spread the starts over a second
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := trunk.Call(ctx, siptest.CallOptions{Target: sipAddr, Caller: "anonymous", NoPAI: true, FromUser: "anonymous", Callee: "88005553535", Quiet: true})
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					return
				}
				defer c.Close()
				if _, err := c.WaitAnswer(ctx); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					return
				}
				_ = c.Hangup(ctx)
				g, l := spacing(c.RTP())
				mu.Lock()
				gaps = append(gaps, g...)
				lost += l
				mu.Unlock()
			})
			if i%10 == 0 {
				if rss := rssKB(t, pid); rss > peak {
					peak = rss
				}
			}
		}
		wg.Wait()
		cpu := float64(cpuTicks(t, pid)-cpu0) / 100 / time.Since(wall0).Seconds()
		trunk.Close()
		if len(gaps) == 0 {
			t.Fatalf("%d calls: no RTP received (%d calls failed)", n, failed)
		}
		slices.Sort(gaps)
		q := func(p float64) time.Duration { return gaps[int(p*float64(len(gaps)-1))] }
		t.Logf("%4d concurrent challenges: %d failed; RTP spacing p50 %v p99 %v max %v over %d packets, %d lost; guard CPU %.0f%% of one core, peak RSS %d MiB",
			n, failed, q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), gaps[len(gaps)-1].Round(10*time.Microsecond), len(gaps), lost, cpu*100, peak/1024)
		if failed > 0 {
			t.Errorf("%d of %d challenged calls were not answered", failed, n)
		}
	}
}

// spacing returns the arrival gaps between consecutive audio packets of
// one stream and the packets lost (sequence gaps).
func spacing(pkts []siptest.RTPPacket) ([]time.Duration, int) {
	var gaps []time.Duration
	lost := 0
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if a.PayloadType > 8 || b.PayloadType > 8 {
			continue // telephone-events
		}
		if d := b.Seq - a.Seq; d != 1 {
			lost += int(d) - 1
			continue
		}
		gaps = append(gaps, b.At.Sub(a.At))
	}
	return gaps, lost
}

// cpuTicks is utime+stime of pid in clock ticks (100 per second on Linux).
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rssKB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
