package policy

import (
	"fmt"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Concurrent calls per caller. The caller's grain, the one writer of the
// caller's stream, sees every decision and is told when each call ends;
// it counts the calls up and passes the count in Call.Concurrent. The
// count is not folded from the stream (a call's end is written to the
// call's own stream, not the caller's): like the line's attack mode it is
// an input the decision records, in CallReceived.Concurrent, so the audit
// explains and a replay re-decides the call from the event alone.
//
// A call over MaxConcurrent gets ConcurrentVerdict (RuleConcurrent):
//
//   - a whitelisted caller (own entry or range) is never held back;
//   - a verdict that rejects already stands; a challenge stands unless
//     the rule rejects;
//   - a verified caller is not let through: verification is for a person
//     calling again over hours, while many calls at once from one number
//     are a dialler (or a forwarding loop), whoever typed a code before;
//   - the anonymous key is shared by every caller without a number: it is
//     not counted.

// overConcurrent applies the concurrency rule to d and records the count
// in ev.
func (p *Policy) overConcurrent(d *Decision, ev *schema.CallReceived, call Call, v view) {
	if call.Caller.Key == phone.AnonymousKey || call.Concurrent <= 0 {
		return
	}
	up := call.Concurrent + 1
	ev.Concurrent = up
	limit := p.cfg.MaxConcurrent
	switch {
	case limit == 0 || up <= limit:
		return
	case v.whitelisted, d.Rule == schema.RuleWhitelist, d.Rule == schema.RuleRangeWhitelist:
		return
	case d.Verdict == schema.Reject:
		return
	case d.Verdict == schema.Challenge && p.cfg.ConcurrentVerdict != schema.Reject:
		return
	}
	// Level 0: no block level made this verdict (a block the call set or
	// extended is still recorded beside it).
	d.Verdict, d.Level, d.Rule, d.Reason = p.cfg.ConcurrentVerdict, 0, schema.RuleConcurrent, ConcurrentReason(up, limit)
}

// ConcurrentReason says why a call was held back by RuleConcurrent.
func ConcurrentReason(up, limit int) string {
	return fmt.Sprintf("%d calls up at once, limit %d", up, limit)
}
