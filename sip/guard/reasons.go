package guard

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
)

// The guard's refusals, in one place: every final error status the guard
// itself sends (validation failures aside, which package validate owns) and
// the Reason header (RFC 3326) that goes with it, so that the carrier's
// logs and CDRs say why a call was refused. RFC 3326 §2 gives the syntax:
//
//	Reason: SIP ;cause=603 ;text="policy: manual block, level 7"
//
// Responses carry protocol "SIP" with the response's own status as cause.
// A BYE that ends an answered call carries "Q.850": carriers map it onto
// the ISUP release cause of the call's other side (cause 21 "call
// rejected" for a failed challenge, 41 "temporary failure" for a guard
// shutting down).
//
//	status                  when                                         text
//	403 Forbidden           INVITE from a source not in TRUSTED_PEERS    source not trusted
//	REJECT_STATUS (603)     the verdict is reject                        policy: <rule>, level <n>: <reason>
//	503 Service Unavailable no verdict and STORE_DOWN=reject             decision unavailable
//	REJECT_STATUS           a wrong code typed before the 200 OK         challenge failed: wrong code
//	488 Not Acceptable Here no SDP offer, or none we can answer          <why>
//	503 Service Unavailable no RTP port free for a challenge             no media port
//	503 Service Unavailable the PBX did not respond (PBX_TIMEOUT)        PBX unreachable
//	480 Temporarily Unav.   the PBX rang for RING_TIMEOUT                no answer
//	<PBX's status>          the PBX refused the call (486 busy, ...)     PBX: <status> <phrase>
//	503 Service Unavailable the guard is shutting down                   shutting down
const (
	textUntrusted   = "source not trusted"
	textStoreDown   = "decision unavailable"
	textNoPort      = "no media port"
	textUnreachable = "PBX unreachable"
	textNoAnswer    = "no answer"
	textShutdown    = "shutting down"
)

// Q.850 release causes used in BYE.
const (
	q850CallRejected     = 21
	q850NormalClearing   = 16
	q850TemporaryFailure = 41
)

// reasonHeader builds an RFC 3326 Reason header.
func reasonHeader(protocol string, cause int, text string) sip.Header {
	return sip.NewHeader("Reason", fmt.Sprintf("%s;cause=%d;text=%s", protocol, cause, quote("callguard: "+text)))
}

// quote makes a quoted-string (RFC 3261 §25.1): backslash and quote are
// escaped, control characters dropped, and the text cut to keep headers
// small.
func quote(s string) string {
	const maxText = 200
	var b strings.Builder
	b.WriteByte('"')
	n := 0
	for _, r := range s {
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
	b.WriteByte('"')
	return b.String()
}

// phrase is the reason phrase of the statuses the guard sends (RFC 3261
// §21).
func phrase(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
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
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
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

// rejectionText is the Reason text of a policy or store-down reject.
func rejectionText(r call.Rejection) string {
	if r.StoreDown {
		return textStoreDown
	}
	rule := string(r.Rule)
	if rule == "" {
		rule = "policy"
	}
	text := fmt.Sprintf("policy: %s, level %d", rule, r.Level)
	if r.Reason != "" {
		text += ": " + r.Reason
	}
	return text
}

// hangupStatus is the final status for a guard hang-up of a call not yet
// answered, and the Q.850 cause of the BYE for one answered.
func hangupStatus(h call.Hangup, reject int) (status, q850 int) {
	switch h.Cause {
	case schema.EndChallengeFailed:
		return reject, q850CallRejected
	case schema.EndShutdown:
		return 503, q850TemporaryFailure
	case schema.EndMediaFailed:
		return 488, q850TemporaryFailure
	default:
		return 500, q850TemporaryFailure
	}
}
