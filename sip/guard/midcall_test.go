package guard_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/sip/sdp"
)

// holdOffer is the caller's offer again, with a higher o= version and
// a=sendonly: the carrier puts the call on hold (RFC 3264 §8.4).
func (c *fakeCaller) holdOffer() []byte {
	o, err := sdp.NewOffer(sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(c.rtp), SessionID: 1, SessionVersion: 2})
	if err != nil {
		c.t.Fatal(err)
	}
	return []byte(strings.Replace(string(o.Marshal()), "a=sendrecv", "a=sendonly", 1))
}

// A re-INVITE or UPDATE from the carrier on a passed call reaches the PBX
// in the PBX leg's dialog, with its SDP and session-timer headers, and the
// PBX's answer comes back.
func TestMidCallFromTheCarrierIsRelayed(t *testing.T) {
	cases := []struct {
		name   string
		method sip.RequestMethod
		body   func(c *fakeCaller) []byte
		// wantPBX is in the body the PBX gets; wantBack in the answer.
		wantPBX, wantBack string
	}{
		{"re-INVITE on hold", sip.INVITE, (*fakeCaller).holdOffer, "a=sendonly", "a=recvonly"},
		{"UPDATE refreshing the session", sip.UPDATE, func(*fakeCaller) []byte { return nil }, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := newFakeCaller(e)
			ctx := ctxFor(t, 10*time.Second)
			cl := c.invite(ctx, e.uri(), nil)
			if cl.status() != 200 {
				t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
			}
			pc := e.pbxAnswered()
			req := sip.NewRequest(tc.method, cl.dlg.InviteResponse.Contact().Address)
			req.AppendHeader(sip.NewHeader("Session-Expires", "1800;refresher=uac"))
			req.AppendHeader(sip.NewHeader("Min-SE", "90"))
			req.AppendHeader(sip.NewHeader("Supported", "timer"))
			req.AppendHeader(sip.NewHeader("Require", "timer"))
			if body := tc.body(c); body != nil {
				req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
				req.SetBody(body)
			}
			res, err := cl.dlg.Do(ctx, req)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("%s on a passed call: %v %v", tc.method, res, err)
			}
			if !strings.Contains(string(res.Body()), tc.wantBack) {
				t.Errorf("answer to the carrier lacks %q:\n%s", tc.wantBack, res.Body())
			}
			if tc.wantBack != "" && !strings.Contains(string(res.Body()), fmt.Sprintf("m=audio %d", mediaPort(t, pc))) {
				t.Errorf("answer to the carrier is not the PBX's:\n%s", res.Body())
			}
			if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "1800;refresher=uac" {
				t.Errorf("answer's Session-Expires %v, want the PBX's 1800;refresher=uac", h)
			}
			mids, err := pc.WaitMidCall(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			got := mids[0]
			if got.Method != tc.method {
				t.Fatalf("PBX got %s, want %s", got.Method, tc.method)
			}
			if got.CSeq().SeqNo <= pc.Invite.CSeq().SeqNo {
				t.Errorf("PBX leg CSeq %d, want above its INVITE's %d", got.CSeq().SeqNo, pc.Invite.CSeq().SeqNo)
			}
			if got.CallID().Value() != pc.CallID {
				t.Errorf("PBX got Call-ID %s, want its dialog's %s", got.CallID().Value(), pc.CallID)
			}
			for name, want := range map[string]string{"Session-Expires": "1800;refresher=uac", "Min-SE": "90", "Supported": "timer", "Require": "timer"} {
				if h := got.GetHeader(name); h == nil || h.Value() != want {
					t.Errorf("PBX got %s %v, want %q", name, h, want)
				}
			}
			if !strings.Contains(string(got.Body()), tc.wantPBX) || (tc.wantPBX == "") != (len(got.Body()) == 0) {
				t.Errorf("PBX got body without %q:\n%s", tc.wantPBX, got.Body())
			}
			if tc.method == sip.INVITE {
				ack := sip.NewRequest(sip.ACK, cl.dlg.InviteResponse.Contact().Address)
				if err := cl.dlg.WriteRequest(ack); err != nil {
					t.Fatal(err)
				}
				actortest.Eventually(t, 5*time.Second, func() error {
					for _, a := range pc.MidCallAcks() {
						if a.CSeq().SeqNo == got.CSeq().SeqNo {
							return nil
						}
					}
					return fmt.Errorf("the PBX got no ACK with CSeq %d", got.CSeq().SeqNo)
				})
			}
			c.hangup(cl)
			e.pbxEnded("BYE from the caller")
		})
	}
}

// A re-INVITE from the PBX on a passed call reaches the carrier with the
// PBX's offer, the carrier's answer reaches the PBX, and the carrier gets
// the ACK.
func TestReinviteFromThePBXIsRelayed(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 10*time.Second)
	cl := c.invite(ctx, e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	pc := e.pbxAnswered()
	res, err := pc.Reinvite(ctx)
	if err != nil {
		t.Fatalf("PBX re-INVITE: %v", err)
	}
	if !strings.Contains(string(res.Body()), fmt.Sprintf("m=audio %d", portOf(c.rtp))) {
		t.Errorf("PBX got an answer that is not the carrier's:\n%s", res.Body())
	}
	var reinv *sip.Request
	select {
	case reinv = <-c.reinvites:
	case <-ctx.Done():
		t.Fatal("the carrier got no re-INVITE")
	}
	if reinv.CallID().Value() != cl.dlg.InviteRequest.CallID().Value() {
		t.Errorf("carrier's re-INVITE Call-ID %s, want its call's", reinv.CallID().Value())
	}
	if !strings.Contains(string(reinv.Body()), fmt.Sprintf("m=audio %d", mediaPort(t, pc))) {
		t.Errorf("carrier's re-INVITE does not offer the PBX's media:\n%s", reinv.Body())
	}
	select {
	case a := <-c.acks:
		if a.CSeq().SeqNo != reinv.CSeq().SeqNo {
			t.Errorf("carrier's ACK CSeq %d, want the re-INVITE's %d", a.CSeq().SeqNo, reinv.CSeq().SeqNo)
		}
	case <-ctx.Done():
		t.Fatal("the carrier got no ACK for its 200 to the re-INVITE")
	}
	c.hangup(cl)
	e.pbxEnded("BYE from the caller")
}

// During a challenge the guard terminates the media: a re-INVITE is
// answered with the SDP it already gave, and a session refresh is answered
// with the carrier kept as the refresher, since the guard does not refresh
// itself (RFC 4028 §9).
func TestMidCallDuringAChallengeIsAnsweredLocally(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, _, _ := challenge(t, e, c, ctx)
	reinv := sip.NewRequest(sip.INVITE, cl.dlg.InviteResponse.Contact().Address)
	reinv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	reinv.SetBody(c.holdOffer())
	res, err := cl.dlg.Do(ctx, reinv)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE during a challenge: %v %v", res, err)
	}
	if string(res.Body()) != string(cl.final().Body()) {
		t.Errorf("re-INVITE answered with\n%s\nwant the guard's answer\n%s", res.Body(), cl.final().Body())
	}
	if err := cl.dlg.WriteRequest(sip.NewRequest(sip.ACK, cl.dlg.InviteResponse.Contact().Address)); err != nil {
		t.Fatal(err)
	}
	upd := sip.NewRequest(sip.UPDATE, cl.dlg.InviteResponse.Contact().Address)
	upd.AppendHeader(sip.NewHeader("Session-Expires", "1800"))
	upd.AppendHeader(sip.NewHeader("Require", "timer"))
	res, err = cl.dlg.Do(ctx, upd)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("UPDATE requiring timer during a challenge: %v %v, want 200", res, err)
	}
	if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "1800;refresher=uac" {
		t.Errorf("refresh answered with Session-Expires %v, want 1800;refresher=uac", h)
	}
	if !hasTag(res, "Require", "timer") {
		t.Errorf("refresh answer lacks Require: timer")
	}
	if calls := e.pbx.Calls(); len(calls) > 0 && len(calls[0].MidCall()) > 0 {
		t.Errorf("the PBX got a mid-call request during the challenge")
	}
	c.hangup(cl)
}
