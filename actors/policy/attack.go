package policy

import (
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// The under-attack mode of a called line (actors/line decides when a line
// is under attack; the policy only applies it). While Call.Attack is set:
//
//   - a call that would pass is challenged instead (RuleAttack), unless the
//     caller is whitelisted or verified recently: a campaign that spoofs a
//     fresh number per call is never seen twice, so per-number limits
//     never fire, and only a challenge tells its bots from people;
//   - every other verdict stands: a block that rejects still rejects, a
//     soft block still challenges under its own rule.
//
// A person who types the code is verified as after any challenge (see
// Outcome) and is not asked again for VerifiedFor.

// isNew reports whether the caller of a call decided at at counts towards
// its line's attack detection: not whitelisted, not verified recently, and
// no earlier call in the last day (what the state keeps). Callers without
// a number (the anonymous key, shared by all of them) count unless that
// key is whitelisted: nothing tells one of them from a spoofed newcomer.
func (v view) isNew(key string, at int64) bool {
	switch {
	case v.whitelisted, v.verifiedUntil > at:
		return false
	case key == phone.AnonymousKey:
		return true
	}
	return v.count(at-int64(Day)) == 0
}

// underAttack turns a pass of d into a challenge when the call's line is
// under attack and the caller is not whitelisted or verified, and records
// the line's mode in the call's CallReceived.
func underAttack(d *Decision, ev *schema.CallReceived, call Call, v view, at int64) {
	a := call.Attack
	if a == nil {
		return
	}
	ev.Attack = &schema.LineAttack{Since: a.Since.UTC(), Manual: a.Manual}
	switch {
	case d.Verdict != schema.Pass || d.Rule == schema.RuleWhitelist || d.Rule == schema.RuleRangeWhitelist || d.Rule == schema.RuleVerified:
		return
	case v.verifiedUntil > at:
		// Without a block a verified caller passes anyway; under attack
		// the verification is what lets the call through: say so.
		d.Rule, d.Reason = schema.RuleVerified, "verified until "+tm(v.verifiedUntil).Format(time.RFC3339)
		return
	}
	d.Verdict, d.Level, d.Rule, d.Reason = schema.Challenge, 0, schema.RuleAttack, AttackReason(call.Callee, *a)
}

// AttackReason says why a call was challenged by RuleAttack.
func AttackReason(line string, a schema.LineAttack) string {
	if line == "" {
		line = "(no number)"
	}
	how := ""
	if a.Manual {
		how = " (switched on by an admin)"
	}
	return "line " + line + " under attack since " + a.Since.UTC().Format(time.RFC3339) + how
}
