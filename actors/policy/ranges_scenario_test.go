package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events/schema"
)

// Range rules in scenario scripts:
//
//	range-block PREFIX|RANGE level=N by=WHO why=WHY [until=T] [at T]
//	range-whitelist PREFIX|RANGE by=WHO why=WHY [until=T] [at T]
//	range-remove whitelist|block PREFIX|RANGE by=WHO why=WHY [at T]
//	    change the rule table the calls are decided with (ranges in
//	    stored form: +7999123, +79991230000-+79991239999); print the event.
//
// A call decided with range rules prints, after its verdict, the rules it
// recorded ("  range block +7999123 level=7") and, when one of them
// decided, the reason.

func (r *runner) rangeCommand(cmd string, a *scripttest.Command) (string, error) {
	args := a.Args
	list := schema.RangeWhitelist
	switch cmd {
	case "range-block":
		list = schema.RangeBlock
	case "range-remove":
		if len(args) != 2 {
			return "", fmt.Errorf("%s: want whitelist|block and a range, got %q", cmd, args)
		}
		list, args = schema.RangeList(args[0]), args[1:]
	}
	if len(args) != 1 {
		return "", fmt.Errorf("%s: want one range, got %q", cmd, args)
	}
	c, err := r.command(a)
	if err != nil {
		return "", err
	}
	var rec *schema.Record
	if cmd == "range-remove" {
		rec, err = r.rules.Remove(list, args[0], c.ID, c.By, c.Why, r.clock)
	} else {
		rec, err = r.rules.Add(rules.Command{List: list, Range: args[0], Level: c.Level, Until: c.Until, CommandID: c.ID, By: c.By, Why: c.Why}, r.clock)
	}
	switch {
	case err != nil:
		return "error: " + err.Error(), nil
	case rec == nil:
		return "already done", nil
	}
	next, err := r.rules.Fold(r.rulesRev, rec.Payload)
	if err != nil {
		return "", err
	}
	r.rules, r.rulesRev = next, r.rulesRev+1
	return "+ " + r.fmtRangeEvent(rec.Payload), nil
}

func (r *runner) fmtRangeEvent(p schema.Payload) string {
	quote := func(s string) string {
		if strings.ContainsAny(s, " \"") {
			return strconv.Quote(s)
		}
		return s
	}
	var f []string
	switch e := p.(type) {
	case schema.RangeBlocked:
		f = append(f, "range="+e.Range, fmt.Sprintf("level=%d", e.Level))
		if e.Until != nil {
			f = append(f, "until="+r.fmtTime(*e.Until))
		}
		f = append(f, "by="+quote(e.By), "why="+quote(e.Why))
	case schema.RangeWhitelisted:
		f = append(f, "range="+e.Range)
		if e.Until != nil {
			f = append(f, "until="+r.fmtTime(*e.Until))
		}
		f = append(f, "by="+quote(e.By), "why="+quote(e.Why))
	case schema.RangeRemoved:
		f = append(f, "range="+e.Range, "list="+string(e.List), "by="+quote(e.By), "why="+quote(e.Why))
	}
	return p.EventType() + " " + strings.Join(f, " ")
}

// fmtRanges prints the range rules d's CallReceived recorded, and the
// reason when one of them decided.
func (r *runner) fmtRanges(d Decision) string {
	var lines []string
	for _, rec := range d.Records {
		e, ok := rec.Payload.(schema.CallReceived)
		if !ok {
			continue
		}
		for _, m := range e.Ranges {
			line := fmt.Sprintf("  range %s %s", m.List, m.Range)
			if m.Level > 0 {
				line += fmt.Sprintf(" level=%d", m.Level)
			}
			lines = append(lines, line)
		}
		switch e.Rule {
		case schema.RuleRangeBlock, schema.RuleRangeWhitelist:
			lines = append(lines, "  reason: "+e.Reason)
		case schema.RuleVerified:
			if len(e.Ranges) > 0 {
				lines = append(lines, "  reason: "+e.Reason)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// tried reads a replay's hypothetical range rules.
func (r *runner) tried(a *scripttest.Command) ([]schema.RangeMatch, error) {
	var try []schema.RangeMatch
	if v, ok := a.Opt("try-block"); ok {
		rng, lvl, _ := strings.Cut(v, ":")
		n, err := strconv.Atoi(lvl)
		if err != nil {
			return nil, fmt.Errorf("try-block=RANGE:LEVEL: %w", err)
		}
		try = append(try, schema.RangeMatch{Range: rng, List: schema.RangeBlock, Level: n, By: "replay", Why: "tried"})
	}
	if v, ok := a.Opt("try-whitelist"); ok {
		try = append(try, schema.RangeMatch{Range: v, List: schema.RangeWhitelist, By: "replay", Why: "tried"})
	}
	return try, nil
}
