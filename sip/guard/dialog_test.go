package guard_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/sip/sdp"
)

// readSIP reads datagrams from conn until one starts with prefix, or the
// deadline passes.
func readSIP(t *testing.T, conn *net.UDPConn, prefix string, d time.Duration) (string, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 65535)
	deadline := time.Now().Add(d)
	var seen []string
	for {
		if err := conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no %q at %s (got %q): %v", prefix, conn.LocalAddr(), seen, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, prefix) {
			return msg, from
		}
		seen = append(seen, strings.SplitN(msg, "\r\n", 2)[0])
	}
}

// A re-INVITE from the caller with a new Contact is a target refresh (RFC
// 3261 §12.2.2): the guard's later requests on the caller leg (here the
// BYE after the PBX hung up) go to the new Contact, not the INVITE's.
func TestTargetRefreshMovesTheCallerLeg(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 15*time.Second)
	cl := c.invite(ctx, e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	pc := e.pbxAnswered()
	moved := rtpSocket(t) // a UDP socket where the caller now takes requests
	contact := fmt.Sprintf("sip:moved@127.0.0.1:%d", portOf(moved))
	req := sip.NewRequest(sip.INVITE, cl.dlg.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Contact", "<"+contact+">"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.holdOffer())
	res, err := cl.dlg.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	if err := cl.dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WaitMidCall(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := pc.Hangup(ctx); err != nil {
		t.Fatalf("PBX BYE: %v", err)
	}
	bye, _ := readSIP(t, moved, "BYE ", 10*time.Second)
	if !strings.HasPrefix(bye, "BYE "+contact+" ") {
		t.Errorf("BYE Request-URI is not the refreshed target %s:\n%s", contact, bye)
	}
	if !strings.Contains(bye, cl.dlg.InviteRequest.CallID().Value()) {
		t.Errorf("BYE at the new target is not in the caller's dialog:\n%s", bye)
	}
}

// A caller whose ACK of a relayed re-INVITE's 200 was lost retransmits
// the 200; the guard ACKs it again (RFC 3261 §13.2.2.4) instead of
// leaving the caller to give up on the call.
func TestResentReinvite2xxIsAckedAgain(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 15*time.Second)
	cl := c.invite(ctx, e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	pc := e.pbxAnswered()
	if _, err := pc.Reinvite(ctx); err != nil {
		t.Fatalf("PBX re-INVITE: %v", err)
	}
	var (
		reinv *sip.Request
		ok    *sip.Response
	)
	select {
	case reinv = <-c.reinvites:
		ok = <-c.oks
	case <-ctx.Done():
		t.Fatal("the caller got no re-INVITE")
	}
	seq := reinv.CSeq().SeqNo
	waitAck := func(n int) {
		t.Helper()
		for {
			select {
			case a := <-c.acks:
				if a.CSeq().SeqNo == seq {
					return
				}
			case <-ctx.Done():
				t.Fatalf("ACK %d of the re-INVITE's 200 (CSeq %d) never came", n, seq)
			}
		}
	}
	waitAck(1)
	guard, err := net.ResolveUDPAddr("udp", reinv.Source())
	if err != nil {
		t.Fatal(err)
	}
	// The caller did not see that ACK: it sends its 200 again, twice.
	for i := 2; i <= 3; i++ {
		if _, err := c.conn.WriteTo([]byte(ok.String()), guard); err != nil {
			t.Fatal(err)
		}
		waitAck(i)
	}
	c.hangup(cl)
	e.pbxEnded("BYE from the caller")
}

// A re-INVITE without SDP on a bridged call asks the guard for an offer:
// the 200 carries the guard's description of the caller leg (its port),
// and the answer in the ACK moves the caller's media (a new port): the
// PBX's audio then reaches it there.
func TestBridgedReinviteWithoutSDPGetsTheGuardsOffer(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, _, pc := bridged(t, e, c, ctx)
	guardPort := sdpPort(t, cl.final().Body())
	req := sip.NewRequest(sip.INVITE, cl.dlg.InviteResponse.Contact().Address)
	res, err := cl.dlg.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE without SDP: %v %v", res, err)
	}
	if got := sdpPort(t, res.Body()); got != guardPort {
		t.Fatalf("offer in the 200 is on port %d, want the guard's caller-leg port %d", got, guardPort)
	}
	offer, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	moved := rtpSocket(t)
	ans, err := sdp.Negotiate(offer, sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(moved), SessionID: 1, SessionVersion: 3})
	if err != nil {
		t.Fatal(err)
	}
	ack := sip.NewRequest(sip.ACK, cl.dlg.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(ans.Body())
	if err := cl.dlg.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	if len(pc.MidCall()) != 0 {
		t.Errorf("the PBX got %d mid-call requests; its leg did not change", len(pc.MidCall()))
	}
	buf := make([]byte, 1500)
	actortest.Eventually(t, 10*time.Second, func() error {
		if err := pc.SendAudio(ctx, make([]int16, 800)); err != nil {
			return err
		}
		_ = moved.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := moved.ReadFrom(buf); err != nil {
			return fmt.Errorf("no RTP at the port the ACK's answer gave: %w", err)
		}
		return nil
	})
}

// A caller's INFO while the PBX leg rings (here after a right code; the
// same on a passed call) cannot be delivered: it gets 500 with
// Retry-After, not a 200 that would say it was (RFC 6086 §4.2.2), and the
// PBX gets nothing.
func TestInfoWhileThePBXRingsIsNotDelivered(t *testing.T) {
	e := newEnv(t)
	e.setPBX(pbxRing)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	cl, _, _ := challenge(t, e, c, ctx)
	info := func(k rune) *sip.Response {
		t.Helper()
		req := sip.NewRequest(sip.INFO, cl.dlg.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		req.SetBody([]byte("Signal=" + string(k) + "\r\nDuration=100\r\n"))
		res, err := cl.dlg.Do(ctx, req)
		if err != nil {
			t.Fatalf("INFO: %v", err)
		}
		return res
	}
	for _, k := range testCode {
		if res := info(k); res.StatusCode != 200 {
			t.Fatalf("code key by INFO: %d", res.StatusCode)
		}
	}
	pc := e.pbxCall() // the bridge's INVITE: the PBX rings
	res := info('5')
	if res.StatusCode != 500 || res.GetHeader("Retry-After") == nil {
		t.Errorf("INFO while the PBX rings: %d %v, want 500 with Retry-After", res.StatusCode, res.GetHeader("Retry-After"))
	}
	if d := pc.Digits(); len(d) != 0 {
		t.Errorf("the ringing PBX got keys %v", d)
	}
	c.hangup(cl)
}
