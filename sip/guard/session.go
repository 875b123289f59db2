package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/callerid"
	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/sdp"
)

// errShuttingDown refuses new calls while the guard stops.
var errShuttingDown = errors.New("guard: shutting down")

// session is the SIP side of one call: the caller leg (the guard as UAS),
// the PBX leg when there is one (the guard as UAC), and the guard's media
// for a challenge. It implements call.Effects for the call's actor.
//
// Every field below "loop-owned" is read and written only by the loop
// goroutine: post queues a function to it. Work that blocks (waiting for
// an ACK, a BYE's 200, the PBX's answer, the announcement to finish) runs
// in helper goroutines started by goDo, whose results come back through
// post. The loop ends once the call has ended and no helper is left, so a
// helper's result (a late 200 from the PBX, say) is always handled.
type session struct {
	g   *Guard
	id  string
	log *slog.Logger
	act *call.Call
	ua  *sipgo.DialogUA
	inv *sip.Request // the carrier's INVITE, read only
	tx  sip.ServerTransaction
	dlg *sipgo.DialogServerSession // the caller leg

	offer    []byte // the caller's SDP offer
	offerSDP *sdp.Session
	// callerSDPIn is the caller's last session description: its offer,
	// or on a late offer its answer in the PRACK (rel100.go).
	callerSDPIn *sdp.Session

	ops        chan func()
	quit       chan struct{} // closed when the loop has ended
	inviteDone chan struct{} // closed when the INVITE has its final response
	inviteOnce sync.Once
	answerDone chan struct{} // closed when our 200 OK was ACKed (or given up)

	// loop-owned
	helpers    int
	final      bool   // the caller has a final response (487 after CANCEL included)
	answered   bool   // ... and it was a 2xx
	callerGone bool   // the caller cancelled or sent BYE
	ended      bool   // Ended was reported; the call is over
	callerSDP  []byte // the SDP the caller got from us (for refreshes)
	pbx        *pbxCall
	chal       *challenge
	bridging   bool
	customer   string      // CustomerHeader's value for the PBX INVITE, if any
	xfer       *transfer   // a REFER being carried out (transfer.go)
	rel        reliability // 100rel towards the caller
	ids        []string    // dialog IDs registered for this call
	// acks wait for the ACK of a relayed re-INVITE's 2xx that carries
	// the answer, by leg and CSeq.
	acks map[ackKey]chan []byte
	// callerTo is the caller leg's remote target once a target refresh
	// changed it (targets_dialog.go); nil: the INVITE's Contact.
	callerTo atomic.Pointer[sip.Uri]
	// cancelHook is what the INVITE transaction's CANCEL callback
	// reaches the session through, cleared when the call ends.
	cancelHook *atomic.Pointer[session]
}

func (g *Guard) newSession(req *sip.Request, tx sip.ServerTransaction, body []byte, offer *sdp.Session, cl callerid.Caller, ce callerid.Identity) (*session, error) {
	ua := g.dialogUA[strings.ToUpper(req.Transport())]
	if ua == nil {
		ua = g.dialogUA["UDP"]
	}
	dlg, err := ua.ReadInvite(req, tx)
	if err != nil {
		return nil, fmt.Errorf("read INVITE dialog: %w", err)
	}
	id := callKey(req)
	s := &session{
		g: g, id: id, ua: ua, inv: req, tx: tx, dlg: dlg, offer: body, offerSDP: offer, callerSDPIn: offer,
		log:  call.Logger(g.log, "call", id, "callId", callIDOf(req)),
		rel:  reliability{use: offers100rel(req, "Require", "") || offers100rel(req, "Supported", "k")},
		acks: make(map[ackKey]chan []byte),
		ops:  make(chan func(), 64), quit: make(chan struct{}), inviteDone: make(chan struct{}), answerDone: make(chan struct{}),
	}
	if !g.addSession(s) {
		return nil, errShuttingDown
	}
	g.dialogs.add(dlg.ID, s, callerLeg)
	s.ids = append(s.ids, dlg.ID)
	c, err := g.calls.Start(g.setupOf(id, req, cl, ce), s)
	if err != nil {
		g.dialogs.remove(dlg.ID)
		g.dropSession(s)
		return nil, fmt.Errorf("spawn call actor: %w", err)
	}
	s.act = c
	// RFC 3261 §9.2: sipgo's transaction layer answers the CANCEL (200)
	// and the INVITE (487); the session has to let go of the call.
	// sipgo keeps the transaction, and with it this hook, for Timer L
	// (32 s after a 2xx, RFC 6026), so the hook reaches the session only
	// while the call lasts (~20 KB a call otherwise). It is allocated on
	// its own: a pointer into s would keep all of s alive.
	hook := new(atomic.Pointer[session])
	hook.Store(s)
	s.cancelHook = hook
	if !tx.OnCancel(func(*sip.Request) {
		if s := hook.Load(); s != nil {
			s.post(s.onCallerCancel)
		}
	}) {
		s.post(s.onCallerCancel)
	}
	go s.loop()
	return s, nil
}

// loop runs the session's state changes in order. The dialogs stay
// registered until it ends, after the call: a late ACK for our 200 OK, or
// a BYE that crossed ours, still finds its dialog.
func (s *session) loop() {
	defer s.cancelHook.Store(nil)
	defer close(s.quit)
	defer func() { s.g.dialogs.remove(s.ids...) }()
	for {
		f := <-s.ops
		s.run(f)
		if s.ended && s.helpers == 0 {
			return
		}
	}
}

// run calls f, turning a panic into the end of the call rather than of the
// process.
func (s *session) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.g.stats.panics.Add(1)
			s.log.Error("session panicked", "panic", r, "stack", string(debug.Stack()))
			s.end(ending{by: schema.PartyGuard, cause: schema.EndError, refusal: refusalOf(refInternal)})
		}
	}()
	f()
}

// post queues f for the loop. It reports false when the loop has ended
// (the call is over and nothing is listening).
func (s *session) post(f func()) bool {
	select {
	case <-s.quit:
		return false
	default:
	}
	select {
	case s.ops <- f:
		return true
	case <-s.quit:
		return false
	}
}

// do runs f on the loop and waits for it, for handlers that need an
// answer from the session's state. It reports false when the loop ended.
func (s *session) do(f func()) bool {
	done := make(chan struct{})
	if !s.post(func() { f(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-s.quit:
		return false
	}
}

// goDo runs work on a helper goroutine (loop only); the function work
// returns, if any, then runs on the loop.
func (s *session) goDo(work func() func()) {
	s.helpers++
	go func() {
		var next func()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("session helper panicked", "panic", r)
				next = nil
			}
			// The loop cannot have ended: it waits for this helper.
			s.ops <- func() {
				s.helpers--
				if next != nil {
					next()
				}
			}
		}()
		next = work()
	}()
}

// report sends a fact to the call actor.
func (s *session) report(msg any) { s.act.Tell(msg) }

func (s *session) now() time.Time { return s.g.d.Clock() }

// waitInvite blocks the INVITE handler until the INVITE's final response
// has been sent (see onInvite).
func (s *session) waitInvite() {
	select {
	case <-s.inviteDone:
	case <-s.tx.Done():
	case <-s.quit:
	}
}

func (s *session) inviteFinished() { s.inviteOnce.Do(func() { close(s.inviteDone) }) }

// Effects: the call actor's orders. Each is queued for the loop.

// Reject implements call.Effects.
func (s *session) Reject(r call.Rejection) { s.post(func() { s.doReject(r) }) }

// Pass implements call.Effects.
func (s *session) Pass() { s.post(s.doPass) }

// Challenge implements call.Effects.
func (s *session) Challenge(code string) { s.post(func() { s.doChallenge(code) }) }

// Bridge implements call.Effects.
func (s *session) Bridge() { s.post(s.doBridge) }

// Hangup implements call.Effects.
func (s *session) Hangup(h call.Hangup) { s.post(func() { s.doHangup(h) }) }

func (s *session) doReject(r call.Rejection) {
	e := ending{by: schema.PartyGuard, cause: schema.EndRejected, refusal: rejection(r, s.g.set.reject)}
	switch {
	case r.Busy:
		e.cause = schema.EndBusy
		s.g.overloaded(OverloadBusy)
	case r.StoreDown:
		e.cause = schema.EndStoreDown
	}
	s.end(e)
}

func (s *session) doHangup(h call.Hangup) {
	s.end(ending{by: schema.PartyGuard, cause: h.Cause, refusal: hangupRefusal(h, s.g.set.reject)})
}

func (s *session) doPass() {
	if s.ended {
		return
	}
	s.startPBX(s.offer, false)
}

// ending says how a call ends and what each leg is told.
type ending struct {
	by    schema.Party
	cause schema.EndCause
	// refusal is what the legs are told: status (with a Reason header
	// carrying text) to a caller not yet answered, a BYE with Reason
	// cause q850 to an answered leg.
	refusal
	detail string
	// headers go on the final response to a caller not yet answered
	// (the Min-SE of a 422 from the PBX).
	headers []sip.Header
}

// end finishes the call: the caller gets its final response or a BYE, the
// PBX leg is cancelled or hung up, the media stops, and the actor hears
// Ended. Only the first call acts.
func (s *session) end(e ending) {
	if s.ended {
		return
	}
	s.ended = true
	s.rel.drop()
	at := s.now()
	switch {
	case s.callerGone:
	case !s.final:
		s.final = true
		s.respondFinal(e.refusal, e.headers...)
	case s.answered:
		s.byeCaller(e.q850, e.text)
	}
	if s.pbx != nil {
		s.pbx.hangup(e)
	}
	s.endTransfer(e)
	if s.chal != nil {
		s.chal.stop()
	}
	s.g.dropSession(s)
	status := e.status
	if s.answered {
		status = 0
	}
	detail := e.detail
	if detail == "" {
		detail = e.text
	}
	s.report(call.Ended{At: at, By: e.by, Cause: e.cause, Status: status, Detail: detail})
}

// respondFinal sends a final error response to the INVITE (loop only).
// It goes straight to the transaction, which retransmits it and absorbs
// the ACK (RFC 3261 §17.2.1).
func (s *session) respondFinal(r refusal, extra ...sip.Header) {
	s.rel.drop()
	res := sip.NewResponseFromRequest(s.dlg.InviteRequest, r.status, phrase(r.status), nil)
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if r.text != "" {
		res.AppendHeader(reasonHeader("SIP", r.status, r.text))
	}
	if h := s.g.retryAfter(r); h != nil {
		res.AppendHeader(h)
	}
	if err := s.tx.Respond(res); err != nil {
		s.log.Debug("final response not sent", "status", r.status, "err", err)
	}
	s.inviteFinished()
}

// respondProvisional sends a 1xx with a body to the caller (loop only). A
// 1xx with a To tag creates an early dialog, so it carries our Contact
// (RFC 3261 §12.1.1). To a carrier that supports 100rel every 18x goes
// reliably (RFC 3262 §3), so none is lost and one that requires it never
// gets an unreliable one.
func (s *session) respondProvisional(status int, reason string, body []byte, contentType string) error {
	res := sip.NewResponseFromRequest(s.dlg.InviteRequest, status, reason, body)
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	res.AppendHeader(sip.HeaderClone(&s.ua.ContactHDR))
	res.AppendHeader(sip.NewHeader("Supported", tag100rel))
	if !s.rel.use || status == 100 {
		return s.tx.Respond(res)
	}
	if s.rel.pending != nil {
		s.rel.queue = append(s.rel.queue, res)
		return nil
	}
	return s.sendReliable(res)
}

// answerCaller sends the 200 OK to the caller (loop only) and reports the
// answer. The response is retransmitted until the ACK comes (RFC 3261
// §13.3.1.4), on a helper goroutine.
//
// pbx is the PBX's 2xx on the pass path, whose session-timer headers go
// to the caller (see answerTimer); nil when the guard answers itself.
func (s *session) answerCaller(body []byte, contentType string, by schema.Party, pbx *sip.Response) {
	if s.final || s.ended {
		return
	}
	if p := s.rel.pending; p != nil && p.sdp {
		s.rel.answer = func() { s.answerCaller(body, contentType, by, pbx) }
		return
	}
	s.rel.drop()
	s.final, s.answered = true, true
	s.callerSDP = body
	res := sip.NewResponseFromRequest(s.dlg.InviteRequest, 200, "OK", body)
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	res.AppendHeader(sip.NewHeader("Supported", tag100rel+", "+tagTimer))
	answerTimer(res, s.dlg.InviteRequest, pbx)
	s.report(call.Answered{At: s.now(), By: by})
	s.goDo(func() func() {
		err := s.dlg.WriteResponse(res)
		s.inviteFinished()
		close(s.answerDone)
		return func() {
			// A BYE may overtake the ACK (sipgo handles each request on a
			// goroutine of its own): the dialog has then ended, and the
			// BYE ends the call.
			if err != nil && !s.ended && s.dlg.LoadState() != sip.DialogStateEnded {
				// §13.3.1.4: no ACK for the 2xx in 64*T1: the session
				// SHOULD be ended with a BYE.
				s.log.Warn("no ACK for our 200 OK; ending the call", "err", err)
				s.end(ending{by: schema.PartyGuard, cause: schema.EndError, refusal: refusalOf(refNoAck)})
			}
		}
	})
}

// byeCaller ends the answered caller leg with a BYE carrying a Reason
// (loop only).
func (s *session) byeCaller(q850 int, text string) {
	bye := sip.NewRequest(sip.BYE, s.callerTarget())
	s.route(bye, s.inv.Transport(), s.inv.Source())
	if text != "" {
		bye.AppendHeader(reasonHeader("Q.850", q850, text))
	}
	s.goDo(func() func() {
		// RFC 3261 §15: the callee's UA MUST NOT send a BYE on a confirmed
		// dialog until it has received an ACK for its 2xx (or the server
		// transaction timed out); answerDone says so, and also that the
		// 200 OK is the dialog's InviteResponse that WriteBye reads.
		select {
		case <-s.answerDone:
		case <-time.After(sip.Timer_F):
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), byeWait)
		defer cancel()
		if err := s.dlg.WriteBye(ctx, bye); err != nil {
			s.log.Debug("BYE to caller failed", "err", err)
		}
		return nil
	})
}

// route makes an in-dialog request leave the way its dialog came in: on
// UDP from the listening socket (so the peer sees the guard's address and
// port), on TCP over the connection the peer opened.
func (s *session) route(req *sip.Request, transport, source string) {
	req.SetTransport(transport)
	if strings.EqualFold(transport, "UDP") {
		s.g.laddr.Copy(&req.Laddr)
		return
	}
	if source != "" {
		req.SetDestination(source)
	}
}

// Caller-side events.

func (s *session) onCallerCancel() {
	if s.final || s.ended {
		return
	}
	// The transaction layer has sent 487 Request Terminated.
	s.final, s.callerGone = true, true
	s.inviteFinished()
	s.end(ending{by: schema.PartyCaller, cause: schema.EndCallerCancelled, refusal: refusalOf(refCallerCancel)})
}

// ackKey names the ACK a relayed re-INVITE waits for.
type ackKey struct {
	leg leg
	seq uint32
}

// onAck confirms the caller leg (an ACK for our 2xx). The ACK of a relayed
// re-INVITE's 2xx goes to relayMidCall when it waits for one (its answer
// goes on); others need nothing.
func (s *session) onAck(l leg, req *sip.Request, tx sip.ServerTransaction) {
	if req.CSeq() == nil {
		return
	}
	if l != callerLeg || req.CSeq().SeqNo != s.dlg.InviteRequest.CSeq().SeqNo {
		k, body := ackKey{l, req.CSeq().SeqNo}, req.Body()
		s.post(func() {
			if ch, ok := s.acks[k]; ok {
				delete(s.acks, k)
				ch <- body
			}
		})
		return
	}
	if err := s.dlg.ReadAck(req, tx); err != nil {
		s.log.Debug("ACK not accepted", "err", err)
	}
	// A late offer: this ACK carries the answer to the PBX's offer.
	var p *pbxCall
	s.do(func() { p = s.pbx })
	if p != nil && p.late {
		p.ackLate(req.Body())
	}
}

// onBye ends the call from either side. RFC 3261 §15.1.2: the BYE gets
// 200; a BYE in an early dialog also ends the INVITE with 487.
func (s *session) onBye(l leg, req *sip.Request, tx sip.ServerTransaction) {
	if l == pbxLeg {
		if s.transferBye(req, tx) {
			return
		}
		var p *pbxCall
		s.do(func() { p = s.pbx })
		if p == nil || p.dialog() == nil {
			s.g.refuseWith(req, tx, refusalOf(refNoDialog))
			return
		}
		if err := p.dialog().ReadBye(req, tx); err != nil {
			s.log.Debug("PBX BYE", "err", err)
		}
		s.post(func() {
			p.byeReceived = true
			s.end(ending{by: schema.PartyPBX, cause: schema.EndPBXHangup, refusal: refusalOf(refPBXHungUp)})
		})
		return
	}
	// A BYE in an early dialog (RFC 3261 §15.1.2) ends the INVITE with
	// 487 first; the BYE itself gets 200.
	s.do(func() {
		if !s.final && !s.ended {
			s.respondFinal(refusalOf(refEarlyBye))
			s.final, s.callerGone = true, true
		}
	})
	if err := s.dlg.ReadBye(req, tx); err != nil {
		// §12.2.2: a CSeq lower than the dialog's is answered 500.
		s.log.Debug("caller BYE refused", "err", err)
		s.g.refuseWith(req, tx, refusalOf(refBadCSeq))
		return
	}
	s.post(func() {
		if s.ended {
			return
		}
		cause := schema.EndCallerHangup
		if !s.answered {
			cause = schema.EndCallerCancelled
		}
		s.final, s.callerGone = true, true
		s.end(ending{by: schema.PartyCaller, cause: cause, refusal: refusalOf(refCallerHangup)})
	})
}

// onInfo takes a key from the caller during a challenge (RFC 6086 legacy
// INFO with application/dtmf-relay or application/dtmf, see sip/dtmf), and
// relays INFO between the legs of a connected call (a caller typing into
// the PBX's menu).
func (s *session) onInfo(l leg, req *sip.Request, tx sip.ServerTransaction) {
	var (
		coll  *dtmf.Collector
		relay *relayTarget
		early bool
	)
	s.do(func() {
		switch {
		case s.ended:
		case l == callerLeg && s.chal != nil && !s.bridging:
			coll = s.chal.coll
		case l == callerLeg && s.pbx != nil && s.pbx.answered:
			relay = s.pbx.relay()
		case l == pbxLeg && s.answered:
			relay = s.callerRelay()
		case l == callerLeg:
			// Not decided yet, or the PBX leg rings (passed, or bridged
			// after the code): there is nobody to deliver it to.
			early = true
		}
	})
	switch {
	case coll != nil:
		ct := ""
		if h := req.ContentType(); h != nil {
			ct = h.Value()
		}
		k, err := coll.Info(ct, req.Body())
		switch {
		case errors.Is(err, dtmf.ErrContentType):
			s.g.refuseWith(req, tx, refusalOf(refInfoType), sip.NewHeader("Accept", dtmf.ContentTypeRelay+", "+dtmf.ContentTypeDTMF))
		case err != nil:
			s.g.refuseWith(req, tx, refusalOf(refInfoBad))
		default:
			s.log.Debug("key by INFO", "key", string(k.Key))
			s.g.respond(req, tx, 200, "", nil)
		}
	case relay != nil:
		s.relayRequest(req, tx, relay)
	case early:
		s.log.Debug("INFO before the PBX answered: not delivered")
		s.g.refuseWith(req, tx, refusalOf(refInfoEarly))
	default:
		s.g.respond(req, tx, 200, "", nil)
	}
}

// relayTarget is the other leg of an in-dialog request to relay.
type relayTarget struct {
	txreq     func(context.Context, *sip.Request) (sip.ClientTransaction, error)
	write     func(*sip.Request) error // for an ACK
	to        sip.Uri
	transport string
	source    string
	// after, when set, must be closed before sending: a request to the
	// caller waits until our 200 OK was ACKed, as a BYE must (RFC 3261
	// §15), and because sipgo builds the request from that 200.
	after <-chan struct{}
	// retarget takes the leg's new remote target (a target refresh).
	retarget func(sip.Uri)
}

// ready waits until the target may be sent to (see after), or ctx ends.
func (t *relayTarget) ready(ctx context.Context) bool {
	if t.after == nil {
		return true
	}
	select {
	case <-t.after:
		return true
	case <-ctx.Done():
		return false
	}
}

// relayRequest sends a copy of an in-dialog request (INFO) on the other
// leg and answers with that leg's status.
func (s *session) relayRequest(req *sip.Request, tx sip.ServerTransaction, t *relayTarget) {
	out := sip.NewRequest(req.Method, t.to)
	if body := req.Body(); len(body) > 0 {
		if h := req.ContentType(); h != nil {
			out.AppendHeader(sip.NewHeader("Content-Type", h.Value()))
		}
		out.SetBody(body)
	}
	s.route(out, t.transport, t.source)
	ctx, cancel := context.WithTimeout(context.Background(), sip.Timer_F)
	defer cancel()
	if !t.ready(ctx) {
		s.g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	res, _, err := t.send(ctx, out)
	if err != nil {
		s.g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	s.g.respond(req, tx, res.StatusCode, "", nil)
}

// onRefresh handles a re-INVITE or UPDATE inside a call. On a passed call
// (the PBX's media goes straight to the caller) it is relayed to the other
// leg: hold, resume, codec changes, media moves and session-timer
// refreshes (RFC 4028) reach the other side, and its answer comes back.
// On a call bridged through the guard's media relay after a challenge, a
// new offer is renegotiated leg by leg (see renegotiate). Otherwise (a
// challenge in progress, or a bridged call's session refresh: no SDP, or
// the o= version already seen) it is answered with the SDP the guard
// already gave that leg: a refresh or a repeated offer keeps the session
// as it is (RFC 3264 §8).
func (s *session) onRefresh(l leg, req *sip.Request, tx sip.ServerTransaction) {
	var (
		body    []byte
		relay   *relayTarget
		bridged *relayTarget
	)
	ok := s.do(func() {
		if s.ended {
			return
		}
		relay = s.midCallTarget(l)
		if relay == nil {
			bridged = s.bridgedTarget(l, req.Body())
		}
		if l == callerLeg {
			body = s.callerSDP
		} else if s.pbx != nil {
			body = s.pbx.localSDP
		}
	})
	if !ok {
		s.g.refuseWith(req, tx, refusalOf(refNoDialog))
		return
	}
	if relay != nil {
		s.relayMidCall(l, req, tx, relay)
		return
	}
	if bridged != nil {
		s.renegotiate(l, req, tx, bridged)
		return
	}
	// A re-INVITE without SDP asks for an offer (RFC 3261 §14.2): it gets
	// the guard's current description of that leg, and the answer comes
	// in the ACK. An UPDATE without SDP gets none.
	var acked chan []byte
	if len(req.Body()) == 0 {
		if req.Method != sip.INVITE || len(body) == 0 {
			body = nil
		} else {
			acked = make(chan []byte, 1)
			k := ackKey{l, req.CSeq().SeqNo}
			if !s.do(func() { s.acks[k] = acked }) {
				s.g.refuseWith(req, tx, refusalOf(refNoDialog))
				return
			}
			defer s.post(func() { delete(s.acks, k) })
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	res.AppendHeader(sip.HeaderClone(&s.ua.ContactHDR))
	// A session refresh keeps the carrier the refresher (RFC 4028 §9):
	// the guard never refreshes itself.
	answerTimer(res, req, nil)
	if err := tx.Respond(res); err != nil {
		s.log.Debug("refresh answer not sent", "err", err)
		return
	}
	s.retargetLeg(l, req)
	if acked != nil {
		select {
		case answer := <-acked:
			s.takeAckAnswer(l, body, answer)
		case <-time.After(sip.Timer_F):
		}
	}
}

// midCallTarget is the other leg for a re-INVITE or UPDATE on leg l, or
// nil when the call is not a passed call with both legs answered (loop
// only).
func (s *session) midCallTarget(l leg) *relayTarget {
	if s.ended || s.chal != nil || s.bridging || s.pbx == nil || s.pbx.bridge || !s.pbx.answered || !s.answered {
		return nil
	}
	return s.legTarget(l)
}

// legTarget is the leg other than l, to send an in-dialog request to
// (loop only; both legs answered).
func (s *session) legTarget(l leg) *relayTarget {
	if l == callerLeg {
		return s.pbx.relay()
	}
	return s.callerRelay()
}

// Option tags and headers of session timers (RFC 4028).
const (
	tagTimer = "timer"
)

// midCallHeaders are copied from a relayed re-INVITE or UPDATE and from
// its answer, as they are: the session interval and who refreshes
// (refresher=uac|uas keeps its meaning, the transaction keeps its
// direction), and the smallest interval accepted (422 carries it).
var midCallHeaders = []string{"Session-Expires", "Min-SE"}

// copyMidCall copies the body and the session-timer headers of from into
// to. Of Require and Supported only "timer" passes: the guard relays no
// other extension within a call (a reliable 18x to a relayed re-INVITE
// would get no PRACK).
func copyMidCall(to sip.Message, from sip.Message) {
	for _, name := range midCallHeaders {
		for _, h := range from.GetHeaders(name) {
			to.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	for _, name := range []string{"Require", "Supported"} {
		if hasOption(from, name, tagTimer) {
			to.AppendHeader(sip.NewHeader(name, tagTimer))
		}
	}
	if body := from.Body(); len(body) > 0 {
		for _, h := range from.GetHeaders("Content-Type") {
			to.AppendHeader(sip.NewHeader("Content-Type", h.Value()))
		}
		to.SetBody(body)
	}
}

// hasOption says whether header name of m lists the option tag.
func hasOption(m sip.Message, name, tag string) bool {
	for _, h := range m.GetHeaders(name) {
		for _, v := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), tag) {
				return true
			}
		}
	}
	return false
}

// relayMidCall sends a re-INVITE or UPDATE that came on leg l to the other
// leg's dialog (with that dialog's next CSeq), answers with the other
// leg's final response (status, SDP, session-timer headers), and for a
// re-INVITE's 2xx acknowledges it on the other leg: at once when the
// re-INVITE carried the offer, else with the answer from the ACK that
// comes on leg l.
func (s *session) relayMidCall(l leg, req *sip.Request, tx sip.ServerTransaction, t *relayTarget) {
	invite := req.Method == sip.INVITE
	if invite {
		// The other leg may take its time (a PBX asking its user): stop
		// the carrier's retransmissions.
		s.g.respond(req, tx, 100, "", nil)
	}
	out := sip.NewRequest(req.Method, t.to)
	copyMidCall(out, req)
	s.route(out, t.transport, t.source)
	ctx, cancel := context.WithTimeout(context.Background(), sip.Timer_F)
	defer cancel()
	if !t.ready(ctx) {
		s.g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	var acked chan []byte
	if invite && len(req.Body()) == 0 {
		// Registered before the 2xx goes out, so its ACK cannot miss it.
		acked = make(chan []byte, 1)
		seq := req.CSeq().SeqNo
		if !s.do(func() { s.acks[ackKey{l, seq}] = acked }) {
			s.g.refuseWith(req, tx, refusalOf(refNoDialog))
			return
		}
		defer s.post(func() { delete(s.acks, ackKey{l, seq}) })
	}
	res, otx, err := t.send(ctx, out)
	if err != nil {
		s.log.Debug("mid-call request not relayed", "method", req.Method, "err", err)
		s.g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	back := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	copyMidCall(back, res)
	if res.IsSuccess() {
		back.AppendHeader(sip.HeaderClone(&s.ua.ContactHDR))
		s.retargetLeg(l, req)
	}
	ack := func(body []byte) {
		if err := s.ackInvite(t, otx, body, "application/sdp"); err != nil {
			s.log.Debug("ACK of a relayed re-INVITE not sent", "err", err)
		}
	}
	if invite && res.IsSuccess() && acked == nil {
		ack(nil)
	}
	if err := tx.Respond(back); err != nil {
		s.log.Debug("relayed answer not sent", "status", res.StatusCode, "err", err)
		return
	}
	s.g.d.Observer.ResponseOut(string(req.Method), res.StatusCode)
	if acked != nil && res.IsSuccess() {
		var body []byte
		select {
		case body = <-acked:
		// The answer to an offer made in the 2xx of a re-INVITE without
		// SDP comes in the ACK (RFC 3261 §13.2.1); one that never comes
		// still gets the other leg its ACK.
		case <-time.After(sip.Timer_F):
		}
		ack(body)
	}
}
