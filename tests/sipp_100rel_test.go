package tests

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// A carrier that requires 100rel (RFC 3262), played by SIPp, through the
// binary: the challenge's 183 comes reliably and is PRACKed, the caller
// types nothing and the guard hangs up at the grace deadline; on a passed
// call the PBX's 180 comes reliably and the PBX's 200 after its PRACK; a carrier
// that never PRACKs sees the 183 retransmitted and gets 504 after 64*T1.
func TestSIPp100relThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const t1 = 50 * time.Millisecond
	pbxPort := porttest.Port(t)
	g, sipAddr, env := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort),
		"GUARD_GRACE=2s", "GUARD_SIP_T1="+t1.String())

	block := func(t *testing.T, number string) {
		out, stderr, code := runCLI(t, env, "block", number, "--level", "3", "--reason", "SIPp 100rel challenge", "--by", "sipp_test")
		if code != 0 {
			t.Fatalf("block %s: exit %d, %s %s", number, code, out, stderr)
		}
	}

	t.Run("challenge", func(t *testing.T) {
		const caller = "+79990005501"
		block(t, caller)
		inf := writeInjection(t, "challenge.csv", caller)
		r := startSIPp(ctx, t, "sipp uac_100rel_challenge", "uac_100rel_challenge.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, r, 1)
	})

	t.Run("pass", func(t *testing.T) {
		pbx := startSIPp(ctx, t, "sipp uas_pbx_ring", "uas_pbx_ring.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "30s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "pass.csv", "+79990005503")
		uac := startSIPp(ctx, t, "sipp uac_100rel_pass", "uac_100rel_pass.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "200", "-m", "1", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
	})

	// A PBX that sends its 183 reliably (it may: the guard's INVITE lists
	// 100rel) gets the guard's own PRACK; the carrier gets the 183 and its
	// SDP reliably with the guard's RSeq, and PRACKs the guard.
	t.Run("PBX reliable 183", func(t *testing.T) {
		pbx := startSIPp(ctx, t, "sipp uas_pbx_100rel", "uas_pbx_100rel.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "30s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "pass183.csv", "+79990005504")
		uac := startSIPp(ctx, t, "sipp uac_100rel_pass183", "uac_100rel_pass183.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "200", "-m", "1", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
	})

	t.Run("no PRACK", func(t *testing.T) {
		const caller = "+79990005502"
		block(t, caller)
		inf := writeInjection(t, "noprack.csv", caller)
		start := time.Now()
		r := startSIPp(ctx, t, "sipp uac_100rel_noprack", "uac_100rel_noprack.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "30s", "-timeout_error", "-trace_msg", "-message_file", "messages.log")
		expectAllSuccessful(t, r, 1)
		if took := time.Since(start); took < 64*t1 {
			t.Errorf("504 after %v, before 64*T1 = %v", took, 64*t1)
		}
		msgs, err := os.ReadFile(filepath.Join(r.dir, "messages.log"))
		if err != nil {
			t.Fatal(err)
		}
		// 64*T1 = 3.2 s holds the first 183 and retransmissions at 50,
		// 150, 350, 750, 1550 ms (and 3.15 s).
		if n := strings.Count(string(msgs), "SIP/2.0 183 "); n < 5 {
			t.Errorf("SIPp received the 183 %d times, want at least 5 (retransmitted until 64*T1)", n)
		}
	})
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}
