package guard

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
)

// The guard's refusals, in one place: every final error status the guard
// itself sends (validation failures aside, which package validate owns),
// the reason phrase (RFC 3261 §21), and the Reason header (RFC 3326) that
// goes with it, so that the carrier's logs and CDRs say why a call was
// refused. RFC 3326 §2 gives the syntax:
//
//	Reason: SIP ;cause=603 ;text="policy: manual block, level 7"
//
// Responses carry protocol "SIP" with the response's own status as cause.
// A BYE that ends an answered leg carries "Q.850": carriers map it onto
// the ISUP release cause of the call's other side (cause 21 "call
// rejected" for a failed challenge, 41 "temporary failure" for a guard
// shutting down).
//
// The catalogue (refusalOf has each entry, with the section that calls
// for it). "site" marks a status or text the refusing code supplies;
// "–" marks no Reason header (the status says it all) or no BYE; "+RA"
// adds a Retry-After header (RFC 3261 §20.33) of GUARD_RETRY_AFTER
// seconds: the overload answers.
//
//	entry              status        Q.850  Reason text                        when
//	refUntrusted       403           –      source not trusted                 a request from a source not in TRUSTED_PEERS
//	refNoDialog        481           –      –                                  an in-dialog request, CANCEL or PRACK that matches nothing
//	refNotAllowed      405           –      –                                  a method the guard does not handle (with Allow)
//	refPanic           500           –      –                                  a request handler panicked
//	refBadCSeq         500           –      –                                  a BYE whose CSeq is lower than the dialog's
//	refNoContact       400           –      missing Contact                    an INVITE without Contact
//	refNoBody          400           –      no session description in the body an INVITE body with no SDP part
//	refNoOffer         488           –      SDP offer required for a challenge a challenged INVITE without an offer (late offer)
//	refBadOffer        site (SDP)    –      bad SDP offer                      an offer that does not parse (400/488/500)
//	refBadCaller       400           –      bad caller identity                no usable caller number
//	refNoCallee        404           –      no called number                   no usable called number
//	refGuardBusy       503           –      guard busy                         no session could be started
//	refMaxCalls        503+RA        –      too many calls                     MAX_CALLS calls in progress
//	refBusy            503+RA        41     busy                               the node too busy to decide (caller.ErrBusy)
//	refInfoType        415           –      –                                  INFO with a body that is not DTMF (with Accept)
//	refInfoBad         400           –      –                                  INFO with an unreadable key
//	refRelayTimeout    408           –      –                                  the other leg did not answer a relayed INFO
//	refInfoEarly       500+RA        –      PBX has not answered               a caller's INFO before the PBX leg answered (not delivered)
//	refEarlyBye        487           –      –                                  the INVITE of an early dialog the caller BYEd
//	refRejected        REJECT_STATUS 21     policy: <rule>, level <n>: <why>   the verdict is reject
//	refStoreDown       503           21     decision unavailable               no verdict and STORE_DOWN=reject
//	refChallengeFailed REJECT_STATUS 21     challenge failed: <wrong|no code>  the challenge failed
//	refShutdown        503           41     site (shutting down)               the guard is shutting down
//	refHangupMedia     488           41     site                               the call actor ended a call for its media
//	refHangupError     500           41     site                               the call actor ended a call on an error
//	refInternal        500           41     internal error                     the call's session panicked
//	refNoAck           500           41     no ACK                             no ACK came for our 200 OK
//	refNoPrack         504           41     no PRACK                           no PRACK came for our reliable 18x in 64*T1
//	refNoPort          503           41     no media port                      no RTP port free for a challenge or bridge
//	refNoMedia         488/site      41     no acceptable media                the offer has nothing we can answer
//	refMediaError      500           41     media error                        the challenge's media could not start
//	refPBXMedia        488           41     PBX media unusable                 the PBX's answer cannot be bridged
//	refPBXUnreachable  503           41     PBX unreachable                    the PBX did not respond (PBX_TIMEOUT)
//	refPBXNoAnswer     480           19     no answer                          the PBX rang for RING_TIMEOUT
//	refPBXHungUp       480           16     PBX hung up                        the PBX sent BYE
//	refPBXRefused      site (PBX's)  site   PBX: <status line>                 the PBX refused the call (486 busy, ...)
//	refCallerCancel    487           16     CANCEL                             the caller cancelled (the transaction layer answers)
//	refCallerHangup    487           16     caller hung up                     the caller sent BYE (the PBX leg hears Q.850)
//	refCallEnded       –             16     call ended                         the PBX answered a call already over
//	refGlare           491           –      –                                  a new offer on a bridged call while one is relayed
//	refTransferRefused 403           –      site (transfer target not allowed) a REFER the guard will not carry out (allow-list, rate, call state)
//	refTransferBad     400           –      bad Refer-To                       a REFER without exactly one readable Refer-To
const (
	textUntrusted   = "source not trusted"
	textStoreDown   = "decision unavailable"
	textNoPort      = "no media port"
	textUnreachable = "PBX unreachable"
	textNoAnswer    = "no answer"
	textShutdown    = "shutting down"
)

// Q.850 release causes used in BYE (ITU-T Q.850 §2.2.7).
const (
	q850UserBusy         = 17
	q850NoAnswer         = 19
	q850Unallocated      = 1
	q850CallRejected     = 21
	q850NormalClearing   = 16
	q850Unspecified      = 31
	q850TemporaryFailure = 41
)

// refusalID names an entry of the catalogue.
type refusalID int

const (
	refUntrusted refusalID = iota
	refNoDialog
	refNotAllowed
	refPanic
	refBadCSeq
	refNoContact
	refNoBody
	refNoOffer
	refBadOffer
	refBadCaller
	refNoCallee
	refGuardBusy
	refMaxCalls
	refBusy
	refInfoType
	refInfoBad
	refRelayTimeout
	refInfoEarly
	refEarlyBye
	refRejected
	refStoreDown
	refChallengeFailed
	refShutdown
	refHangupMedia
	refHangupError
	refInternal
	refNoAck
	refNoPrack
	refNoPort
	refNoMedia
	refMediaError
	refPBXMedia
	refPBXUnreachable
	refPBXNoAnswer
	refPBXHungUp
	refPBXRefused
	refCallerCancel
	refCallerHangup
	refCallEnded
	refGlare
	refTransferRefused
	refTransferBad

	refusalCount // not an entry: the number of entries
)

// refusal is what the guard tells a peer when it refuses a request or
// ends a call.
type refusal struct {
	// status is the final response to the request, or to an INVITE not yet
	// answered. 0 in the catalogue: the site supplies it (withStatus).
	status int
	// q850 is the cause of the Reason header of a BYE to a leg already
	// answered; 0 when the refusal never ends an answered leg.
	q850 int
	// text is the Reason text, sent after "callguard: "; empty sends no
	// Reason header.
	text string
	// rfc is the section that calls for the status.
	rfc string
	// retryAfter adds Retry-After with GUARD_RETRY_AFTER: an overload
	// answer (RFC 3261 §21.5.4).
	retryAfter bool
}

// refusalOf is the catalogue. Statuses are RFC 3261 §21 unless said.
func refusalOf(id refusalID) refusal {
	switch id {
	case refUntrusted:
		return refusal{status: 403, text: textUntrusted,
			rfc: `RFC 3261 §21.4.4: "the server understood the request, but is refusing to fulfill it"`}
	case refNoDialog:
		return refusal{status: 481,
			rfc: `RFC 3261 §12.2.2 (in-dialog request, no dialog), §9.2 (CANCEL, no transaction), RFC 3262 §7.2 (PRACK)`}
	case refNotAllowed:
		return refusal{status: 405, rfc: `RFC 3261 §8.2.1: 405 with an Allow header field`}
	case refPanic:
		return refusal{status: 500, rfc: `RFC 3261 §21.5.1: "an unexpected condition that prevented it from fulfilling the request"`}
	case refBadCSeq:
		return refusal{status: 500, rfc: `RFC 3261 §12.2.2: a CSeq lower than the remote sequence number "MUST" get 500`}
	case refNoContact:
		return refusal{status: 400, text: "missing Contact", rfc: `RFC 3261 §8.1.1.8: "The Contact header field MUST be present ... in any request that can result in the establishment of a dialog"`}
	case refNoBody:
		return refusal{status: 400, text: "no session description in the body", rfc: `RFC 3261 §21.4.1, RFC 5621 (a multipart body without SDP)`}
	case refNoOffer:
		return refusal{status: 488, text: "SDP offer required for a challenge", rfc: `RFC 3261 §21.4.26; the offer must come in the INVITE for early media (RFC 3261 §13.2.1)`}
	case refBadOffer:
		return refusal{text: "bad SDP offer", rfc: `RFC 3264 §6 and RFC 3261 §21.4.26 (sdp.StatusFor: 400 malformed, 488 unsupported)`}
	case refBadCaller:
		return refusal{status: 400, text: "bad caller identity", rfc: `RFC 3261 §21.4.1; RFC 3325 §9.1 P-Asserted-Identity`}
	case refNoCallee:
		return refusal{status: 404, text: "no called number", rfc: `RFC 3261 §21.4.5: "the user does not exist at the domain specified in the Request-URI"`}
	case refGuardBusy:
		return refusal{status: 503, text: "guard busy", rfc: `RFC 3261 §21.5.4: "temporarily unable to process the request due to a temporary overloading"`}
	case refMaxCalls:
		return refusal{status: 503, text: "too many calls", retryAfter: true,
			rfc: `RFC 3261 §21.5.4: "temporary overloading ... the server MAY indicate when the client should retry the request in a Retry-After header field"`}
	case refBusy:
		return refusal{status: 503, q850: q850TemporaryFailure, text: "busy", retryAfter: true,
			rfc: `RFC 3261 §21.5.4 with Retry-After (§20.33); never the store-down policy`}
	case refInfoType:
		return refusal{status: 415, rfc: `RFC 6086 §4.2.2, RFC 3261 §21.4.13: 415 with Accept`}
	case refInfoBad:
		return refusal{status: 400, rfc: `RFC 3261 §21.4.1`}
	case refInfoEarly:
		return refusal{status: 500, text: "PBX has not answered", retryAfter: true,
			rfc: `RFC 6086 §4.2.2: a 200 OK to an INFO says it was delivered; one the guard cannot deliver yet gets 500 with Retry-After (RFC 3261 §21.5.1), which ends only that transaction (RFC 5057 §5.1)`}
	case refRelayTimeout:
		return refusal{status: 408, rfc: `RFC 3261 §21.4.9: "could not produce a response within a suitable amount of time"`}
	case refEarlyBye:
		return refusal{status: 487, rfc: `RFC 3261 §15.1.2: a BYE in an early dialog; the INVITE gets 487`}
	case refRejected:
		return refusal{q850: q850CallRejected, rfc: `REJECT_STATUS, 603 Decline by default: RFC 3261 §21.6.2 "the callee's machine was successfully contacted but the user explicitly does not wish to ... participate"`}
	case refStoreDown:
		return refusal{status: 503, q850: q850CallRejected, text: textStoreDown, rfc: `RFC 3261 §21.5.4: "not now"; the carrier may route the call elsewhere`}
	case refChallengeFailed:
		return refusal{q850: q850CallRejected, text: "challenge failed", rfc: `REJECT_STATUS (RFC 3261 §21.6.2); Q.850 21 "call rejected" on the BYE`}
	case refShutdown:
		return refusal{status: 503, q850: q850TemporaryFailure, text: textShutdown, rfc: `RFC 3261 §21.5.4`}
	case refHangupMedia:
		return refusal{status: 488, q850: q850TemporaryFailure, rfc: `RFC 3261 §21.4.26`}
	case refHangupError:
		return refusal{status: 500, q850: q850TemporaryFailure, rfc: `RFC 3261 §21.5.1`}
	case refInternal:
		return refusal{status: 500, q850: q850TemporaryFailure, text: "internal error", rfc: `RFC 3261 §21.5.1`}
	case refNoAck:
		return refusal{status: 500, q850: q850TemporaryFailure, text: "no ACK", rfc: `RFC 3261 §13.3.1.4: no ACK in 64*T1, "the UAS ... SHOULD terminate the dialog" with a BYE`}
	case refNoPrack:
		return refusal{status: 504, q850: q850TemporaryFailure, text: "no PRACK", rfc: `RFC 3262 §3: no PRACK in 64*T1, "the UAS SHOULD reject the original request with a 5xx response"`}
	case refNoPort:
		return refusal{status: 503, q850: q850TemporaryFailure, text: textNoPort, rfc: `RFC 3261 §21.5.4`}
	case refNoMedia:
		return refusal{status: 488, q850: q850TemporaryFailure, text: "no acceptable media", rfc: `RFC 3264 §6: "the offer MUST be rejected" with 488 (RFC 3261 §21.4.26)`}
	case refMediaError:
		return refusal{status: 500, q850: q850TemporaryFailure, text: "media error", rfc: `RFC 3261 §21.5.1`}
	case refPBXMedia:
		return refusal{status: 488, q850: q850TemporaryFailure, text: "PBX media unusable", rfc: `RFC 3261 §21.4.26`}
	case refPBXUnreachable:
		return refusal{status: 503, q850: q850TemporaryFailure, text: textUnreachable, rfc: `RFC 3261 §21.5.4, §16.7 (a proxy's 503 when no target answers)`}
	case refPBXNoAnswer:
		return refusal{status: 480, q850: q850NoAnswer, text: textNoAnswer, rfc: `RFC 3261 §21.4.18: "the callee's end system was contacted successfully but the callee is currently unavailable"`}
	case refPBXHungUp:
		return refusal{status: 480, q850: q850NormalClearing, text: "PBX hung up", rfc: `RFC 3261 §21.4.18`}
	case refPBXRefused:
		return refusal{text: "PBX", rfc: `RFC 3261 §16.7 step 6: the best response is forwarded (3xx and 401/407 are the guard's own leg's business: 480, 503)`}
	case refCallerCancel:
		return refusal{status: 487, q850: q850NormalClearing, text: "CANCEL", rfc: `RFC 3261 §9.2: the transaction layer answers the INVITE with 487`}
	case refCallerHangup:
		return refusal{status: 487, q850: q850NormalClearing, text: "caller hung up", rfc: `RFC 3261 §15.1.2`}
	case refCallEnded:
		return refusal{q850: q850NormalClearing, text: "call ended", rfc: `RFC 3261 §15: a BYE for the PBX leg of a call already over`}
	case refGlare:
		return refusal{status: 491, rfc: `RFC 3261 §14.2: a re-INVITE (or UPDATE, RFC 3311 §5.2) while one of the guard's is pending on the same session gets 491 Request Pending`}
	case refTransferRefused:
		return refusal{status: 403, text: whyNotAllowed, rfc: `RFC 3515 §2.4.2: a REFER the recipient will not carry out is refused; 403 as for any request refused by policy (RFC 3261 §21.4.4)`}
	case refTransferBad:
		return refusal{status: 400, text: "bad Refer-To", rfc: `RFC 3515 §2.4.1: a REFER without exactly one Refer-To gets 400`}
	}
	panic(fmt.Sprintf("guard: refusal %d is not in the catalogue", id))
}

// withStatus is r with the status the site decided (REJECT_STATUS, the
// PBX's own, sdp.StatusFor).
func (r refusal) withStatus(status int) refusal {
	r.status = status
	return r
}

// withText is r with a more precise Reason text.
func (r refusal) withText(text string) refusal {
	r.text = text
	return r
}

// withQ850 is r with the Q.850 cause the site decided.
func (r refusal) withQ850(cause int) refusal {
	r.q850 = cause
	return r
}

// refuseWith answers req with refusal r and optional extra headers.
func (g *Guard) refuseWith(req *sip.Request, tx sip.ServerTransaction, r refusal, hdrs ...sip.Header) {
	if h := g.retryAfter(r); h != nil {
		hdrs = append(hdrs, h)
	}
	g.respond(req, tx, r.status, r.text, hdrs)
}

// retryAfter is the Retry-After header of an overload refusal, nil for
// the others.
func (g *Guard) retryAfter(r refusal) sip.Header {
	if !r.retryAfter {
		return nil
	}
	return sip.NewHeader("Retry-After", strconv.Itoa(g.set.retryAfter))
}

// reasonHeader builds an RFC 3326 Reason header.
func reasonHeader(protocol string, cause int, text string) sip.Header {
	// One buffer, sized once: a refusal is built on every rejected call.
	var b strings.Builder
	b.Grow(len(protocol) + len(";cause=000;text=") + len(textPrefix) + len(text) + 4)
	b.WriteString(protocol)
	b.WriteString(";cause=")
	b.WriteString(strconv.Itoa(cause))
	b.WriteString(";text=")
	writeQuoted(&b, textPrefix, text)
	return sip.NewHeader("Reason", b.String())
}

// textPrefix opens the text of every Reason header the guard writes.
const textPrefix = "callguard: "

// writeQuoted writes prefix+s as a quoted-string (RFC 3261 §25.1):
// backslash and quote are escaped, control characters dropped, and the
// text cut to keep headers small.
func writeQuoted(b *strings.Builder, prefix, s string) {
	const maxText = 200
	b.WriteByte('"')
	n := 0
	for _, part := range [2]string{prefix, s} {
		for _, r := range part {
			if n >= maxText {
				break
			}
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r < 0x20 || r == 0x7f:
				continue
			default:
				b.WriteRune(r)
			}
			n++
		}
	}
	b.WriteByte('"')
}

// phrase is the reason phrase of the statuses the guard sends (RFC 3261
// §21), its own and those it passes on from the PBX. RFC 3261 §7.2 leaves
// the phrase to the sender ("not ... interpreted"), but a peer's operator
// reads it; the fallbacks name the class.
func phrase(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
	case 504:
		return "Server Time-out"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	}
	switch {
	case status >= 600:
		return "Global Failure"
	case status >= 500:
		return "Server Error"
	default:
		return "Request Failure"
	}
}

// rejectionText is the Reason text of a policy reject.
func rejectionText(r call.Rejection) string {
	rule := string(r.Rule)
	if rule == "" {
		rule = "policy"
	}
	level := strconv.Itoa(r.Level)
	if r.Reason == "" {
		return "policy: " + rule + ", level " + level
	}
	return "policy: " + rule + ", level " + level + ": " + r.Reason
}

// rejection is the refusal of a policy or store-down reject; reject is
// REJECT_STATUS.
func rejection(r call.Rejection, reject int) refusal {
	if r.Busy {
		// The node is overloaded: "not now, retry after".
		return refusalOf(refBusy)
	}
	if r.StoreDown {
		// Fail closed: 503 says "not now", and a carrier may route the
		// call elsewhere; the policy did not refuse this caller.
		return refusalOf(refStoreDown)
	}
	return refusalOf(refRejected).withStatus(reject).withText(rejectionText(r))
}

// hangupRefusal is the refusal of a guard hang-up ordered by the call
// actor: a final status for a call not yet answered, a Q.850 cause for
// one answered; reject is REJECT_STATUS.
func hangupRefusal(h call.Hangup, reject int) refusal {
	switch h.Cause {
	case schema.EndChallengeFailed:
		r := refusalOf(refChallengeFailed).withStatus(reject)
		return r.withText(r.text + ": " + h.Detail)
	case schema.EndShutdown:
		return refusalOf(refShutdown).withText(h.Detail)
	case schema.EndMediaFailed:
		return refusalOf(refHangupMedia).withText(h.Detail)
	default:
		return refusalOf(refHangupError).withText(h.Detail)
	}
}

// pbxRefusal is the refusal passed on to the caller when the PBX refused
// the call with res. On the pass path the caller gets the same status
// (busy stays busy), except the ones that only make sense on our leg.
func pbxRefusal(res *sip.Response) refusal {
	status := res.StatusCode
	switch {
	case status >= 300 && status < 400:
		// A redirect points at the PBX's contacts; the carrier must not
		// be sent around the guard.
		status = 480
	case status == 401 || status == 407:
		// The PBX wants credentials from the guard, not from the caller.
		status = 503
	case status > 699:
		status = 500
	}
	r := refusalOf(refPBXRefused)
	return r.withStatus(status).withQ850(q850For(res.StatusCode)).withText(r.text + ": " + res.StartLine())
}

// q850For maps the PBX's refusal onto the Q.850 cause of the BYE sent to
// an already answered caller (the bridged challenge path).
func q850For(status int) int {
	switch status {
	case 486, 600:
		return q850UserBusy
	case 480, 408:
		return q850NoAnswer
	case 404, 604:
		return q850Unallocated
	case 603:
		return q850CallRejected
	}
	return q850Unspecified
}
