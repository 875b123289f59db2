package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/actortest"
	actorcall "github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/guard"
	"github.com/callguard/callguard/sip/siptest"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestUntrustedInviteGets403(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.TrustedPeers = "192.0.2.0/24" }))
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 403 {
		t.Fatalf("untrusted INVITE: got %d (%v), want 403", cl.status(), cl.err)
	}
	if got := e.guard.Stats().Refused; got != 1 {
		t.Errorf("refused counter %d, want 1", got)
	}
	if got := e.guard.Refused().Total(); got != 1 {
		t.Errorf("trust.Refused total %d, want 1", got)
	}
	if n := e.guard.Stats().Calls.Started; n != 0 {
		t.Errorf("%d calls started for an untrusted INVITE", n)
	}
}

func options(t *testing.T, p *peer, target string) *sip.Response {
	t.Helper()
	var uri sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil {
		t.Fatal(err)
	}
	res, err := p.cli.Do(ctxFor(t, 5*time.Second), sip.NewRequest(sip.OPTIONS, uri))
	if err != nil {
		t.Fatalf("OPTIONS: %v", err)
	}
	return res
}

func TestOptionsKeepAlive(t *testing.T) {
	e := newEnv(t)
	p := newPeer(t, "trunk")
	p.serve()
	res := options(t, p, "sip:"+e.guard.UDPAddr().String())
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS from a trusted source: %d, want 200", res.StatusCode)
	}
	if h := res.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "INVITE") {
		t.Errorf("200 to OPTIONS lacks Allow: %v", h)
	}
	if got := e.guard.Stats().Options; got != 1 {
		t.Errorf("options counter %d, want 1", got)
	}
}

// One actor cluster per test: protoactor's remote sets gRPC's global
// logger as a node starts, which races with a running node's server.
func TestOptionsFromUntrustedGets403(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.TrustedPeers = "192.0.2.0/24" }))
	p := newPeer(t, "scanner")
	p.serve()
	if res := options(t, p, "sip:"+e.guard.UDPAddr().String()); res.StatusCode != 403 {
		t.Fatalf("OPTIONS from an untrusted source: %d, want 403", res.StatusCode)
	}
	if got := e.guard.Stats().Refused; got != 1 {
		t.Errorf("refused %d, want 1", got)
	}
}

func TestMalformedDatagramsDoNotStopTheGuard(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("udp", e.guard.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, junk := range []string{
		"\x00\x01\x02garbage",
		"INVITE sip:x SIP/2.0\r\n\r\n",
		"INVITE sip:+78005553535@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\n\r\n",
		strings.Repeat("A", 1400),
		"SIP/2.0 200 OK\r\n\r\n",
	} {
		if _, err := conn.Write([]byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	p := newPeer(t, "trunk")
	p.serve()
	if res := options(t, p, "sip:"+e.guard.UDPAddr().String()); res.StatusCode != 200 {
		t.Fatalf("OPTIONS after garbage: %d, want 200", res.StatusCode)
	}
	if n := e.guard.Stats().Malformed; n == 0 {
		t.Error("no malformed datagram counted")
	}
	// A request that parses but breaks RFC 3261 gets its 4xx.
	var uri sip.Uri
	_ = sip.ParseUri(e.uri(), &uri)
	req := sip.NewRequest(sip.INVITE, uri)
	mf := sip.MaxForwardsHeader(0)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	res, err := p.cli.Do(ctxFor(t, 5*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 483 {
		t.Errorf("INVITE with Max-Forwards 0: %d, want 483", res.StatusCode)
	}
}

func TestRejectCarriesReason(t *testing.T) {
	e := newEnv(t)
	e.block(7)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 603 {
		t.Fatalf("blocked caller: got %d (%v), want 603", cl.status(), cl.err)
	}
	h := cl.final().GetHeader("Reason")
	if h == nil || !strings.Contains(h.Value(), "SIP;cause=603") || !strings.Contains(h.Value(), "manual") || !strings.Contains(h.Value(), "level 7") {
		t.Fatalf("Reason header %v, want SIP cause 603 naming the manual rule and level 7", h)
	}
	// One event: the grain's CallReceived is the reject's whole record.
	evs := e.callStream()
	rec := evs[schema.TypeCallReceived].(*schema.CallReceived)
	if rec.Verdict != schema.Reject || rec.Action != schema.Reject || rec.Rule != schema.RuleManual || !rec.Complete() {
		t.Errorf("CallReceived %+v, want reject by the manual rule, carried out", rec)
	}
	if len(evs) != 1 {
		t.Errorf("a reject wrote a call stream: %v", evs)
	}
	if rec.Caller != e.number || rec.Callee != tollFree || rec.IdentityFrom != "from" || rec.SIPCallID == "" || rec.Transport != "UDP" {
		t.Errorf("CallReceived %+v, want caller %s from From, callee %s, the Call-ID and the transport", rec, e.number, tollFree)
	}
	if len(e.pbx.Calls()) != 0 {
		t.Error("the PBX got an INVITE for a rejected call")
	}
}

func TestPassGoesToThePBX(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	pai := sip.NewHeader("P-Asserted-Identity", "<tel:"+e.number+">")
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil, pai)
	if cl.err != nil || cl.status() != 200 {
		t.Fatalf("pass: got %d (%v), want 200", cl.status(), cl.err)
	}
	if cl.response(180) == nil {
		t.Errorf("the PBX's 180 Ringing was not relayed")
	}
	pc := e.pbxCall()
	inv := pc.Invite
	if f := inv.From(); f == nil || f.Address.User != e.number || f.DisplayName != "Ivan" {
		t.Errorf("PBX leg From %v, want the caller's identity", f)
	}
	if h := inv.GetHeader("P-Asserted-Identity"); h == nil || !strings.Contains(h.Value(), e.number) {
		t.Errorf("PBX leg lacks the caller's P-Asserted-Identity: %v", h)
	}
	if string(inv.Body()) != string(c.offer()) {
		t.Errorf("PBX leg offer differs from the caller's:\n%s\nvs\n%s", inv.Body(), c.offer())
	}
	// The PBX's answer reaches the caller: media flows end to end.
	if !strings.Contains(string(cl.final().Body()), "m=audio "+strconv.Itoa(mediaPort(t, pc))) {
		t.Errorf("caller got an answer that is not the PBX's:\n%s", cl.final().Body())
	}
	time.Sleep(100 * time.Millisecond)
	c.hangup(cl)
	e.pbxEnded("BYE from the caller")
	evs := e.callStream()
	end := evs[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Cause != schema.EndCallerHangup || end.By != schema.PartyCaller || end.AnsweredAt == nil || end.DurationMs < 100 || end.Billed {
		t.Errorf("CallEnded %+v, want a caller hang-up after >100 ms, unbilled", end)
	}
	if a := evs[schema.TypeCallAnswered].(*schema.CallAnswered); a.By != schema.PartyPBX {
		t.Errorf("CallAnswered by %s, want pbx", a.By)
	}
	if rec := evs[schema.TypeCallReceived].(*schema.CallReceived); rec.IdentityFrom != "pai" {
		t.Errorf("caller identity read from %q, want pai", rec.IdentityFrom)
	}
}

// A PBX that never answers the guard's BYE (it lost the call) does not
// keep the ended call's session, dialogs and goroutines for Timer F (32 s):
// the guard lets go after byeWait.
func TestUnansweredByeLetsGoSoon(t *testing.T) {
	e := newEnv(t)
	e.setPBX(siptest.Behaviour{IgnoreBye: true})
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	c.hangup(cl)
	e.pbxEnded("BYE from the caller, ignored")
	start := time.Now()
	deadline := time.Now().Add(12 * time.Second)
	for {
		st := e.guard.Stats()
		if st.ActiveSessions == 0 && st.Dialogs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dialogs still held %v after the caller hung up (the PBX never answers the BYE)", st.Dialogs, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); end.Cause != schema.EndCallerHangup {
		t.Errorf("CallEnded %+v, want a caller hang-up", end)
	}
}

func TestPBXHangsUp(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	e.pbxHangup()
	select {
	case <-c.byeAt:
	case <-time.After(5 * time.Second):
		t.Fatal("the caller got no BYE after the PBX hung up")
	}
	end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Cause != schema.EndPBXHangup || end.By != schema.PartyPBX {
		t.Errorf("CallEnded %+v, want a PBX hang-up", end)
	}
}

func TestPBXBusyIsRelayed(t *testing.T) {
	e := newEnv(t)
	e.setPBX(pbxBusy)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 486 {
		t.Fatalf("PBX busy: caller got %d (%v), want 486", cl.status(), cl.err)
	}
	if h := cl.final().GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "486") {
		t.Errorf("Reason %v, want the PBX's 486", h)
	}
	end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Cause != schema.EndPBXRefused || end.Status != 486 {
		t.Errorf("CallEnded %+v, want pbx-refused 486", end)
	}
}

func TestPBXUnreachable(t *testing.T) {
	// A UDP port nobody listens on.
	dead := rtpSocket(t)
	addr := dead.LocalAddr().String()
	dead.Close()
	e := newEnv(t, withConfig(func(c *guard.Config) { c.PBXURI = "sip:pbx@" + addr }))
	c := newFakeCaller(e)
	start := time.Now()
	cl := c.invite(ctxFor(t, 10*time.Second), e.uri(), nil)
	if cl.status() != 503 {
		t.Fatalf("PBX unreachable: caller got %d (%v), want 503", cl.status(), cl.err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("503 after %v; GUARD_PBX_TIMEOUT is 800 ms", took)
	}
	end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Cause != schema.EndPBXUnreachable || end.Status != 503 {
		t.Errorf("CallEnded %+v, want pbx-unreachable 503", end)
	}
}

func TestCancelOnPass(t *testing.T) {
	e := newEnv(t)
	e.setPBX(pbxRing)
	c := newFakeCaller(e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 180 {
			go func() {
				time.Sleep(100 * time.Millisecond)
				cancel()
			}()
		}
	})
	if !errors.Is(cl.err, context.Canceled) {
		t.Fatalf("cancelled call ended with %v", cl.err)
	}
	if cl.status() != 487 {
		t.Errorf("caller's INVITE ended with %d, want 487", cl.status())
	}
	e.pbxEnded("cancelled")
	end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Cause != schema.EndCallerCancelled || end.Status != 487 {
		t.Errorf("CallEnded %+v, want caller-cancelled 487", end)
	}
}

func TestObserveModePassesEveryCall(t *testing.T) {
	e := newEnv(t, withCallConfig(func(c *actorcall.Config) { c.Mode = schema.Observe }))
	e.block(7)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("observe mode: a blocked caller got %d (%v), want 200 from the PBX", cl.status(), cl.err)
	}
	c.hangup(cl)
	evs := e.callStream()
	dec := evs[schema.TypeCallReceived].(*schema.CallReceived)
	if dec.Verdict != schema.Reject || dec.Action != schema.Pass || dec.Mode != schema.Observe {
		t.Errorf("CallReceived %+v, want verdict reject, action pass, mode observe", dec)
	}
	if n := e.guard.Stats().Calls.Observed; n != 1 {
		t.Errorf("observed counter %d, want 1", n)
	}
}

// challenge places a call from a caller blocked at level 3 and returns it
// with the caller's media, once the guard answered.
func challenge(t *testing.T, e *env, c *fakeCaller, ctx context.Context) (*call, *callerMedia, time.Time) {
	t.Helper()
	e.block(3)
	var (
		m        *callerMedia
		progress time.Time
	)
	cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 183 {
			progress = time.Now()
			m = c.startMedia(ctx, r)
		}
	})
	if cl.status() != 200 || m == nil {
		t.Fatalf("challenge: got %d (%v), 183 seen: %v", cl.status(), cl.err, m != nil)
	}
	return cl, m, progress
}

func TestChallengeRightCodeIsBridged(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, m, progress := challenge(t, e, c, ctx)
	// The announcement played in early media before the 200 OK.
	if got := len(m.rec.PCM()); got < 8000/2 {
		t.Errorf("caller heard %d samples of announcement before the answer, want the whole prompt", got)
	}
	if cl.answered.Sub(progress) < 500*time.Millisecond {
		t.Errorf("200 OK %v after 183; the announcement lasts about 1 s", cl.answered.Sub(progress))
	}
	m.typeKeys(ctx, t, testCode)
	pc := e.pbxAnswered()
	inv := pc.Invite
	if strings.Contains(string(inv.Body()), "m=audio "+strconv.Itoa(portOf(c.rtp))) || !strings.Contains(string(inv.Body()), "c=IN IP4 127.0.0.1") {
		t.Errorf("bridge offer to the PBX should point at the guard's media:\n%s", inv.Body())
	}
	// RTP now flows caller -> guard -> PBX.
	go func() {
		for ctx.Err() == nil {
			_ = m.sender.Play(ctx, make([]int16, 1600))
		}
	}()
	actortest.Eventually(t, 3*time.Second, func() error {
		if len(pc.RTP()) == 0 {
			return errors.New("no RTP relayed to the PBX")
		}
		return nil
	})
	// And PBX -> guard -> caller: a key the PBX sends (say, from an IVR
	// prompt's test tone generator) reaches the caller as a
	// telephone-event under the caller's payload type.
	if err := pc.Type(ctx, "5", siptest.DTMFOptions{Duration: 60 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 3*time.Second, func() error {
		if len(m.rec.Events()) == 0 {
			return errors.New("no telephone-event relayed from the PBX to the caller")
		}
		return nil
	})
	// Still connected after the grace window.
	select {
	case <-c.byeAt:
		t.Fatal("bridged caller got a BYE")
	case <-time.After(testGrace):
	}
	c.hangup(cl)
	evs := e.callStream()
	if ce := evs[schema.TypeCodeEntered].(*schema.CodeEntered); !ce.Correct || ce.Digits != 2 || ce.Methods[0] != "rfc4733" {
		t.Errorf("CodeEntered %+v, want a correct 2-digit code by rfc4733", ce)
	}
	if ch := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); ch.Outcome != schema.Passed {
		t.Errorf("ChallengeEnded %+v, want passed", ch)
	}
	if evs[schema.TypeCallBridged] == nil {
		t.Error("no CallBridged event")
	}
	end := evs[schema.TypeCallEnded].(*schema.CallEnded)
	if !end.Billed || end.Cause != schema.EndCallerHangup {
		t.Errorf("CallEnded %+v, want a billed call ended by the caller", end)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		var o schema.ChallengeOutcome
		raw, ok := e.callerStream()[schema.TypeChallengeOutcome]
		if !ok {
			return errors.New("no ChallengeOutcome in the caller stream")
		}
		if err := json.Unmarshal(raw, &o); err != nil || o.Outcome != schema.Passed {
			return errors.New("caller stream outcome is not passed: " + string(raw))
		}
		return nil
	})
}

// expectByeAtDeadline checks the guard's BYE comes at GRACE-1s after the
// 200 OK (within 200 ms), before GRACE.
func expectByeAtDeadline(t *testing.T, c *fakeCaller, cl *call) {
	t.Helper()
	var at time.Time
	select {
	case at = <-c.byeAt:
	case <-time.After(5 * time.Second):
		t.Fatal("no BYE from the guard")
	}
	after := at.Sub(cl.answered)
	want := testGrace - time.Second
	t.Logf("BYE %v after the 200 OK", after)
	if after < want-200*time.Millisecond || after > want+200*time.Millisecond || after >= testGrace {
		t.Errorf("BYE %v after the 200 OK, want %v ± 200 ms and before %v", after, want, testGrace)
	}
	bye := <-c.byes
	if h := bye.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "challenge failed") {
		t.Errorf("BYE Reason %v, want one saying the challenge failed", h)
	}
}

func TestChallengeWrongCodeEndsAtDeadline(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, m, _ := challenge(t, e, c, ctx)
	m.typeKeys(ctx, t, "11")
	expectByeAtDeadline(t, c, cl)
	evs := e.callStream()
	if ce := evs[schema.TypeCodeEntered].(*schema.CodeEntered); ce.Correct {
		t.Errorf("CodeEntered %+v, want incorrect", ce)
	}
	if ch := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); ch.Outcome != schema.Failed || ch.Cause != "code-wrong" {
		t.Errorf("ChallengeEnded %+v, want failed by a wrong code", ch)
	}
	end := evs[schema.TypeCallEnded].(*schema.CallEnded)
	if end.Billed || end.Cause != schema.EndChallengeFailed || end.By != schema.PartyGuard {
		t.Errorf("CallEnded %+v, want an unbilled call the guard ended", end)
	}
	if len(e.pbx.Calls()) != 0 {
		t.Error("the PBX was called after a wrong code")
	}
}

func TestChallengeNoCodeEndsAtDeadline(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	cl, _, _ := challenge(t, e, c, ctxFor(t, 20*time.Second))
	expectByeAtDeadline(t, c, cl)
	evs := e.callStream()
	if ch := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); ch.Outcome != schema.Failed || ch.Cause != "no-code" {
		t.Errorf("ChallengeEnded %+v, want failed with no code", ch)
	}
	if end := evs[schema.TypeCallEnded].(*schema.CallEnded); end.Billed {
		t.Errorf("CallEnded %+v: a call hung up before the grace interval is not billed", end)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		if _, ok := e.callerStream()[schema.TypeChallengeOutcome]; !ok {
			return errors.New("the grain did not learn the outcome")
		}
		return nil
	})
}

func TestChallengeCodeByInfo(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, _, _ := challenge(t, e, c, ctx)
	for _, k := range testCode {
		info := sip.NewRequest(sip.INFO, cl.dlg.InviteResponse.Contact().Address)
		info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		info.SetBody([]byte("Signal=" + string(k) + "\r\nDuration=100\r\n"))
		res, err := cl.dlg.Do(ctx, info)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("INFO: %v %v", res, err)
		}
	}
	e.pbxAnswered()
	c.hangup(cl)
	if ce := e.callStream()[schema.TypeCodeEntered].(*schema.CodeEntered); !ce.Correct || ce.Methods[0] != "info" {
		t.Errorf("CodeEntered %+v, want correct by info", ce)
	}
}

func TestCallerCancelsDuringAnnouncement(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	c := newFakeCaller(e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 183 {
			cancel()
		}
	})
	if cl.status() != 487 {
		t.Fatalf("cancel during the announcement: %d (%v), want 487", cl.status(), cl.err)
	}
	evs := e.callStream()
	if ch := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); ch.Outcome != schema.Abandoned {
		t.Errorf("ChallengeEnded %+v, want abandoned", ch)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		if e.guard.Stats().RTPPortsFree != portsInRange {
			return errors.New("RTP port not released")
		}
		return nil
	})
}

// portsInRange is the even ports of 30000-39999.
const portsInRange = 5000

func TestChallengeCodeInBand(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, m, _ := challenge(t, e, c, ctx)
	tones, err := dtmf.Dial(testCode, 80*time.Millisecond, 60*time.Millisecond, -7)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.sender.Play(ctx, tones); err != nil {
		t.Fatal(err)
	}
	e.pbxAnswered()
	c.hangup(cl)
	if ce := e.callStream()[schema.TypeCodeEntered].(*schema.CodeEntered); !ce.Correct || ce.Methods[0] != "inband" {
		t.Errorf("CodeEntered %+v, want correct in-band", ce)
	}
}

func TestPassOverTCP(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	uri := fmt.Sprintf("sip:%s@%s;transport=tcp", strings.TrimPrefix(tollFree, "+"), e.guard.TCPAddr())
	cl := c.invite(ctxFor(t, 5*time.Second), uri, nil)
	if cl.err != nil || cl.status() != 200 {
		t.Fatalf("pass over TCP: got %d (%v), want 200", cl.status(), cl.err)
	}
	e.pbxHangup()
	select {
	case <-c.byeAt:
	case <-time.After(5 * time.Second):
		t.Fatal("the TCP caller got no BYE after the PBX hung up")
	}
	if rec := e.callStream()[schema.TypeCallReceived].(*schema.CallReceived); rec.Transport != "TCP" {
		t.Errorf("CallReceived transport %q, want TCP", rec.Transport)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	good := guard.Config{
		Listen: "127.0.0.1:0", TrustedPeers: "127.0.0.1/32", PBXURI: "sip:pbx@127.0.0.1:5070",
		Language: "ru", RejectStatus: 603, RTPPorts: "20000-20999",
		PBXTimeout: 5 * time.Second, RingTimeout: 90 * time.Second,
	}
	deps := guard.Deps{Calls: testCalls(t, testCallConfig(), testCallDeps()), Numbers: mustNumbers(t), Logger: quiet()}
	if _, err := guard.New(good, deps); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for name, mutate := range map[string]func(*guard.Config){
		"GUARD_SIP_LISTEN":    func(c *guard.Config) { c.Listen = "5060" },
		"GUARD_TRUSTED_PEERS": func(c *guard.Config) { c.TrustedPeers = "10.0.0.0/33" },
		"GUARD_PBX_URI":       func(c *guard.Config) { c.PBXURI = "http://pbx" },
		"GUARD_LANGUAGE":      func(c *guard.Config) { c.Language = "fr" },
		"GUARD_SOUNDS_DIR":    func(c *guard.Config) { c.SoundsDir = "/nonexistent" },
		"GUARD_REJECT_STATUS": func(c *guard.Config) { c.RejectStatus = 200 },
		"GUARD_MEDIA_IP":      func(c *guard.Config) { c.Listen, c.MediaIP = "0.0.0.0:5060", "" },
		"GUARD_RTP_PORTS":     func(c *guard.Config) { c.RTPPorts = "20000" },
		"GUARD_TRUSTED_MEDIA": func(c *guard.Config) { c.TrustedMedia = "192.0.2.0/24,gateway" },
		"GUARD_RING_TIMEOUT":  func(c *guard.Config) { c.RingTimeout = 0 },
	} {
		c := good
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		_, err := guard.New(c, deps)
		if !errors.Is(err, guard.ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want an ErrConfig naming it", name, err)
		}
	}
}

func mustNumbers(t *testing.T) *phone.Normalizer {
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestShutdownHangsUpCalls(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	stopAt := time.Now()
	e.stop()
	t.Logf("stop took %v", time.Since(stopAt))
	select {
	case <-c.byeAt:
	case <-time.After(5 * time.Second):
		t.Error("the caller got no BYE when the guard stopped")
	}
	e.pbxEnded("BYE from the caller")
	if end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); end.Cause != schema.EndShutdown {
		t.Errorf("CallEnded %+v, want shutdown", end)
	}
}

func TestPBXNoAnswer(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.RingTimeout = 300 * time.Millisecond }))
	e.setPBX(pbxRing)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 480 {
		t.Fatalf("PBX rang out: caller got %d (%v), want 480", cl.status(), cl.err)
	}
	e.pbxEnded("cancelled")
	if end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); end.Cause != schema.EndPBXNoAnswer || end.Status != 480 {
		t.Errorf("CallEnded %+v, want pbx-no-answer 480", end)
	}
}

// downCallers is a grain client whose store is down.
type downCallers struct{}

func (downCallers) Admit(context.Context, string, caller.Admit) (caller.Verdict, error) {
	return caller.Verdict{}, fmt.Errorf("%w: test outage", caller.ErrStore)
}

func (downCallers) Outcome(context.Context, string, caller.Outcome) (caller.Applied, error) {
	return caller.Applied{}, fmt.Errorf("%w: test outage", caller.ErrStore)
}

func TestStoreDownPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy string
		status int
	}{{"pass", 200}, {"reject", 503}} {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t, withCallConfig(func(c *actorcall.Config) { c.StoreDown = schema.Verdict(tc.policy) }), withCallers(downCallers{}))
			c := newFakeCaller(e)
			cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
			if cl.status() != tc.status {
				t.Fatalf("store down, policy %s: got %d (%v), want %d", tc.policy, cl.status(), cl.err, tc.status)
			}
			if cl.status() == 200 {
				c.hangup(cl)
			}
			dec := e.callStream()[schema.TypeCallDecided].(*schema.CallDecided)
			if !dec.StoreDown || string(dec.Action) != tc.policy {
				t.Errorf("CallDecided %+v, want store-down with action %s", dec, tc.policy)
			}
		})
	}
}

func TestInfoIsRelayedOnPass(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 5*time.Second)
	cl := c.invite(ctx, e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	info := sip.NewRequest(sip.INFO, cl.dlg.InviteResponse.Contact().Address)
	info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	info.SetBody([]byte("Signal=5\r\nDuration=100\r\n"))
	res, err := cl.dlg.Do(ctx, info)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO on a passed call: %v %v", res, err)
	}
	pc := e.pbxAnswered()
	actortest.Eventually(t, 5*time.Second, func() error {
		for _, d := range pc.Digits() {
			if d.Key == '5' && d.Method == siptest.DTMFInfoRelay {
				return nil
			}
		}
		return fmt.Errorf("the PBX got no INFO with Signal=5 (keys %v)", pc.Digits())
	})
	c.hangup(cl)
}

// TestManyCallsLeaveNothingBehind runs passes, rejects and challenges side
// by side, then checks that every session, dialog, RTP port and call actor
// is gone.
func TestManyCallsLeaveNothingBehind(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	rejected := fmt.Sprintf("+7999%07d", 3000000+numberSeq.Add(1))
	cmd := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "b7", By: "test", Why: "test", Level: 7}}
	if _, err := e.callers.Command(context.Background(), rejected, cmd); err != nil {
		t.Fatal(err)
	}
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	var wg sync.WaitGroup
	statuses := make(chan int, 64)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl *call
			switch i % 3 {
			case 0:
				cl = c.inviteFrom(ctx, fmt.Sprintf("+7999%07d", 4000000+numberSeq.Add(1)), e.uri(), nil)
				if cl.status() == 200 {
					c.hangup(cl)
				}
			case 1:
				cl = c.inviteFrom(ctx, rejected, e.uri(), nil)
			default:
				cl = c.invite(ctx, e.uri(), nil) // challenged; types nothing
			}
			statuses <- cl.status()
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for st := range statuses {
		counts[st]++
	}
	if counts[200] != 20 || counts[603] != 10 {
		t.Errorf("statuses %v, want 20×200 (passes and challenges) and 10×603", counts)
	}
	actortest.Eventually(t, 10*time.Second, func() error {
		st := e.guard.Stats()
		if st.ActiveSessions != 0 || st.Dialogs != 0 || st.RTPPortsFree != portsInRange || st.Calls.Active != 0 {
			return fmt.Errorf("left behind: %+v", st)
		}
		return nil
	})
	if err := e.guard.Drain(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := e.guard.Stats().Calls
	if st.Started != 30 || st.ChallengesFailed != 10 || st.Rejected != 10 || st.EventsDropped != 0 {
		t.Errorf("call counters %+v", st)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := guard.DefaultConfig()
	if c.Listen != guard.DefaultListen || c.RejectStatus != 603 || c.PBXTimeout != 5*time.Second ||
		c.TrustedPeers != "127.0.0.1/32,::1/128" || c.Language != "ru" {
		t.Errorf("defaults %+v", c)
	}
	deps := guard.Deps{Calls: testCalls(t, testCallConfig(), testCallDeps()), Numbers: mustNumbers(t), Logger: quiet()}
	if _, err := guard.New(c, deps); err != nil {
		t.Errorf("the default configuration is refused: %v", err)
	}
}

func TestPassToAPBXOverTCP(t *testing.T) {
	e := newEnvPBX(t, true)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.err != nil || cl.status() != 200 {
		t.Fatalf("pass to a TCP PBX: got %d (%v), want 200", cl.status(), cl.err)
	}
	if pc := e.pbxCall(); pc.Transport != "TCP" {
		t.Fatalf("PBX INVITE over %s, want TCP", pc.Transport)
	}
	e.pbxHangup()
	select {
	case <-c.byeAt:
	case <-time.After(5 * time.Second):
		t.Fatal("the caller got no BYE after the TCP PBX hung up")
	}
	if end := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); end.Cause != schema.EndPBXHangup {
		t.Errorf("CallEnded %+v, want a PBX hang-up", end)
	}
}
