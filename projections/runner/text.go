package runner

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText writes projection statuses as a table for a terminal, with
// each failure on its own line.
func WriteText(w io.Writer, sts []Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tSTATE\tCHECKPOINT\tHEAD\tLAG EVENTS\tLAG SECONDS\tVERSION")
	for _, st := range sts {
		lag := fmt.Sprint(st.LagEvents)
		if st.LagAtLeast {
			lag = "≥" + lag
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n", st.Name, st.State, st.Checkpoint, st.Head, lag, st.LagSeconds, st.Version)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("projections: %w", err)
	}
	for _, st := range sts {
		if f := st.Failure; f != nil && f.Retrying {
			if _, err := fmt.Fprintf(w, "\n%s cannot write its database since %s (%d attempts): %s\n  it retries by itself; free the disk or fix the file system\n",
				st.Name, f.Since.Format(time.RFC3339), f.Attempts, f.Error); err != nil {
				return fmt.Errorf("projections: %w", err)
			}
		} else if f != nil {
			if _, err := fmt.Fprintf(w, "\n%s stopped at %s (%s@%d, %s): %s\n  rebuild it once the cause is fixed: callguard projections rebuild %s\n",
				st.Name, f.At, f.Stream, f.Revision, f.Type, f.Error, st.Name); err != nil {
				return fmt.Errorf("projections: %w", err)
			}
		}
	}
	return nil
}
