package guard_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/guard"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sip/siptest"
)

// prack acknowledges the reliable 1xx res (RFC 3262 §7.2) with RAck rack.
func (c *fakeCaller) prack(ctx context.Context, res *sip.Response, rack string) (*sip.Response, error) {
	req := sip.NewRequest(sip.PRACK, *res.Contact().Address.Clone())
	req.AppendHeader(sip.HeaderClone(res.From()))
	req.AppendHeader(sip.HeaderClone(res.To()))
	req.AppendHeader(sip.HeaderClone(res.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo + 1, MethodName: sip.PRACK})
	req.AppendHeader(sip.NewHeader("RAck", rack))
	return c.cli.Do(ctx, req)
}

// rackOf is the RAck that acknowledges res.
func rackOf(t *testing.T, res *sip.Response) string {
	t.Helper()
	h := res.GetHeader("RSeq")
	if h == nil {
		t.Fatalf("reliable %d without RSeq", res.StatusCode)
	}
	return h.Value() + " " + strconv.FormatUint(uint64(res.CSeq().SeqNo), 10) + " INVITE"
}

func isReliable(r *sip.Response) bool {
	h := r.GetHeader("Require")
	return h != nil && strings.Contains(h.Value(), "100rel") && r.GetHeader("RSeq") != nil
}

// TestChallengeSends183Reliably: a carrier that requires (or supports)
// 100rel gets the challenge's 183 with Require: 100rel and RSeq,
// retransmitted until its PRACK; a PRACK naming another RSeq gets 481,
// the right one 200, and the 200 OK to the INVITE comes only after it.
func TestChallengeSends183Reliably(t *testing.T) {
	for _, hdr := range []string{"Require", "Supported"} {
		t.Run(hdr, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *guard.Config) { c.T1 = 50 * time.Millisecond }))
			c := newFakeCaller(e)
			ctx := ctxFor(t, 20*time.Second)
			e.block(3)
			var (
				mu       sync.Mutex
				n183     int
				pracked  time.Time
				prackErr error
				unrel    []int
			)
			cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
				if r.StatusCode == 100 || !r.IsProvisional() {
					return
				}
				if !isReliable(r) {
					unrel = append(unrel, r.StatusCode)
					return
				}
				mu.Lock()
				n183++
				n := n183
				mu.Unlock()
				if n != 3 { // let two retransmissions come first
					return
				}
				if res, err := c.prack(ctx, r, "1 1 INVITE"); err != nil || res.StatusCode != 481 {
					t.Errorf("PRACK with a wrong RAck: %v %v, want 481", res, err)
				}
				res, err := c.prack(ctx, r, rackOf(t, r))
				if err == nil && res.StatusCode != 200 {
					err = fmt.Errorf("PRACK answered %d", res.StatusCode)
				}
				pracked, prackErr = time.Now(), err
			}, sip.NewHeader(hdr, "100rel"))
			if prackErr != nil {
				t.Fatal(prackErr)
			}
			if cl.status() != 200 {
				t.Fatalf("INVITE got %d (%v), want 200 after the PRACK", cl.status(), cl.err)
			}
			if len(unrel) > 0 {
				t.Errorf("unreliable provisional responses %v sent to a carrier with 100rel", unrel)
			}
			if n183 < 3 || pracked.IsZero() || cl.answered.Before(pracked) {
				t.Errorf("183 seen %d times, PRACKed at %v, answered at %v: want retransmissions, then 200 after the PRACK", n183, pracked, cl.answered)
			}
			if h := cl.final().GetHeader("Supported"); h == nil || !strings.Contains(h.Value(), "100rel") {
				t.Errorf("200 OK without Supported: 100rel")
			}
			c.hangup(cl)
		})
	}
}

// TestNoPrackEndsTheCall: a carrier that never PRACKs gets the 183
// retransmitted (T1, doubling) and, after 64*T1, 504 (RFC 3262 §3).
func TestNoPrackEndsTheCall(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.T1 = 20 * time.Millisecond }))
	c := newFakeCaller(e)
	ctx := ctxFor(t, 20*time.Second)
	e.block(3)
	var (
		mu   sync.Mutex
		seen []time.Time
	)
	start := time.Now()
	cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 183 && isReliable(r) {
			mu.Lock()
			seen = append(seen, time.Now())
			mu.Unlock()
		}
	}, sip.NewHeader("Require", "100rel"))
	if cl.status() != 504 {
		t.Fatalf("INVITE got %d (%v), want 504 after 64*T1 without PRACK", cl.status(), cl.err)
	}
	mu.Lock()
	defer mu.Unlock()
	// 64*T1 = 1.28 s holds the first send and retransmissions at 20, 60,
	// 140, 300, 620 ms (and 1.26 s): at least five arrive.
	if len(seen) < 5 {
		t.Errorf("183 seen %d times, want retransmissions until 64*T1", len(seen))
	}
	if took := time.Since(start); took < 64*20*time.Millisecond {
		t.Errorf("504 after %v, before 64*T1", took)
	}
	if end, ok := e.callStream()[schema.TypeCallEnded].(*schema.CallEnded); !ok || end.Cause != schema.EndError {
		t.Errorf("CallEnded %+v, want ended on an error", end)
	}
	if got := e.guard.Stats().NoPrack; got != 1 {
		t.Errorf("NoPrack = %d, want 1", got)
	}
}

// TestPassRelays18xReliably: on a passed call the PBX's 180 and 183 (with
// its early media SDP) reach a carrier that requires 100rel as reliable
// provisional responses with consecutive RSeq, the second only after the
// first was PRACKed (RFC 3262 §3), and the PBX's 200 OK after both.
func TestPassRelays18xReliably(t *testing.T) {
	e := newEnv(t, withConfig(func(c *guard.Config) { c.T1 = 50 * time.Millisecond }))
	e.setPBX(siptest.Behaviour{EarlyMedia: make([]int16, 1600), Delay: 300 * time.Millisecond})
	c := newFakeCaller(e)
	ctx := ctxFor(t, 10*time.Second)
	var (
		mu     sync.Mutex
		rseqs  []uint64
		unrel  []int
		last   time.Time
		pracks []int
	)
	cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
		if r.StatusCode == 100 || !r.IsProvisional() {
			return
		}
		if !isReliable(r) {
			unrel = append(unrel, r.StatusCode)
			return
		}
		n, _ := strconv.ParseUint(r.GetHeader("RSeq").Value(), 10, 32)
		mu.Lock()
		seen := len(rseqs) > 0 && rseqs[len(rseqs)-1] == n
		if !seen {
			rseqs = append(rseqs, n)
		}
		mu.Unlock()
		if seen {
			return // a retransmission
		}
		res, err := c.prack(ctx, r, rackOf(t, r))
		if err != nil {
			t.Errorf("PRACK: %v", err)
			return
		}
		pracks = append(pracks, res.StatusCode)
		last = time.Now()
	}, sip.NewHeader("Require", "100rel"))
	if cl.status() != 200 {
		t.Fatalf("INVITE got %d (%v), want the PBX's 200", cl.status(), cl.err)
	}
	if len(unrel) > 0 {
		t.Errorf("unreliable provisional responses %v sent to a carrier that requires 100rel", unrel)
	}
	if len(rseqs) != 2 || rseqs[1] != rseqs[0]+1 {
		t.Errorf("reliable 18x with RSeq %v, want the PBX's 180 and 183 with consecutive RSeq", rseqs)
	}
	for _, s := range pracks {
		if s != 200 {
			t.Errorf("PRACKs answered %v, want 200 each", pracks)
			break
		}
	}
	if cl.answered.Before(last) {
		t.Errorf("200 OK before the last PRACK")
	}
	c.hangup(cl)
	e.pbxEnded("BYE from the caller")
}

// TestExtensionsAnswered: 100rel and timer are accepted and advertised;
// any other required extension still gets 420 naming it (RFC 3261
// §8.2.2.3).
func TestExtensionsAnswered(t *testing.T) {
	e := newEnv(t)
	p := newPeer(t, "trunk")
	p.serve()
	res := options(t, p, "sip:"+e.guard.UDPAddr().String())
	if h := res.GetHeader("Supported"); h == nil || !strings.Contains(h.Value(), "100rel") || !strings.Contains(h.Value(), "timer") {
		t.Errorf("200 to OPTIONS without Supported: 100rel, timer: %v", h)
	}
	if h := res.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "PRACK") {
		t.Errorf("200 to OPTIONS without PRACK in Allow: %v", h)
	}
	c := newFakeCaller(e)
	for _, tc := range []struct {
		require     string
		status      int
		unsupported string
	}{
		{"foo", 420, "foo"},
		{"100rel, foo", 420, "foo"},
		{"100rel", 200, ""},
		{"timer", 200, ""},
		{"100rel, timer", 200, ""},
	} {
		t.Run(tc.require, func(t *testing.T) {
			cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil, sip.NewHeader("Require", tc.require))
			if cl.status() != tc.status {
				t.Fatalf("INVITE with Require: %s got %d (%v), want %d", tc.require, cl.status(), cl.err, tc.status)
			}
			if tc.status == 420 {
				if h := cl.final().GetHeader("Unsupported"); h == nil || h.Value() != tc.unsupported {
					t.Errorf("420 with Unsupported %v, want %q", h, tc.unsupported)
				}
				return
			}
			c.hangup(cl)
		})
	}
}

// relPBX is a PBX that sends its 183 reliably (RFC 3262): Require:
// 100rel, RSeq 1 and an SDP answer, retransmitted every 50 ms until
// PRACKed; then 200 OK.
type relPBX struct {
	addr    string
	mu      sync.Mutex
	invite  *sip.Request
	racks   []string
	pracked chan struct{}
	sent183 int
}

func newRelPBX(t *testing.T) *relPBX {
	t.Helper()
	p := &relPBX{pracked: make(chan struct{})}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); ua.Close() })
	p.addr = conn.LocalAddr().String()
	rtp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtp.Close() })
	o, err := sdp.NewOffer(sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: rtp.LocalAddr().(*net.UDPAddr).Port, SessionID: 3, SessionVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := o.Marshal()
	tag := sip.GenerateTagN(8)
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: "127.0.0.1", Port: conn.LocalAddr().(*net.UDPAddr).Port}}
	respond := func(req *sip.Request, status int, reason string, body []byte, hdrs ...sip.Header) *sip.Response {
		res := sip.NewResponseFromRequest(req, status, reason, body)
		if to := res.To(); to != nil {
			if _, ok := to.Params.Get("tag"); !ok {
				to.Params.Add("tag", tag)
			}
		}
		res.AppendHeader(&contact)
		if len(body) > 0 {
			res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		}
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		return res
	}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.invite = req
		p.mu.Unlock()
		r183 := respond(req, 183, "Session Progress", body, sip.NewHeader("Require", "100rel"), sip.NewHeader("RSeq", "1"))
		// A retransmission right away, as on a lossy path: the guard
		// must neither PRACK nor relay it a second time.
		_ = tx.Respond(r183)
		for i := 0; i < 100; i++ {
			p.mu.Lock()
			p.sent183++
			p.mu.Unlock()
			_ = tx.Respond(r183)
			select {
			case <-p.pracked:
				// Not right behind the 183: the test caller is sipgo, whose
				// 200 may overtake a provisional response (emiago/sipgo#306).
				time.Sleep(50 * time.Millisecond)
				_ = tx.Respond(respond(req, 200, "OK", body))
				return
			case <-tx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = tx.Respond(respond(req, 504, "No PRACK", nil))
	})
	var once sync.Once
	srv.OnPrack(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		if h := req.GetHeader("RAck"); h != nil {
			p.racks = append(p.racks, h.Value())
		}
		p.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		once.Do(func() { close(p.pracked) })
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() { _ = srv.ServeUDP(conn) }()
	return p
}

// TestPBXReliable18xIsPrackedByTheGuard: the guard's INVITE to the PBX
// lists 100rel, and a PBX that sends its 183 reliably gets the guard's own
// PRACK (RAck: its RSeq and the INVITE's CSeq), hop by hop, whether the
// carrier has 100rel (the 183 relayed reliably with the guard's RSeq,
// once although the PBX retransmitted it) or not (relayed plain).
func TestPBXReliable18xIsPrackedByTheGuard(t *testing.T) {
	for _, carrier100rel := range []bool{true, false} {
		t.Run(fmt.Sprintf("carrier 100rel %v", carrier100rel), func(t *testing.T) {
			pbx := newRelPBX(t)
			e := newEnv(t, withConfig(func(c *guard.Config) { c.PBXURI = "sip:pbx@" + pbx.addr }))
			c := newFakeCaller(e)
			ctx := ctxFor(t, 20*time.Second)
			var (
				mu     sync.Mutex
				rseqs  = map[string]bool{}
				plain  int
				prackE error
			)
			var extra []sip.Header
			if carrier100rel {
				extra = append(extra, sip.NewHeader("Supported", "100rel"))
			}
			cl := c.invite(ctx, e.uri(), func(r *sip.Response) {
				if r.StatusCode != 183 {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !isReliable(r) {
					plain++
					return
				}
				rs := r.GetHeader("RSeq").Value()
				if rseqs[rs] {
					return // the guard's own retransmission
				}
				rseqs[rs] = true
				if res, err := c.prack(ctx, r, rackOf(t, r)); err != nil || res.StatusCode != 200 {
					prackE = fmt.Errorf("PRACK to the guard: %v %v", res, err)
				}
			}, extra...)
			if cl.status() != 200 {
				t.Fatalf("INVITE got %d (%v), want the PBX's 200", cl.status(), cl.err)
			}
			if prackE != nil {
				t.Error(prackE)
			}
			pbx.mu.Lock()
			inv, racks := pbx.invite, append([]string(nil), pbx.racks...)
			pbx.mu.Unlock()
			if inv == nil || !strings.Contains(headerValues(inv, "Supported"), "100rel") {
				t.Errorf("the guard's INVITE to the PBX does not list 100rel in Supported")
			}
			if want := "1 " + strconv.FormatUint(uint64(inv.CSeq().SeqNo), 10) + " INVITE"; len(racks) != 1 || racks[0] != want {
				t.Errorf("the PBX got PRACKs with RAck %q, want one, %q", racks, want)
			}
			if carrier100rel && (len(rseqs) != 1 || plain != 0) {
				t.Errorf("carrier got %d reliable 183s (distinct RSeq) and %d plain, want 1 reliable", len(rseqs), plain)
			}
			if !carrier100rel && (len(rseqs) != 0 || plain != 1) {
				t.Errorf("carrier without 100rel got %d reliable 183s and %d plain, want 1 plain", len(rseqs), plain)
			}
			c.hangup(cl)
		})
	}
}

// headerValues joins the values of every header name in m.
func headerValues(m sip.Message, name string) string {
	var vs []string
	for _, h := range m.GetHeaders(name) {
		vs = append(vs, h.Value())
	}
	return strings.Join(vs, ", ")
}
