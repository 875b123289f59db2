package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// Concurrent calls per caller through the binary and over real SIP: with
// a limit of two, a caller holding two answered calls is challenged on the
// third; once one of them hangs up, the next call passes; the audit
// explains the challenge by the count and the limit.
func TestConcurrentCallsPerCallerOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{NoInBandDetection: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	_, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en", "GUARD_MAX_CONCURRENT_PER_CALLER=2", "GUARD_CONCURRENT_VERDICT=challenge")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	const caller = "+79990007788"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var held []*siptest.Call
	for i := range 2 {
		c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: caller, Callee: "88005553535", Quiet: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WaitAnswer(ctx); err != nil {
			t.Fatalf("held call %d not answered: %v", i+1, err)
		}
		held = append(held, c)
	}
	if got := callOnce(t, trunk, target, caller, nil); got != "challenge" {
		t.Fatalf("third call with two up: %q, want challenge", got)
	}
	if err := held[0].Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	// The end reaches the caller's grain asynchronously: poll.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := callOnce(t, trunk, target, caller, nil)
		if got == "pass" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call with one other up: %q, want pass once the hung-up call counts no more", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, stderr, code := runCLI(t, env, "audit", caller)
	if code != 0 {
		t.Fatalf("audit: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "3 calls up at once, limit 2") || !strings.Contains(out, "concurrent") {
		t.Fatalf("the audit does not explain the concurrency challenge:\n%s", out)
	}
	_ = held[1].Hangup(ctx)
}
