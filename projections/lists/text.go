package lists

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteBlacklistText writes a page of the blacklist as a table for a
// terminal, times in loc, each with its zone (textTime).
func WriteBlacklistText(w io.Writer, p Page[BlacklistEntry], loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tLEVEL\tEFFECT\tKIND\tRULE\tSINCE\tUNTIL\tBY\tREASON")
	for _, e := range p.Items {
		note := ""
		switch {
		case e.Expired:
			note = " (expired)"
		case e.Whitelisted:
			note = " (whitelisted: no effect)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Number, e.Level, e.Effect, note, e.Kind, e.Rule,
			textTime(&e.Since, loc), textTime(e.Until, loc), e.By, e.Reason)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("blacklist: %w", err)
	}
	return pageFooter(w, len(p.Items), p.Total, p.Next)
}

// WriteWhitelistText writes a page of the whitelist as a table.
func WriteWhitelistText(w io.Writer, p Page[WhitelistEntry], loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tSINCE\tUNTIL\tBY\tREASON")
	for _, e := range p.Items {
		until := textTime(e.Until, loc)
		if e.Expired {
			until += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Number, textTime(&e.Since, loc), until, e.By, e.Reason)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("whitelist: %w", err)
	}
	return pageFooter(w, len(p.Items), p.Total, p.Next)
}

func pageFooter(w io.Writer, shown, total int, next string) error {
	var err error
	if next != "" {
		_, err = fmt.Fprintf(w, "\n%d of %d shown; next page: --after %s\n", shown, total, next)
	} else {
		noun := "numbers"
		if total == 1 {
			noun = "number"
		}
		_, err = fmt.Fprintf(w, "\n%d %s\n", total, noun)
	}
	return err
}

// textLayout writes a time for a person with its zone's abbreviation
// (MSK, UTC, or the offset such as +05 where the zone has none), so that
// a line copied out of the table still says when.
const textLayout = "2006-01-02 15:04:05 MST"

func textTime(t *time.Time, loc *time.Location) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.In(loc).Format(textLayout)
}
