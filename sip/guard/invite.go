package guard

import (
	"strconv"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/sip/callerid"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sip/validate"
)

// onInvite takes a new call from the carrier: trust, validation, identity,
// then a session and its call actor. The handler returns only once the
// INVITE has its final response: sipgo terminates a server transaction
// whose handler returned without one.
func (g *Guard) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if inDialog(req) {
		// A re-INVITE (RFC 3261 §14) within a call.
		ref, ok := g.dialogs.lookup(req)
		if !ok {
			if !g.trusted(req) {
				g.refuse(req, tx)
				return
			}
			g.stats.noDialog.Add(1)
			g.refuseWith(req, tx, refusalOf(refNoDialog))
			return
		}
		if g.valid(req, tx) {
			ref.s.onRefresh(ref.leg, req, tx)
		}
		return
	}
	if !g.trusted(req) {
		g.refuse(req, tx)
		return
	}
	if !g.valid(req, tx) {
		return
	}
	g.stats.invites.Add(1)
	// MAX_CALLS, before any other work on the call: a full node answers
	// at once, and nothing of the call is kept.
	if !g.admit() {
		g.overloaded(OverloadMaxCalls)
		g.log.Debug("INVITE refused: MAX_CALLS reached", "max", g.set.maxCalls, "callId", callIDOf(req))
		g.refuseWith(req, tx, refusalOf(refMaxCalls))
		return
	}
	release := sync.OnceFunc(g.started)
	defer release()
	// A node whose decisions in flight are at their bound would refuse
	// this call as busy after starting its actor and recording it: under
	// a flood that record is a store append per shed call, spent where
	// the store is the bottleneck. Shed it here, counted in metrics only,
	// like MAX_CALLS.
	if g.d.Calls.Saturated() {
		g.overloaded(OverloadBusy)
		g.log.Debug("INVITE refused: decisions in flight at their bound", "callId", callIDOf(req))
		g.refuseWith(req, tx, refusalOf(refBusy))
		return
	}
	bad := func(r refusal) {
		g.stats.invalid.Add(1)
		g.log.Debug("INVITE refused", "status", r.status, "why", r.text, "source", req.Source(), "callId", callIDOf(req))
		g.refuseWith(req, tx, r)
	}
	// RFC 3261 §8.1.1.8: an INVITE MUST carry a Contact; without one there
	// is nowhere to send the BYE.
	if req.Contact() == nil {
		bad(refusalOf(refNoContact))
		return
	}
	body, err := validate.SessionBody(req)
	if err != nil {
		bad(refusalOf(refNoBody))
		return
	}
	// An INVITE without an offer (a late offer, RFC 3261 §13.2.1: the
	// offer then comes in the 2xx and the answer in the ACK) is relayed
	// as it is on a passed call; a challenge needs the offer for its early
	// media and refuses it (doChallenge).
	var offer *sdp.Session
	if len(body) > 0 {
		if offer, err = sdp.Parse(body); err != nil {
			bad(refusalOf(refBadOffer).withStatus(sdp.StatusFor(err)))
			return
		}
	}
	// Untrusted sources never get here, so P-Asserted-Identity is believed
	// when present (RFC 3325 §5), else From.
	cl, err := callerid.CallerOf(req, true, g.d.Numbers)
	if err != nil {
		bad(refusalOf(refBadCaller))
		return
	}
	ce, err := callerid.CalleeOf(req, g.d.Numbers)
	if err != nil {
		bad(refusalOf(refNoCallee))
		return
	}
	s, err := g.newSession(req, tx, body, offer, cl, ce)
	release() // the session counts among the calls now, or never will
	if err != nil {
		g.log.Error("cannot start a call", "err", err, "callId", callIDOf(req))
		g.refuseWith(req, tx, refusalOf(refGuardBusy))
		return
	}
	s.waitInvite()
}

// callKey derives the guard's ID of a call from what identifies the
// INVITE transaction on the wire (RFC 3261 §17.2.3 and the dialog's
// Call-ID and From tag), so that the same INVITE seen again (a carrier
// resending after a guard restart) gets the same ID, and the caller grain
// decides it once.
func callKey(req *sip.Request) string {
	fromTag := ""
	if f := req.From(); f != nil {
		fromTag, _ = f.Params.Get("tag")
	}
	cseq := ""
	if c := req.CSeq(); c != nil {
		cseq = strconv.FormatUint(uint64(c.SeqNo), 10)
	}
	return events.DeriveID("sip-invite", req.Source(), callIDOf(req), fromTag, cseq).String()
}

// LateOfferPassed is the reason recorded with a call passed because of
// GUARD_LATE_OFFER=pass.
const LateOfferPassed = "passed: late offer without 100rel (GUARD_LATE_OFFER=pass)"

// lateOfferFallback is why a challenge cannot be carried out on req
// (its ChallengeFallback): a late offer from a carrier without 100rel,
// with GUARD_LATE_OFFER=pass. Empty when a challenge can run, or when
// GUARD_LATE_OFFER=reject refuses it (doChallenge).
func (g *Guard) lateOfferFallback(req *sip.Request) string {
	if body, err := validate.SessionBody(req); err != nil || len(body) > 0 || !g.set.lateOffer || offers100rel(req, "Require", "") || offers100rel(req, "Supported", "k") {
		return ""
	}
	return LateOfferPassed
}

// setupOf is what the call actor is told about a new call.
func (g *Guard) setupOf(id string, req *sip.Request, cl callerid.Caller, ce callerid.Identity) call.Setup {
	from := "from"
	if cl.Source == callerid.SourcePAI {
		from = "pai"
	}
	callee := ce.Number.Key
	if ce.Number.Kind != phone.KindE164 {
		callee = ce.URI.Number()
	}
	return call.Setup{
		ID: id, SIPCallID: callIDOf(req),
		Caller: cl.Number, Presented: cl.Raw, IdentityFrom: from, Callee: callee,
		Source: req.Source(), Transport: req.Transport(), Received: g.d.Clock(),
		ChallengeFallback: g.lateOfferFallback(req),
	}
}
