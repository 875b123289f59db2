package guard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	actorcall "github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/guard"
)

// TestMaxCalls: with GUARD_MAX_CALLS calls up, the next INVITE gets 503
// with Retry-After at once and no call is started for it; once a call
// ends, a new one goes through.
func TestMaxCalls(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.MaxCalls = 2; c.RetryAfter = 7 * time.Second }))
	var held []*call
	var callers []*fakeCaller
	for i := 0; i < 2; i++ {
		c := newFakeCaller(e)
		cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
		if cl.err != nil || cl.status() != 200 {
			t.Fatalf("call %d under the cap: got %d (%v), want 200", i+1, cl.status(), cl.err)
		}
		held, callers = append(held, cl), append(callers, c)
	}
	started := e.guard.Stats().Calls.Started

	c := newFakeCaller(e)
	at := time.Now()
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 503 {
		t.Fatalf("INVITE over MAX_CALLS: got %d (%v), want 503", cl.status(), cl.err)
	}
	if took := time.Since(at); took > time.Second {
		t.Errorf("the 503 took %v; it is meant to come at once", took)
	}
	res := cl.final()
	if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "7" {
		t.Errorf("Retry-After %v, want 7 (GUARD_RETRY_AFTER)", h)
	}
	if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "too many calls") {
		t.Errorf("Reason %v, want too many calls", h)
	}
	st := e.guard.Stats()
	if st.OverMaxCalls != 1 {
		t.Errorf("OverMaxCalls %d, want 1", st.OverMaxCalls)
	}
	if st.Calls.Started != started {
		t.Errorf("a call actor was started for the refused INVITE (%d -> %d)", started, st.Calls.Started)
	}
	if n := len(e.pbx.Calls()); n != 2 {
		t.Errorf("the PBX got %d INVITEs, want the 2 admitted", n)
	}

	// One call ends: its place is free again.
	callers[0].hangup(held[0])
	e.pbxEnded("BYE from the caller")
	var again *call
	deadline := time.Now().Add(5 * time.Second)
	for {
		again = c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
		if again.status() != 503 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the session ends just after the BYE's 200
	}
	if again.err != nil || again.status() != 200 {
		t.Fatalf("INVITE after a call ended: got %d (%v), want 200", again.status(), again.err)
	}
	c.hangup(again)
	callers[1].hangup(held[1])
}

// busyCallers is a grain client on a node too busy to decide.
type busyCallers struct{}

func (busyCallers) Admit(context.Context, string, caller.Admit) (caller.Verdict, error) {
	return caller.Verdict{}, fmt.Errorf("%w: 1024 decisions in flight", caller.ErrBusy)
}

func (busyCallers) Outcome(context.Context, string, caller.Outcome) (caller.Applied, error) {
	return caller.Applied{}, errors.New("not expected")
}

// saturatedCallers is a grain client whose decisions in flight are at
// their bound: it says so before any Admit.
type saturatedCallers struct{ busyCallers }

func (saturatedCallers) Saturated() bool { return true }

// A node whose decisions in flight are at their bound sheds a new INVITE
// at once, like MAX_CALLS: 503 with Retry-After, no call actor, nothing
// written, counted as busy.
func TestSaturatedNodeShedsAtOnce(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.RetryAfter = 9 * time.Second }), withCallers(saturatedCallers{}))
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 503 {
		t.Fatalf("saturated node: got %d (%v), want 503", cl.status(), cl.err)
	}
	res := cl.final()
	if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "9" {
		t.Errorf("Retry-After %v, want 9", h)
	}
	if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "busy") {
		t.Errorf("Reason %v, want busy", h)
	}
	st := e.guard.Stats()
	if st.Busy != 1 || st.Calls.Started != 0 {
		t.Errorf("Busy %d, call actors started %d; want 1 and 0", st.Busy, st.Calls.Started)
	}
}

// TestBusyIsNotStoreDown: a node too busy to decide answers 503 with
// Retry-After even when the store-down policy is to pass, and records the
// call as busy.
func TestBusyIsNotStoreDown(t *testing.T) {
	e := newEnv(t, withCallConfig(func(c *actorcall.Config) { c.StoreDown = schema.Pass }), withCallers(busyCallers{}))
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil)
	if cl.status() != 503 {
		t.Fatalf("busy node: got %d (%v), want 503", cl.status(), cl.err)
	}
	if h := cl.final().GetHeader("Retry-After"); h == nil || h.Value() != "5" {
		t.Errorf("Retry-After %v, want the default 5", h)
	}
	if n := len(e.pbx.Calls()); n != 0 {
		t.Errorf("a busy node passed %d calls to the PBX", n)
	}
	evs := e.callStream()
	dec := evs[schema.TypeCallDecided].(*schema.CallDecided)
	if !dec.Busy || dec.StoreDown || dec.Action != schema.Reject {
		t.Errorf("CallDecided %+v, want busy, not store-down, action reject", dec)
	}
	if end := evs[schema.TypeCallEnded].(*schema.CallEnded); end.Cause != schema.EndBusy || end.Status != 503 {
		t.Errorf("CallEnded %+v, want busy 503", end)
	}
	if got := e.guard.Stats().Busy; got != 1 {
		t.Errorf("Busy %d, want 1", got)
	}
}

// TestTCPBounds: connections past GUARD_SIP_TCP_MAX_CONNS are closed at
// accept, a silent one is closed after GUARD_SIP_TCP_IDLE, and the guard
// still serves TCP afterwards.
func TestTCPBounds(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.MaxTCPConns = 2; c.TCPIdle = time.Second }))
	addr := e.guard.TCPAddr().String()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := []net.Conn{dial(), dial()}
	over := dial()
	_ = over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("third connection: read %v, want it closed by the guard", err)
	}
	if got := e.guard.Stats().TCPShed; got != 1 {
		t.Errorf("TCPShed %d, want 1", got)
	}
	// The held ones say nothing: closed after the idle time.
	start := time.Now()
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("idle connection: read %v, want it closed by the guard", err)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("idle connections closed after %v; GUARD_SIP_TCP_IDLE is 1s", took)
	}
	// Their places are free: OPTIONS over a new connection is answered.
	c := dial()
	optionsOverTCP(t, c, addr)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// optionsOverTCP sends an OPTIONS on c and expects 200.
func optionsOverTCP(t *testing.T, c net.Conn, target string) {
	t.Helper()
	local := c.LocalAddr().String()
	msg := "OPTIONS sip:" + target + ";transport=tcp SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP " + local + ";branch=z9hG4bK-opt1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:" + target + ">\r\n" +
		"Call-ID: probe-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TCP: %q %v, want 200", line, err)
	}
}

// TestManyViasAreRefused: an INVITE with 1,000 Via headers over TCP (a
// valid call otherwise: without the cap it is passed) is refused with 400
// and never reaches the PBX.
func TestManyViasAreRefused(t *testing.T) {
	e := newEnv(t)
	addr := e.guard.TCPAddr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:%s@%s;transport=tcp SIP/2.0\r\n", strings.TrimPrefix(tollFree, "+"), addr)
	fmt.Fprintf(&b, "Via: SIP/2.0/TCP %s;branch=z9hG4bK-top\r\n", local)
	for i := 0; i < 999; i++ {
		fmt.Fprintf(&b, "Via: SIP/2.0/TCP 10.%d.%d.1:5060;branch=z9hG4bK-%d\r\n", i/250, i%250, i)
	}
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@carrier.example>;tag=v1\r\nTo: <sip:%s@%s>\r\n", e.number, tollFree, addr)
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
	fmt.Fprintf(&b, "Call-ID: vias-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:c@%s;transport=tcp>\r\n", local)
	fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(offer), offer)
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no final response: %v", err)
		}
		if strings.HasPrefix(line, "SIP/2.0 1") {
			continue
		}
		if strings.HasPrefix(line, "SIP/2.0 ") {
			if !strings.HasPrefix(line, "SIP/2.0 400") {
				t.Fatalf("INVITE with 1,000 Vias: %q, want 400", line)
			}
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(e.pbx.Calls()); n != 0 {
		t.Errorf("the PBX got %d INVITEs", n)
	}
}
