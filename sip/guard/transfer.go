package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/schema"
)

// Transfers and redirects by the PBX on a passed call.
//
// The guard carries out a REFER itself (RFC 3515) rather than relaying it
// to the carrier: it is a B2BUA, carriers commonly refuse REFER, and a
// REFER relayed to the carrier would let the PBX make the carrier call
// anything on the bank's trunk. The guard answers 202, tells the PBX the
// progress by NOTIFY (Event: refer, message/sipfrag: 100 Trying, then the
// target's final status), INVITEs the target without an offer, re-INVITEs
// the caller with the target's offer (on a passed call media flows
// straight between carrier and PBX, so it is the caller's media that
// moves), ACKs the target with the caller's answer (RFC 3725 flow I), and
// then lets go of the PBX's old leg: the transferor BYEs after NOTIFY 200
// as a rule; if it has not within transferorWait, the guard BYEs it. A
// transferor that BYEs earlier (right after the 202) does not end the
// call while the transfer runs; if the transfer then fails, the caller is
// hung up. A REFER with Replaces (attended transfer, RFC 3891) names a
// dialog on the PBX: the INVITE carries it, and goes to the PBX only.
//
// A 3xx from the PBX to a passed call's INVITE is followed when its
// Contact is allowed (the same allow-list and rate limit), at most
// maxRedirects times; otherwise the caller gets 480 as before. Relaying a
// 3xx to the carrier would hand the PBX the carrier's routing.
//
// The call stays one call for the call actor: its answer time and billing
// go on; the transfer is logged with its target.

// Transfer kinds and outcomes, as Observer.Transfer reports them.
const (
	TransferRefer    = "refer"
	TransferRedirect = "redirect"

	TransferAccepted  = "accepted"
	TransferRefused   = "refused"
	TransferCompleted = "completed"
	TransferFailed    = "failed"
)

const (
	// transferorWait is how long the PBX's old leg may stay up after
	// NOTIFY 200 before the guard BYEs it.
	transferorWait = 4 * time.Second
	// maxRedirects bounds 3xx followed for one call (a loop of
	// redirects ends as 480).
	maxRedirects = 3
)

// transfer is a REFER being carried out (loop-owned).
type transfer struct {
	from   *pbxCall // the transferor: the PBX leg the REFER came on
	target placement
	event  string // the Event header of the NOTIFYs
	cancel context.CancelFunc
	done   bool // the target answered and took the call
	failed bool // ... or did not: the transferor keeps it
	// earlier are the transferors of the call's earlier transfers: their
	// late BYEs end their own legs only.
	earlier []*pbxCall
}

// onRefer handles a REFER (see Guard.onRefer).
func (g *Guard) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	g.inDialog((*session).onRefer)(req, tx)
}

// onRefer checks a REFER from the PBX on a passed, answered call and
// starts the transfer, or refuses it (403 with a Reason, logged and
// counted).
func (s *session) onRefer(l leg, req *sip.Request, tx sip.ServerTransaction) {
	rt := req.ReferTo()
	if len(req.GetHeaders("Refer-To")) != 1 || rt == nil {
		s.g.d.Observer.Transfer(TransferRefer, TransferRefused)
		s.g.refuseWith(req, tx, refusalOf(refTransferBad))
		return
	}
	target := redacted(rt.Address)
	pl, why := s.g.set.transfers.resolve(rt.Address, s.g.set.pbx)
	x := &transfer{target: pl, event: "refer;id=" + fmt.Sprint(req.CSeq().SeqNo)}
	s.do(func() {
		if !(l == pbxLeg && !s.ended && s.answered && s.chal == nil && !s.bridging && (s.xfer == nil || s.xfer.done || s.xfer.failed) &&
			s.pbx != nil && !s.pbx.bridge && s.pbx.answered && !s.pbx.byeReceived && !s.pbx.byeSent && s.pbx.owns(req)) {
			why = "no transfer on this call"
			return
		}
		if why == "" && !s.g.set.transfers.limit.Allow() {
			why = whyRate
		}
		if why == "" {
			// Taken now, before the 202: a BYE from the transferor that
			// follows at once must find the transfer (transferBye).
			x.from = s.pbx
			if old := s.xfer; old != nil {
				x.earlier = append(old.earlier, old.from)
			}
			s.xfer = x
		}
	})
	if why != "" {
		s.log.Info("transfer refused", "leg", l.String(), "target", target, "why", why)
		s.g.d.Observer.Transfer(TransferRefer, TransferRefused)
		s.g.refuseWith(req, tx, refusalOf(refTransferRefused).withText(why))
		return
	}
	s.g.respond(req, tx, 202, "", nil)
	s.g.d.Observer.Transfer(TransferRefer, TransferAccepted)
	var referredBy sip.Header
	if h := req.GetHeader("Referred-By"); h != nil {
		referredBy = sip.NewHeader("Referred-By", h.Value())
	}
	s.log.Info("transfer accepted", "target", target, "placed", redacted(pl.ruri), "attended", pl.replaces != "")
	s.post(func() { s.startTransfer(x, referredBy) })
}

// owns reports whether req came on this leg's dialog.
func (p *pbxCall) owns(req *sip.Request) bool {
	d := p.dialog()
	id, err := sip.DialogIDFromRequestUAC(req)
	return d != nil && err == nil && id == d.ID
}

// redacted is u as logged: no password, no embedded headers.
func redacted(u sip.Uri) string {
	u.Password, u.Headers = "", nil
	return u.String()
}

// startTransfer places the transfer's call (loop only).
func (s *session) startTransfer(x *transfer, referredBy sip.Header) {
	if s.ended || s.xfer != x {
		return // the call ended meanwhile (endTransfer)
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	inv := s.transferInvite(x.target, referredBy)
	ring := s.g.set.ringTime
	s.goDo(func() func() {
		defer cancel()
		s.notifyRefer(x.from, x.event, 100, "Trying", false)
		to, status, reason := s.placeTransfer(ctx, inv, ring)
		return func() { s.onTransferDone(x, to, status, reason) }
	})
}

// transferInvite is the INVITE to a transfer target: the caller's
// identity (as on the PBX leg), no offer (the target makes it, and the
// caller answers it), Replaces and Referred-By when the REFER gave them.
func (s *session) transferInvite(pl placement, referredBy sip.Header) *sip.Request {
	req := sip.NewRequest(sip.INVITE, pl.ruri)
	if f := s.inv.From(); f != nil {
		from := &sip.FromHeader{DisplayName: f.DisplayName, Address: *f.Address.Clone()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
	}
	to := pl.ruri
	to.UriParams = nil
	req.AppendHeader(&sip.ToHeader{Address: to})
	for _, name := range []string{"P-Asserted-Identity", "Privacy"} {
		for _, h := range s.inv.GetHeaders(name) {
			req.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if pl.replaces != "" {
		req.AppendHeader(sip.NewHeader("Replaces", pl.replaces))
		req.AppendHeader(sip.NewHeader("Require", "replaces"))
	}
	if referredBy != nil {
		req.AppendHeader(referredBy)
	}
	s.aimAt(req, pl.ruri)
	return req
}

// aimAt sets req's Request-URI and the transport and local address it
// leaves on.
func (s *session) aimAt(req *sip.Request, ruri sip.Uri) {
	req.Recipient = ruri
	transport := "UDP"
	if tp, ok := ruri.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToUpper(tp)
	}
	req.SetTransport(transport)
	if transport == "UDP" {
		s.g.laddr.Copy(&req.Laddr)
	}
}

// placeTransfer INVITEs the target, moves the caller's media to it and
// returns its leg, or the status the transfer failed with (helper
// goroutine).
func (s *session) placeTransfer(ctx context.Context, inv *sip.Request, ring time.Duration) (*pbxCall, int, string) {
	p := &pbxCall{s: s, transport: inv.Transport()}
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	ua := s.g.dialogUA[p.transport]
	if ua == nil {
		ua = s.g.dialogUA["UDP"]
	}
	wctx, wcancel := context.WithTimeout(ctx, ring)
	defer wcancel()
	dlg, err := ua.WriteInvite(wctx, inv)
	if err != nil {
		return nil, 503, "Service Unavailable"
	}
	p.dlg = dlg
	if err := dlg.WaitAnswer(wctx, sipgo.AnswerOptions{}); err != nil {
		var refused *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &refused):
			return nil, refused.Res.StatusCode, refused.Res.Reason
		case dlg.InviteResponse != nil && dlg.InviteResponse.IsSuccess():
			s.dropTarget(dlg, nil)
			return nil, 487, "Request Terminated"
		case ctx.Err() != nil:
			return nil, 487, "Request Terminated"
		}
		return nil, 408, "Request Timeout"
	}
	res := dlg.InviteResponse
	offer := res.Body()
	ct := "application/sdp"
	if h := res.ContentType(); h != nil {
		ct = h.Value()
	}
	if len(offer) == 0 {
		s.dropTarget(dlg, nil)
		return nil, 488, "Not Acceptable Here"
	}
	answer, err := s.reinviteCaller(ctx, offer, ct)
	if err != nil {
		s.log.Info("transfer: the caller did not take the target's media", "err", err)
		s.dropTarget(dlg, nil)
		return nil, 488, "Not Acceptable Here"
	}
	ack := sip.NewRequest(sip.ACK, p.target())
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(answer)
	s.route(ack, p.transport, "")
	if err := dlg.WriteAck(ctx, ack); err != nil {
		s.log.Warn("transfer: ACK to the target failed", "err", err)
	}
	p.ackOnce.Do(func() {})
	return p, 200, "OK"
}

// dropTarget ACKs and BYEs a target that answered but cannot have the
// call.
func (s *session) dropTarget(dlg *sipgo.DialogClientSession, _ error) {
	ctx, cancel := context.WithTimeout(context.Background(), byeWait)
	defer cancel()
	if err := dlg.Ack(ctx); err == nil {
		_ = dlg.Bye(ctx)
	}
}

// reinviteCaller offers the target's SDP to the caller by re-INVITE and
// returns the caller's answer (helper goroutine).
func (s *session) reinviteCaller(ctx context.Context, offer []byte, ct string) ([]byte, error) {
	var t *relayTarget
	s.do(func() {
		if !s.ended && s.answered && !s.callerGone {
			t = s.callerRelay()
		}
	})
	if t == nil {
		return nil, errors.New("the call is over")
	}
	rctx, cancel := context.WithTimeout(ctx, sip.Timer_F)
	defer cancel()
	if !t.ready(rctx) {
		return nil, errors.New("our 200 OK was never ACKed")
	}
	req := sip.NewRequest(sip.INVITE, t.to)
	req.AppendHeader(sip.NewHeader("Content-Type", ct))
	req.SetBody(offer)
	s.route(req, t.transport, t.source)
	res, otx, err := t.send(rctx, req)
	if err != nil {
		return nil, fmt.Errorf("re-INVITE: %w", err)
	}
	if !res.IsSuccess() {
		return nil, fmt.Errorf("re-INVITE answered %d", res.StatusCode)
	}
	if err := s.ackInvite(t, otx, nil, ""); err != nil {
		s.log.Debug("ACK of the transfer re-INVITE not sent", "err", err)
	}
	if len(res.Body()) == 0 {
		return nil, errors.New("re-INVITE 2xx without an answer")
	}
	s.do(func() { s.callerSDP = offer })
	return res.Body(), nil
}

// onTransferDone makes the target the call's PBX leg, or reports the
// failure (loop only).
func (s *session) onTransferDone(x *transfer, to *pbxCall, status int, reason string) {
	from := x.from
	if to != nil && s.ended {
		// The call ended while the target answered.
		to.answered = true
		to.hangup(ending{refusal: refusalOf(refCallEnded)})
		to = nil
		status, reason = 487, "Request Terminated"
	}
	final := func() {
		s.goDo(func() func() {
			s.notifyRefer(from, x.event, status, reason, true)
			return nil
		})
	}
	if to == nil {
		s.g.d.Observer.Transfer(TransferRefer, TransferFailed)
		s.log.Info("transfer failed", "target", redacted(x.target.ruri), "status", status)
		x.failed = true
		if !from.byeReceived && !s.ended {
			final()
			return
		}
		// The transferor left meanwhile: nobody holds the call.
		s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXHangup, refusal: refusalOf(refPBXHungUp)})
		return
	}
	x.done = true
	to.answered = true
	s.pbx = to
	id := to.dialog().ID
	s.g.dialogs.add(id, s, pbxLeg)
	s.ids = append(s.ids, id)
	s.g.d.Observer.Transfer(TransferRefer, TransferCompleted)
	s.log.Info("call transferred", "target", redacted(x.target.ruri))
	if from.byeReceived {
		return
	}
	final()
	time.AfterFunc(transferorWait, func() {
		s.post(func() {
			if !from.byeReceived && !from.byeSent {
				from.hangup(ending{refusal: refusalOf(refCallEnded).withText("transferred")})
			}
		})
	})
}

// notifyRefer tells the transferor the transfer's progress (RFC 3515
// §2.4.5): the target's status line as message/sipfrag (helper goroutine).
func (s *session) notifyRefer(p *pbxCall, event string, status int, reason string, final bool) {
	var gone bool
	s.do(func() { gone = p.byeReceived || p.byeSent })
	d := p.dialog()
	if gone || d == nil {
		return
	}
	n := sip.NewRequest(sip.NOTIFY, p.target())
	n.AppendHeader(sip.NewHeader("Event", event))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	n.AppendHeader(sip.NewHeader("Subscription-State", state))
	n.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	n.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", status, reason)))
	s.route(n, p.transport, "")
	ctx, cancel := context.WithTimeout(context.Background(), byeWait)
	defer cancel()
	if _, err := d.Do(ctx, n); err != nil {
		s.log.Debug("NOTIFY to the transferor failed", "err", err)
	}
}

// transferBye takes a BYE from the PBX on a transferor's leg: it ends
// that leg only, not the call (the target has it, or is being called).
// false: not such a BYE.
func (s *session) transferBye(req *sip.Request, tx sip.ServerTransaction) bool {
	var from *pbxCall
	s.do(func() {
		x := s.xfer
		if x == nil {
			return
		}
		for _, p := range append([]*pbxCall{x.from}, x.earlier...) {
			if p != s.pbx && p.owns(req) || p == x.from && !x.done && !x.failed && p.owns(req) {
				from = p
			}
		}
	})
	if from == nil {
		return false
	}
	if err := from.dialog().ReadBye(req, tx); err != nil {
		s.log.Debug("transferor BYE", "err", err)
	}
	s.log.Info("transferor hung up its leg")
	s.post(func() { from.byeReceived = true })
	return true
}

// endTransfer stops a transfer as the call ends, and hangs up the
// transferors' legs still up (loop only).
func (s *session) endTransfer(e ending) {
	x := s.xfer
	if x == nil {
		return
	}
	if !x.done && x.cancel != nil {
		x.cancel()
	}
	for _, p := range append([]*pbxCall{x.from}, x.earlier...) {
		if p != s.pbx {
			p.hangup(e)
		}
	}
}

// followRedirect follows a 3xx from the PBX on the pass path when its
// Contact is allowed (loop only); false: the caller gets the refusal.
func (s *session) followRedirect(p *pbxCall, res *sip.Response) bool {
	c := res.Contact()
	if c == nil || p.bridge || p.hops >= maxRedirects {
		s.g.d.Observer.Transfer(TransferRedirect, TransferRefused)
		s.log.Info("redirect refused", "status", res.StatusCode, "why", "no contact, or too many redirects")
		return false
	}
	target := c.Address
	target.Headers = nil // a 3xx's Contact may not smuggle Replaces
	pl, why := s.g.set.transfers.resolve(target, s.g.set.pbx)
	if why == "" && !s.g.set.transfers.limit.Allow() {
		why = whyRate
	}
	if why != "" {
		s.g.d.Observer.Transfer(TransferRedirect, TransferRefused)
		s.log.Info("redirect refused", "status", res.StatusCode, "target", redacted(c.Address), "why", why)
		return false
	}
	s.g.d.Observer.Transfer(TransferRedirect, TransferAccepted)
	s.log.Info("redirect followed", "status", res.StatusCode, "target", redacted(pl.ruri))
	req := s.pbxInvite(s.offer, false)
	s.aimAt(req, pl.ruri)
	s.startPBXRequest(req, s.offer, false, p.hops+1)
	return true
}
