package policy

import (
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// The bank's CRM may mark a caller VIP (actors/crm looks the number up
// before the decision and passes the answer in Call.CRM). A VIP is the
// CRM's whitelist, so it is treated as one:
//
//   - the call passes (RuleVIP), whatever else would have decided: the
//     number's own block, manual ones included (an admin who must stop a
//     VIP number removes the VIP mark in the CRM, or whitelists nothing and
//     waits for the CRM to say so), a range block, the limits, and a line
//     under attack;
//   - the call sets no automatic block and extends none, as for a
//     whitelisted caller, and does not count towards attack detection;
//   - the number's own whitelist entry and a whitelist range keep their
//     rule: they say why the call passed without the CRM.
//
// The answer is recorded in CallReceived.CRM whatever it was (a miss, a
// timeout and an error included), so a replay decides with the same
// answer and the audit says the CRM was not reached.

// applyVIP lets the CRM's answer in call overrule the decision d, records
// the answer in ev, and returns the automatic block the decision sets
// (none for a VIP).
func applyVIP(d *Decision, ev *schema.CallReceived, block *schema.BlockApplied, call Call) *schema.BlockApplied {
	c := call.CRM
	if c == nil {
		return block
	}
	a := *c
	ev.CRM = &a
	switch {
	case !c.VIP, c.Status != schema.CRMHit, call.Caller.Key == phone.AnonymousKey:
		return block
	case d.Verdict == schema.Pass && (d.Rule == schema.RuleWhitelist || d.Rule == schema.RuleRangeWhitelist):
		return block
	}
	d.Verdict, d.Level, d.Rule, d.Reason = schema.Pass, 0, schema.RuleVIP, VIPReason(c.Segment)
	ev.BlockUntil = nil
	return nil
}

// VIPReason says why a VIP's call passed.
func VIPReason(segment string) string {
	if segment == "" {
		return "passed as VIP client (CRM)"
	}
	return "passed as VIP client (CRM), segment " + segment
}
