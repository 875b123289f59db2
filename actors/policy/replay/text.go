package replay

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/schema"
)

const dateTime = "2006-01-02 15:04:05"

// WriteText renders the report for a person, times in loc (UTC when nil;
// the text names the zone): the settings, the counts, the breakdown of
// changed calls, then each number that would end in a different state
// with its standing now and under the settings and the calls decided
// differently.
func (r Report) WriteText(w io.Writer, loc *time.Location) error {
	if loc == nil {
		loc = time.UTC
	}
	bw := bufio.NewWriter(w)
	s := r.Settings
	fmt.Fprintf(bw, "Replay under limit-hour=%d limit-day=%d limit-level=%d block-for=%s escalate-after=%d escalation-level=%d count-abandoned=%t verified-for=%s anonymous=%s",
		s.LimitHour, s.LimitDay, s.LimitLevel, s.BlockFor, s.EscalateAfter, s.EscalationLevel, s.CountAbandoned, s.VerifiedFor, s.Anonymous)
	if s.MaxConcurrent > 0 {
		fmt.Fprintf(bw, " max-concurrent-per-caller=%d concurrent-verdict=%s", s.MaxConcurrent, s.ConcurrentVerdict)
	}
	bw.WriteString("\n")
	for _, m := range r.Tried {
		if m.List == schema.RangeBlock {
			fmt.Fprintf(bw, "Trying range rule: block %s at level %d\n", m.Range, m.Level)
		} else {
			fmt.Fprintf(bw, "Trying range rule: whitelist %s\n", m.Range)
		}
	}
	for _, o := range r.TriedOverrides {
		fmt.Fprintf(bw, "Trying %s: %s\n", o.Explain(), o.Settings)
	}
	fmt.Fprintf(bw, "Log read through position %s: %d callers, %d calls", r.Through, r.Callers, r.Calls)
	if r.Skipped > 0 {
		fmt.Fprintf(bw, ", %d %s skipped (not folded by the policy)", r.Skipped, plural(r.Skipped, "event", "events"))
	}
	bw.WriteString(".\n")
	if !r.AsOf.IsZero() {
		fmt.Fprintf(bw, "Standing compared as of %s (times in %s).\n", stamp(r.AsOf, loc), loc)
	} else {
		fmt.Fprintf(bw, "Standing compared right after each number's last event (times in %s).\n", loc)
	}

	fmt.Fprintf(bw, "\nCalls decided differently: %d of %d, from %d %s\n", r.CallsChanged, r.Calls, r.CallersChanged, plural(r.CallersChanged, "caller", "callers"))
	for _, t := range r.Transitions {
		fmt.Fprintf(bw, "  %-21s %d\n", fmt.Sprintf("%s -> %s", t.From, t.To), t.Calls)
	}
	if r.Unresolved > 0 {
		fmt.Fprintf(bw, "Challenged only under these settings, outcome unknown: %d %s\n", r.Unresolved, plural(r.Unresolved, "call", "calls"))
	}
	fmt.Fprintf(bw, "Numbers that would end in a different state: %d of %d\n", r.NumbersChanged, r.Callers)

	for _, n := range r.Numbers {
		fmt.Fprintf(bw, "\n%s\n", n.Key)
		fmt.Fprintf(bw, "  now       %s\n", standing(n.Now, loc))
		fmt.Fprintf(bw, "  would be  %s\n", standing(n.WouldBe, loc))
		fmt.Fprintf(bw, "  differs   %s\n", strings.Join(n.Differs, ", "))
		if slices.Contains(n.Differs, "next") {
			fmt.Fprintf(bw, "  next call %s -> %s\n", verdict(n.Now.Next, 0, n.Now.NextRule), verdict(n.WouldBe.Next, 0, n.WouldBe.NextRule))
		}
		fmt.Fprintf(bw, "  calls     %d of %d decided differently\n", n.CallsChanged, n.Calls)
		for _, c := range n.Changes {
			fmt.Fprintf(bw, "    %s  %s  %s -> %s\n", stamp(c.At, loc), c.CallID, verdict(c.Was, c.WasLevel, ""), verdict(c.Now, c.NowLevel, c.NowRule))
		}
		if n.MoreChanges > 0 {
			fmt.Fprintf(bw, "    ... and %d more\n", n.MoreChanges)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("replay: write text: %w", err)
	}
	return nil
}

func verdict(v schema.Verdict, level int, rule schema.Rule) string {
	s := string(v)
	if level > 0 {
		s += fmt.Sprintf(" level %d", level)
	}
	if rule != "" {
		s += " (" + string(rule) + ")"
	}
	return s
}

// standing says in words where a number stands.
func standing(s policy.Status, loc *time.Location) string {
	var parts []string
	if s.Level > 0 {
		b := fmt.Sprintf("blocked at level %d (%s)", s.Level, kindRule(s.Kind, s.Rule))
		if !s.Until.IsZero() {
			b += " until " + stamp(s.Until, loc)
		}
		parts = append(parts, b)
	} else {
		parts = append(parts, "not blocked")
	}
	if s.Whitelisted {
		w := "whitelisted"
		if !s.WhitelistUntil.IsZero() {
			w += " until " + stamp(s.WhitelistUntil, loc)
		}
		parts = append(parts, w)
	}
	if !s.VerifiedUntil.IsZero() {
		parts = append(parts, "verified until "+stamp(s.VerifiedUntil, loc))
	}
	return strings.Join(parts, "; ")
}

func stamp(t time.Time, loc *time.Location) string { return t.In(loc).Format(dateTime) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// kindRule names a block's kind and rule once each: "auto, hourly-limit",
// but "manual" for an admin's block, whose rule is its kind.
func kindRule(kind schema.BlockKind, rule schema.Rule) string {
	if rule == "" || string(rule) == string(kind) {
		return string(kind)
	}
	return string(kind) + ", " + string(rule)
}
