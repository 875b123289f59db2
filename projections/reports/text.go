package reports

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// dailyColumns are the CSV columns of a daily report, before h00..h23.
var dailyColumns = []string{
	"day", "callee", "calls_in", "passed", "challenged", "challenges_passed", "challenges_failed",
	"challenges_abandoned", "rejected", "store_down", "busy", "tracked", "unbilled", "answered_unbilled",
	"offered", "connected", "unanswered", "unanswered_share", "billed_calls", "billed_minutes",
	"minutes_per_call", "saved_minutes", "saved", "would_challenge", "would_reject", "would_save_minutes",
	"would_save", "would_challenge_minutes",
}

// WriteCSV writes the report as CSV: a header, one line per row, and a
// last line whose day is "total". The hours are columns h00 to h23;
// challenged_by_attack comes last (added after them, so that the columns
// before keep their places).
func (d Daily) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string(nil), dailyColumns...)
	for h := range 24 {
		header = append(header, fmt.Sprintf("h%02d", h))
	}
	header = append(header, "challenged_by_attack")
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("report CSV: %w", err)
	}
	rows := append(append([]Row(nil), d.Rows...), d.Total)
	rows[len(rows)-1].Day = "total"
	for _, r := range rows {
		share := ""
		if r.UnansweredShare != nil {
			share = ftoa(*r.UnansweredShare)
		}
		rec := []string{
			r.Day, r.Callee, itoa(r.CallsIn), itoa(r.Passed), itoa(r.Challenged), itoa(r.ChallengesPassed),
			itoa(r.ChallengesFailed), itoa(r.ChallengesAbandoned), itoa(r.Rejected), itoa(r.StoreDown), itoa(r.Busy),
			itoa(r.Tracked), itoa(r.Unbilled), itoa(r.AnsweredUnbilled), itoa(r.Offered), itoa(r.Connected),
			itoa(r.Unanswered), share, itoa(r.BilledCalls), ftoa(r.BilledMinutes), ftoa(r.MinutesPerCall),
			ftoa(r.SavedMinutes), ftoa(r.Saved), itoa(r.WouldChallenge), itoa(r.WouldReject),
			ftoa(r.WouldSaveMinutes), ftoa(r.WouldSave), ftoa(r.WouldChallengeMinutes),
		}
		for _, n := range r.Hours {
			rec = append(rec, itoa(n))
		}
		rec = append(rec, itoa(r.ChallengedByAttack))
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("report CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report CSV: %w", err)
	}
	return nil
}

// WriteText writes the report as a table for a terminal, followed by the
// calls per hour of day over the whole range.
func (d Daily) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Calls from %s to %s (days in %s)", d.From, d.To, d.TimeZone)
	if d.Callee != "" {
		fmt.Fprintf(w, " to %s", d.Callee)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "day\tcallee\tin\tpassed\tchallenged\tok\tfailed\tabandoned\trejected\tunbilled\toffered\tconnected\tunanswered\tshare\tsaved\t")
	rows := append(append([]Row(nil), d.Rows...), d.Total)
	rows[len(rows)-1].Day = "total"
	for _, r := range rows {
		share := "-"
		if r.UnansweredShare != nil {
			share = strconv.FormatFloat(100**r.UnansweredShare, 'f', 1, 64) + "%"
		}
		callee := r.Callee
		if callee == "" {
			callee = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n",
			r.Day, callee, r.CallsIn, r.Passed, r.Challenged, r.ChallengesPassed, r.ChallengesFailed,
			r.ChallengesAbandoned, r.Rejected, r.Unbilled, r.Offered, r.Connected, r.Unanswered, share,
			strconv.FormatFloat(r.Saved, 'f', 2, 64))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	t := d.Total
	fmt.Fprintf(w, "\nSaved: %s %s (%s minutes: %d blocked calls × %s min per call", strconv.FormatFloat(t.Saved, 'f', 2, 64), d.Tariff.Currency,
		ftoa(t.SavedMinutes), t.Rejected+t.ChallengesFailed, ftoa(t.MinutesPerCall))
	if t.MinutesAssumed {
		fmt.Fprint(w, ", assumed")
	}
	fmt.Fprintf(w, "; tariff %s per minute, billed per %s)\n", ftoa(d.Tariff.PerMinute), d.Tariff.Billing)
	if t.WouldChallenge+t.WouldReject > 0 {
		fmt.Fprintf(w, "\nObserve mode passed %d calls that enforcing would have rejected (%d) or challenged (%d): they are counted as passed above, and in no saving.\n",
			t.WouldChallenge+t.WouldReject, t.WouldReject, t.WouldChallenge)
		fmt.Fprintf(w, "What enforcing would change: the %d would-be rejected calls were billed %s minutes (%s %s), which enforcing would have saved;",
			t.WouldReject, ftoa(t.WouldSaveMinutes), strconv.FormatFloat(t.WouldSave, 'f', 2, 64), d.Tariff.Currency)
		fmt.Fprintf(w, " the %d would-be challenged calls were billed %s minutes, saved too for each caller who would have failed the challenge.\n",
			t.WouldChallenge, ftoa(t.WouldChallengeMinutes))
	}
	if t.ChallengedByAttack > 0 || len(d.Attacks) > 0 {
		fmt.Fprintf(w, "\nUnder attack: %d calls challenged because their line was (callers neither whitelisted nor verified).\n", t.ChallengedByAttack)
		for _, a := range d.Attacks {
			until := "now"
			if a.Until != nil {
				until = a.Until.In(d.loc()).Format("2006-01-02 15:04:05 MST")
			}
			how := fmt.Sprintf("detector: %.1f new callers/s over threshold %g", a.Rate, a.Threshold)
			if a.Manual {
				how = "by " + a.By + ": " + a.Why
			}
			fmt.Fprintf(w, "  %s  %s to %s  (%s", a.Line, a.Since.In(d.loc()).Format("2006-01-02 15:04:05 MST"), until, how)
			if a.Peak > 0 {
				fmt.Fprintf(w, "; peak %.1f/s", a.Peak)
			}
			fmt.Fprintln(w, ")")
		}
	}
	fmt.Fprintf(w, "\nCalls per hour of day (%s):\n", d.TimeZone)
	peak := 0
	for _, n := range t.Hours {
		peak = max(peak, n)
	}
	for h, n := range t.Hours {
		bar := ""
		if peak > 0 {
			bar = strings.Repeat("#", (n*40+peak-1)/peak)
		}
		fmt.Fprintf(w, "  %02d  %6d  %s\n", h, n, bar)
	}
	return nil
}

// WriteCSV writes both top lists as CSV: list (calls or blocks), rank,
// and the caller's figures.
func (t Top) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"list", "rank", "number", "calls", "passed", "challenged", "rejected", "challenges_failed", "blocked", "blocks", "would_block"}); err != nil {
		return fmt.Errorf("top CSV: %w", err)
	}
	for _, l := range []struct {
		name string
		cs   []TopCaller
	}{{"calls", t.ByCalls}, {"blocks", t.ByBlocks}} {
		for _, c := range l.cs {
			if err := cw.Write([]string{l.name, itoa(c.Rank), c.Number, itoa(c.Calls), itoa(c.Passed), itoa(c.Challenged),
				itoa(c.Rejected), itoa(c.ChallengesFailed), itoa(c.Blocked), itoa(c.Blocks), itoa(c.WouldBlock)}); err != nil {
				return fmt.Errorf("top CSV: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("top CSV: %w", err)
	}
	return nil
}

// WriteText writes both top lists as tables.
func (t Top) WriteText(w io.Writer) error {
	for _, l := range []struct {
		title string
		cs    []TopCaller
	}{{"Top callers by calls", t.ByCalls}, {"Top callers by blocks", t.ByBlocks}} {
		fmt.Fprintf(w, "%s, %s to %s (days in %s)\n", l.title, t.From, t.To, t.TimeZone)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "#\tnumber\tcalls\tpassed\tchallenged\trejected\tfailed\tblocks\twould block\t")
		for _, c := range l.cs {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", c.Rank, c.Number, c.Calls, c.Passed, c.Challenged, c.Rejected, c.ChallengesFailed, c.Blocks, c.WouldBlock)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("top: %w", err)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// loc is the report's time zone, for the times it prints (UTC if unknown).
func (d Daily) loc() *time.Location {
	if l, err := time.LoadLocation(d.TimeZone); err == nil {
		return l
	}
	return time.UTC
}
