package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/readside"
)

// rangeFlags are --prefix and --range of whitelist add|remove, block and
// unblock: the command is then about every number of a prefix or range
// (a range rule), not one number.
type rangeFlags struct {
	prefix, rng *string
}

func addRangeFlags(fs *flag.FlagSet) *rangeFlags {
	return &rangeFlags{
		prefix: fs.String("prefix", "", "instead of a NUMBER: every number starting with this (+7999123, 8999123)"),
		rng:    fs.String("range", "", "instead of a NUMBER: the numbers FROM-TO of one length (+79991230000-+79991239999)"),
	}
}

func (r *rangeFlags) given() bool { return r != nil && (*r.prefix != "" || *r.rng != "") }

// text is the range as given, for the DELETE path.
func (r *rangeFlags) text() string {
	if *r.prefix != "" {
		return *r.prefix
	}
	return *r.rng
}

// request fills the range of an add request.
func (r *rangeFlags) request(req adminapi.RangeRequest) (adminapi.RangeRequest, error) {
	if *r.prefix != "" {
		req.Prefix = *r.prefix
		return req, nil
	}
	lo, hi, isRange, err := adminapi.SplitRange(*r.rng)
	switch {
	case err != nil:
		return req, usageError{"--range " + err.Error()}
	case !isRange:
		return req, usageError{fmt.Sprintf("--range %q is not FROM-TO; for the numbers starting with it use --prefix", *r.rng)}
	}
	req.From, req.To = lo, hi
	return req, nil
}

// sendOrRange parses an admin command's flags and its one number,
// connects to the running guard and prints what the command wrote; with
// --prefix or --range it sends the range command doRange instead.
func (f *adminFlags) sendOrRange(ctx context.Context, args, environ []string, stdout io.Writer, rf *rangeFlags,
	do func(c *adminClient, number string) (adminapi.CommandResult, error), doRange func(c *adminClient) (adminapi.RangeResult, error)) error {
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return err
	}
	if !rf.given() {
		if err := wantArgs(f.fs, pos, 1); err != nil {
			return err
		}
		c, err := cliClient(environ)
		if err != nil {
			return err
		}
		res, err := do(c, pos[0])
		if err != nil {
			return err
		}
		return printResult(stdout, *f.asJSON, res)
	}
	if *rf.prefix != "" && *rf.rng != "" {
		return usageError{"give --prefix or --range, not both"}
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("give a NUMBER or --prefix/--range, not both (got %q)", pos)}
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	res, err := doRange(c)
	if err != nil {
		return err
	}
	if *f.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Repeated {
		_, err = fmt.Fprintf(stdout, "%s (%s): repeated: already applied, nothing new written\n", res.Range, res.List)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s (%s): %v (in force on every node as it folds the rules stream, revision %d)\n", res.Range, res.List, res.Events, res.Revision)
	return err
}

// runRanges: callguard ranges [--list whitelist|block] [--prefix P].
func runRanges(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs, format := newReadFlags("ranges", "ranges [--list whitelist|block] [--prefix +7999] [--expired] [--limit N] [--after KEY] [--format text|json]", stderr)
	var q lists.RangeQuery
	list := fs.String("list", "", "whitelist or block (default both)")
	fs.StringVar(&q.Prefix, "prefix", "", "rules whose range starts with this")
	fs.BoolVar(&q.IncludeExpired, "expired", false, "include rules past their expiry")
	fs.IntVar(&q.Limit, "limit", 0, "page size")
	fs.StringVar(&q.After, "after", "", "the page after this entry (the next page's key, as printed)")
	if err := parseRead(fs, format, args); err != nil {
		return err
	}
	if *format == "csv" {
		return usageError{"ranges: --format text or json"}
	}
	q.List = schema.RangeList(*list)
	if q.List != "" && !q.List.Valid() {
		return usageError{fmt.Sprintf("--list %q: want whitelist or block", *list)}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if q.Prefix, err = numberPrefix(cfg, q.Prefix); err != nil {
		return err
	}
	p, err := withReadSide(ctx, cfg, stderr, func(rs *readside.ReadSide) (lists.Page[lists.RangeEntry], error) {
		return rs.Lists.Ranges(ctx, q)
	}, func(c *adminClient) (lists.Page[lists.RangeEntry], error) { return c.ListRanges(ctx, q) })
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(stdout, p)
	}
	return lists.WriteRangesText(stdout, p, location(cfg))
}

// The replay settings (flags, and keys of the admin API's replay) that
// try a range rule before it is enforced.
const (
	trySettingBlock     = "try-block"
	trySettingWhitelist = "try-whitelist"
)

// triedRules reads the replay's hypothetical range rules: block as
// RANGE:LEVEL, whitelist as RANGE, ranges read like numbers.
func triedRules(n *phone.Normalizer, block, whitelist string) ([]schema.RangeMatch, error) {
	var out []schema.RangeMatch
	if block != "" {
		i := strings.LastIndex(block, ":")
		if i < 0 {
			return nil, fmt.Errorf("--%s %q: want RANGE:LEVEL, such as +7999123:7", trySettingBlock, block)
		}
		rng, err := adminapi.NormalizeRange(n, block[:i])
		if err != nil {
			return nil, fmt.Errorf("--%s: %v", trySettingBlock, err)
		}
		level, err := strconv.Atoi(block[i+1:])
		if err != nil || level < schema.MinLevel || level > schema.MaxLevel {
			return nil, fmt.Errorf("--%s: level %q, want %d to %d", trySettingBlock, block[i+1:], schema.MinLevel, schema.MaxLevel)
		}
		out = append(out, schema.RangeMatch{Range: rng, List: schema.RangeBlock, Level: level, By: "replay", Why: "tried before it is enforced"})
	}
	if whitelist != "" {
		rng, err := adminapi.NormalizeRange(n, whitelist)
		if err != nil {
			return nil, fmt.Errorf("--%s: %v", trySettingWhitelist, err)
		}
		out = append(out, schema.RangeMatch{Range: rng, List: schema.RangeWhitelist, By: "replay", Why: "tried before it is enforced"})
	}
	return out, nil
}
