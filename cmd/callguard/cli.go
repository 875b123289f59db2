package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events/schema"
)

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	fs     *flag.FlagSet
	by     *string
	reason *string
	key    *string
	asJSON *bool
}

func newAdminFlags(name, usage string, stderr io.Writer) *adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	by := "admin"
	if u, err := user.Current(); err == nil && u.Username != "" {
		by = u.Username
	}
	f := &adminFlags{
		fs:     fs,
		by:     fs.String("by", by, "who is doing this (recorded in the event)"),
		reason: fs.String("reason", "", "why (required; recorded in the event)"),
		key:    fs.String("idempotency-key", "", "repeat a command safely: the same key is applied once"),
		asJSON: fs.Bool("json", false, "print the result as JSON"),
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: callguard %s\n", usage)
		fs.PrintDefaults()
	}
	return f
}

// parse parses args (flags may come before or after the number, see
// parseArgs) and returns the positional arguments.
func (f *adminFlags) parse(args []string, want int) ([]string, error) {
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return nil, err
	}
	return pos, wantArgs(f.fs, pos, want)
}

// parseUntil reads --until like the whitelist CSV's until column
// (importer.ParseUntil): a duration, a date in GUARD_TIMEZONE or an RFC
// 3339 time.
func parseUntil(s string, environ []string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return time.Time{}, err
	}
	t, err := importer.ParseUntil(s, time.Now(), location(cfg))
	if err != nil {
		return time.Time{}, usageError{"--until " + err.Error()}
	}
	return t, nil
}

func printResult(stdout io.Writer, asJSON bool, res adminapi.CommandResult) error {
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Repeated {
		_, err := fmt.Fprintf(stdout, "%s: repeated: already applied, nothing new written\n", res.Number)
		return err
	}
	// Revision counts from 0: the caller's history holds Revision+1 events.
	_, err := fmt.Fprintf(stdout, "%s: %s (the caller's history now holds %s)\n", res.Number, strings.Join(res.Events, ", "), plural(int(res.Revision)+1, "event", "events"))
	return err
}

// runWhitelist: callguard whitelist add|remove NUMBER --reason R.
func runWhitelist(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runWhitelistList(ctx, args[1:], environ, stdout, stderr, false)
		case "export":
			return runWhitelistList(ctx, args[1:], environ, stdout, stderr, true)
		case "import":
			return runWhitelistImport(ctx, args[1:], environ, stdout, stderr)
		}
	}
	const use = "usage: callguard whitelist add|remove NUMBER|--prefix P|--range FROM-TO --reason WHY [--by WHO] [--until 72h|DATE|TIME] | list | export | import FILE.csv"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, use+"\n`callguard whitelist VERB -h` lists a verb's flags.")
		return errHelp
	}
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove") {
		return usageError{use}
	}
	verb := args[0]
	f := newAdminFlags("whitelist "+verb, "whitelist "+verb+" NUMBER|--prefix P|--range FROM-TO --reason WHY [--by WHO] [--until 72h|DATE|RFC3339]", stderr)
	until := f.fs.String("until", "", "add only: the entry expires after this duration (720h, 30d), after this date (2026-12-31, in GUARD_TIMEZONE) or at this RFC 3339 time")
	rf := addRangeFlags(f.fs)
	doRange := func(c *adminClient) (adminapi.RangeResult, error) {
		if verb == "remove" {
			return c.RemoveRange(ctx, schema.RangeWhitelist, rf.text(), adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
		}
		u, err := parseUntil(*until, environ)
		if err != nil {
			return adminapi.RangeResult{}, err
		}
		req, err := rf.request(adminapi.RangeRequest{By: *f.by, Reason: *f.reason, Until: u, IdempotencyKey: *f.key})
		if err != nil {
			return adminapi.RangeResult{}, err
		}
		return c.AddRange(ctx, schema.RangeWhitelist, req)
	}
	return f.sendOrRange(ctx, args[1:], environ, stdout, rf, func(c *adminClient, number string) (adminapi.CommandResult, error) {
		if verb == "remove" {
			return c.Unwhitelist(ctx, number, adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
		}
		u, err := parseUntil(*until, environ)
		if err != nil {
			return adminapi.CommandResult{}, err
		}
		return c.Whitelist(ctx, adminapi.WhitelistRequest{Number: number, By: *f.by, Reason: *f.reason, Until: u, IdempotencyKey: *f.key})
	}, doRange)
}

// runBlock: callguard block NUMBER --level N --reason R.
func runBlock(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("block", "block NUMBER|--prefix P|--range FROM-TO --level 1-9 --reason WHY [--by WHO] [--until 72h|DATE|RFC3339]", stderr)
	level := f.fs.Int("level", 0, "block level: 1-5 challenge the caller, 6-9 reject its calls (required)")
	until := f.fs.String("until", "", "the block expires after this duration (72h, 30d), after this date (2026-12-31, in GUARD_TIMEZONE) or at this RFC 3339 time (default: until lifted)")
	rf := addRangeFlags(f.fs)
	return f.sendOrRange(ctx, args, environ, stdout, rf, func(c *adminClient, number string) (adminapi.CommandResult, error) {
		u, err := parseUntil(*until, environ)
		if err != nil {
			return adminapi.CommandResult{}, err
		}
		return c.Block(ctx, number, adminapi.BlockRequest{Level: *level, By: *f.by, Reason: *f.reason, Until: u, IdempotencyKey: *f.key})
	}, func(c *adminClient) (adminapi.RangeResult, error) {
		u, err := parseUntil(*until, environ)
		if err != nil {
			return adminapi.RangeResult{}, err
		}
		req, err := rf.request(adminapi.RangeRequest{Level: *level, By: *f.by, Reason: *f.reason, Until: u, IdempotencyKey: *f.key})
		if err != nil {
			return adminapi.RangeResult{}, err
		}
		return c.AddRange(ctx, schema.RangeBlock, req)
	})
}

// runUnblock: callguard unblock NUMBER --reason R.
func runUnblock(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("unblock", "unblock NUMBER|--prefix P|--range FROM-TO --reason WHY [--by WHO]", stderr)
	rf := addRangeFlags(f.fs)
	return f.sendOrRange(ctx, args, environ, stdout, rf, func(c *adminClient, number string) (adminapi.CommandResult, error) {
		return c.Unblock(ctx, number, adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
	}, func(c *adminClient) (adminapi.RangeResult, error) {
		return c.RemoveRange(ctx, schema.RangeBlock, rf.text(), adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
	})
}

// runStatus: callguard status NUMBER — the caller's standing and counters.
func runStatus(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("status", "status NUMBER", stderr)
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	v, err := c.Caller(ctx, pos[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cliClient(environ []string) (*adminClient, error) {
	cfg, err := loadConfig(environ)
	if err != nil {
		return nil, err
	}
	return newAdminClient(cfg, "")
}

// plural says n things: "1 number", "3 numbers".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
