package siptest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sounds"
)

// The harness is tested without the guard: the trunk calls the PBX
// directly, and both speak plain SIP. A PBX with early media stands in for
// the guard's challenge.

func newPair(t *testing.T, behave func(*PBXCall) Behaviour) (*FakeTrunk, *RecordingPBX) {
	t.Helper()
	pbx, err := NewRecordingPBX(PBXConfig{Behave: behave})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pbx.Close() })
	trunk, err := NewFakeTrunk(TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trunk.Close() })
	return trunk, pbx
}

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func statuses(rs []Response) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Method == sip.INVITE && !r.Retransmission {
			b.WriteString(" ")
			b.WriteString(r.Msg.StartLine())
		}
	}
	return strings.TrimSpace(b.String())
}

func TestAnsweredCallRecordsBothSidesAndCarriesAudio(t *testing.T) {
	t.Parallel()
	trunk, pbx := newPair(t, func(*PBXCall) Behaviour { return AnswerAfter(50 * time.Millisecond) })
	ctx := timeout(t, 20*time.Second)

	call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122"})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	ok, err := call.WaitAnswer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok.Since < 50*time.Millisecond {
		t.Errorf("200 OK %v after the INVITE, before the PBX's 50 ms delay", ok.Since)
	}
	rs := call.Responses()
	if got := statuses(rs); got != "SIP/2.0 180 Ringing SIP/2.0 200 OK" {
		t.Errorf("responses %q, want 180 then 200", got)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].At.Before(rs[i-1].At) {
			t.Errorf("response %d arrived before response %d", i, i-1)
		}
	}
	neg, err := call.Negotiated()
	if err != nil || neg.Codec.Name != "PCMU" || !neg.DTMF || neg.DTMFPayloadType != 101 {
		t.Fatalf("negotiated %+v, %v: want PCMU with telephone-event 101", neg, err)
	}

	calls, err := pbx.WaitCalls(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	pc := calls[0]
	if pc.Caller != "+79990001122" || !strings.Contains(pc.PAI, "sip:+79990001122@") || !strings.Contains(pc.From, "+79990001122") {
		t.Errorf("PBX saw caller %q, PAI %q, From %q", pc.Caller, pc.PAI, pc.From)
	}
	if pc.Callee != DefaultCallee || pc.CallID != call.CallID() {
		t.Errorf("PBX saw callee %q Call-ID %q", pc.Callee, pc.CallID)
	}
	if pc.Offer == nil || len(pc.Offer.MediaDescriptions) != 1 || strings.Join(pc.Offer.MediaDescriptions[0].MediaName.Formats, " ") != "0 8 101" {
		t.Fatalf("PBX saw offer %v, want PCMU, PCMA, telephone-event", pc.Offer)
	}
	if err := pc.WaitAnswered(ctx); err != nil {
		t.Fatal(err)
	}

	// Audio both ways: a known pattern each way, found on the other side.
	if err := call.SendAudio(ctx, DefaultPattern.PCM(0)); err != nil {
		t.Fatal(err)
	}
	if err := pc.SendAudio(ctx, DefaultPattern.PCM(-20)); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 20*time.Millisecond, func() error {
		if !DefaultPattern.FoundIn(pc.Audio()) {
			return errors.New("pattern not yet at the PBX")
		}
		if !DefaultPattern.FoundIn(call.Audio()) {
			return errors.New("pattern not yet at the trunk")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if DefaultPattern.FoundIn(make([]int16, 8000)) || DefaultPattern[:1].FoundIn(DefaultPattern[1:].PCM(0)) {
		t.Error("pattern found where it is not")
	}
	for _, p := range pc.RTP() {
		if p.From.String() != call.MediaAddr() {
			t.Fatalf("RTP from %v, not the trunk's advertised %v (symmetric RTP)", p.From, call.MediaAddr())
		}
	}

	// A re-INVITE from the PBX side: the trunk answers with a new o=
	// version and takes the ACK; audio still flows.
	res, err := pc.Reinvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Body()), "o=trunk ") || call.EndReason() != "" {
		t.Fatalf("re-INVITE answered with\n%s", res.Body())
	}
	before := len(pc.RTP())
	if err := Poll(ctx, 20*time.Millisecond, func() error {
		if len(pc.RTP()) < before+10 {
			return errors.New("no RTP since the re-INVITE")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	reason, err := pc.WaitEnded(ctx)
	if err != nil || reason != "BYE from the caller" {
		t.Fatalf("PBX call ended %q, %v", reason, err)
	}
	<-call.Done()
	if err := call.Hangup(ctx); !errors.Is(err, ErrCallEnded) {
		t.Errorf("second hangup: %v, want ErrCallEnded", err)
	}
}

func TestRejectedCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		b      Behaviour
		status int
	}{
		{"busy", Reject(486), 486},
		{"decline", Reject(603), 603},
		{"unavailable after ringing", Behaviour{Status: 480, Delay: 30 * time.Millisecond}, 480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trunk, pbx := newPair(t, func(*PBXCall) Behaviour { return tc.b })
			ctx := timeout(t, 20*time.Second)
			call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122"})
			if err != nil {
				t.Fatal(err)
			}
			r, err := call.WaitAnswer(ctx)
			if !errors.Is(err, ErrStatus) || r.Status != tc.status {
				t.Fatalf("answer %d, %v: want %d", r.Status, err, tc.status)
			}
			<-call.Done()
			if !strings.HasPrefix(call.EndReason(), "rejected "+strconv.Itoa(tc.status)) {
				t.Errorf("end reason %q", call.EndReason())
			}
			calls, _ := pbx.WaitCalls(ctx, 1)
			// The PBX's final response waits for the ACK sipgo's client
			// transaction sends (RFC 3261 §17.1.1.3), so the PBX call ends.
			reason, err := calls[0].WaitEnded(ctx)
			if err != nil || calls[0].Status() != tc.status {
				t.Fatalf("PBX call: %q %d %v", reason, calls[0].Status(), err)
			}
			if err := call.Type(ctx, "1", DTMFOptions{}); !errors.Is(err, ErrCallEnded) {
				t.Errorf("typing on a rejected call: %v", err)
			}
		})
	}
}

func TestCancelWhileRinging(t *testing.T) {
	t.Parallel()
	trunk, pbx := newPair(t, func(*PBXCall) Behaviour { return RingForever() })
	ctx := timeout(t, 20*time.Second)
	call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.WaitResponse(ctx, 180); err != nil {
		t.Fatal(err)
	}
	if err := call.Hangup(ctx); !errors.Is(err, ErrNotAnswered) {
		t.Errorf("hangup before the answer: %v, want ErrNotAnswered", err)
	}
	if err := call.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := call.Final(); r.Status != 487 {
		t.Errorf("final %d, want 487", r.Status)
	}
	calls, _ := pbx.WaitCalls(ctx, 1)
	reason, err := calls[0].WaitEnded(ctx)
	if err != nil || reason != "cancelled" {
		t.Fatalf("PBX call ended %q, %v", reason, err)
	}
	if err := call.Cancel(ctx); !errors.Is(err, ErrFinal) {
		t.Errorf("second cancel: %v, want ErrFinal", err)
	}
}

func TestByeFromThePBXIsTimedFromTheAnswer(t *testing.T) {
	t.Parallel()
	const after = 300 * time.Millisecond
	trunk, pbx := newPair(t, func(*PBXCall) Behaviour { return Behaviour{HangupAfter: after} })
	ctx := timeout(t, 20*time.Second)
	call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := call.WaitBye(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The PBX counts from the ACK, a loopback round trip after the 200.
	if d < after || d > after+200*time.Millisecond {
		t.Errorf("BYE %v after the 200 OK, want %v (+ a little)", d, after)
	}
	calls, _ := pbx.WaitCalls(ctx, 1)
	if reason, _ := calls[0].WaitEnded(ctx); reason != "BYE from the PBX" {
		t.Errorf("PBX call ended %q", reason)
	}
	// WaitBye returns once the BYE is noted, the call ends just after.
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("trunk call did not end after the BYE")
	}
	if call.EndReason() != "BYE from the guard" {
		t.Errorf("trunk call ended %q", call.EndReason())
	}
}

func TestCallerIdentityVariants(t *testing.T) {
	t.Parallel()
	trunk, pbx := newPair(t, nil)
	ctx := timeout(t, 20*time.Second)
	for i, tc := range []struct {
		opts            CallOptions
		caller, paiPart string
	}{
		{CallOptions{Caller: "+79990001122", PAIScheme: "tel"}, "+79990001122", "<tel:+79990001122>"},
		{CallOptions{Caller: "+79990001122", FromUser: "anonymous"}, "+79990001122", "sip:+79990001122@"},
		{CallOptions{Caller: "+79990003344", NoPAI: true, Callee: "88005553535"}, "+79990003344", ""},
	} {
		tc.opts.Target = pbx.Addr().String()
		call, err := trunk.Call(ctx, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call.WaitAnswer(ctx); err != nil {
			t.Fatal(err)
		}
		calls, _ := pbx.WaitCalls(ctx, i+1)
		pc := calls[i]
		if pc.Caller != tc.caller || (tc.paiPart == "") != (pc.PAI == "") || !strings.Contains(pc.PAI, tc.paiPart) {
			t.Errorf("case %d: PBX saw caller %q PAI %q From %q", i, pc.Caller, pc.PAI, pc.From)
		}
		if tc.opts.FromUser != "" && !strings.Contains(pc.From, tc.opts.FromUser) {
			t.Errorf("case %d: From %q", i, pc.From)
		}
		if tc.opts.Callee != "" && pc.Callee != tc.opts.Callee {
			t.Errorf("case %d: callee %q", i, pc.Callee)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String()}); err == nil {
		t.Error("a call without a caller number was placed")
	}
	if _, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "1", PAIScheme: "mailto"}); err == nil {
		t.Error("a mailto P-Asserted-Identity was accepted")
	}
}

func TestOptionsPing(t *testing.T) {
	trunk, pbx := newPair(t, nil)
	res, err := trunk.Options(timeout(t, 10*time.Second), pbx.Addr().String())
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}
}

// The PBX plays a challenge the way the guard does: 183 with SDP and the
// prompt in early media, then 200 OK. The trunk hears the code from the
// audio alone, then types it each way, and the PBX receives each key once.
func TestHearTheCodeAndTypeItEachWay(t *testing.T) {
	t.Parallel()
	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	announcement, err := prompts.Sequence("47")
	if err != nil {
		t.Fatal(err)
	}
	rec := sounds.NewRecognizer(prompts)
	trunk, pbx := newPair(t, func(c *PBXCall) Behaviour {
		if c.Callee == "challenge" {
			return Behaviour{EarlyMedia: announcement, NoRinging: true}
		}
		return Behaviour{}
	})
	ctx := timeout(t, 60*time.Second)

	// Two challenged calls at once: one listener waits for the 200 OK,
	// the other stops as soon as it has heard two digits.
	call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122", Callee: "challenge"})
	if err != nil {
		t.Fatal(err)
	}
	eager, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001133", Callee: "challenge", Codecs: []sdp.Codec{sdp.PCMA}})
	if err != nil {
		t.Fatal(err)
	}
	eagerCode := make(chan string, 1)
	go func() {
		code, err := eager.HearCode(ctx, rec, HearOptions{Digits: 2, Interval: 50 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		eagerCode <- code
	}()
	if _, err := call.WaitResponse(ctx, 183); err != nil {
		t.Fatal(err)
	}
	code, err := call.HearCode(ctx, rec, HearOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if code != "47" {
		t.Fatalf("heard %q, announced 47", code)
	}
	if c := <-eagerCode; c != "47" {
		t.Errorf("the eager listener heard %q over PCMA", c)
	}
	if neg, _ := eager.Negotiated(); neg.Codec.Name != "PCMA" {
		t.Errorf("eager call negotiated %v", neg.Codec)
	}
	if got := statuses(call.Responses()); got != "SIP/2.0 183 Session Progress SIP/2.0 200 OK" {
		t.Errorf("responses %q", got)
	}
	if early := call.EarlyAudio(); len(early) < len(announcement)*9/10 {
		t.Errorf("early audio %d samples, announcement %d", len(early), len(announcement))
	}

	for _, tc := range []struct {
		m      DTMFMethod
		codecs []sdp.Codec
	}{{DTMFRFC4733, nil}, {DTMFInfoRelay, nil}, {DTMFInfoPlain, nil}, {DTMFInBand, nil}, {DTMFInBand, []sdp.Codec{sdp.PCMA}}} {
		m := tc.m
		t.Run(m.String()+codecName(tc.codecs), func(t *testing.T) {
			t.Parallel()
			c, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122", Codecs: tc.codecs})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitAnswer(ctx); err != nil {
				t.Fatal(err)
			}
			calls := pbx.Calls()
			var pc *PBXCall
			for _, x := range calls {
				if x.CallID == c.CallID() {
					pc = x
				}
			}
			if err := pc.WaitAnswered(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Type(ctx, code+"#", DTMFOptions{Method: m}); err != nil {
				t.Fatal(err)
			}
			keys, err := pc.WaitDigits(ctx, 3)
			if err != nil {
				t.Fatal(err)
			}
			if keys != "47#" {
				t.Errorf("PBX received %q, typed 47#", keys)
			}
			for _, d := range pc.Digits() {
				if d.Method != m {
					t.Errorf("key %q came by %v, sent by %v", d.Key, d.Method, m)
				}
			}
			if m == DTMFRFC4733 {
				checkEventPackets(t, pc.RTP(), 3)
			}
			if err := c.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func codecName(cs []sdp.Codec) string {
	if len(cs) == 0 {
		return ""
	}
	return "-" + cs[0].Name
}

// checkEventPackets checks the telephone-event packets on the wire: per key
// one packet with the marker bit, then updates, then three end packets,
// all with the key's start timestamp (RFC 4733 §2.2.1, §2.5.1.4), and
// sequence numbers that keep counting.
func checkEventPackets(t *testing.T, pkts []RTPPacket, keys int) {
	t.Helper()
	type ev struct{ markers, ends, n int }
	byTS := map[uint32]*ev{}
	var order []uint32
	var lastSeq uint16
	for i, p := range pkts {
		if i > 0 && p.Seq != lastSeq+1 {
			t.Errorf("sequence %d after %d", p.Seq, lastSeq)
		}
		lastSeq = p.Seq
		if p.PayloadType != 101 {
			continue
		}
		e, ok := byTS[p.Timestamp]
		if !ok {
			e = &ev{}
			byTS[p.Timestamp] = e
			order = append(order, p.Timestamp)
		}
		e.n++
		if p.Marker {
			e.markers++
		}
		te, err := dtmf.ParseTelephoneEvent(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if te.End {
			e.ends++
		}
	}
	if len(order) != keys {
		t.Fatalf("%d events on the wire, want %d", len(order), keys)
	}
	for _, ts := range order {
		if e := byTS[ts]; e.markers != 1 || e.ends != 3 || e.n != 5+3 {
			t.Errorf("event at %d: %d markers, %d end packets, %d packets; want 1, 3, 8", ts, e.markers, e.ends, e.n)
		}
	}
}

func TestEncodeDigit(t *testing.T) {
	pkts, err := EncodeDigit('5', 70*time.Millisecond, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 4+3 {
		t.Fatalf("%d packets, want 4 updates (70 ms rounded up to 80) and 3 ends", len(pkts))
	}
	for i, p := range pkts {
		ev, err := dtmf.ParseTelephoneEvent(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		wantDur := uint16(min(i+1, 4) * 160)
		if ev.Event != 5 || ev.Volume != 10 || ev.Duration != wantDur || ev.End != (i >= 4) || p.End != ev.End || p.Marker != (i == 0) {
			t.Errorf("packet %d: %+v marker %v; want event 5, volume 10, duration %d, end %v", i, ev, p.Marker, wantDur, i >= 4)
		}
	}
	// A receiver decodes the whole sequence as one key.
	var dec dtmf.EventDecoder
	var got []rune
	for _, p := range pkts {
		if k, ok, err := dec.Decode(1, 1000, p.Payload); err != nil {
			t.Fatal(err)
		} else if ok {
			got = append(got, k)
		}
	}
	if string(got) != "5" {
		t.Errorf("decoded %q", string(got))
	}
	for _, bad := range []struct {
		key rune
		d   time.Duration
		vol uint8
	}{{'x', time.Second, 10}, {'1', 0, 10}, {'1', 9 * time.Second, 10}, {'1', time.Second, 64}} {
		if _, err := EncodeDigit(bad.key, bad.d, bad.vol); err == nil {
			t.Errorf("EncodeDigit(%q, %v, %d) accepted", bad.key, bad.d, bad.vol)
		}
	}
	if _, err := EncodeDigit('x', time.Second, 10); !errors.Is(err, ErrDigit) {
		t.Errorf("bad key: %v, want ErrDigit", err)
	}
}

func TestPollReportsTheLastError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	sentinel := errors.New("not yet")
	err := Poll(ctx, 5*time.Millisecond, func() error { return sentinel })
	if !errors.Is(err, sentinel) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
}

func TestPBXTypesKeysTowardsTheCaller(t *testing.T) {
	t.Parallel()
	trunk, pbx := newPair(t, nil)
	ctx := timeout(t, 20*time.Second)
	call, err := trunk.Call(ctx, CallOptions{Target: pbx.Addr().String(), Caller: "+79990001122"})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if _, err := call.WaitAnswer(ctx); err != nil {
		t.Fatal(err)
	}
	calls, err := pbx.WaitCalls(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	pc := calls[0]
	if err := pc.WaitAnswered(ctx); err != nil {
		t.Fatal(err)
	}
	if pc.Transport != "UDP" {
		t.Errorf("INVITE transport %q, want UDP", pc.Transport)
	}
	neg, err := call.Negotiated()
	if err != nil {
		t.Fatal(err)
	}
	if got := neg.Remote.String(); got != pc.MediaAddr() {
		t.Errorf("the caller sends RTP to %s, the PBX's media is at %s", got, pc.MediaAddr())
	}
	if err := pc.Type(ctx, "5", DTMFOptions{Method: DTMFInfoRelay}); err == nil {
		t.Error("the PBX typed by SIP INFO, a way it does not send")
	}
	if err := pc.Type(ctx, "5", DTMFOptions{}); err != nil {
		t.Fatal(err)
	}
	err = Poll(ctx, 10*time.Millisecond, func() error {
		for _, p := range call.RTP() {
			if p.PayloadType == neg.DTMFPayloadType && len(p.Payload) > 0 && p.Payload[0] == 5 {
				return nil
			}
		}
		return errors.New("no telephone-event for key 5 reached the caller")
	})
	if err != nil {
		t.Fatal(err)
	}
}
