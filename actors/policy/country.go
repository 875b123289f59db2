package policy

import (
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Origin rules (verdicts by the caller number's country and type) are
// policy data in the rule table (actors/rules, origin.go); the grain looks
// up the caller's country, type and the rules matching them and passes
// them in Call.Origin. Decide records them in CallReceived.Origin, so the
// audit explains and a replay reproduces the verdict without the table.
//
// An origin rule acts as a block of its level (a country rule at level 3
// challenges, at 7 rejects), with the precedence of a range block: the
// number's own whitelist entry and a whitelist range beat it, the number's
// own manual block is more specific and stands, and otherwise it decides
// unless what the number or a range earned is at a higher level. Of a
// country and a type rule both matching, the higher level decides (the
// country on a tie). A soft one lets a verified caller through.

// applyOrigin lets the origin rules of call overrule d (see above) and
// records them in ev.
func applyOrigin(d *Decision, ev *schema.CallReceived, v view, call Call, at int64) {
	o := call.Origin
	if o == nil || call.Caller.Key == phone.AnonymousKey {
		return
	}
	var best *schema.OriginMatch
	var active []schema.OriginMatch
	for i := range o.Rules {
		m := o.Rules[i]
		if !m.ActiveAt(tm(at)) {
			continue
		}
		active = append(active, m)
		if best == nil || m.Level > best.Level {
			best = &active[len(active)-1]
		}
	}
	if len(active) == 0 {
		return
	}
	ev.Origin = &schema.Origin{Country: o.Country, Type: o.Type, Rules: active}
	switch {
	case v.whitelisted, d.Rule == schema.RuleWhitelist, d.Rule == schema.RuleRangeWhitelist:
		return
	case v.kind == schema.Manual && v.level > 0, best.Level <= d.Level:
		return
	}
	d.Level, d.Verdict, d.Rule, d.Reason = best.Level, schema.LevelVerdict(best.Level), best.Rule(), best.Explain()
	if d.Verdict == schema.Challenge && v.verifiedUntil > at {
		d.Verdict, d.Rule = schema.Pass, schema.RuleVerified
		d.Reason = "verified until " + tm(v.verifiedUntil).Format(time.RFC3339) + "; " + best.Explain()
	}
}
