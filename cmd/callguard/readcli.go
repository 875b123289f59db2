package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// withReadSide answers a read from the projections: directly when no
// guard holds the data directory (opening them catches them up with the
// log first), else through the running guard's admin API.
func withReadSide[T any](ctx context.Context, cfg Config, stderr io.Writer, direct func(*readside.ReadSide) (T, error), viaAPI func(*adminClient) (T, error)) (T, error) {
	return withStore(ctx, cfg, stderr, func(store events.Store) (T, error) {
		var zero T
		rs, err := openReadSide(ctx, cfg, store, newLogger(io.Discard, cfg))
		if errors.Is(err, runner.ErrLocked) {
			// With EventStoreDB the store is shared; the projection files
			// are what a running guard holds.
			return askGuard(cfg, stderr, viaAPI)
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

func parseRead(fs *flag.FlagSet, format *string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usageError{"unexpected arguments: " + fmt.Sprint(fs.Args())}
	}
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
	top := len(args) > 0 && args[0] == "top"
	if top {
		args = args[1:]
	}
	fs, format := newReadFlags("report", "report [top] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--callee NUMBER] [--limit N] [--format text|csv|json]", stderr)
	from := fs.String("from", "", "first day (default: 7 days ago)")
	to := fs.String("to", "", "last day (default: today)")
	callee := fs.String("callee", "", "one called (toll-free) number")
	limit := fs.Int("limit", 0, "top only: length of each list")
	if err := parseRead(fs, format, args); err != nil {
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
		fmt.Fprintf(stdout, "%d rows: %d applied, %d already applied, %d failed\n", res.Rows, res.Applied, res.Repeated, res.Failed)
		for _, e := range res.Errors {
			fmt.Fprintf(stdout, "  line %d %s: %s\n", e.Line, e.Number, e.Error)
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d rows were not imported", res.Failed)
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
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	rebuild := len(args) > 0 && args[0] == "rebuild"
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "status"):
	case rebuild && len(args) <= 2:
	default:
		return usageError{"usage: callguard projections [status] | rebuild [NAME|all]"}
	}
	name := "all"
	if rebuild && len(args) == 2 {
		name = args[1]
	}
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
		return rs.Runner.Status(ctx)
	}, func(c *adminClient) ([]runner.Status, error) {
		if rebuild {
			v, err := c.Rebuild(ctx, name)
			return v.Projections, err
		}
		v, err := c.Projections(ctx)
		return v.Projections, err
	})
	if err != nil {
		return err
	}
	return runner.WriteText(stdout, sts)
}
