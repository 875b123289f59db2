package guard_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sip/siptest"
)

// bridged runs a challenge to its bridge: the caller typed the code and
// the PBX answered the guard's INVITE.
func bridged(t *testing.T, e *env, c *fakeCaller, ctx context.Context) (*call, *callerMedia, *siptest.PBXCall) {
	t.Helper()
	cl, m, _ := challenge(t, e, c, ctx)
	m.typeKeys(ctx, t, testCode)
	pc := e.pbxAnswered()
	return cl, m, pc
}

// reoffer is an offer from the caller with o= version v on port, with
// direction dir and the codecs given.
func reoffer(t *testing.T, port int, v uint64, dir string, codecs ...sdp.Codec) []byte {
	t.Helper()
	o, err := sdp.NewOffer(sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Codecs: codecs, SessionID: 1, SessionVersion: v})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(string(o.Marshal()), "a=sendrecv", "a="+dir, 1))
}

// midCall sends a re-INVITE or UPDATE with body on the caller's dialog.
func midCall(ctx context.Context, t *testing.T, cl *call, method sip.RequestMethod, body []byte) *sip.Response {
	t.Helper()
	req := sip.NewRequest(method, cl.dlg.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := cl.dlg.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		if err := cl.dlg.Ack(ctx); err != nil {
			t.Fatalf("ACK: %v", err)
		}
	}
	return res
}

// sdpPort is the m=audio port of body.
func sdpPort(t *testing.T, body []byte) int {
	t.Helper()
	s, err := sdp.Parse(body)
	if err != nil || len(s.MediaDescriptions) == 0 {
		t.Fatalf("SDP %q: %v", body, err)
	}
	return s.MediaDescriptions[0].MediaName.Port.Value
}

// grows waits until n() exceeds from, and returns it.
func grows(t *testing.T, what string, from int, n func() int) int {
	t.Helper()
	var now int
	actortest.Eventually(t, 5*time.Second, func() error {
		if now = n(); now <= from {
			return fmt.Errorf("%s: %d, not more than %d", what, now, from)
		}
		return nil
	})
	return now
}

// A hold from the caller on a call bridged after a challenge reaches the
// PBX as the guard's own re-INVITE with a=sendonly, the caller gets
// a=recvonly on the same guard port with a higher o= version, the PBX's
// RTP stops reaching the held caller while the caller's still reaches the
// PBX; a resume restores both. A refresh without a new version stays
// local.
func TestBridgedHoldAndResumeReachThePBX(t *testing.T) {
	for _, method := range []sip.RequestMethod{sip.INVITE, sip.UPDATE} {
		t.Run(string(method), func(t *testing.T) {
			e := newEnv(t)
			c := newFakeCaller(e)
			ctx := ctxFor(t, 30*time.Second)
			cl, m, pc := bridged(t, e, c, ctx)
			guardCallerPort := sdpPort(t, cl.final().Body())
			guardPBXPort := sdpPort(t, pc.Invite.Body())
			go func() {
				for ctx.Err() == nil {
					_ = m.sender.Play(ctx, make([]int16, 1600))
				}
			}()
			fromPBX := func() int { return len(m.rec.PCM()) }
			toPBX := func() int { return len(pc.RTP()) }
			// Before the hold, the PBX's audio reaches the caller.
			n := fromPBX()
			if err := pc.SendAudio(ctx, make([]int16, 1600)); err != nil {
				t.Fatal(err)
			}
			grows(t, "PBX audio at the caller before the hold", n, fromPBX)

			res := midCall(ctx, t, cl, method, reoffer(t, portOf(c.rtp), 2, "sendonly"))
			if res.StatusCode != 200 {
				t.Fatalf("hold: %d %s", res.StatusCode, res.Body())
			}
			body := string(res.Body())
			if !strings.Contains(body, "a=recvonly") || sdpPort(t, res.Body()) != guardCallerPort {
				t.Errorf("hold answer should be a=recvonly on the guard's port %d:\n%s", guardCallerPort, body)
			}
			if ans, _ := sdp.Parse(res.Body()); ans == nil || ans.Origin.SessionVersion != 2 {
				t.Errorf("hold answer's o= version should go from 1 to 2:\n%s", body)
			}
			mids, err := pc.WaitMidCall(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if mids[0].Method != method || !strings.Contains(string(mids[0].Body()), "a=sendonly") || sdpPort(t, mids[0].Body()) != guardPBXPort {
				t.Errorf("PBX got %s, want %s with a=sendonly on the guard's port %d:\n%s", mids[0].Method, method, guardPBXPort, mids[0].Body())
			}
			// On hold: the caller's audio (music on hold) still reaches the
			// PBX; the PBX's audio does not reach the caller.
			grows(t, "caller audio at the PBX on hold", toPBX(), toPBX)
			time.Sleep(100 * time.Millisecond) // packets in flight before the hold
			held := fromPBX()
			if err := pc.SendAudio(ctx, make([]int16, 4000)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if got := fromPBX(); got != held {
				t.Errorf("held caller got %d samples from the PBX", got-held)
			}

			// A refresh (same version) is answered by the guard alone.
			res = midCall(ctx, t, cl, method, reoffer(t, portOf(c.rtp), 2, "sendonly"))
			if res.StatusCode != 200 || len(pc.MidCall()) != 1 {
				t.Errorf("refresh: %d, PBX saw %d mid-call requests, want 1", res.StatusCode, len(pc.MidCall()))
			}

			res = midCall(ctx, t, cl, method, reoffer(t, portOf(c.rtp), 3, "sendrecv"))
			if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=sendrecv") {
				t.Fatalf("resume: %d\n%s", res.StatusCode, res.Body())
			}
			mids, err = pc.WaitMidCall(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(mids[1].Body()), "a=sendrecv") {
				t.Errorf("PBX's resume lacks a=sendrecv:\n%s", mids[1].Body())
			}
			n = fromPBX()
			if err := pc.SendAudio(ctx, make([]int16, 1600)); err != nil {
				t.Fatal(err)
			}
			grows(t, "PBX audio at the resumed caller", n, fromPBX)
		})
	}
}

// A re-INVITE from the caller moving its media to a new port with another
// codec moves the relay: the PBX is offered that codec first, and the
// PBX's audio reaches the new port under it.
func TestBridgedMediaMoveAndCodecChange(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, _, pc := bridged(t, e, c, ctx)
	moved := rtpSocket(t)
	res := midCall(ctx, t, cl, sip.INVITE, reoffer(t, portOf(moved), 2, "sendrecv", sdp.PCMA))
	if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "PCMA") {
		t.Fatalf("move: %d\n%s", res.StatusCode, res.Body())
	}
	mids, err := pc.WaitMidCall(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := sdp.Parse(mids[0].Body()); off == nil || len(off.MediaDescriptions[0].MediaName.Formats) == 0 || off.MediaDescriptions[0].MediaName.Formats[0] != "8" {
		t.Errorf("PBX should be offered PCMA first:\n%s", mids[0].Body())
	}
	if err := pc.SendAudio(ctx, make([]int16, 1600)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = moved.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := moved.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no RTP at the moved port: %v", err)
	}
	if pt := buf[1] & 0x7f; n < 12 || pt != 8 {
		t.Errorf("RTP at the moved port has payload type %d, want 8 (PCMA)", pt)
	}
}

// A 491 from the PBX to the guard's re-offer goes back to the caller as
// such, and nothing moves.
func TestBridgedReofferRefusedByThePBX(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, _, pc := bridged(t, e, c, ctx)
	pc.RefuseMidCall(491)
	res := midCall(ctx, t, cl, sip.INVITE, reoffer(t, portOf(c.rtp), 2, "sendonly"))
	if res.StatusCode != 491 {
		t.Fatalf("caller got %d, want the PBX's 491", res.StatusCode)
	}
}

// oddSocket binds the RTCP port above an RTP port, for a test peer.
func oddSocket(t *testing.T, rtpPort int) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: rtpPort + 1})
	if err != nil {
		t.Skipf("RTCP port %d taken: %v", rtpPort+1, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RTCP from each leg reaches the other leg's RTP port + 1, unchanged.
func TestBridgedRTCPIsRelayed(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, _, pc := bridged(t, e, c, ctx)
	pbxRTCP := oddSocket(t, mediaPort(t, pc))
	callerRTCP := oddSocket(t, portOf(c.rtp))
	guardCaller := sdpPort(t, cl.final().Body()) + 1
	guardPBX := sdpPort(t, pc.Invite.Body()) + 1
	// A receiver report (RFC 3550 §6.4.2) with no blocks.
	rr := func(ssrc byte) []byte { return []byte{0x80, 201, 0, 1, 0, 0, 0, ssrc} }
	for _, tc := range []struct {
		name     string
		from, to *net.UDPConn
		guard    int
	}{
		{"caller to PBX", callerRTCP, pbxRTCP, guardCaller},
		{"PBX to caller", pbxRTCP, callerRTCP, guardPBX},
	} {
		pkt := rr(byte(tc.guard))
		// Sent until it arrives: the relay starts as the PBX answers.
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, 1500)
			_ = tc.to.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := tc.to.ReadFrom(buf)
			if err == nil {
				got <- buf[:n]
			}
			close(got)
		}()
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tc.guard}
		tick := time.NewTicker(100 * time.Millisecond)
	send:
		for {
			if _, err := tc.from.WriteTo(pkt, dst); err != nil {
				t.Fatal(err)
			}
			select {
			case b, ok := <-got:
				if !ok {
					t.Fatalf("%s: no RTCP relayed", tc.name)
				}
				if string(b) != string(pkt) {
					t.Errorf("%s: relayed % x, sent % x", tc.name, b, pkt)
				}
				break send
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	// Counted after the send: the packet may arrive first.
	actortest.Eventually(t, 3*time.Second, func() error {
		if n := e.guard.Stats().RTCPRelayed; n < 2 {
			return fmt.Errorf("RTCPRelayed = %d, want at least 2", n)
		}
		return nil
	})
}

// DTMF after the bridge: RFC 4733 events reach the PBX once per key with
// their full duration and all three end packets, the challenge's code
// never does, and SIP INFO DTMF is relayed to the PBX, not taken by the
// challenge.
func TestBridgedDTMFReachesThePBX(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, m, pc := bridged(t, e, c, ctx)
	const keyDur = 120 * time.Millisecond
	m.typeKeys2(ctx, t, "7#", keyDur)
	digits, err := pc.WaitDigits(ctx, 2)
	if err != nil {
		t.Fatalf("PBX digits %q: %v", digits, err)
	}
	time.Sleep(200 * time.Millisecond) // the last end packets
	if got := keysOf(pc.Digits()); got != "7#" {
		t.Errorf("PBX decoded %q, want exactly 7# (no code digits %s, no duplicates)", got, testCode)
	}
	// The packets themselves: one timestamp per key, its end packets
	// carrying the whole duration.
	type ev struct {
		key      byte
		ends     int
		duration uint16
	}
	byTS := map[uint32]*ev{}
	var order []uint32
	for _, p := range pc.RTP() {
		if p.PayloadType < 96 || len(p.Payload) < 4 {
			continue
		}
		x := byTS[p.Timestamp]
		if x == nil {
			x = &ev{key: p.Payload[0]}
			byTS[p.Timestamp] = x
			order = append(order, p.Timestamp)
		}
		if p.Payload[1]&0x80 != 0 {
			x.ends++
			x.duration = uint16(p.Payload[2])<<8 | uint16(p.Payload[3])
		}
	}
	if len(order) != 2 {
		t.Fatalf("PBX got events at %d timestamps, want 2 (one per key)", len(order))
	}
	wantDur := uint16(int64(keyDur) * 8000 / int64(time.Second))
	for i, want := range []byte{7, 11} {
		x := byTS[order[i]]
		if x.key != want || x.ends != 3 || x.duration != wantDur {
			t.Errorf("event %d: key %d, %d end packets, duration %d; want key %d, 3 end packets, duration %d", i, x.key, x.ends, x.duration, want, wantDur)
		}
	}

	info := sip.NewRequest(sip.INFO, cl.dlg.InviteResponse.Contact().Address)
	info.AppendHeader(sip.NewHeader("Content-Type", dtmf.ContentTypeRelay))
	info.SetBody([]byte("Signal=5\r\nDuration=160\r\n"))
	res, err := cl.dlg.Do(ctx, info)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO after the bridge: %v %v", res, err)
	}
	if got := keysOf(pc.Digits()); got != "7#5" {
		t.Errorf("PBX digits %q, want 7#5 (the INFO relayed)", got)
	}
}

func keysOf(ds []siptest.Digit) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteRune(d.Key)
	}
	return b.String()
}

// typeKeys2 sends keys as RFC 4733 events of duration d.
func (m *callerMedia) typeKeys2(ctx context.Context, t *testing.T, keys string, d time.Duration) {
	t.Helper()
	for _, k := range keys {
		if err := m.sender.SendKey(ctx, k, d); err != nil {
			t.Fatalf("send key %c: %v", k, err)
		}
	}
}

// A re-INVITE from the PBX on a bridged call reaches the caller as the
// guard's own offer (its caller-side port, o= version raised), and the
// PBX gets the guard's answer on its PBX-side port.
func TestBridgedReinviteFromThePBXReachesTheCaller(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 30*time.Second)
	cl, _, pc := bridged(t, e, c, ctx)
	res, err := pc.Reinvite(ctx)
	if err != nil {
		t.Fatalf("PBX re-INVITE: %v", err)
	}
	if sdpPort(t, res.Body()) != sdpPort(t, pc.Invite.Body()) {
		t.Errorf("PBX's answer should be on the guard's PBX-side port %d:\n%s", sdpPort(t, pc.Invite.Body()), res.Body())
	}
	var got *sip.Request
	select {
	case got = <-c.reinvites:
	case <-ctx.Done():
		t.Fatal("no re-INVITE reached the caller")
	}
	off, err := sdp.Parse(got.Body())
	if err != nil {
		t.Fatalf("caller's re-INVITE SDP: %v\n%s", err, got.Body())
	}
	if off.MediaDescriptions[0].MediaName.Port.Value != sdpPort(t, cl.final().Body()) || off.Origin.SessionVersion != 2 || !strings.Contains(string(got.Body()), "a=sendrecv") {
		t.Errorf("caller's re-INVITE should offer the guard's caller-side port %d, o= version 2, sendrecv:\n%s", sdpPort(t, cl.final().Body()), got.Body())
	}
}
