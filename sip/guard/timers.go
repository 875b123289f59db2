package guard

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028) on the initial INVITE. The guard never sends
// a refresh itself: on a passed call the PBX and the carrier negotiate
// through it (their refreshes are relayed by relayMidCall), and on a call
// the guard answers itself (a challenge) it makes the carrier the
// refresher and answers the refreshes locally (onRefresh).

// copyTimerRequest puts the session-timer headers of the carrier's INVITE
// on the PBX's INVITE: Session-Expires and Min-SE as they are, and
// Supported: timer when the carrier supports or requires timer. Require
// is not carried: the guard itself supports timer, so a PBX without it
// still takes the call, and the guard's answer then makes the carrier
// the refresher (answerTimer).
func copyTimerRequest(to *sip.Request, inv *sip.Request) {
	for _, name := range midCallHeaders {
		for _, h := range inv.GetHeaders(name) {
			to.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	if supportsTimer(inv) {
		to.AppendHeader(sip.NewHeader("Supported", tagTimer))
	}
}

// supportsTimer says whether the request lists timer in Supported or
// Require.
func supportsTimer(m sip.Message) bool {
	return hasOption(m, "Supported", tagTimer) || hasOption(m, "Require", tagTimer)
}

// answerTimer adds the session-timer headers to the guard's 2xx to the
// carrier's request req (the INVITE, or a refresh answered locally).
// pbx is the PBX's 2xx on a passed call, or nil: when it carries
// Session-Expires, that and its Require: timer go to the carrier as they
// are (the guard is UAS to the carrier as it is UAC to the PBX, so
// refresher=uac|uas keeps its meaning). Otherwise, when the carrier asked
// for a session interval and supports timer, the guard answers as a UAS
// that supports timer but does not refresh (RFC 4028 §9): the carrier's
// interval, refresher=uac, and Require: timer.
func answerTimer(res *sip.Response, req *sip.Request, pbx *sip.Response) {
	if pbx != nil {
		if h := pbx.GetHeader("Session-Expires"); h != nil {
			res.AppendHeader(sip.NewHeader("Session-Expires", h.Value()))
			if hasOption(pbx, "Require", tagTimer) {
				res.AppendHeader(sip.NewHeader("Require", tagTimer))
			}
			return
		}
	}
	h := req.GetHeader("Session-Expires")
	if h == nil || !supportsTimer(req) {
		return
	}
	delta, _, _ := strings.Cut(h.Value(), ";")
	delta = strings.TrimSpace(delta)
	if delta == "" {
		return
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", delta+";refresher=uac"))
	res.AppendHeader(sip.NewHeader("Require", tagTimer))
}

// minSEOf is the Min-SE of a 422 (Session Interval Too Small) from the
// PBX, relayed with it so the carrier can retry with a longer interval
// (RFC 4028 §6).
func minSEOf(res *sip.Response) []sip.Header {
	if res.StatusCode != 422 {
		return nil
	}
	var out []sip.Header
	for _, h := range res.GetHeaders("Min-SE") {
		out = append(out, sip.NewHeader("Min-SE", h.Value()))
	}
	return out
}
