package policy

import (
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Range rules (whitelist or block by number prefix or range) are policy
// data kept outside the caller's state (package actors/rules); the grain
// looks up the ones matching its caller and passes them in Call.Ranges.
// Decide records them in CallReceived.Ranges, so that the audit explains
// and a replay reproduces the verdict without the rule table.
//
// Precedence, from strongest:
//
//  1. the number's own whitelist entry;
//  2. a whitelist range: a whitelist entry, exact or range, beats every
//     block (the seed's rule), and a whitelisted caller is not blocked
//     automatically;
//  3. the number's own manual block: an admin's decision about this
//     number is more specific than any range;
//  4. the most specific block range (Call.Ranges carries only that one),
//     unless the caller's automatic block is at a higher level: counters
//     never weaken a range block, and a range never weakens what the
//     number's own calls earned;
//  5. the counters (limits, escalation, verification) as for any caller.
//
// A soft range block (levels 1–5) lets a verified caller through, as the
// number's own soft block does.

// activeRanges returns the most specific whitelist and block matches of ms
// in force at at (ms holds at most one of each when it comes from the
// rule table or a recorded call; more come from a replay's hypothetical
// rules, and the most specific wins).
func activeRanges(ms []schema.RangeMatch, key string, at time.Time) (active []schema.RangeMatch, wl, bl *schema.RangeMatch) {
	for i := range ms {
		m := &ms[i]
		if !m.ActiveAt(at) {
			continue
		}
		active = append(active, *m)
		switch m.List {
		case schema.RangeWhitelist:
			if wl == nil || moreSpecific(*m, *wl, key) {
				wl = m
			}
		case schema.RangeBlock:
			if bl == nil || moreSpecific(*m, *bl, key) {
				bl = m
			}
		}
	}
	return active, wl, bl
}

// moreSpecific reports whether a holds fewer numbers of key's length than
// b; between blocks of one size, the higher level.
func moreSpecific(a, b schema.RangeMatch, key string) bool {
	ra, errA := schema.ParseRange(a.Range)
	rb, errB := schema.ParseRange(b.Range)
	if errA != nil || errB != nil {
		return errB != nil && errA == nil
	}
	sa, sb := ra.Size(len(key)-1), rb.Size(len(key)-1)
	if sa != sb {
		return sa < sb
	}
	return a.Level > b.Level
}

// applyRanges lets the range rules of call overrule the decision d that
// the caller's own state gave (see the precedence above), records the
// rules in ev, and returns the automatic block the decision sets (none
// for a whitelisted range).
func applyRanges(d *Decision, ev *schema.CallReceived, v view, block *schema.BlockApplied, call Call, at int64) *schema.BlockApplied {
	if len(call.Ranges) == 0 || call.Caller.Key == phone.AnonymousKey {
		return block
	}
	active, wl, bl := activeRanges(call.Ranges, call.Caller.Key, tm(at))
	if len(active) == 0 {
		return block
	}
	ev.Ranges = active
	switch {
	case v.whitelisted:
		return block
	case wl != nil:
		d.Verdict, d.Level, d.Rule, d.Reason = schema.Pass, 0, schema.RuleRangeWhitelist, wl.Explain()
		ev.BlockUntil = nil
		return nil
	case bl == nil, v.kind == schema.Manual && v.level > 0, bl.Level < v.level:
		return block
	}
	d.Level, d.Verdict, d.Rule, d.Reason = bl.Level, schema.LevelVerdict(bl.Level), schema.RuleRangeBlock, bl.Explain()
	if d.Verdict == schema.Challenge && v.verifiedUntil > at {
		d.Verdict, d.Rule = schema.Pass, schema.RuleVerified
		d.Reason = "verified until " + tm(v.verifiedUntil).Format(time.RFC3339) + "; " + bl.Explain()
	}
	return block
}

// withTried returns the recorded matches with the tried rules that cover
// key added (a new slice; recorded is not changed).
func withTried(recorded, try []schema.RangeMatch, key string) []schema.RangeMatch {
	if len(try) == 0 {
		return recorded
	}
	out := append([]schema.RangeMatch(nil), recorded...)
	return append(out, Matching(try, key)...)
}

// Matching returns the rules of rs whose range holds the E.164 key.
func Matching(rs []schema.RangeMatch, key string) []schema.RangeMatch {
	var out []schema.RangeMatch
	for _, m := range rs {
		if r, err := schema.ParseRange(m.Range); err == nil && r.Contains(key) {
			out = append(out, m)
		}
	}
	return out
}
