package guard_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

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
