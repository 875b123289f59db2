package guard_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/guard"
	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sip/siptest"
)

// inviteLate sends an INVITE without SDP (a late offer, RFC 3261
// §13.2.1) and waits for its final response; a 2xx's offer is answered in
// the ACK with the caller's RTP socket.
func (c *fakeCaller) inviteLate(ctx context.Context, uri string) (*sipgo.DialogClientSession, *sip.Response, error) {
	c.t.Helper()
	var target sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		c.t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.number, Host: "carrier.example"}}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}})
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	if err != nil {
		return dlg, dlg.InviteResponse, err
	}
	offer, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		c.t.Fatalf("the 200 to a late offer has no SDP offer: %v\n%s", err, dlg.InviteResponse.Body())
	}
	ans, err := sdp.Negotiate(offer, sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(c.rtp), SessionID: 1, SessionVersion: 1})
	if err != nil {
		c.t.Fatal(err)
	}
	ack := sip.NewRequest(sip.ACK, dlg.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(ans.Body())
	if err := dlg.WriteAck(ctx, ack); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.dialogs[dlg.ID] = dlg
	c.mu.Unlock()
	return dlg, dlg.InviteResponse, nil
}

// A late offer on a passed call is relayed: the PBX gets the INVITE
// without SDP, its 2xx offer reaches the carrier, and the carrier's ACK
// answer reaches the PBX, whose RTP then flows to the carrier.
func TestLateOfferIsRelayedOnPass(t *testing.T) {
	e := newEnv(t)
	e.setPBX(siptest.Behaviour{Delay: 50 * time.Millisecond}) // not quiet: its RTP shows where it sends
	c := newFakeCaller(e)
	ctx := ctxFor(t, 10*time.Second)
	dlg, res, err := c.inviteLate(ctx, e.uri())
	if err != nil {
		t.Fatalf("late offer on a passed call: %v %v", res, err)
	}
	pc := e.pbxAnswered()
	if len(pc.Invite.Body()) != 0 || pc.Invite.GetHeader("Content-Type") != nil {
		t.Errorf("the PBX's INVITE has a body:\n%s", pc.Invite.Body())
	}
	if !strings.Contains(string(res.Body()), "m=audio ") || !strings.Contains(string(res.Body()), pc.MediaAddr()[strings.LastIndex(pc.MediaAddr(), ":")+1:]) {
		t.Errorf("the carrier's 200 is not the PBX's offer (PBX media %s):\n%s", pc.MediaAddr(), res.Body())
	}
	// The PBX sends silence to the address in the answer it got in the
	// ACK: the caller's RTP socket.
	buf := make([]byte, 1500)
	if err := c.rtp.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rtp.Read(buf); err != nil {
		t.Errorf("no RTP from the PBX: the ACK's answer did not reach it: %v", err)
	}
	bye := sip.NewRequest(sip.BYE, dlg.InviteResponse.Contact().Address)
	if err := dlg.WriteBye(ctx, bye); err != nil {
		t.Fatal(err)
	}
	e.pbxEnded("BYE from the caller")
}

// A late offer on a call to be challenged is refused (488, a Reason
// saying why): the challenge's early media needs the offer. It is
// counted, and the call is recorded as ended for its media.
func TestLateOfferOnAChallengeIsRefused(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	c := newFakeCaller(e)
	_, res, err := c.inviteLate(ctxFor(t, 10*time.Second), e.uri())
	if err == nil || res == nil || res.StatusCode != 488 {
		t.Fatalf("late offer on a challenged call: %v %v, want 488", res, err)
	}
	if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "offer required for a challenge") {
		t.Errorf("488 Reason %v, want one saying a challenge needs the offer", h)
	}
	if n := e.guard.Stats().LateOfferRejected; n != 1 {
		t.Errorf("LateOfferRejected %d, want 1", n)
	}
	if calls := e.pbx.Calls(); len(calls) != 0 {
		t.Errorf("the PBX got %d calls", len(calls))
	}
}

// inviteLateRel sends an INVITE without SDP that supports 100rel and waits
// for its final response; onResponse sees every response (and PRACKs the
// guard's reliable 183 itself). A 2xx is ACKed without a body: the offer
// and answer were exchanged in the 183 and the PRACK.
func (c *fakeCaller) inviteLateRel(ctx context.Context, uri string, onResponse func(*sip.Response)) *call {
	c.t.Helper()
	var target sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		c.t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.number, Host: "carrier.example"}}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}})
	req.AppendHeader(sip.NewHeader("Supported", "100rel"))
	cl := &call{}
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		cl.err = err
		return cl
	}
	cl.dlg = dlg
	cl.err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		cl.responses = append(cl.responses, r)
		onResponse(r)
		return nil
	}})
	if dlg.InviteResponse != nil && (len(cl.responses) == 0 || cl.final() != dlg.InviteResponse) {
		cl.responses = append(cl.responses, dlg.InviteResponse)
	}
	if cl.err == nil {
		cl.answered = time.Now()
		c.mu.Lock()
		c.dialogs[dlg.ID] = dlg
		c.mu.Unlock()
		if err := dlg.Ack(context.Background()); err != nil {
			c.t.Fatalf("ACK: %v", err)
		}
	}
	return cl
}

// prackWith acknowledges the reliable 1xx res with its RAck and body as
// the answer to res's offer.
func (c *fakeCaller) prackWith(ctx context.Context, t *testing.T, res *sip.Response, body []byte) (*sip.Response, error) {
	req := sip.NewRequest(sip.PRACK, *res.Contact().Address.Clone())
	req.AppendHeader(sip.HeaderClone(res.From()))
	req.AppendHeader(sip.HeaderClone(res.To()))
	req.AppendHeader(sip.HeaderClone(res.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo + 1, MethodName: sip.PRACK})
	req.AppendHeader(sip.NewHeader("RAck", rackOf(t, res)))
	if len(body) > 0 {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	}
	return c.cli.Do(ctx, req)
}

// answerMedia answers the guard's offer in res with the caller's RTP
// socket and starts the caller's media on it; it returns the answer.
func (c *fakeCaller) answerMedia(ctx context.Context, res *sip.Response) (*callerMedia, []byte) {
	c.t.Helper()
	offer, err := sdp.Parse(res.Body())
	if err != nil {
		c.t.Fatalf("the reliable 183 carries no SDP offer: %v\n%s", err, res.Body())
	}
	ans, err := sdp.Negotiate(offer, sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(c.rtp), SessionID: 7, SessionVersion: 1})
	if err != nil {
		c.t.Fatalf("the guard's offer cannot be answered: %v\n%s", err, res.Body())
	}
	codec, _ := media.CodecByName(ans.Codec.Name)
	m := &callerMedia{rec: &media.Recorder{}}
	m.sender, err = media.NewSender(media.SenderConfig{Conn: c.rtp, Remote: net.UDPAddrFromAddrPort(ans.Remote), Codec: codec, EventPayloadType: ans.DTMFPayloadType})
	if err != nil {
		c.t.Fatal(err)
	}
	m.recv, err = media.NewReceiver(media.ReceiverConfig{Conn: c.rtp, Remote: ans.Remote, Codecs: []media.Codec{codec}, EventPayloadType: ans.DTMFPayloadType, Sink: m.rec})
	if err != nil {
		c.t.Fatal(err)
	}
	go m.recv.Run(ctx)
	return m, ans.Body()
}

// A late offer from a carrier with 100rel is challenged: the guard offers
// its own media (PCMU, PCMA, telephone-event) in a reliable 183, takes
// the answer from the PRACK (RFC 3262 §5), plays the prompt there, and a
// caller who types the code is bridged. The 200 repeats the 183's SDP.
func TestLateOfferWith100relIsChallenged(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	var (
		m         *callerMedia
		offer183  []byte
		prackRes  *sip.Response
		prackErr  error
		unrel183s int
	)
	cl := c.inviteLateRel(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode != 183 {
			return
		}
		if !isReliable(r) {
			unrel183s++
			return
		}
		if m != nil {
			return // a retransmission
		}
		offer183 = r.Body()
		var body []byte
		m, body = c.answerMedia(ctx, r)
		prackRes, prackErr = c.prackWith(ctx, t, r, body)
	})
	if m == nil {
		t.Fatalf("no reliable 183 with an offer; INVITE got %d (%v)", cl.status(), cl.err)
	}
	if prackErr != nil || prackRes.StatusCode != 200 {
		t.Fatalf("PRACK with the answer: %v %v, want 200", prackRes, prackErr)
	}
	if cl.status() != 200 {
		t.Fatalf("INVITE got %d (%v), want 200 after the prompt", cl.status(), cl.err)
	}
	for _, want := range []string{"PCMU/8000", "PCMA/8000", "telephone-event/8000"} {
		if !strings.Contains(string(offer183), want) {
			t.Errorf("the guard's offer lacks %s:\n%s", want, offer183)
		}
	}
	if unrel183s > 0 {
		t.Errorf("%d unreliable 183s to a carrier with 100rel", unrel183s)
	}
	if got := string(cl.final().Body()); got != "" && got != string(offer183) {
		t.Errorf("the 200's SDP differs from the 183's offer (RFC 3261 §13.2.1 allows the same or none):\n183:\n%s\n200:\n%s", offer183, got)
	}
	if got := len(m.rec.PCM()); got < 8000/2 {
		t.Errorf("caller heard %d samples of the prompt at its answer's address, want the whole prompt", got)
	}
	m.typeKeys(ctx, t, testCode)
	pc := e.pbxAnswered()
	if !strings.Contains(string(pc.Invite.Body()), "m=audio ") {
		t.Errorf("the bridge INVITE to the PBX has no offer of the guard's:\n%s", pc.Invite.Body())
	}
	c.hangup(cl)
	evs := e.callStream()
	if ch, ok := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); !ok || ch.Outcome != schema.Passed {
		t.Errorf("ChallengeEnded %+v, want passed", evs[schema.TypeChallengeEnded])
	}
	st := e.guard.Stats()
	if st.LateOfferChallenged != 1 || st.LateOfferRejected != 0 {
		t.Errorf("late offers challenged %d, refused %d; want 1, 0", st.LateOfferChallenged, st.LateOfferRejected)
	}
}

// A PRACK without the answer to the guard's offer fails the offer/answer
// exchange: the call ends with 488 and no media.
func TestLateOfferPrackWithoutAnswerEndsTheCall(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	var prackRes *sip.Response
	cl := c.inviteLateRel(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 183 && isReliable(r) && prackRes == nil {
			prackRes, _ = c.prackWith(ctx, t, r, nil)
		}
	})
	if prackRes == nil || prackRes.StatusCode != 200 {
		t.Errorf("PRACK without an answer got %v, want 200 (it matches the 183)", prackRes)
	}
	if cl.status() != 488 {
		t.Fatalf("INVITE got %d (%v), want 488", cl.status(), cl.err)
	}
	if end, ok := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); !ok || end.Cause != schema.EndMediaFailed {
		t.Errorf("CallEnded %+v, want media-failed", e.callStream()[schema.TypeCallEnded])
	}
	if calls := e.pbx.Calls(); len(calls) != 0 {
		t.Errorf("the PBX got %d calls", len(calls))
	}
}

// GUARD_LATE_OFFER=pass: a call to be challenged whose INVITE has no SDP
// from a carrier without 100rel is relayed to the PBX unchallenged. The
// caller's record says the verdict was challenge, the action pass, and
// why; no challenge outcome is recorded, so the caller is not verified.
func TestLateOfferFallbackPasses(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.LateOffer = "pass" }))
	e.block(3)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 10*time.Second)
	dlg, res, err := c.inviteLate(ctx, e.uri())
	if err != nil {
		t.Fatalf("late offer with GUARD_LATE_OFFER=pass: %v %v, want the PBX's 200", res, err)
	}
	if len(e.pbx.Calls()) != 1 {
		t.Fatalf("the PBX got %d calls, want 1", len(e.pbx.Calls()))
	}
	if err := dlg.WriteBye(ctx, sip.NewRequest(sip.BYE, dlg.InviteResponse.Contact().Address)); err != nil {
		t.Fatal(err)
	}
	evs := e.callStream()
	rec, ok := evs[schema.TypeCallReceived].(*schema.CallReceived)
	if !ok || rec.Verdict != schema.Challenge || rec.Action != schema.Pass || rec.ActionReason != guard.LateOfferPassed {
		t.Errorf("CallReceived %+v, want verdict challenge, action pass, reason %q", rec, guard.LateOfferPassed)
	}
	if dec, ok := evs[schema.TypeCallDecided].(*schema.CallDecided); ok && dec.ActionReason != guard.LateOfferPassed {
		t.Errorf("CallDecided %+v, want reason %q", dec, guard.LateOfferPassed)
	}
	if _, ok := evs[schema.TypeChallengeEnded]; ok {
		t.Error("a challenge is recorded for a call passed unchallenged")
	}
	if raw, ok := e.callerStream()[schema.TypeChallengeOutcome]; ok {
		t.Errorf("the caller has a challenge outcome (it never typed a code): %s", raw)
	}
	if n := e.guard.Stats().LateOfferRejected; n != 0 {
		t.Errorf("LateOfferRejected %d, want 0", n)
	}
}

// GUARD_LATE_OFFER=pass leaves alone what can be challenged: a late
// offer from a carrier with 100rel is challenged (the guard's offer in
// the 183), and a call with an offer is challenged as ever.
func TestLateOfferFallbackOnlyWithout100rel(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.LateOffer = "pass" }))
	e.block(3)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	var got183 bool
	cl := c.inviteLateRel(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 183 && isReliable(r) && !got183 {
			got183 = true
			_, body := c.answerMedia(ctx, r)
			if res, err := c.prackWith(ctx, t, r, body); err != nil || res.StatusCode != 200 {
				t.Errorf("PRACK: %v %v", res, err)
			}
		}
	})
	if !got183 || cl.status() != 200 {
		t.Fatalf("late offer with 100rel: 183 seen %v, INVITE got %d (%v); want a challenge", got183, cl.status(), cl.err)
	}
	if len(e.pbx.Calls()) != 0 {
		t.Errorf("the PBX got a call before the code")
	}
	c.hangup(cl)
	if rec, ok := e.callStream()[schema.TypeCallReceived].(*schema.CallReceived); !ok || rec.Action != schema.Challenge || rec.ActionReason != "" {
		t.Errorf("CallReceived %+v, want action challenge without a reason", rec)
	}
}
