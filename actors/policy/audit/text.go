package audit

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Time layouts of the text rendering: seconds are enough for a person (the
// JSON keeps the exact times), and a counted call on the same day as its
// block shows its time only, which keeps a block's line short.
const (
	dateTime = "2006-01-02 15:04:05"
	clock    = "15:04:05"
)

// widths pads the columns that follow the kind, so that the calls of a
// timeline line up. The zero value pads nothing (Entry.Summary).
type widths struct {
	kind, callID, counts int
}

// maxCallIDWidth caps the call-ID column: SIP Call-IDs can be long, and
// one long ID should not push every other line to the right.
const maxCallIDWidth = 16

// WriteText renders the timeline for a person: one line per event, times in
// loc (UTC when nil), then the summary. For example:
//
//	2026-11-02 10:05:00  call       c6  hour=6 day=6  CHALLENGE level 3 (hourly-limit: 6 calls in the last hour, limit 5)
//	2026-11-02 10:05:00  block      level 3 auto by policy (hourly-limit: 6 calls in the last hour, limit 5); counted: c1 10:00:00, c2 10:01:00, ...; until 2026-11-03 10:05:00
//	2026-11-02 10:05:14  challenge  c6  passed 14s after the call; verified until 2026-11-02 16:05:14
func (t Timeline) WriteText(w io.Writer, loc *time.Location) error {
	if loc == nil {
		loc = time.UTC
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Audit of %s (stream %s): %d events, times in %s\n", t.Key, t.Stream, len(t.Entries), loc)
	if len(t.Entries) == 0 {
		fmt.Fprintf(bw, "No events: the guard has no record of this number.\n")
	} else {
		bw.WriteString("\n")
	}
	wd := t.widths()
	for _, e := range t.Entries {
		fmt.Fprintf(bw, "%s  %-*s  %s\n", e.At.In(loc).Format(dateTime), wd.kind, e.Kind, e.line(loc, wd))
	}
	t.Summary.writeText(bw, loc)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit %s: write text: %w", t.Key, err)
	}
	return nil
}

func (t Timeline) widths() widths {
	var wd widths
	for _, e := range t.Entries {
		wd.kind = max(wd.kind, len(e.Kind))
		switch {
		case e.Call != nil:
			wd.callID = max(wd.callID, min(len(e.Call.CallID), maxCallIDWidth))
			wd.counts = max(wd.counts, len(counts(e.Call)))
		case e.Challenge != nil:
			wd.callID = max(wd.callID, min(len(e.Challenge.CallID), maxCallIDWidth))
		}
	}
	return wd
}

func counts(c *Call) string { return fmt.Sprintf("hour=%d day=%d", c.Hour, c.Day) }

// line is the entry after its time and kind: the one-line summary.
func (e Entry) line(loc *time.Location, wd widths) string {
	switch {
	case e.Call != nil:
		return e.Call.line(loc, wd)
	case e.Challenge != nil:
		return e.Challenge.line(loc, e.At, wd)
	case e.Block != nil:
		return e.Block.line(loc, e.At, e.Actor)
	case e.Unblock != nil:
		u := e.Unblock
		return fmt.Sprintf("%s block at level %d lifted %s; calls before this no longer count",
			u.Kind, u.Level, byWhy(u.By, u.Why, e.Actor))
	case e.Expiry != nil:
		x := e.Expiry
		if x.Of == ExpiryOfWhitelist {
			return fmt.Sprintf("whitelist entry from %s ran out", stamp(x.Since, loc))
		}
		return fmt.Sprintf("%s block at level %d (%s) from %s ran out", x.Kind, x.Level, x.Rule, stamp(x.Since, loc))
	case e.Whitelist != nil && e.Kind == KindWhitelist:
		return fmt.Sprintf("whitelisted %s; %s", byWhy(e.Whitelist.By, e.Whitelist.Why, e.Actor), until(e.Whitelist.Until, loc))
	case e.Whitelist != nil:
		return "removed from the whitelist " + byWhy(e.Whitelist.By, e.Whitelist.Why, e.Actor)
	case e.Other != nil:
		return fmt.Sprintf("%s v%d: not known to this build; see the event %s", e.Other.Type, e.Other.Version, e.EventID)
	}
	return e.Type
}

func (c *Call) line(loc *time.Location, wd widths) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %-*s  ", wd.callID, c.CallID, wd.counts, counts(c))
	if c.Observed() {
		// Observe mode: what happened first, then what enforcing would
		// have done.
		fmt.Fprintf(&b, "%s (%s mode), enforcing would %s", strings.ToUpper(string(c.Action)), c.Mode, strings.ToUpper(string(c.Verdict)))
	} else if c.ActionReason != "" {
		// A challenge the guard could not carry out: what it did, why,
		// and the verdict it did not carry out.
		fmt.Fprintf(&b, "%s (%s), the verdict was %s", strings.ToUpper(string(c.Action)), c.ActionReason, strings.ToUpper(string(c.Verdict)))
	} else {
		b.WriteString(strings.ToUpper(string(c.Verdict)))
	}
	if c.Level > 0 {
		fmt.Fprintf(&b, " level %d", c.Level)
	}
	if c.Rule == schema.RuleVerified && !c.VerifiedUntil.IsZero() {
		fmt.Fprintf(&b, " (verified: passed a challenge, counts until %s)", stamp(c.VerifiedUntil, loc))
	} else if why := ruleReason(c.Rule, c.Reason); why != "" {
		fmt.Fprintf(&b, " (%s%s%s)", why, c.rangeSetBy(), c.overrideSetBy())
	}
	if !c.BlockUntil.IsZero() {
		fmt.Fprintf(&b, "; block extended until %s", stamp(c.BlockUntil, loc))
	}
	if c.Presented != "" {
		fmt.Fprintf(&b, "; presented as %q", c.Presented)
	}
	switch {
	case c.CRM == nil || !c.CRM.Status.Failed():
	case c.CRM.Status == schema.CRMSkipped:
		b.WriteString("; CRM not asked (it had failed lookups in a row), decided without it")
	default:
		fmt.Fprintf(&b, "; CRM %s, decided without it", c.CRM.Status)
	}
	return b.String()
}

// rangeSetBy names who set the range rule that decided c, and why.
func (c *Call) rangeSetBy() string {
	if (c.Rule == schema.RuleCountry || c.Rule == schema.RuleNumberType) && c.Origin != nil {
		for _, m := range c.Origin.Rules {
			if m.Rule() == c.Rule {
				return fmt.Sprintf(", set by %s: %s", m.By, m.Why)
			}
		}
	}
	list := schema.RangeBlock
	switch c.Rule {
	case schema.RuleRangeWhitelist:
		list = schema.RangeWhitelist
	case schema.RuleRangeBlock:
	default:
		return ""
	}
	for _, m := range c.Ranges {
		if m.List == list {
			return fmt.Sprintf(", set by %s: %s", m.By, m.Why)
		}
	}
	return ""
}

// overrideSetBy names who set the per-line settings or schedule that set
// the limit c broke, and why (the reason names the override).
func (c *Call) overrideSetBy() string {
	if c.Rule != schema.RuleHourlyLimit && c.Rule != schema.RuleDailyLimit && c.Rule != schema.RuleAnonymous {
		return ""
	}
	for i := len(c.Overrides) - 1; i >= 0; i-- {
		if o := c.Overrides[i]; strings.Contains(c.Reason, "set by "+o.Explain()) {
			return fmt.Sprintf(", by %s: %s", o.By, o.Why)
		}
	}
	return ""
}

// ruleReason joins a verdict's rule and reason without saying the rule
// twice: a block's reason ("auto block at level 3 (hourly-limit)") already
// names it.
func ruleReason(rule schema.Rule, reason string) string {
	switch {
	case rule == "":
		return reason
	case reason == "" || reason == string(rule):
		return string(rule)
	case strings.Contains(reason, string(rule)):
		return reason
	}
	return string(rule) + ": " + reason
}

func (c *Challenge) line(loc *time.Location, at time.Time, wd widths) string {
	s := fmt.Sprintf("%-*s  %s", wd.callID, c.CallID, c.Outcome)
	if !c.CalledAt.IsZero() && !at.Before(c.CalledAt) {
		// How long the challenge took tells a bot (instant failure, or
		// the whole window) from a person.
		s += fmt.Sprintf(" %s after the call", at.Sub(c.CalledAt).Round(time.Second))
	}
	if !c.VerifiedUntil.IsZero() {
		s += "; verified until " + stamp(c.VerifiedUntil, loc)
	}
	return s
}

func (b *Block) line(loc *time.Location, at time.Time, actor string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "level %d %s", b.Level, b.Kind)
	if b.Kind == schema.Manual {
		s.WriteString(" " + byWhy(b.By, b.Why, actor))
	} else {
		fmt.Fprintf(&s, " by %s (%s)", b.By, ruleReason(b.Rule, b.Why))
	}
	if len(b.Counted) > 0 {
		s.WriteString("; counted: ")
		for i, c := range b.Counted {
			if i > 0 {
				s.WriteString(", ")
			}
			s.WriteString(c.CallID)
			if c.Outcome != "" {
				s.WriteString(" " + string(c.Outcome))
			}
			if !c.At.IsZero() {
				s.WriteString(" " + shortStamp(c.At, at, loc))
			}
		}
		if b.Unnamed > 0 {
			fmt.Fprintf(&s, " and %d older not named", b.Unnamed)
		}
	}
	s.WriteString("; " + until(b.Until, loc))
	if b.Observed {
		s.WriteString("; set in observe mode: not carried out while observing, in force once enforcing")
	}
	return s.String()
}

// byWhy names who did an admin change and why, and the writer of the event
// when it is not simply that admin (the grain writes "admin:"+By).
func byWhy(by, why, actor string) string {
	s := fmt.Sprintf("by %s: %s", by, why)
	if actor != "" && actor != by && actor != "admin:"+by {
		s += fmt.Sprintf(" [via %s]", actor)
	}
	return s
}

func until(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "no expiry"
	}
	return "until " + stamp(t, loc)
}

func stamp(t time.Time, loc *time.Location) string { return t.In(loc).Format(dateTime) }

// shortStamp is t's clock time when it falls on the same day as ref in loc,
// else its date and time.
func shortStamp(t, ref time.Time, loc *time.Location) string {
	t, ref = t.In(loc), ref.In(loc)
	y, m, d := t.Date()
	if ry, rm, rd := ref.Date(); y == ry && m == rm && d == rd {
		return t.Format(clock)
	}
	return t.Format(dateTime)
}

func (s Summary) writeText(w io.Writer, loc *time.Location) {
	fmt.Fprintf(w, "\nSummary\n")
	fmt.Fprintf(w, "  calls       %d: pass %d, challenge %d, reject %d\n", s.Calls, s.Pass, s.Challenge, s.Reject)
	if s.WouldChallenge+s.WouldReject > 0 {
		fmt.Fprintf(w, "  observed    %d passed in observe mode that enforcing would have challenged (%d) or rejected (%d)\n",
			s.WouldChallenge+s.WouldReject, s.WouldChallenge, s.WouldReject)
	}
	fmt.Fprintf(w, "  challenges  passed %d, failed %d, abandoned %d, no outcome %d\n", s.Passed, s.Failed, s.Abandoned, s.Pending)
	fmt.Fprintf(w, "  blocks      %d auto, %d manual; %d lifted, %d ran out\n", s.AutoBlocks, s.ManualBlocks, s.Unblocks, s.BlocksExpired)
	fmt.Fprintf(w, "  whitelist   %d added, %d removed, %d ran out\n", s.Whitelisted, s.Unwhitelisted, s.WhitelistExpired)
	if s.Other > 0 {
		fmt.Fprintf(w, "  other       %d events not known to this build\n", s.Other)
	}
	if s.State.AsOf.IsZero() {
		fmt.Fprintf(w, "  state       never seen\n")
		return
	}
	fmt.Fprintf(w, "  state       %s (after the last event, %s)\n", s.State.text(loc), stamp(s.State.AsOf, loc))
}

func (st State) text(loc *time.Location) string {
	var parts []string
	if st.Level > 0 {
		parts = append(parts, fmt.Sprintf("blocked at level %d (%s) since %s, %s",
			st.Level, kindRule(st.Kind, st.Rule), stamp(st.Since, loc), until(st.Until, loc)))
	} else {
		parts = append(parts, "not blocked")
	}
	if st.Whitelisted {
		parts = append(parts, "whitelisted, "+until(st.WhitelistUntil, loc))
	}
	if !st.VerifiedUntil.IsZero() {
		parts = append(parts, "verified until "+stamp(st.VerifiedUntil, loc))
	}
	return strings.Join(parts, "; ")
}

// kindRule names a block's kind and rule once each: "auto, hourly-limit",
// but "manual" for an admin's block, whose rule is its kind.
func kindRule(kind schema.BlockKind, rule schema.Rule) string {
	if rule == "" || string(rule) == string(kind) {
		return string(kind)
	}
	return string(kind) + ", " + string(rule)
}
