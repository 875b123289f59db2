package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// withReadSide answers a read from the projections, by withStore's rule:
// directly when no guard holds the data directory (opening them catches
// them up with the log first), else through a running guard's admin API.
func withReadSide[T any](ctx context.Context, cfg Config, stderr io.Writer, direct func(*readside.ReadSide) (T, error), viaAPI func(*adminClient) (T, error)) (T, error) {
	return withStore(ctx, cfg, stderr, func(store events.Store) (T, error) {
		var zero T
		if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
			// With a store server the store opens anywhere, but the
			// projections live in the data directory: a read does not
			// create one.
			return askGuard(cfg, stderr, fmt.Sprintf("no projections in %s (%sDATA_DIR)", cfg.DataDir, envPrefix), viaAPI)
		}
		rs, err := openReadSide(ctx, cfg, store, newLogger(io.Discard, cfg))
		if errors.Is(err, runner.ErrLocked) {
			// With a store server the store is shared; the projection files
			// are what a running guard holds.
			return askGuard(cfg, stderr, fmt.Sprintf("a guard holds the projections in %s (%sDATA_DIR)", cfg.DataDir, envPrefix), viaAPI)
		}
		if err != nil {
			return zero, err
		}
		defer rs.Close()
		if err := rs.Start(ctx); err != nil {
			return zero, err
		}
		if err := rs.Runner.CatchUp(ctx); err != nil {
			return zero, fmt.Errorf("catch the projections up: %w", err)
		}
		return direct(rs)
	}, viaAPI)
}

func newReadFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "text, csv or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: callguard %s\n", usage)
		fs.PrintDefaults()
	}
	return fs, format
}

// parseRead parses a read command's flags (see parseArgs) and checks that
// no positional argument came with them.
func parseRead(fs *flag.FlagSet, format *string, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0); err != nil {
		return err
	}
	return checkFormat(format)
}

func checkFormat(format *string) error {
	switch *format {
	case "text", "csv", "json":
		return nil
	}
	return usageError{fmt.Sprintf("--format %q: want text, csv or json", *format)}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func location(cfg Config) *time.Location {
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// runReport: callguard report [top] [--from D] [--to D] [--callee N].
func runReport(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs, format := newReadFlags("report", "report [top] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--callee NUMBER] [--limit N] [--format text|csv|json]", stderr)
	from := fs.String("from", "", "first day (default: 7 days ago)")
	to := fs.String("to", "", "last day (default: today)")
	callee := fs.String("callee", "", "one called (toll-free) number")
	limit := fs.Int("limit", 0, "top only: length of each list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	top := len(pos) == 1 && pos[0] == "top"
	if !top {
		if err := wantArgs(fs, pos, 0); err != nil {
			return err
		}
	}
	if err := checkFormat(format); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if top {
		q := reports.TopQuery{From: *from, To: *to, Limit: *limit}
		t, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (reports.Top, error) { return rs.Reports.Top(ctx, q) },
			func(c *adminClient) (reports.Top, error) { return c.Top(ctx, q) })
		if err != nil {
			return err
		}
		switch *format {
		case "csv":
			return t.WriteCSV(stdout)
		case "json":
			return writeJSON(stdout, t)
		}
		return t.WriteText(stdout)
	}
	q := reports.Query{From: *from, To: *to, Callee: *callee}
	d, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (reports.Daily, error) { return rs.Reports.Daily(ctx, q) },
		func(c *adminClient) (reports.Daily, error) { return c.Daily(ctx, q) })
	if err != nil {
		return err
	}
	switch *format {
	case "csv":
		return d.WriteCSV(stdout)
	case "json":
		return writeJSON(stdout, d)
	}
	return d.WriteText(stdout)
}

// runBlacklist: callguard blacklist [--prefix P] [--level N] [--format F].
func runBlacklist(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs, format := newReadFlags("blacklist", "blacklist [--prefix +7999] [--level N] [--kind auto|manual] [--expired] [--limit N] [--after NUMBER] [--format text|csv|json]", stderr)
	var q lists.Query
	fs.StringVar(&q.Prefix, "prefix", "", "numbers starting with this")
	fs.IntVar(&q.Level, "level", 0, "blocks at this level")
	kind := fs.String("kind", "", "auto or manual")
	fs.BoolVar(&q.IncludeExpired, "expired", false, "include blocks past their expiry")
	fs.IntVar(&q.Limit, "limit", 0, "page size")
	fs.StringVar(&q.After, "after", "", "the page after this number")
	if err := parseRead(fs, format, args); err != nil {
		return err
	}
	q.Kind = schema.BlockKind(*kind)
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if q.Prefix, err = numberPrefix(cfg, q.Prefix); err != nil {
		return err
	}
	p, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (lists.Page[lists.BlacklistEntry], error) {
		return rs.Lists.Blacklist(ctx, q)
	}, func(c *adminClient) (lists.Page[lists.BlacklistEntry], error) { return c.ListBlacklist(ctx, q) })
	if err != nil {
		return err
	}
	switch *format {
	case "csv":
		return lists.WriteBlacklistCSV(stdout, p.Items)
	case "json":
		return writeJSON(stdout, p)
	}
	return lists.WriteBlacklistText(stdout, p, location(cfg))
}

// runWhitelistList: callguard whitelist list|export.
func runWhitelistList(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer, export bool) error {
	fs, format := newReadFlags("whitelist list", "whitelist list|export [--prefix +7999] [--limit N] [--format text|csv|json]", stderr)
	var q lists.Query
	fs.StringVar(&q.Prefix, "prefix", "", "numbers starting with this")
	fs.IntVar(&q.Limit, "limit", 0, "page size")
	fs.StringVar(&q.After, "after", "", "the page after this number")
	fs.BoolVar(&q.IncludeExpired, "expired", false, "include entries past their expiry")
	if err := parseRead(fs, format, args); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if q.Prefix, err = numberPrefix(cfg, q.Prefix); err != nil {
		return err
	}
	if export {
		q.Limit = lists.Unlimited
		data, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) ([]byte, error) {
			p, err := rs.Lists.Whitelist(ctx, q)
			if err != nil {
				return nil, err
			}
			var b bytes.Buffer
			err = lists.WriteWhitelistCSV(&b, p.Items)
			return b.Bytes(), err
		}, func(c *adminClient) ([]byte, error) { return c.ExportWhitelist(ctx, q) })
		if err != nil {
			return err
		}
		_, err = stdout.Write(data)
		return err
	}
	p, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (lists.Page[lists.WhitelistEntry], error) {
		return rs.Lists.Whitelist(ctx, q)
	}, func(c *adminClient) (lists.Page[lists.WhitelistEntry], error) { return c.ListWhitelist(ctx, q) })
	if err != nil {
		return err
	}
	switch *format {
	case "csv":
		return lists.WriteWhitelistCSV(stdout, p.Items)
	case "json":
		return writeJSON(stdout, p)
	}
	return lists.WriteWhitelistText(stdout, p, location(cfg))
}

// runWhitelistImport: callguard whitelist import FILE — through the running
// guard: each row is an admin command to a caller grain.
func runWhitelistImport(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("whitelist import", "whitelist import FILE.csv [--by WHO] [--reason WHY]", stderr)
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	res, err := c.ImportWhitelist(ctx, data, importer.Defaults{By: *f.by, Reason: *f.reason})
	if err != nil {
		return err
	}
	if *f.asJSON {
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s: %d applied, %d already applied, %d failed\n", plural(res.Rows, "row", "rows"), res.Applied, res.Repeated, res.Failed)
		for _, e := range res.Errors {
			fmt.Fprintf(stdout, "  line %d %s: %s\n", e.Line, e.Number, e.Error)
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%s not imported", plural(res.Failed, "row was", "rows were"))
	}
	return nil
}

// runCallers: callguard callers [--prefix P] — caller profiles.
func runCallers(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs, format := newReadFlags("callers", "callers [--prefix +7999] [--limit N] [--format text|json]", stderr)
	var q profiles.Query
	fs.StringVar(&q.Prefix, "prefix", "", "numbers starting with this")
	fs.IntVar(&q.Limit, "limit", 0, "page size")
	fs.StringVar(&q.After, "after", "", "the page after this number")
	if err := parseRead(fs, format, args); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if q.Prefix, err = numberPrefix(cfg, q.Prefix); err != nil {
		return err
	}
	p, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (profiles.Page, error) { return rs.Profiles.Search(ctx, q) },
		func(c *adminClient) (profiles.Page, error) { return c.Callers(ctx, q) })
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(stdout, p)
	}
	return profiles.WriteText(stdout, p, location(cfg))
}

// runProjections: callguard projections [status] | rebuild [NAME|all].
func runProjections(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	const use = "projections [status] | rebuild [NAME|all] [--format text|json]"
	fs, format := newReadFlags("projections", use, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	rebuild := len(pos) > 0 && pos[0] == "rebuild"
	switch {
	case len(pos) == 0 || (len(pos) == 1 && pos[0] == "status"):
	case rebuild && len(pos) <= 2:
	default:
		fs.Usage()
		return usageError{"usage: callguard " + use}
	}
	if *format == "csv" {
		return usageError{"--format: want text or json"}
	}
	if err := checkFormat(format); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	name := "all"
	if rebuild && len(pos) == 2 {
		name = pos[1]
	}
	var rebuilt []string
	sts, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) ([]runner.Status, error) {
		if rebuild {
			var names []string
			if name != "all" {
				names = []string{name}
			}
			if err := rs.Runner.Rebuild(ctx, names...); err != nil {
				return nil, err
			}
			if err := rs.Runner.CatchUp(ctx); err != nil {
				return nil, err
			}
		}
		sts, err := rs.Runner.Status(ctx)
		for _, st := range sts {
			if rebuild && (name == "all" || st.Name == name) {
				rebuilt = append(rebuilt, st.Name)
			}
		}
		return sts, err
	}, func(c *adminClient) ([]runner.Status, error) {
		if !rebuild {
			v, err := c.Projections(ctx)
			return v.Projections, err
		}
		v, err := c.Rebuild(ctx, name)
		if err != nil {
			return nil, err
		}
		rebuilt = v.Rebuilding
		return waitRebuilt(ctx, c, v)
	})
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(stdout, struct {
			Rebuilt     []string        `json:"rebuilt,omitempty"`
			Projections []runner.Status `json:"projections"`
		}{rebuilt, sts})
	}
	if !rebuild {
		return runner.WriteText(stdout, sts)
	}
	return writeRebuilt(stdout, rebuilt, sts)
}

// waitRebuilt waits until the projections a guard started rebuilding
// (its answer v) have replayed the log as far as it went when the
// rebuild began, and returns their standing then. A rebuild replays in
// the background: the answer to the request shows it at the start.
func waitRebuilt(ctx context.Context, c *adminClient, v adminapi.ProjectionsView) ([]runner.Status, error) {
	target := map[string]uint64{}
	for _, st := range v.Projections {
		if slices.Contains(v.Rebuilding, st.Name) {
			target[st.Name] = st.Events + st.LagEvents
		}
	}
	for {
		cur, err := c.Projections(ctx)
		if err != nil {
			return nil, err
		}
		done := true
		for _, st := range cur.Projections {
			want, ok := target[st.Name]
			if !ok {
				continue
			}
			if st.State == runner.Failed {
				why := "see callguard projections"
				if st.Failure != nil {
					why = st.Failure.Error
				}
				return nil, fmt.Errorf("the rebuild of %s stopped on an event: %s", st.Name, why)
			}
			if st.LagEvents > 0 && (st.Events < want || st.LagAtLeast) {
				done = false
			}
		}
		if done {
			return cur.Projections, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the rebuild (it goes on in the guard; see callguard projections): %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// writeRebuilt says what a rebuild did, one line.
func writeRebuilt(w io.Writer, names []string, sts []runner.Status) error {
	var parts []string
	for _, st := range sts {
		if slices.Contains(names, st.Name) {
			p := fmt.Sprintf("%s (%s)", st.Name, plural(int(st.Events), "event", "events"))
			if st.LagEvents > 0 {
				p += fmt.Sprintf(", %d behind the log", st.LagEvents)
			}
			parts = append(parts, p)
		}
	}
	_, err := fmt.Fprintf(w, "rebuilt %s from the start of the log\n", strings.Join(parts, ", "))
	return err
}
