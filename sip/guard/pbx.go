package guard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
)

// Why a PBX INVITE was given up, set before its context is cancelled.
const (
	whyNone        int32 = iota
	whyUnreachable       // no response within PBX_TIMEOUT
	whyNoAnswer          // RING_TIMEOUT ran out
	whyHangup            // the call ended on our side
)

// pbxCall is the PBX leg of a call: the guard as UAC towards the PBX.
type pbxCall struct {
	s         *session
	bridge    bool   // the challenge path (our media), not the pass path
	localSDP  []byte // the offer we sent
	transport string
	// late: the carrier's INVITE had no offer (pass path). The PBX's 2xx
	// then carries the offer, and the PBX's ACK waits for the carrier's,
	// which carries the answer (ackLate).
	late    bool
	ackOnce sync.Once
	rel     pbxRel // the PBX's reliable 18x (rel100.go)
	hops    int    // 3xx followed before this leg (transfer.go)

	ctx    context.Context
	cancel context.CancelCauseFunc
	why    atomic.Int32
	heard  atomic.Bool // any response from the PBX

	mu  sync.Mutex
	dlg *sipgo.DialogClientSession // set once the INVITE is sent
	// remote is the PBX's remote target once a target refresh changed it
	// (targets_dialog.go).
	remote atomic.Pointer[sip.Uri]

	// loop-owned
	answered    bool
	byeReceived bool
	byeSent     bool
}

func (p *pbxCall) dialog() *sipgo.DialogClientSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dlg
}

// target is the PBX's remote target (its Contact in the 200), for
// in-dialog requests.
func (p *pbxCall) target() sip.Uri {
	if u := p.remote.Load(); u != nil {
		return *u.Clone()
	}
	d := p.dialog()
	if d != nil && d.InviteResponse != nil {
		if c := d.InviteResponse.Contact(); c != nil {
			return *c.Address.Clone()
		}
	}
	if d != nil {
		return *d.InviteRequest.Recipient.Clone()
	}
	return sip.Uri{}
}

// pbxInvite builds the INVITE to the PBX. The caller's identity goes
// through: From (display name and URI, with a tag of our own, since this
// is a dialog of its own), P-Asserted-Identity (the carrier asserted it to
// us, and the PBX is inside our trust domain, RFC 3325 §5) and Privacy. To
// is the dialled number; the Request-URI is GUARD_PBX_URI, with the
// dialled number as user part when that URI has none.
//
// On the pass path (bridge false) the carrier's session-timer headers go
// too (copyTimerRequest): the two ends refresh the session end to end.
func (s *session) pbxInvite(body []byte, bridge bool) *sip.Request {
	g := s.g
	ruri := *g.set.pbx.Clone()
	if !g.set.pbxUser {
		ruri.User = s.inv.Recipient.User
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	if f := s.inv.From(); f != nil {
		from := &sip.FromHeader{DisplayName: f.DisplayName, Address: *f.Address.Clone()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
	}
	if t := s.inv.To(); t != nil {
		req.AppendHeader(&sip.ToHeader{DisplayName: t.DisplayName, Address: *t.Address.Clone()})
	}
	for _, name := range []string{"P-Asserted-Identity", "Privacy"} {
		for _, h := range s.inv.GetHeaders(name) {
			req.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	// A B2BUA starts a new request, but a guard that loops back to itself
	// (a PBX routing the call to the trunk again) must still run out of
	// hops: carry the carrier's Max-Forwards down by one (cf. RFC 3261
	// §16.6 step 3).
	mf := sip.MaxForwardsHeader(69)
	if m := s.inv.MaxForwards(); m != nil && m.Val() > 0 {
		mf = sip.MaxForwardsHeader(m.Val() - 1)
	}
	req.AppendHeader(&mf)
	if s.customer != "" {
		req.AppendHeader(sip.NewHeader(CustomerHeader, s.customer))
	}
	if !bridge {
		copyTimerRequest(req, s.inv)
	}
	if len(body) > 0 {
		// The PBX may send its 18x reliably; the guard PRACKs them
		// itself (prackPBX). Not on a late offer: see rel100.go.
		req.AppendHeader(sip.NewHeader("Supported", tag100rel))
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	}
	transport := "UDP"
	if tp, ok := ruri.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToUpper(tp)
	}
	req.SetTransport(transport)
	if transport == "UDP" {
		g.laddr.Copy(&req.Laddr)
	}
	return req
}

// startPBX INVITEs the PBX with body as the offer (loop only). On the pass
// path (bridge false) the PBX's provisional responses are relayed to the
// caller.
func (s *session) startPBX(body []byte, bridge bool) {
	s.startPBXRequest(s.pbxInvite(body, bridge), body, bridge, 0)
}

// startPBXRequest sends req (built by pbxInvite, perhaps aimed elsewhere
// by a followed 3xx) as the PBX leg's INVITE (loop only).
func (s *session) startPBXRequest(req *sip.Request, body []byte, bridge bool, hops int) {
	p := &pbxCall{s: s, bridge: bridge, localSDP: body, transport: req.Transport(), late: !bridge && len(body) == 0, hops: hops}
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	s.pbx = p
	ua := s.g.dialogUA[p.transport]
	if ua == nil {
		ua = s.g.dialogUA["UDP"]
	}
	pbxTimeout, ringTimeout := s.g.set.pbxTimeout, s.g.set.ringTime
	s.goDo(func() func() {
		// A PBX that sends nothing at all (not even 100 Trying) is down:
		// give up without a CANCEL, which RFC 3261 §9.1 forbids before a
		// provisional response anyway.
		silent := time.AfterFunc(pbxTimeout, func() {
			if !p.heard.Load() && p.why.CompareAndSwap(whyNone, whyUnreachable) {
				p.cancel(sipgo.WaitAnswerForceCancelErr)
			}
		})
		defer silent.Stop()
		ringing := time.AfterFunc(ringTimeout, func() {
			if p.why.CompareAndSwap(whyNone, whyNoAnswer) {
				p.cancel(nil)
			}
		})
		defer ringing.Stop()
		// On the pass path the PBX's provisional responses go to the
		// caller in the order the PBX sent them, none lost (see
		// provisionals): relayed from the loop in the order posted here,
		// and before the final response, which is posted after WaitAnswer
		// returns.
		var early *arrivals
		var opts []sipgo.ClientRequestOption
		if !bridge {
			early = &arrivals{}
			opts = append(opts, s.g.provisionals.watch(early))
			defer s.g.provisionals.forget(early)
		}
		dlg, err := ua.WriteInvite(p.ctx, req, opts...)
		if err != nil {
			return func() { s.onPBXUnreachable(p, err) }
		}
		p.mu.Lock()
		p.dlg = dlg
		p.mu.Unlock()
		err = dlg.WaitAnswer(p.ctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			p.heard.Store(true)
			p.prackPBX(dlg, r)
			if early != nil {
				for _, r := range early.handUp(r) {
					s.post(func() { s.onPBXProvisional(p, r) })
				}
			}
			return nil
		}})
		if err == nil {
			if p.late {
				// The answer to the PBX's offer comes in the carrier's ACK.
				return func() { s.onPBXAnswered(p, nil) }
			}
			// RFC 3261 §13.2.2.4: the UAC core ACKs every 2xx itself; the
			// PBX leg is its own dialog, so it is ACKed at once.
			ackErr := dlg.Ack(context.Background())
			return func() { s.onPBXAnswered(p, ackErr) }
		}
		if res := dlg.InviteResponse; res != nil && res.IsSuccess() {
			// The PBX answered as we cancelled (the 200 crossed our
			// CANCEL, RFC 3261 §9.1): ACK and BYE it.
			ctx, cancel := context.WithTimeout(context.Background(), byeWait)
			defer cancel()
			if err := dlg.Ack(ctx); err == nil {
				_ = dlg.Bye(ctx)
			}
			return func() { s.onPBXGone(p, err) }
		}
		var refused *sipgo.ErrDialogResponse
		if errors.As(err, &refused) {
			res := refused.Res
			return func() { s.onPBXRefused(p, res) }
		}
		return func() { s.onPBXGone(p, err) }
	})
}

// ackLate ACKs the PBX's 2xx of a late-offer call with the answer the
// carrier's ACK carried (nil when none came: the PBX still gets its ACK
// before the BYE). Only the first call sends; later ones (the carrier's
// ACK retransmitted) do nothing. Safe from any goroutine.
func (p *pbxCall) ackLate(body []byte) {
	p.ackOnce.Do(func() {
		dlg := p.dialog()
		if dlg == nil || dlg.InviteResponse == nil {
			return
		}
		ack := sip.NewRequest(sip.ACK, p.target())
		if len(body) > 0 {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			ack.SetBody(body)
		}
		p.s.route(ack, p.transport, "")
		if err := dlg.WriteAck(context.Background(), ack); err != nil {
			p.s.log.Warn("ACK to the PBX failed", "err", err)
		}
	})
}

// onPBXProvisional relays the PBX's 18x (and its early media SDP) to the
// caller on the pass path.
func (s *session) onPBXProvisional(p *pbxCall, r *sip.Response) {
	if p != s.pbx || s.ended || s.final {
		return
	}
	if rseq := reliableRSeq(r); rseq != 0 {
		if rseq <= p.rel.relayed {
			return // a retransmission, already relayed
		}
		p.rel.relayed = rseq
	}
	ct, body := "", r.Body()
	if h := r.ContentType(); h != nil {
		ct = h.Value()
	}
	if p.late {
		// An SDP in the PBX's 18x would be its offer (RFC 3261 §13.2.1),
		// which a carrier with 100rel answers in a PRACK that the guard
		// ends at itself: only the 2xx carries the offer on to the carrier.
		ct, body = "", nil
	}
	if err := s.respondProvisional(r.StatusCode, r.Reason, body, ct); err != nil {
		s.log.Debug("relay of provisional response failed", "status", r.StatusCode, "err", err)
	}
}

// onPBXAnswered: the PBX sent 200 OK and was ACKed.
func (s *session) onPBXAnswered(p *pbxCall, ackErr error) {
	dlg := p.dialog()
	p.answered = true
	s.g.dialogs.add(dlg.ID, s, pbxLeg)
	s.ids = append(s.ids, dlg.ID)
	if s.ended || p != s.pbx {
		// The call ended while the PBX answered.
		p.hangup(ending{refusal: refusalOf(refCallEnded)})
		return
	}
	if ackErr != nil {
		s.log.Warn("ACK to the PBX failed", "err", ackErr)
	}
	if p.bridge {
		s.onBridgeAnswered(dlg.InviteResponse)
		return
	}
	ct := "application/sdp"
	if h := dlg.InviteResponse.ContentType(); h != nil {
		ct = h.Value()
	}
	s.answerCaller(dlg.InviteResponse.Body(), ct, schema.PartyPBX, dlg.InviteResponse)
}

// onPBXRefused: the PBX answered the INVITE with an error (see
// pbxRefusal).
func (s *session) onPBXRefused(p *pbxCall, res *sip.Response) {
	if p != s.pbx || s.ended {
		return
	}
	if res.StatusCode >= 300 && res.StatusCode < 400 && s.followRedirect(p, res) {
		return
	}
	s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXRefused, refusal: pbxRefusal(res), headers: minSEOf(res)})
}

// onPBXUnreachable: the INVITE could not be sent.
func (s *session) onPBXUnreachable(p *pbxCall, err error) {
	if p != s.pbx || s.ended {
		return
	}
	s.log.Warn("PBX unreachable", "err", err)
	s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXUnreachable, refusal: refusalOf(refPBXUnreachable), detail: err.Error()})
}

// onPBXGone: the INVITE transaction ended without an answer: cancelled by
// us (the call ended, or RING_TIMEOUT), given up (PBX_TIMEOUT), or lost
// (transport error, Timer B).
func (s *session) onPBXGone(p *pbxCall, err error) {
	if p != s.pbx || s.ended {
		return
	}
	switch p.why.Load() {
	case whyNoAnswer:
		s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXNoAnswer, refusal: refusalOf(refPBXNoAnswer)})
	default:
		s.log.Warn("PBX did not answer the INVITE", "err", err)
		detail := ""
		if err != nil {
			detail = err.Error()
		}
		s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXUnreachable, refusal: refusalOf(refPBXUnreachable), detail: detail})
	}
}

// byeWait bounds how long a call that has ended waits for the answer to
// its BYE (retransmitted at 0.5, 1.5 and 3.5 s on UDP) before it lets go
// of the dialog. RFC 3261 lets the client transaction run for Timer F
// (32 s), but the call is over either way, and a peer that lost the call
// (a PBX that gave up on it, a caller gone) never answers: under a flood
// thousands of such calls held their goroutine, dialogs and messages for
// 32 s after the flood ended.
const byeWait = 4 * time.Second

// hangup ends the PBX leg as the call ends (loop only): CANCEL while it
// rings, BYE once answered, nothing if the PBX hung up itself.
func (p *pbxCall) hangup(e ending) {
	if p.byeSent || p.byeReceived {
		return
	}
	if !p.answered {
		p.why.CompareAndSwap(whyNone, whyHangup)
		p.cancel(nil) // WaitAnswer sends the CANCEL (RFC 3261 §9.1)
		return
	}
	p.byeSent = true
	if p.late {
		p.ackLate(nil) // a BYE goes on a confirmed dialog
	}
	dlg := p.dialog()
	bye := sip.NewRequest(sip.BYE, p.target())
	p.s.route(bye, p.transport, "")
	if e.text != "" {
		bye.AppendHeader(reasonHeader("Q.850", e.q850, e.text))
	}
	p.s.goDo(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), byeWait)
		defer cancel()
		if err := dlg.WriteBye(ctx, bye); err != nil {
			p.s.log.Debug("BYE to PBX failed", "err", err)
		}
		return nil
	})
}

var _ call.Effects = (*session)(nil)
