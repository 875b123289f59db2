package tests

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// A late offer (an INVITE without SDP) on a call to be challenged, played
// by SIPp as the carrier, through the binary.
//
// With 100rel the guard offers its own media in a reliable 183 and SIPp
// answers in the PRACK with an address the test listens on: the prompt's
// RTP must arrive there, before and after the 200, and the guard hangs up
// at the grace deadline (SIPp types nothing; the full pass with the code
// is TestLateOfferWith100relIsChallenged in sip/guard).
//
// Without 100rel and GUARD_LATE_OFFER=pass the call reaches the PBX (SIPp
// too, offering in its 200, answered in the guard's ACK) unchallenged, and
// the audit says it passed for that reason although the verdict was
// challenge.
func TestSIPpLateOfferThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pbxPort := porttest.Port(t)
	g, sipAddr, env := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort),
		"GUARD_GRACE=2s", "GUARD_LATE_OFFER=pass")
	block := func(t *testing.T, number string) {
		out, stderr, code := runCLI(t, env, "block", number, "--level", "3", "--reason", "SIPp late offer", "--by", "sipp_test")
		if code != 0 {
			t.Fatalf("block %s: exit %d, %s %s", number, code, out, stderr)
		}
	}

	t.Run("100rel challenge", func(t *testing.T) {
		const caller = "+79990005601"
		block(t, caller)
		rtp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer rtp.Close()
		var packets atomic.Int64
		go func() {
			buf := make([]byte, 1500)
			for {
				n, err := rtp.Read(buf)
				if err != nil {
					return
				}
				if n > 12 && buf[0]>>6 == 2 { // RTP version 2
					packets.Add(1)
				}
			}
		}()
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		inf := writeInjection(t, "late100rel.csv", caller+";"+strconv.Itoa(port))
		r := startSIPp(ctx, t, "sipp uac_lateoffer_100rel", "uac_lateoffer_100rel.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, r, 1)
		// The prompt (about a second) and the silence after it, until
		// the BYE at the deadline: 20 ms packets.
		if n := packets.Load(); n < 50 {
			t.Errorf("%d RTP packets reached the address of the PRACK's answer, want the prompt's (50 or more)", n)
		}
		if v := metricValue(t, g, `callguard_late_offer_total{outcome="challenged"}`); v != 1 {
			t.Errorf("late_offer_total{outcome=challenged} = %v, want 1", v)
		}
	})

	t.Run("fallback pass", func(t *testing.T) {
		const caller = "+79990005602"
		block(t, caller)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_late", "uas_pbx_late.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "30s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "latepass.csv", caller)
		uac := startSIPp(ctx, t, "sipp uac_lateoffer_pass", "uac_lateoffer_pass.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "200", "-m", "1", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
		var out string
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _, _ = runCLI(t, env, "audit", caller)
			if strings.Contains(out, "late offer without 100rel") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(out, "PASS (passed: late offer without 100rel (GUARD_LATE_OFFER=pass)), the verdict was CHALLENGE") {
			t.Errorf("the audit does not say the challenge was passed for the late offer:\n%s", out)
		}
		if strings.Contains(out, "verified") {
			t.Errorf("the audit shows the caller verified, who typed no code:\n%s", out)
		}
		if v := metricValue(t, g, `callguard_late_offer_total{outcome="passed"}`); v != 1 {
			t.Errorf("late_offer_total{outcome=passed} = %v, want 1", v)
		}
		if v := metricValue(t, g, `callguard_calls_observed_total{verdict="challenge"}`); v != 0 {
			t.Errorf("calls_observed_total{verdict=challenge} = %v: a call passed by the late-offer fallback is not observe mode's", v)
		}
	})
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}
