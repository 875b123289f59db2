package guard

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/sdp"
)

// tag100rel is RFC 3262's option tag.
const tag100rel = "100rel"

// reliability is 100rel on the caller leg (RFC 3262): the guard sends its
// 18x reliably when the carrier supports or requires it, one at a time
// (§3: a second reliable 1xx waits for the PRACK of the first).
type reliability struct {
	use     bool   // the carrier's INVITE has Require or Supported: 100rel
	rseq    uint32 // the RSeq last sent
	pending *reliableProv
	queue   []*sip.Response // 18x waiting for pending's PRACK
	// answer is a 2xx held back until pending, which carried SDP, is
	// PRACKed (§3: "MUST NOT send a final response until those
	// provisional responses are acknowledged").
	answer func()
	// offer is the guard's own SDP offer in a reliable 183, made for the
	// challenge of a late offer; its answer comes in the PRACK (§5).
	offer *ownOffer
}

// ownOffer is the guard's offer waiting for the caller's answer.
type ownOffer struct {
	code string
	conn *media.Conn
	sdp  *sdp.Session
}

// reliableProv is a reliable 1xx sent and not yet PRACKed.
type reliableProv struct {
	rseq uint32
	sdp  bool
	done chan struct{} // closed when PRACKed or no longer wanted
}

// drop forgets what waits for a PRACK: the INVITE has its final response,
// or the call ended (loop only).
func (r *reliability) drop() {
	if r.pending != nil {
		close(r.pending.done)
		r.pending = nil
	}
	r.queue, r.answer = nil, nil
	if r.offer != nil {
		r.offer.conn.Close()
		r.offer = nil
	}
}

// offers100rel reports whether req names 100rel in header name.
func offers100rel(req *sip.Request, name, compact string) bool {
	for _, h := range req.Headers() {
		if n := h.Name(); !strings.EqualFold(n, name) && !strings.EqualFold(n, compact) {
			continue
		}
		for _, v := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), tag100rel) {
				return true
			}
		}
	}
	return false
}

// firstRSeq is the RSeq before the first reliable 1xx: §3 wants it in
// 1..2^31-1 and recommends it be unpredictable; a hash of the call's ID
// is both, and needs no source of randomness.
func firstRSeq(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%(1<<30) + 1
}

// sendReliable sends res as a reliable 1xx (loop only) and retransmits it
// every T1, doubling, until its PRACK comes; after 64*T1 without one the
// call ends with 5xx (RFC 3262 §3).
func (s *session) sendReliable(res *sip.Response) error {
	if s.rel.rseq == 0 {
		s.rel.rseq = firstRSeq(s.id)
	}
	s.rel.rseq++
	res.AppendHeader(sip.NewHeader("Require", tag100rel))
	res.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(s.rel.rseq), 10)))
	if err := s.tx.Respond(res); err != nil {
		return err
	}
	p := &reliableProv{rseq: s.rel.rseq, sdp: len(res.Body()) > 0, done: make(chan struct{})}
	s.rel.pending = p
	t1 := s.g.set.t1
	s.goDo(func() func() {
		giveUp := time.NewTimer(64 * t1)
		defer giveUp.Stop()
		wait := t1
		next := time.NewTimer(wait)
		defer next.Stop()
		for {
			select {
			case <-p.done:
				return nil
			case <-giveUp.C:
				return func() { s.onNoPrack(p) }
			case <-next.C:
				// Retransmit from the loop, so that it never follows the
				// final response.
				s.post(func() {
					if s.rel.pending == p && !s.final {
						if err := s.tx.Respond(res); err != nil {
							s.log.Debug("reliable provisional not retransmitted", "err", err)
						}
					}
				})
				wait *= 2
				next.Reset(wait)
			}
		}
	})
	return nil
}

// onNoPrack ends a call whose reliable 1xx was never PRACKed (loop only).
func (s *session) onNoPrack(p *reliableProv) {
	if s.rel.pending != p || s.ended {
		return
	}
	s.g.stats.noPrack.Add(1)
	s.log.Warn("no PRACK for our reliable provisional response; ending the call", "rseq", p.rseq)
	s.end(ending{by: schema.PartyGuard, cause: schema.EndError, refusal: refusalOf(refNoPrack)})
}

// onPrack matches a PRACK against the reliable 1xx waiting for it and
// answers it: 200, or 481 when it matches nothing (RFC 3262 §3).
func (s *session) onPrack(l leg, req *sip.Request, tx sip.ServerTransaction) {
	matched := false
	s.do(func() {
		if l != callerLeg || s.ended {
			return
		}
		matched = s.prack(req)
	})
	if !matched {
		s.g.stats.noDialog.Add(1)
		s.g.refuseWith(req, tx, refusalOf(refNoDialog))
		return
	}
	s.g.respond(req, tx, 200, "", nil)
}

// prack acknowledges the pending reliable 1xx if req's RAck names it
// (loop only), then sends what waited for it.
func (s *session) prack(req *sip.Request) bool {
	p := s.rel.pending
	if p == nil {
		return false
	}
	h := req.GetHeader("RAck")
	if h == nil {
		return false
	}
	f := strings.Fields(h.Value())
	if len(f) != 3 || !strings.EqualFold(f[2], string(sip.INVITE)) {
		return false
	}
	rseq, err1 := strconv.ParseUint(f[0], 10, 32)
	cseq, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil || uint32(rseq) != p.rseq || s.inv.CSeq() == nil || uint32(cseq) != s.inv.CSeq().SeqNo {
		return false
	}
	close(p.done)
	s.rel.pending = nil
	if o := s.rel.offer; o != nil {
		s.rel.offer = nil
		s.offerAnswered(o, req)
		return true
	}
	if a := s.rel.answer; a != nil {
		s.rel.queue, s.rel.answer = nil, nil
		a()
		return true
	}
	if len(s.rel.queue) > 0 && !s.final {
		next := s.rel.queue[0]
		s.rel.queue = s.rel.queue[1:]
		if err := s.sendReliable(next); err != nil {
			s.log.Debug("queued reliable provisional not sent", "err", err)
		}
	}
	return true
}

// offerChallenge starts the challenge of a late offer from a carrier with
// 100rel (loop only): the guard offers its own media (PCMU, PCMA and
// telephone-event, what the prompt and the key collector handle) in a
// reliable 183, and the caller answers in the PRACK (RFC 3262 §5, RFC
// 3264); offerAnswered then runs the challenge on that media. The 200 OK
// later repeats the same SDP, same o= version: RFC 3261 §13.2.1 allows no
// new offer in it once the 183's offer was answered (RFC 6337 §3.1.1).
func (s *session) offerChallenge(code string) {
	g := s.g
	conn, err := g.ports.ListenUDP(g.set.mediaIP)
	if err != nil {
		s.log.Error("no RTP port for a challenge", "err", err)
		s.mediaFailed(refusalOf(refNoPort), err)
		return
	}
	offer, err := sdp.NewOffer(sdp.Capabilities{
		Addr: g.set.mediaIP, Port: conn.Port(), Username: "callguard",
		SessionID: uint64(s.now().UnixNano()), SessionVersion: 1,
	})
	if err != nil {
		conn.Close()
		s.mediaFailed(refusalOf(refMediaError), err)
		return
	}
	g.stats.lateOfferChallenged.Add(1)
	s.callerSDP = offer.Marshal()
	if err := s.respondProvisional(183, "Session Progress", s.callerSDP, "application/sdp"); err != nil {
		conn.Close()
		s.log.Debug("183 with the guard's offer not sent", "err", err)
		if errors.Is(s.tx.Err(), sip.ErrTransactionCanceled) {
			return // a CANCEL raced us, and its handler ends the call
		}
		s.mediaFailed(refusalOf(refMediaError), err)
		return
	}
	s.log.Debug("late offer: the guard's offer sent in a reliable 183")
	s.rel.offer = &ownOffer{code: code, conn: conn, sdp: offer}
}

// offerAnswered reads the caller's answer to the guard's offer from the
// PRACK req and starts the challenge on it (loop only). A PRACK without a
// usable answer ends the call (488): the offer/answer exchange failed, and
// the guard has no media to challenge on.
func (s *session) offerAnswered(o *ownOffer, req *sip.Request) {
	neg, answer, err := readPrackAnswer(o.sdp, req.Body())
	if err == nil && (!neg.Remote.Addr().IsValid() || neg.Remote.Addr().IsUnspecified() || neg.Remote.Port() == 0) {
		err = fmt.Errorf("%w: the answer's audio address %v cannot receive", sdp.ErrUnsupported, neg.Remote)
	}
	if err != nil {
		o.conn.Close()
		s.log.Info("late offer: the PRACK carries no usable answer", "err", err)
		s.mediaFailed(refusalOf(refNoMedia).withStatus(488), fmt.Errorf("late offer: PRACK answer: %w", err))
		return
	}
	s.callerSDPIn = answer
	s.startChallenge(o.code, o.conn, sdp.Answer{Negotiated: neg, SDP: o.sdp}, false)
}

// readPrackAnswer reads the answer in a PRACK's body to offer.
func readPrackAnswer(offer *sdp.Session, body []byte) (sdp.Negotiated, *sdp.Session, error) {
	if len(body) == 0 {
		return sdp.Negotiated{}, nil, errors.New("no SDP answer in the PRACK")
	}
	answer, err := sdp.Parse(body)
	if err != nil {
		return sdp.Negotiated{}, nil, err
	}
	neg, err := sdp.ReadAnswer(offer, answer)
	return neg, answer, err
}

// The PBX leg's 100rel, hop by hop. The guard lists 100rel in Supported
// on its INVITEs with an offer (pbxInvite), so a PBX may send its 18x
// reliably; the guard PRACKs each itself, at once, instead of relaying the
// carrier's PRACKs: the carrier may have no 100rel at all, the guard
// already numbers the carrier leg's reliable 18x itself (one at a time,
// its own challenge 183 among them), and a PRACK of its own needs no RAck
// mapping nor waits for the carrier, whose PRACK may come late or never
// (the PBX would then fail the call after 64*T1). A late offer's INVITE
// lists no 100rel: the PBX's reliable 18x could carry an offer, whose
// answer (in the PRACK) only the carrier has.

// pbxRel is what the guard PRACKed of the PBX's reliable 18x.
type pbxRel struct {
	// rseq is the RSeq last PRACKed (0: none yet). Touched only by the
	// goroutine that waits for the PBX's answer.
	rseq uint32
	// relayed is the RSeq of the last reliable 18x relayed to the caller
	// (loop only): a retransmission is not relayed again.
	relayed uint32
}

// reliableRSeq returns r's RSeq when r is a reliable provisional response
// (RFC 3262 §7.1: Require: 100rel and an RSeq), else 0.
func reliableRSeq(r *sip.Response) uint32 {
	if r.StatusCode <= 100 || r.StatusCode >= 200 || !hasOption(r, "Require", tag100rel) {
		return 0
	}
	h := r.GetHeader("RSeq")
	if h == nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil || n == 0 {
		return 0
	}
	return uint32(n)
}

// prackPBX PRACKs r when it is a new reliable 18x of the PBX (RFC 3262
// §4): its RSeq one above the last PRACKed, or the first. Retransmissions
// of one already PRACKed get nothing: the PRACK's own transaction is
// retransmitted until answered. Called from the goroutine that waits for
// the PBX's answer (WaitAnswer's OnResponse), so that the dialog's state
// (its CSeq, the early dialog's To tag) is not read concurrently; the
// PRACK's answer is read on a goroutine of its own.
func (p *pbxCall) prackPBX(dlg *sipgo.DialogClientSession, r *sip.Response) {
	rseq := reliableRSeq(r)
	if rseq == 0 || (p.rel.rseq != 0 && rseq != p.rel.rseq+1) {
		return
	}
	if len(r.Body()) > 0 && p.late {
		p.s.log.Warn("the PBX sent an offer in a reliable provisional response to a late offer; PRACKed without an answer", "status", r.StatusCode)
	}
	p.rel.rseq = rseq
	var target sip.Uri
	if c := r.Contact(); c != nil {
		target = *c.Address.Clone()
	} else {
		target = *dlg.InviteRequest.Recipient.Clone()
	}
	prack := sip.NewRequest(sip.PRACK, target)
	prack.AppendHeader(sip.NewHeader("RAck", strconv.FormatUint(uint64(rseq), 10)+" "+
		strconv.FormatUint(uint64(dlg.InviteRequest.CSeq().SeqNo), 10)+" INVITE"))
	p.s.route(prack, p.transport, "")
	ctx, cancel := context.WithTimeout(p.ctx, 64*p.s.g.set.t1)
	tx, err := dlg.TransactionRequest(ctx, prack)
	if err != nil {
		cancel()
		p.s.log.Warn("PRACK to the PBX not sent", "rseq", rseq, "err", err)
		return
	}
	go func() {
		defer cancel()
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				if !res.IsSuccess() {
					p.s.log.Warn("the PBX refused our PRACK", "rseq", rseq, "status", res.StatusCode)
				}
				return
			case <-tx.Done():
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}
