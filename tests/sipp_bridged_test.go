package tests

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// A call bridged after a challenge, through the binary, with SIPp as the
// PBX (uas_pbx_bridged.xml, echoing RTP back with -rtp_echo) and the
// siptest trunk as the caller, which hears the code and types it (SIPp
// cannot): the caller's hold (re-INVITE a=sendonly) reaches SIPp as the
// guard's re-INVITE with a=sendonly; while held, the echo of the caller's
// audio no longer reaches the caller, and after the resume it does again;
// RTCP from the caller reaches the port the PBX asked for (a=rtcp); RFC
// 4733 keys typed after the bridge come back from the PBX once per key
// with their whole duration, and the code's keys never reached it.
func TestSIPpBridgedHoldThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pbxPort := porttest.Port(t)
	pbxRTCP, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pbxRTCP.Close()
	g, sipAddr, env := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort), "GUARD_LANGUAGE=en")
	const caller = "+79990006601"
	if out, stderr, code := runCLI(t, env, "block", caller, "--level", "3", "--reason", "SIPp bridged", "--by", "sipp_test"); code != 0 {
		t.Fatalf("block %s: exit %d, %s %s", caller, code, out, stderr)
	}
	inf := writeInjection(t, "rtcp.csv", strconv.Itoa(pbxRTCP.LocalAddr().(*net.UDPAddr).Port))
	pbx := startSIPp(ctx, t, "sipp uas_pbx_bridged", "uas_pbx_bridged.xml",
		"-inf", inf, "-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-rtp_echo",
		"-m", "1", "-timeout", "60s", "-timeout_error")
	waitBound(ctx, t, pbx, pbxPort)
	defer func() {
		if t.Failed() {
			t.Logf("guard log:\n%s", g.output())
		}
	}()

	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	c, err := trunk.Call(ctx, siptest.CallOptions{Target: sipAddr, Caller: caller, Callee: tollFree, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	code, err := c.HearCode(ctx, sounds.NewRecognizer(prompts), siptest.HearOptions{Digits: 2})
	if err != nil {
		t.Fatalf("hearing the code: %v", err)
	}
	if err := c.Type(ctx, code, siptest.DTMFOptions{Method: siptest.DTMFRFC4733}); err != nil {
		t.Fatal(err)
	}
	// The guard's own packets (prompt, silence, ringback) carry its
	// SSRC; the PBX's echo carries the caller's.
	pkts := c.RTP()
	if len(pkts) == 0 {
		t.Fatal("the caller got no RTP from the guard")
	}
	guardSSRC := pkts[0].SSRC
	echoed := func() (audio int, events map[uint32][]siptest.RTPPacket) {
		events = map[uint32][]siptest.RTPPacket{}
		for _, p := range c.RTP() {
			switch {
			case p.SSRC == guardSSRC:
			case p.PayloadType >= 96:
				events[p.Timestamp] = append(events[p.Timestamp], p)
			default:
				audio++
			}
		}
		return audio, events
	}
	tone := make([]int16, 8000/5)
	for i := range tone {
		tone[i] = int16(8000 * ((i/10)%2*2 - 1))
	}
	echoGrows := func(what string) {
		t.Helper()
		before, _ := echoed()
		err := siptest.Poll(ctx, 100*time.Millisecond, func() error {
			if err := c.SendAudio(ctx, tone); err != nil {
				return err
			}
			if n, _ := echoed(); n <= before {
				return fmt.Errorf("%s: no echo from the PBX (%d packets)", what, n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	echoGrows("bridged")

	res, err := c.Reoffer(ctx, sip.INVITE, "sendonly")
	if err != nil || !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("hold: %v %v", res, err)
	}
	time.Sleep(300 * time.Millisecond) // echoes already in flight
	held, _ := echoed()
	if err := c.SendAudio(ctx, make([]int16, 8000)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n, _ := echoed(); n != held {
		t.Errorf("held caller got %d packets from the PBX", n-held)
	}

	res, err = c.Reoffer(ctx, sip.INVITE, "sendrecv")
	if err != nil || !strings.Contains(string(res.Body()), "a=sendrecv") {
		t.Fatalf("resume: %v %v", res, err)
	}
	echoGrows("resumed")

	// RTCP to the guard's caller-side RTCP port reaches the PBX's a=rtcp.
	neg, err := c.Negotiated()
	if err != nil {
		t.Fatal(err)
	}
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rr := []byte{0x80, 201, 0, 1, 0xca, 0x11, 0x90, 0xad}
	guardRTCP := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(neg.Remote.Port()) + 1}
	if _, err := src.WriteTo(rr, guardRTCP); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = pbxRTCP.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := pbxRTCP.ReadFrom(buf); err != nil || string(buf[:n]) != string(rr) {
		t.Errorf("RTCP at the PBX: % x, %v; want % x", buf[:n], err, rr)
	}

	// Keys typed after the bridge come back once each, whole.
	_, evBefore := echoed()
	const hold = 100 * time.Millisecond
	if err := c.Type(ctx, "7#", siptest.DTMFOptions{Method: siptest.DTMFRFC4733, Duration: hold}); err != nil {
		t.Fatal(err)
	}
	var keys []byte
	err = siptest.Poll(ctx, 100*time.Millisecond, func() error {
		_, evs := echoed()
		keys = keys[:0]
		for ts, ps := range evs {
			if _, old := evBefore[ts]; old {
				continue
			}
			ends := 0
			for _, p := range ps {
				if p.Payload[1]&0x80 != 0 {
					ends++
					if d := int(p.Payload[2])<<8 | int(p.Payload[3]); d != int(hold/time.Millisecond)*8 {
						return fmt.Errorf("event %d end duration %d, want %d", p.Payload[0], d, int(hold/time.Millisecond)*8)
					}
				}
			}
			if ends < 3 {
				return fmt.Errorf("event %d has %d end packets so far", ps[0].Payload[0], ends)
			}
			keys = append(keys, ps[0].Payload[0])
		}
		if len(keys) < 2 {
			return fmt.Errorf("%d keys echoed", len(keys))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evBefore) != 0 || len(keys) != 2 {
		t.Errorf("the PBX echoed %d events before the keys (the code leaked?) and %d key presses after, want 0 and 2", len(evBefore), len(keys))
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	expectAllSuccessful(t, pbx, 1)
}
