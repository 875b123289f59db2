// Package importer imports a whitelist from CSV as a batch of admin
// commands, one per row, sent through the caller grains like any admin
// command: each row is applied whole or not at all, its event names who
// and why, and its command ID is derived from the file and the line, so
// importing the same file again writes nothing twice. A whitelist
// exported by package lists imports back as the same entries.
//
// It sits in cmd, beside the admin API that serves it, because it composes
// both sides: the caller grains it sends commands through (actors) and the
// whitelist's CSV columns (projections/lists), which neither side may
// import from the other.
package importer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
)

// MaxRows bounds the data rows of one import: each is a command to
// a grain, and an import answers within one HTTP request.
const MaxRows = 10_000

// ErrCSV means the file cannot be read as a whitelist: not CSV, no header
// with a number column, a quoting error, too many rows. Nothing was
// applied; the message says what and where.
var ErrCSV = errors.New("malformed CSV")

// FileError is the ErrCSV of one file: Code says which rule it broke, for
// programs and for pages that say it in another language; Error says it
// in English.
type FileError struct {
	// Code is one of the File* codes.
	Code string
	// Column is the column named twice (FileColumnTwice); Header the
	// header line without a number column (FileNoNumber); Max the row
	// bound (FileTooManyRows); Detail the CSV reader's own words
	// (FileSyntax).
	Column, Header, Detail string
	Max                    int
}

// The codes of a FileError.
const (
	FileEncoding    = "encoding"      // not UTF-8 text
	FileEmpty       = "empty"         // no header row
	FileColumnTwice = "column-twice"  // a column named twice in the header
	FileNoNumber    = "no-number"     // the header has no number column
	FileSyntax      = "syntax"        // a quoting or record error (Detail)
	FileTooManyRows = "too-many-rows" // more than MaxRows data rows
)

func (e *FileError) Error() string {
	var what string
	switch e.Code {
	case FileEncoding:
		what = "the file is not UTF-8 text"
	case FileEmpty:
		what = "the file is empty; want a header row with a number column"
	case FileColumnTwice:
		what = fmt.Sprintf("column %s appears twice in the header", e.Column)
	case FileNoNumber:
		what = fmt.Sprintf("the header %q has no number column (want number, until, by, reason)", e.Header)
	case FileTooManyRows:
		what = fmt.Sprintf("more than %d rows; split the file", e.Max)
	default:
		what = e.Detail
	}
	return ErrCSV.Error() + ": " + what
}

// Is makes every FileError an ErrCSV.
func (e *FileError) Is(target error) bool { return target == ErrCSV }

// Commander sends an admin command to a caller's grain; *caller.Client
// and the admin API's Callers implement it.
type Commander interface {
	Command(ctx context.Context, key string, cmd caller.Command) (caller.Applied, error)
}

// Defaults fill in a row that has no by or reason column, or an
// empty cell there.
type Defaults struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Result says what an import did, row by row where it matters.
type Result struct {
	// File identifies the import: the first 16 hex digits of the SHA-256
	// of the file and the defaults. Each row's command ID is
	// "whitelist:import:<file>:<line>", so importing the same file again
	// writes nothing twice.
	File string `json:"file"`
	// Rows counts the data rows read; Applied those written now; Repeated
	// those an earlier import of the same file had written; Failed the
	// rest, each listed in Errors.
	Rows     int `json:"rows"`
	Applied  int `json:"applied"`
	Repeated int `json:"repeated"`
	Failed   int `json:"failed"`
	// Errors are the rows not applied, by line.
	Errors []RowError `json:"errors"`
	// IgnoredColumns are header columns the import does not read.
	IgnoredColumns []string `json:"ignoredColumns,omitempty"`
}

// RowError is a row that was not applied.
type RowError struct {
	// Line is the row's line in the file (1 is the header).
	Line int `json:"line"`
	// Number is the number as written in the row.
	Number string `json:"number,omitempty"`
	// Field names the invalid column, when one is.
	Field string `json:"field,omitempty"`
	// Code says which rule the row broke (one of the Row* codes), for
	// programs and for pages that say it in another language; Error
	// says it in English.
	Code  string `json:"code"`
	Error string `json:"error"`
	// DuplicateOf is the earlier line with the same number (RowDuplicate).
	DuplicateOf int `json:"duplicateOf,omitempty"`
	// Value is the invalid cell as written, when it is not the number
	// (RowUntil, RowPast).
	Value string `json:"value,omitempty"`
	// Retry: the row was valid but the grain or the store failed;
	// importing the same file again retries it (and skips the rows
	// already written).
	Retry bool `json:"retry,omitempty"`
}

// The codes of a RowError.
const (
	RowNumber    = "number"     // no number, or not a phone number
	RowDuplicate = "duplicate"  // the number is on an earlier line too (DuplicateOf)
	RowText      = "text"       // by or reason breaks the command text rule (Field)
	RowUntil     = "until"      // until is not a date or time
	RowPast      = "until-past" // until is not in the future
	RowRefused   = "refused"    // the caller's grain refused the command
	RowRetry     = "retry"      // valid, but not applied: cancelled, or the grain or the store failed
)

// Importer turns a whitelist CSV into whitelist commands, one per row,
// sent through the caller grains like any admin command: each row is
// applied whole or not at all, and its event names who and why.
type Importer struct {
	commands    Commander
	numbers     *phone.Normalizer
	clock       func() time.Time
	log         *slog.Logger
	concurrency int
	rowTimeout  time.Duration
	// loc is the zone of dates in the until column (GUARD_TIMEZONE).
	loc *time.Location
}

// InZone returns a copy of im that reads dates in the until column as
// days in loc (the guard's GUARD_TIMEZONE); the default is UTC.
func (im *Importer) InZone(loc *time.Location) *Importer {
	c := *im
	c.loc = loc
	return &c
}

// New returns an importer sending through commands. clock (nil:
// time.Now) checks that expiries are in the future; log nil is
// slog.Default().
func New(commands Commander, numbers *phone.Normalizer, clock func() time.Time, log *slog.Logger) *Importer {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	// Eight commands in flight keep the grains and the store's group
	// commit busy without one import crowding out live calls.
	return &Importer{commands: commands, numbers: numbers, clock: clock, log: log, concurrency: 8, rowTimeout: 10 * time.Second, loc: time.UTC}
}

// row is a parsed data row.
type row struct {
	line   int
	raw    string // the number as written
	key    string
	by     string
	reason string
	until  time.Time
}

// column names the import reads, with the spellings it accepts.
var columnNames = map[string]string{
	"number": "number", "phone": "number", "caller": "number", "msisdn": "number",
	"by": "by", "who": "by",
	"reason": "reason", "why": "reason",
	"until": "until", "expires": "until", "expiry": "until",
	"since": "", // written by the export, not read: an entry starts when imported
}

// ImportWhitelist reads a whitelist CSV from r and whitelists each valid
// row. The first row is the header: number (required), until, by and
// reason, in any order; other columns are ignored. Commas, semicolons
// (what spreadsheets write in many locales) and tabs are accepted as
// separators, and a UTF-8 byte order mark is skipped. Invalid rows are
// reported by line and the valid ones applied; a file that is not a
// whitelist at all gives an error wrapping ErrCSV and applies nothing.
func (im *Importer) ImportWhitelist(ctx context.Context, r io.Reader, def Defaults) (Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Result{}, fmt.Errorf("import whitelist: read: %w", err)
	}
	sum := sha256.New()
	sum.Write(data)
	fmt.Fprintf(sum, "\x00%s\x00%s", def.By, def.Reason)
	res := Result{File: hex.EncodeToString(sum.Sum(nil))[:16], Errors: []RowError{}}
	rows, errs, ignored, err := im.parse(data, def)
	if err != nil {
		return Result{}, fmt.Errorf("import whitelist: %w", err)
	}
	res.Rows = len(rows) + len(errs)
	res.IgnoredColumns = ignored
	res.Errors = append(res.Errors, errs...)
	applied := im.apply(ctx, res.File, rows)
	for _, a := range applied {
		switch {
		case a.err != nil:
			res.Errors = append(res.Errors, *a.err)
		case a.repeated:
			res.Repeated++
		default:
			res.Applied++
		}
	}
	res.Failed = len(res.Errors)
	slices.SortStableFunc(res.Errors, func(a, b RowError) int { return cmp.Compare(a.Line, b.Line) })
	im.log.Info("whitelist imported", "file", res.File, "rows", res.Rows, "applied", res.Applied,
		"repeated", res.Repeated, "failed", res.Failed)
	return res, nil
}

// parse reads every row first, so that a file that is not CSV applies
// nothing, and validates each.
func (im *Importer) parse(data []byte, def Defaults) ([]row, []RowError, []string, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if !utf8.Valid(data) {
		return nil, nil, nil, &FileError{Code: FileEncoding}
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = separator(data)
	cr.FieldsPerRecord = -1 // short rows are reported per row, not as a file error
	cr.Comment = '#'
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, nil, &FileError{Code: FileEmpty}
	}
	if err != nil {
		return nil, nil, nil, &FileError{Code: FileSyntax, Detail: err.Error()}
	}
	cols := map[string]int{}
	var ignored []string
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		canon, known := columnNames[name]
		switch {
		case !known:
			ignored = append(ignored, h)
		case canon == "":
		case cols[canon] != 0:
			return nil, nil, nil, &FileError{Code: FileColumnTwice, Column: canon}
		default:
			cols[canon] = i + 1 // 0 means absent
		}
	}
	if cols["number"] == 0 {
		return nil, nil, nil, &FileError{Code: FileNoNumber, Header: strings.Join(header, string(cr.Comma))}
	}
	cell := func(rec []string, name string) string {
		i := cols[name] - 1
		if i < 0 || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	now := im.clock()
	var (
		rows []row
		errs []RowError
		seen = map[string]int{}
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, &FileError{Code: FileSyntax, Detail: err.Error()}
		}
		line, _ := cr.FieldPos(0)
		if len(rows)+len(errs) == MaxRows {
			return nil, nil, nil, &FileError{Code: FileTooManyRows, Max: MaxRows}
		}
		if blank(rec) {
			continue
		}
		rw := row{line: line, raw: cell(rec, "number")}
		bad := func(field, code, msg string) *RowError {
			errs = append(errs, RowError{Line: line, Number: clip(rw.raw), Field: field, Code: code, Error: msg})
			return &errs[len(errs)-1]
		}
		rw.key, err = im.key(rw.raw)
		if err != nil {
			bad("number", RowNumber, err.Error())
			continue
		}
		if first, dup := seen[rw.key]; dup {
			bad("number", RowDuplicate, fmt.Sprintf("%s is already on line %d", rw.key, first)).DuplicateOf = first
			continue
		}
		seen[rw.key] = line
		rw.by = orDefault(lists.RestoreCell(cell(rec, "by")), def.By)
		rw.reason = orDefault(lists.RestoreCell(cell(rec, "reason")), def.Reason)
		// The policy's rule (schema.CheckCommandText), checked here to
		// list every bad row at once.
		if err := schema.CheckCommandText("by", rw.by); err != nil {
			bad("by", RowText, err.Error()+" (give a by column or a default)")
			continue
		}
		if err := schema.CheckCommandText("reason", rw.reason); err != nil {
			bad("reason", RowText, err.Error()+" (give a reason column or a default)")
			continue
		}
		if u := cell(rec, "until"); u != "" {
			t, err := ParseUntil(u, now, im.loc)
			switch {
			case err != nil:
				bad("until", RowUntil, "until "+err.Error()).Value = clip(u)
				continue
			case !t.After(now):
				bad("until", RowPast, fmt.Sprintf("until %s is not in the future", t.UTC().Format(time.RFC3339))).Value = clip(u)
				continue
			}
			rw.until = t
		}
		rows = append(rows, rw)
	}
	return rows, errs, ignored, nil
}

// key normalises a number the way the admin API does: E.164 or the
// literal "anonymous", never a typo turned into the anonymous key.
func (im *Importer) key(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("number is required")
	case strings.EqualFold(raw, phone.AnonymousKey):
		return phone.AnonymousKey, nil
	}
	n := im.numbers.Normalize(raw)
	if n.Kind != phone.KindE164 {
		return "", fmt.Errorf("%q is not a phone number (E.164 such as +79990001122, or a national number of region %s)", clip(raw), im.numbers.Region())
	}
	return n.Key, nil
}

type applied struct {
	repeated bool
	err      *RowError
}

// apply sends one command per row, a few at a time. Rows have distinct
// numbers, so their order does not matter.
func (im *Importer) apply(ctx context.Context, file string, rows []row) []applied {
	out := make([]applied, len(rows))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(im.concurrency, len(rows)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = im.applyRow(ctx, file, rows[i])
			}
		}()
	}
	for i := range rows {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func (im *Importer) applyRow(ctx context.Context, file string, rw row) applied {
	fail := func(msg string, retry bool) applied {
		code := RowRefused
		if retry {
			code = RowRetry
		}
		return applied{err: &RowError{Line: rw.line, Number: clip(rw.raw), Code: code, Error: msg, Retry: retry}}
	}
	if err := ctx.Err(); err != nil {
		return fail("not applied: the import was cancelled", true)
	}
	cmd := caller.Command{Verb: caller.VerbWhitelist, Command: policy.Command{
		ID: fmt.Sprintf("%s:import:%s:%d", caller.VerbWhitelist, file, rw.line),
		By: rw.by, Why: rw.reason, Until: rw.until,
	}}
	rctx, cancel := context.WithTimeout(ctx, im.rowTimeout)
	defer cancel()
	a, err := im.commands.Command(rctx, rw.key, cmd)
	switch {
	case err == nil:
		return applied{repeated: a.Repeated}
	case errors.Is(err, caller.ErrInvalid), errors.Is(err, caller.ErrState):
		return fail(err.Error(), false)
	default:
		im.log.Warn("whitelist import: row not applied", "line", rw.line, "number", rw.key, "err", err)
		return fail("not applied, retry the import: "+err.Error(), true)
	}
}

// separator guesses the field separator from the header line.
func separator(data []byte) rune {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	best, n := ',', bytes.Count(line, []byte(","))
	for _, c := range []rune{';', '\t'} {
		if m := bytes.Count(line, []byte(string(c))); m > n {
			best, n = c, m
		}
	}
	return best
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func orDefault(v, def string) string {
	if v == "" {
		return strings.TrimSpace(def)
	}
	return v
}

// clip bounds text from the file echoed into results and logs.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}
