package lists

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CSV columns of the exports. The whitelist's are what package importer
// reads (it ignores since: an imported entry starts when it is
// imported), so an export imports back as the same entries.
var (
	blacklistColumns = []string{"number", "level", "effect", "kind", "rule", "since", "until", "by", "reason"}
	whitelistColumns = []string{"number", "since", "until", "by", "reason"}
)

// CSVMediaType is the media type of the exports (RFC 4180).
const CSVMediaType = "text/csv; charset=utf-8"

// WriteBlacklistCSV writes entries as CSV with a header row. Times are
// RFC 3339 in UTC; an empty until is a block without expiry.
func WriteBlacklistCSV(w io.Writer, entries []BlacklistEntry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(blacklistColumns); err != nil {
		return fmt.Errorf("blacklist CSV: %w", err)
	}
	for _, e := range entries {
		if err := cw.Write([]string{
			e.Number, strconv.Itoa(e.Level), string(e.Effect), string(e.Kind), string(e.Rule),
			csvTime(&e.Since), csvTime(e.Until), DefuseCell(e.By), DefuseCell(e.Reason),
		}); err != nil {
			return fmt.Errorf("blacklist CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("blacklist CSV: %w", err)
	}
	return nil
}

// WriteWhitelistCSV writes entries as CSV with a header row.
func WriteWhitelistCSV(w io.Writer, entries []WhitelistEntry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(whitelistColumns); err != nil {
		return fmt.Errorf("whitelist CSV: %w", err)
	}
	for _, e := range entries {
		if err := cw.Write([]string{e.Number, csvTime(&e.Since), csvTime(e.Until), DefuseCell(e.By), DefuseCell(e.Reason)}); err != nil {
			return fmt.Errorf("whitelist CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("whitelist CSV: %w", err)
	}
	return nil
}

func csvTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// DefuseCell defuses spreadsheet formula injection (OWASP "CSV injection"):
// who and why are free text an admin typed, and a cell starting with =,
// +, - or @ is run as a formula when the export is opened in a
// spreadsheet. A leading apostrophe makes it text there; RestoreCell
// (which the import applies) strips it again, so the round trip keeps the
// text. Numbers start with + and are never passed through here.
func DefuseCell(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r') {
		return "'" + s
	}
	return s
}

// RestoreCell undoes DefuseCell.
func RestoreCell(s string) string {
	if len(s) > 1 && s[0] == '\'' && (s[1] == '=' || s[1] == '+' || s[1] == '-' || s[1] == '@' || s[1] == '\t' || s[1] == '\r') {
		return s[1:]
	}
	return s
}
