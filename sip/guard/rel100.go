package guard

import (
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/schema"
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
