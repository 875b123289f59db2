package policy

import (
	"fmt"
	"strings"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events/schema"
)

// Origin rules in scenario scripts:
//
//	origin-set country|numtype VALUE level=N by=WHO why=WHY [until=T] [at T]
//	origin-remove country|numtype VALUE by=WHO why=WHY [at T]
//	    change the rule table the calls are decided with; print the event.
//
// A call decided with origin rules prints, after its verdict, the
// number's country and type, the rules it recorded and, when one of them
// decided, the reason.

func (r *runner) originCommand(cmd string, a *scripttest.Command) (string, error) {
	if len(a.Args) != 2 {
		return "", fmt.Errorf("%s: want country|numtype and a value, got %q", cmd, a.Args)
	}
	kind, value := schema.OriginKind(a.Args[0]), a.Args[1]
	c, err := r.command(a)
	if err != nil {
		return "", err
	}
	var rec *schema.Record
	if cmd == "origin-remove" {
		rec, err = r.rules.RemoveOrigin(kind, value, c.ID, c.By, c.Why, r.clock)
	} else {
		rec, err = r.rules.SetOrigin(rules.OriginCommand{Kind: kind, Value: value, Level: c.Level, Until: c.Until, CommandID: c.ID, By: c.By, Why: c.Why}, r.clock)
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
	switch e := rec.Payload.(type) {
	case schema.OriginRuleSet:
		return fmt.Sprintf("+ OriginRuleSet %s %s level=%d by=%s why=%q", e.Kind, e.Value, e.Level, e.By, e.Why), nil
	case schema.OriginRuleRemoved:
		return fmt.Sprintf("+ OriginRuleRemoved %s %s by=%s why=%q", e.Kind, e.Value, e.By, e.Why), nil
	}
	return "", fmt.Errorf("%s: unexpected %T", cmd, rec.Payload)
}

// fmtOrigin prints what the call's CallReceived records of origin rules.
func fmtOrigin(d Decision) string {
	e := got(d)
	if e.Origin == nil {
		return ""
	}
	lines := []string{fmt.Sprintf("  origin country=%s type=%s", e.Origin.Country, e.Origin.Type)}
	for _, m := range e.Origin.Rules {
		lines = append(lines, fmt.Sprintf("  origin rule %s %s level=%d", m.Kind, m.Value, m.Level))
	}
	switch e.Rule {
	case schema.RuleCountry, schema.RuleNumberType, schema.RuleVerified:
		lines = append(lines, "  reason: "+e.Reason)
	}
	return strings.Join(lines, "\n")
}
