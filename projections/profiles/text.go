package profiles

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText writes a page of profiles as a table for a terminal, times
// in loc, each with its zone's abbreviation (MSK, UTC, or the offset such
// as +05 where the zone has none).
func WriteText(w io.Writer, p Page, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tCALLS\tTODAY\tLAST CALL\tLAST VERDICT\tFAILED\tBLOCKS\tSTATE")
	for _, pr := range p.Items {
		last := "-"
		if pr.LastCall != nil {
			last = pr.LastCall.In(loc).Format("2006-01-02 15:04:05 MST")
		}
		verdict := string(pr.LastVerdict)
		if pr.LastAction != "" {
			verdict = fmt.Sprintf("%s (observe mode: %s)", pr.LastVerdict, pr.LastAction)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n", pr.Number, pr.Calls, pr.CallsToday, last, verdict,
			pr.ChallengesFailed, pr.Blocks, stateText(pr.State, loc))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	if p.Next != "" {
		if _, err := fmt.Fprintf(w, "\nmore: --after %s\n", p.Next); err != nil {
			return fmt.Errorf("profiles: %w", err)
		}
	}
	return nil
}

func stateText(s State, loc *time.Location) string {
	out := "clear"
	if s.Level > 0 {
		out = fmt.Sprintf("level %d %s (%s)", s.Level, s.Kind, s.Rule)
		if s.Until != nil {
			out += " until " + s.Until.In(loc).Format("2006-01-02 15:04 MST")
		}
	}
	if s.Whitelisted {
		out = "whitelisted"
		if s.WhitelistUntil != nil {
			out += " until " + s.WhitelistUntil.In(loc).Format("2006-01-02 15:04 MST")
		}
	}
	if s.VerifiedUntil != nil {
		out += ", verified"
	}
	return out
}
