package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/schema"
)

// runCountry: callguard country block|remove|list — rules on the caller
// number's country.
func runCountry(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	return runOrigin(ctx, schema.OriginCountry, "country", "REGION", args, environ, stdout, stderr)
}

// runNumType: callguard numtype block|remove|list — rules on the caller
// number's type.
func runNumType(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	return runOrigin(ctx, schema.OriginNumberType, "numtype", "TYPE", args, environ, stdout, stderr)
}

func runOrigin(ctx context.Context, kind schema.OriginKind, name, value string, args, environ []string, stdout, stderr io.Writer) error {
	use := fmt.Sprintf("usage: callguard %s block %s --level N --reason WHY [--until T] [--by WHO] | remove %s --reason WHY [--by WHO] | list", name, value, value)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, use)
		return errHelp
	}
	if len(args) == 0 || (args[0] != "block" && args[0] != "remove" && args[0] != "list") {
		return usageError{use}
	}
	verb := args[0]
	f := newAdminFlags(name+" "+verb, use, stderr)
	level := f.fs.Int("level", 0, "the level calls get (1-5 challenge, 6-9 reject)")
	until := f.fs.String("until", "", "when the rule ends by itself: a duration (72h), a date or an RFC 3339 time")
	want := 1
	if verb == "list" {
		want = 0
	}
	pos, err := f.parse(args[1:], want)
	if err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	if verb == "list" {
		rs, err := c.ListOrigins(ctx)
		if err != nil {
			return err
		}
		var mine []adminapi.OriginRule
		for _, r := range rs {
			if r.Kind == kind {
				mine = append(mine, r)
			}
		}
		if *f.asJSON {
			return json.NewEncoder(stdout).Encode(mine)
		}
		if len(mine) == 0 {
			_, err = fmt.Fprintf(stdout, "no %s rules\n", name)
			return err
		}
		var b strings.Builder
		for _, r := range mine {
			fmt.Fprintf(&b, "%s level %d since %s", r.Value, r.Level, r.Since.UTC().Format(time.RFC3339))
			if !r.Until.IsZero() {
				fmt.Fprintf(&b, " until %s", r.Until.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(&b, " by %s: %s\n", r.By, r.Why)
		}
		_, err = io.WriteString(stdout, b.String())
		return err
	}
	var res adminapi.OriginResult
	if verb == "block" {
		u, err := parseUntil(*until, environ)
		if err != nil {
			return err
		}
		res, err = c.SetOrigin(ctx, kind, adminapi.OriginRequest{Value: pos[0], Level: *level, By: *f.by, Reason: *f.reason, Until: u, IdempotencyKey: *f.key})
		if err != nil {
			return err
		}
	} else if res, err = c.RemoveOrigin(ctx, kind, pos[0], adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key}); err != nil {
		return err
	}
	if *f.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Repeated {
		_, err = fmt.Fprintf(stdout, "%s %s: repeated: already applied, nothing new written\n", name, res.Value)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s %s: %v (in force on every node as it folds the rules stream, revision %d)\n", name, res.Value, res.Events, res.Revision)
	return err
}
