package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// transferMetric is one series of callguard_transfers_total.
func transferMetric(kind, outcome string) string {
	return `callguard_transfers_total{kind="` + kind + `",outcome="` + outcome + `"}`
}

// waitMetric polls the guard's metric until it reaches want (the guard
// counts a completed transfer after SIPp's NOTIFY answer, so shortly
// after SIPp may have finished).
func waitMetric(t *testing.T, g *guardProcess, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := metricValue(t, g, name)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s = %v, want %v", name, v, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oneCallEach checks that each transferred caller's call is one call in
// the call log, ended by the caller's hangup: the transfer (and the
// transferor's BYE) neither ended nor split it.
func oneCallEach(t *testing.T, g *guardProcess, callers []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range callers {
		for {
			var lines []string
			for _, l := range strings.Split(g.output(), "\n") {
				if strings.Contains(l, "msg=call ") && strings.Contains(l, "caller="+c+" ") {
					lines = append(lines, l)
				}
			}
			if len(lines) == 1 && strings.Contains(lines[0], "end=caller-hangup") {
				break
			}
			if len(lines) > 1 || time.Now().After(deadline) {
				t.Errorf("caller %s: call log lines %q, want one ended by the caller's hangup", c, lines)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Transfers and redirects by the PBX through the real guard, SIPp on all
// three sides: the carrier's caller, the PBX, and the transfer target
// (reached at GUARD_CARRIER_OUTBOUND, an allowed E.164 range).
//
//   - refer: the PBX answers and REFERs the call to +4930123456 (the
//     Refer-To's host names somewhere else: the guard must still send it
//     to the carrier address only); the target gets an INVITE without
//     offer and Referred-By, answers with its offer; the caller gets a
//     re-INVITE with the target's offer; the PBX gets 202, NOTIFY 100 and
//     NOTIFY 200 (terminated), then BYEs its leg; the caller's BYE
//     reaches the target.
//   - transferor leaves first: the PBX BYEs its leg right after the 202;
//     the call goes on to the target all the same.
//   - attended: the Refer-To names an extension on the PBX with
//     ?Replaces=; the PBX gets the INVITE with Replaces and Require:
//     replaces, and the caller is moved to it.
//   - refused: the PBX REFERs to a number outside the allow-list: 403
//     with a Reason, no call placed, the call stays up.
//   - redirect: the PBX answers 302 with an allowed Contact: the guard
//     follows it and the caller is answered by the target.
//   - redirect refused: a 302 to a number outside the list: the caller
//     gets 480, nothing is placed.
func TestSIPpTransferThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pbxPort, targetPort := porttest.Port(t), porttest.Port(t)
	g, sipAddr, _ := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort),
		"GUARD_TRANSFER_TARGETS=pbx,+4930123400-+4930123499",
		"GUARD_CARRIER_OUTBOUND=127.0.0.1:"+strconv.Itoa(targetPort),
		"GUARD_TRANSFER_RATE=50", "GUARD_TRANSFER_BURST=20")
	const n = 3

	t.Run("refer", func(t *testing.T) {
		target := startSIPp(ctx, t, "sipp uas_target", "uas_target.xml",
			"-p", strconv.Itoa(targetPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, target, targetPort)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_refer", "uas_pbx_refer.xml",
			"-key", "target", "sip:+4930123456@elsewhere.invalid:5099",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		callers := freshCallers("+7999500", n)
		inf := writeInjection(t, "transfer.csv", callers...)
		uac := startSIPp(ctx, t, "sipp uac_transfer", "uac_transfer.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
		expectAllSuccessful(t, target, n)
		waitMetric(t, g, transferMetric("refer", "accepted"), n)
		waitMetric(t, g, transferMetric("refer", "completed"), n)
		if !strings.Contains(g.output(), "call transferred") {
			t.Errorf("no transfer in the guard's log")
		}
		oneCallEach(t, g, callers)
	})

	t.Run("transferor leaves first", func(t *testing.T) {
		target := startSIPp(ctx, t, "sipp uas_target", "uas_target.xml",
			"-p", strconv.Itoa(targetPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, target, targetPort)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_refer_bye", "uas_pbx_refer_bye.xml",
			"-key", "target", "sip:+4930123457@elsewhere.invalid",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		callers := freshCallers("+7999505", n)
		inf := writeInjection(t, "transfer2.csv", callers...)
		uac := startSIPp(ctx, t, "sipp uac_transfer", "uac_transfer.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
		expectAllSuccessful(t, target, n)
		waitMetric(t, g, transferMetric("refer", "completed"), 2*n)
		oneCallEach(t, g, callers)
	})

	t.Run("attended", func(t *testing.T) {
		// The PBX takes both its own leg and the replacing INVITE: 2n
		// calls on its side.
		pbx := startSIPp(ctx, t, "sipp uas_pbx_attended", "uas_pbx_attended.xml",
			"-key", "target", "sip:201@127.0.0.1:"+strconv.Itoa(pbxPort)+"?Replaces=consult-1%40pbx%3Bto-tag%3Dabc%3Bfrom-tag%3Ddef",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(2*n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "attended.csv", freshCallers("+7999507", n)...)
		uac := startSIPp(ctx, t, "sipp uac_transfer", "uac_transfer.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, 2*n)
		waitMetric(t, g, transferMetric("refer", "completed"), 3*n)
	})

	t.Run("refused", func(t *testing.T) {
		pbx := startSIPp(ctx, t, "sipp uas_pbx_refer_refused", "uas_pbx_refer_refused.xml",
			"-key", "target", "sip:+4990012345@127.0.0.1:"+strconv.Itoa(targetPort),
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "refused.csv", freshCallers("+7999510", n)...)
		uac := startSIPp(ctx, t, "sipp uac_pass", "uac_pass.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "1500", "-m", strconv.Itoa(n), "-r", "2", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
		waitMetric(t, g, transferMetric("refer", "refused"), n)
		waitMetric(t, g, transferMetric("refer", "completed"), 3*n) // unchanged
	})

	t.Run("redirect", func(t *testing.T) {
		target := startSIPp(ctx, t, "sipp uas_pbx (redirect target)", "uas_pbx.xml",
			"-p", strconv.Itoa(targetPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, target, targetPort)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_redirect", "uas_pbx_redirect.xml",
			"-key", "target", "sip:+4930123499@127.0.0.1:"+strconv.Itoa(pbxPort+1),
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "redirect.csv", freshCallers("+7999520", n)...)
		uac := startSIPp(ctx, t, "sipp uac_pass", "uac_pass.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "500", "-m", strconv.Itoa(n), "-r", "2", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
		expectAllSuccessful(t, target, n)
		waitMetric(t, g, transferMetric("redirect", "accepted"), n)
	})

	t.Run("redirect refused", func(t *testing.T) {
		pbx := startSIPp(ctx, t, "sipp uas_pbx_redirect", "uas_pbx_redirect.xml",
			"-key", "target", "sip:+4990012345@127.0.0.1:"+strconv.Itoa(targetPort),
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "redirect_refused.csv", freshCallers("+7999525", n)...)
		uac := startSIPp(ctx, t, "sipp uac_redirect_refused", "uac_redirect_refused.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "2", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
		waitMetric(t, g, transferMetric("redirect", "refused"), n)
		waitMetric(t, g, transferMetric("redirect", "accepted"), n) // unchanged
	})
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}

// Calls the PBX places itself (camp-on callback, forwarding to an outside
// number) go around the guard, straight to the carrier. One the PBX sends
// to the guard instead comes from an address that is not the carrier's
// trunk: 403, counted as untrusted, never decided or counted as a call.
func TestSIPpPBXOutboundCallIsNotAnInboundCall(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sipAddr := "127.0.0.1:" + strconv.Itoa(porttest.Port(t))
	g := startGuard(t, "GUARD_DATA_DIR="+t.TempDir(), "GUARD_ADMIN_LISTEN=127.0.0.1:0",
		"GUARD_SIP_LISTEN="+sipAddr, "GUARD_TRUSTED_PEERS=127.0.0.2/32", // the carrier
		"GUARD_PBX_URI=sip:pbx@127.0.0.1:"+strconv.Itoa(porttest.Port(t))) // the PBX, which places the call
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(g.output(), "SIP guard listening"); {
		if time.Now().After(deadline) {
			t.Fatalf("the guard did not listen for SIP:\n%s", g.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 3
	inf := writeInjection(t, "outbound.csv", freshCallers("+7999530", n)...)
	uac := startSIPp(ctx, t, "sipp uac_pbx_outbound", "uac_pbx_outbound.xml", sipAddr,
		"-inf", inf, "-s", "+4930123456", "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
		"-m", strconv.Itoa(n), "-r", "5", "-timeout", "30s", "-timeout_error")
	expectAllSuccessful(t, uac, n)
	if v := metricValue(t, g, "callguard_sip_untrusted_rejected_total"); v != n {
		t.Errorf("untrusted refusals %v, want %d", v, n)
	}
	for _, v := range []string{"pass", "challenge", "reject", "store-down", "busy"} {
		if got := metricValue(t, g, `callguard_calls_total{verdict="`+v+`"}`); got != 0 {
			t.Errorf("calls_total{verdict=%q} = %v: the PBX's own call was taken as an inbound call", v, got)
		}
	}
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}
