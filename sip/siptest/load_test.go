package siptest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

func TestLoadRunRejectAndPassPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("load run in -short mode")
	}
	ctx := timeout(t, 60*time.Second)
	for _, tc := range []struct {
		name   string
		b      Behaviour
		status int
		hold   time.Duration
		seq    string // every call's LoadResult.Sequences
	}{
		{"reject", Reject(603), 603, 0, "180 603"},
		{"pass", Behaviour{NoRinging: true, Quiet: true}, 200, 100 * time.Millisecond, "200"},
		{"ringing", Behaviour{Quiet: true}, 200, 100 * time.Millisecond, "180 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pbx, err := NewRecordingPBX(PBXConfig{Behave: func(*PBXCall) Behaviour { return tc.b }, NoInBandDetection: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pbx.Close()
			const rate, d = 200, 500 * time.Millisecond
			res, err := LoadRun(ctx, pbx.Addr().String(), rate, d, LoadOptions{Hold: tc.hold})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res)
			if res.Calls != 100 || res.Finals[tc.status] != 100 || res.Failed(tc.status) != 0 || res.Timeouts != 0 || res.ByeFailures != 0 {
				t.Fatalf("%s: want 100 calls answered %d", res, tc.status)
			}
			if len(res.Sequences) != 1 || res.Sequences[tc.seq] != 100 {
				t.Errorf("responses %v: want [%s] for each of the 100 calls", res.Sequences, tc.seq)
			}
			if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.Max > time.Second {
				t.Errorf("implausible latencies: %s", res)
			}
			calls := pbx.Calls()
			if len(calls) != 100 {
				t.Fatalf("PBX saw %d calls", len(calls))
			}
			seen := map[string]bool{}
			for _, c := range calls {
				if c.Offer == nil || seen[c.Caller] {
					t.Fatalf("call %s: offer %v, caller %q (seen before: %v)", c.CallID, c.Offer, c.Caller, seen[c.Caller])
				}
				seen[c.Caller] = true
			}
			// Every call ends at the PBX: ACKed rejections, BYEs after the hold.
			if err := Poll(ctx, 10*time.Millisecond, func() error {
				for _, c := range pbx.Calls() {
					if _, _, ok := c.Ended(); !ok {
						return errors.New("call " + c.CallID + " still up at the PBX")
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tc.status == 200 {
				for _, c := range calls {
					if r, _, _ := c.Ended(); r != "BYE from the caller" {
						t.Fatalf("call %s ended %q", c.CallID, r)
					}
				}
			}
		})
	}
}

func TestLoadRunTimeoutsAndRefusals(t *testing.T) {
	ctx := timeout(t, 30*time.Second)
	pbx, err := NewRecordingPBX(PBXConfig{Behave: func(*PBXCall) Behaviour { return RingForever() }})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	res, err := LoadRun(ctx, pbx.Addr().String(), 20, 100*time.Millisecond, LoadOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 2 || res.Timeouts != 2 || len(res.Finals) != 0 {
		t.Errorf("ringing for ever: %s", res)
	}

	for _, target := range []string{"192.0.2.1:5060", "example.com:5060", "[::1]:5060x"} {
		if _, err := LoadRun(ctx, target, 1, time.Second, LoadOptions{}); err == nil {
			t.Errorf("LoadRun(%s) accepted", target)
		}
	}
	if _, err := LoadRun(ctx, "192.0.2.1:5060", 1, time.Second, LoadOptions{}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("non-loopback target: %v", err)
	}
	if _, err := LoadRun(ctx, "127.0.0.1:5060", 1e6, time.Second, LoadOptions{}); err == nil {
		t.Error("a million calls were accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := LoadRun(cctx, pbx.Addr().String(), 10, time.Second, LoadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}

// OnDone hears of every call once, with its final status; a second run
// with the same Run tag and local address sends the same INVITEs (same
// Call-IDs), as a client retrying them on another server would. (The same
// server's transaction layer would absorb them as retransmissions.)
func TestLoadRunReportsEachCallAndRepeatsARun(t *testing.T) {
	if testing.Short() {
		t.Skip("load run in -short mode")
	}
	ctx := timeout(t, 30*time.Second)
	newPBX := func() *RecordingPBX {
		pbx, err := NewRecordingPBX(PBXConfig{Behave: func(*PBXCall) Behaviour { return Reject(486) }, NoInBandDetection: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pbx.Close() })
		return pbx
	}
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := probe.LocalAddr().String()
	probe.Close()
	run := func(pbx *RecordingPBX) map[string]int {
		t.Helper()
		var mu sync.Mutex
		got := map[string]int{}
		_, err := LoadRun(ctx, pbx.Addr().String(), 50, 200*time.Millisecond, LoadOptions{
			Run: "retry", LocalAddr: local,
			OnDone: func(c LoadCall) {
				mu.Lock()
				defer mu.Unlock()
				if c.Status != 486 || c.Latency <= 0 || c.Sent.IsZero() || c.I < 0 || c.I >= 10 {
					t.Errorf("call %d %s: status %d latency %v sent %v", c.I, c.CallID, c.Status, c.Latency, c.Sent)
				}
				got[c.CallID]++
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	pbx1, pbx2 := newPBX(), newPBX()
	first, second := run(pbx1), run(pbx2)
	if len(first) != 10 {
		t.Fatalf("OnDone heard of %d calls, want 10: %v", len(first), first)
	}
	for id, n := range first {
		if n != 1 || second[id] != 1 {
			t.Errorf("call %s: heard %d times in the first run and %d in the second, want once in each", id, n, second[id])
		}
	}
	for _, c := range pbx2.Calls() {
		if first[c.CallID] != 1 {
			t.Errorf("the second run sent Call-ID %s, not one of the first run's", c.CallID)
		}
	}
	if n := len(pbx2.Calls()); n != 10 {
		t.Errorf("the second PBX saw %d INVITEs, want 10", n)
	}
}
