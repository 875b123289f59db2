package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
)

// runAttack: callguard attack on|off|status LINE — a called line's
// under-attack mode.
func runAttack(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	const use = "usage: callguard attack on LINE --reason WHY [--hold] [--by WHO] | off LINE --reason WHY [--by WHO] | status LINE"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, use+"\n`callguard attack VERB -h` lists a verb's flags.")
		return errHelp
	}
	if len(args) == 0 || (args[0] != "on" && args[0] != "off" && args[0] != "status") {
		return usageError{use}
	}
	verb := args[0]
	f := newAdminFlags("attack "+verb, "attack "+verb+" LINE"+map[string]string{
		"on": " --reason WHY [--hold] [--by WHO]", "off": " --reason WHY [--by WHO]", "status": "",
	}[verb], stderr)
	hold := false
	if verb == "on" {
		f.fs.BoolVar(&hold, "hold", false, "keep the mode on until `attack off`, whatever the rate (default: it ends by itself after GUARD_ATTACK_CALM of calm)")
	}
	pos, err := f.parse(args[1:], 1)
	if err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	var v adminapi.AttackView
	switch verb {
	case "on":
		v, err = c.AttackOn(ctx, pos[0], adminapi.AttackRequest{By: *f.by, Reason: *f.reason, Hold: hold, IdempotencyKey: *f.key})
	case "off":
		v, err = c.AttackOff(ctx, pos[0], adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
	default:
		v, err = c.Attack(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if *f.asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	_, err = io.WriteString(stdout, attackText(v))
	return err
}

// attackText says a line's mode in one line.
func attackText(v adminapi.AttackView) string {
	var b strings.Builder
	b.WriteString(v.Line + ": ")
	switch {
	case v.Repeated:
		b.WriteString("repeated: already applied, nothing new written; ")
	case len(v.Events) > 0:
		b.WriteString(strings.Join(v.Events, ", ") + "; ")
	}
	if v.UnderAttack {
		how := "by the detector"
		if v.Manual {
			how = "by " + v.By
			if v.Hold {
				how += ", held until switched off"
			}
		}
		fmt.Fprintf(&b, "UNDER ATTACK since %s (%s: %s); ", v.Since.UTC().Format(time.RFC3339), how, v.Why)
	} else {
		b.WriteString("not under attack; ")
	}
	fmt.Fprintf(&b, "%.1f new callers a second now, threshold %g", v.Rate, v.Threshold)
	if v.Peak > 0 {
		fmt.Fprintf(&b, ", peak %.1f", v.Peak)
	}
	b.WriteString("\n")
	return b.String()
}
