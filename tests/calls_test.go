package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// callOnce places one call from caller through the guard and returns how
// it went: "pass" (answered without early media), "challenge" (183, then
// answered by the guard), or "reject NNN".
func callOnce(t *testing.T, trunk *siptest.FakeTrunk, target, caller string, then func(*siptest.Call)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: caller, Callee: "88005553535", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	final, err := c.WaitFinal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status >= 300 {
		return fmt.Sprintf("reject %d %s", final.Status, final.Msg.GetHeader("Reason").Value())
	}
	kind := "pass"
	for _, r := range c.Responses() {
		if r.Status == 183 {
			kind = "challenge"
		}
	}
	if then != nil {
		then(c)
	}
	_ = c.Hangup(ctx)
	return kind
}

// The policy over real SIP, through the binary: a caller over the hourly
// limit is challenged (the crossing call itself), a whitelisted caller
// over it still passes, a hard-blocked caller is rejected with a Reason,
// and a challenged caller who types the code heard in the announcement
// (black box: only the audio) is connected to the PBX.
func TestPolicyOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	_, target, env := guardSIP(t, pbx.URI(), "GUARD_LIMIT_HOUR=2", "GUARD_LANGUAGE=en")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()

	const whitelisted, blocked, regular = "+79990004455", "+79990005566", "+79990006677"
	if _, stderr, code := runCLI(t, env, "whitelist", "add", whitelisted, "--reason", "VIP"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runCLI(t, env, "block", blocked, "--level", "8", "--reason", "fraud"); code != 0 {
		t.Fatal(stderr)
	}
	for i, want := range []string{"pass", "pass", "challenge"} {
		if got := callOnce(t, trunk, target, regular, nil); got != want {
			t.Fatalf("regular caller, call %d: %s, want %s (limit 2 an hour)", i+1, got, want)
		}
	}
	for i := range 3 {
		if got := callOnce(t, trunk, target, whitelisted, nil); got != "pass" {
			t.Fatalf("whitelisted caller, call %d: %s, want pass", i+1, got)
		}
	}
	if got := callOnce(t, trunk, target, blocked, nil); !strings.HasPrefix(got, "reject 603") || !strings.Contains(got, "manual") {
		t.Fatalf("hard-blocked caller: %q, want 603 with a Reason naming the manual block", got)
	}

	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	before := len(pbx.Calls())
	got := callOnce(t, trunk, target, regular, func(c *siptest.Call) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		code, err := c.HearCode(ctx, sounds.NewRecognizer(prompts), siptest.HearOptions{Digits: 2})
		if err != nil {
			t.Fatalf("hearing the code: %v", err)
		}
		if err := c.Type(ctx, code, siptest.DTMFOptions{Method: siptest.DTMFRFC4733}); err != nil {
			t.Fatal(err)
		}
		err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
			if len(pbx.Calls()) > before {
				if _, ok := pbx.Calls()[len(pbx.Calls())-1].Answered(); ok {
					return nil
				}
			}
			return fmt.Errorf("not bridged to the PBX after typing %q", code)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if got != "challenge" {
		t.Fatalf("fourth call of the regular caller: %s, want challenge", got)
	}
	out, _, _ := runCLI(t, env, "audit", regular)
	if !strings.Contains(out, "passed") {
		t.Fatalf("the audit does not show the passed challenge:\n%s", out)
	}
}
