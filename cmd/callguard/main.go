// Command callguard guards a toll-free number: it decides every incoming
// call (pass, challenge, reject) from the caller's event history.
//
// Usage (the commands run dispatches, in the order `callguard help` lists
// them):
//
//	callguard serve                      run the guard
//	callguard whitelist add|remove|list|export|import ...
//	                                     the whitelist: admin commands sent to a running guard
//	callguard blacklist                  the numbers blocked now
//	callguard report [top]               calls, challenges, blocks, money saved
//	callguard callers                    caller profiles
//	callguard projections [status|rebuild]
//	                                     the read models and their lag
//	callguard block NUMBER --level N     block a number by hand
//	callguard unblock NUMBER             lift a block
//	callguard country|numtype block|remove|list ...
//	                                     rules on the caller number's country or type
//	callguard status NUMBER              a caller's standing and live counters
//	callguard audit NUMBER               a caller's history and why it was blocked
//	callguard user add|list|role|password|disable|enable ...
//	                                     the operator console's users
//	callguard replay [--limit-hour N]    what other policy settings would change
//	callguard demo                       a guard, a PBX and a carrier on loopback
//	callguard config                     print the effective configuration (secrets masked)
//	callguard version                    print the version (also --version)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand of the binary: its name, its arguments as
// `callguard help` shows them, and what it does.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "", "run the guard", runServe},
		{"whitelist", "add|remove NUMBER|--prefix P|--range A-B --reason WHY | list | export | import FILE.csv", "the whitelist", runWhitelist},
		{"blacklist", "[--prefix P] [--format text|csv|json]", "the numbers blocked now", runBlacklist},
		{"report", "[top] [--from D --to D] [--format text|csv|json]", "calls, challenges, blocks, money saved", runReport},
		{"callers", "[--prefix P]", "caller profiles", runCallers},
		{"projections", "[status] | rebuild [NAME|all]", "the read models and their lag", runProjections},
		{"block", "NUMBER|--prefix P|--range A-B --level N --reason WHY", "block a number, a prefix or a range by hand", runBlock},
		{"unblock", "NUMBER|--prefix P|--range A-B --reason WHY", "lift a block", runUnblock},
		{"ranges", "[--list whitelist|block] [--prefix P]", "the range rules: whitelist and block by prefix or range", runRanges},
		{"country", "block REGION --level N --reason WHY | remove REGION --reason WHY | list", "rules on the caller number's country (ISO 3166 region)", runCountry},
		{"numtype", "block TYPE --level N --reason WHY | remove TYPE --reason WHY | list", "rules on the caller number's type (premium-rate, voip, invalid, ...)", runNumType},
		{"status", "NUMBER", "a caller's standing and live counters", runStatus},
		{"attack", "on|off|status LINE [--reason WHY] [--hold]", "a called line's under-attack mode: every caller not whitelisted or verified is challenged", runAttack},
		{"line", "set|clear LINE [--limit-hour N ...] --reason WHY | list", "a called line's own policy settings (limits, levels), overriding the global ones", runLine},
		{"schedule", "add NAME --from HH:MM --to HH:MM [--days D] [--line L] [--limit-hour N ...] --reason WHY | remove NAME", "settings in force in a weekly time window of GUARD_TIMEZONE", runSchedule},
		{"schedules", "", "the schedules, and which are in force now", runSchedules},
		{"user", "add NAME --role viewer|operator|admin [--password-stdin] | list | role NAME ROLE | password NAME | disable NAME | enable NAME", "the operator console's users (passwords from a prompt or --password-stdin)", runUser},
		{"audit", "NUMBER [--json]", "a caller's whole history, with why each block happened", runAudit},
		{"replay", "[--limit-hour N ...]", "what would change under other policy settings", runReplay},
		{"demo", "[--dir DIR]", "a guard, a PBX and a carrier on loopback, with bots and people calling", runDemo},
		{"config", "[--markdown]", "print the effective configuration (secrets masked; --markdown: the README table)", runConfig},
		{"version", "", "print the version (also: callguard --version)", runVersion},
	}
}

// run executes one command line and returns the process exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if c.name != "serve" && c.name != "config" { // serve logs them, config prints them
				warnUnknownVars(stderr, environ)
			}
			err := c.run(ctx, args[1:], environ, stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, errHelp):
				return 0
			}
			var down *guardDownError
			if errors.As(err, &down) {
				// It says what was tried and what to do; the chain
				// around it would only repeat the URL.
				err = down
			}
			fmt.Fprintf(stderr, "callguard %s: %v\n", c.name, err)
			if isUsage(err) {
				return 2
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "callguard: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "callguard guards a toll-free number against nuisance and fraud calls.")
	fmt.Fprintln(w, "\nUsage: callguard COMMAND [arguments and flags, in any order]\n\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		if c.args != "" {
			fmt.Fprintf(tw, "  \t  callguard %s %s\n", c.name, c.args)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nConfiguration comes from GUARD_* environment variables: see `callguard config`.")
	fmt.Fprintln(w, "`callguard COMMAND -h` lists a command's flags.")
}

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
