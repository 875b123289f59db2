package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events/schema"
)

// Per-line settings and schedules in scenario scripts:
//
//	zone IANA                  the zone schedules are added in (default UTC)
//	line-set LINE [settings] by=WHO why=WHY [until=T] [at T]
//	line-clear LINE by=WHO why=WHY [at T]
//	schedule-add NAME from=HH:MM to=HH:MM [days=mon-fri] [line=LINE]
//	    [settings] by=WHO why=WHY [until=T] [at T]
//	schedule-remove NAME by=WHO why=WHY [at T]
//
// where settings are limit-hour=, limit-day=, limit-level=, block-for=,
// anonymous=. A call to a line (callee=) is decided with the overrides the
// rule table has in force for it at the call's time; it prints them after
// its verdict ("  override schedule night limit-hour=2") and the reason.

func (r *runner) settingsCommand(cmd string, a *scripttest.Command) (string, error) {
	if cmd == "zone" {
		if len(a.Args) != 1 {
			return "", fmt.Errorf("zone: want an IANA zone")
		}
		if _, err := time.LoadLocation(a.Args[0]); err != nil {
			return "", err
		}
		r.zone = a.Args[0]
		return "ok", nil
	}
	if len(a.Args) != 1 {
		return "", fmt.Errorf("%s: want one line or name, got %q", cmd, a.Args)
	}
	c, err := r.command(a)
	if err != nil {
		return "", err
	}
	var rec *schema.Record
	switch cmd {
	case "line-set", "schedule-add":
		var s schema.Settings
		if s, err = parseSettings(a); err != nil {
			return "", err
		}
		sc := rules.SettingsCommand{Line: a.Args[0], Settings: s, Until: c.Until, CommandID: c.ID, By: c.By, Why: c.Why,
			Valid: func(s schema.Settings) error { return r.pol.Config().WithOverrides(s).Validate() }}
		if cmd == "line-set" {
			rec, err = r.rules.SetLine(sc, r.clock)
			break
		}
		sc.Name, sc.Line, sc.Zone = a.Args[0], a.Value("line"), r.zone
		days, _ := a.Opt("days")
		if sc.Window, err = schema.ParseWindow(days, a.Value("from"), a.Value("to")); err == nil {
			rec, err = r.rules.AddSchedule(sc, r.clock)
		}
	case "line-clear":
		rec, err = r.rules.ClearLine(a.Args[0], c.ID, c.By, c.Why, r.clock)
	case "schedule-remove":
		rec, err = r.rules.RemoveSchedule(a.Args[0], c.ID, c.By, c.Why, r.clock)
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
	return "+ " + r.fmtSettingsEvent(rec.Payload), nil
}

func parseSettings(a *scripttest.Command) (schema.Settings, error) {
	var s schema.Settings
	num := func(k string) (*int, error) {
		v, ok := a.Opt(k)
		if !ok {
			return nil, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s=: %w", k, err)
		}
		return &n, nil
	}
	var err error
	if s.LimitHour, err = num("limit-hour"); err != nil {
		return s, err
	}
	if s.LimitDay, err = num("limit-day"); err != nil {
		return s, err
	}
	if s.LimitLevel, err = num("limit-level"); err != nil {
		return s, err
	}
	if v, ok := a.Opt("block-for"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return s, fmt.Errorf("block-for=: %w", err)
		}
		s.BlockFor = &d
	}
	if v, ok := a.Opt("anonymous"); ok {
		vd := schema.Verdict(v)
		s.Anonymous = &vd
	}
	return s, nil
}

func (r *runner) fmtSettingsEvent(p schema.Payload) string {
	quote := func(s string) string {
		if strings.ContainsAny(s, " \"") {
			return strconv.Quote(s)
		}
		return s
	}
	var f []string
	switch e := p.(type) {
	case schema.LineSettingsSet:
		f = append(f, "line="+e.Line, e.Settings.String())
		if e.Until != nil {
			f = append(f, "until="+r.fmtTime(*e.Until))
		}
		f = append(f, "by="+quote(e.By), "why="+quote(e.Why))
	case schema.LineSettingsCleared:
		f = append(f, "line="+e.Line, "by="+quote(e.By), "why="+quote(e.Why))
	case schema.ScheduleAdded:
		f = append(f, "name="+e.Name)
		if e.Line != "" {
			f = append(f, "line="+e.Line)
		}
		f = append(f, "window="+quote(e.Window.String()), "zone="+e.Zone, e.Settings.String())
		if e.Until != nil {
			f = append(f, "until="+r.fmtTime(*e.Until))
		}
		f = append(f, "by="+quote(e.By), "why="+quote(e.Why))
	case schema.ScheduleRemoved:
		f = append(f, "name="+e.Name, "by="+quote(e.By), "why="+quote(e.Why))
	}
	return p.EventType() + " " + strings.Join(f, " ")
}

// fmtOverrides prints the overrides d's CallReceived recorded, and the
// reason when there are any.
func fmtOverrides(d Decision) string {
	var lines []string
	for _, rec := range d.Records {
		e, ok := rec.Payload.(schema.CallReceived)
		if !ok || len(e.Overrides) == 0 {
			continue
		}
		for _, o := range e.Overrides {
			name := o.Line
			if o.Source == schema.OverrideSchedule {
				name = o.Name
			}
			lines = append(lines, fmt.Sprintf("  override %s %s %s", o.Source, name, o.Settings))
		}
		if e.Reason != "" {
			lines = append(lines, "  reason: "+e.Reason)
		}
	}
	return strings.Join(lines, "\n")
}

// triedOverrides reads a replay's hypothetical override: try-limit-hour=N
// for try-line=LINE (default every line), during try-window=HH:MM-HH:MM
// (in the script's zone; default always).
func (r *runner) triedOverrides(a *scripttest.Command) ([]schema.Override, error) {
	v, ok := a.Opt("try-limit-hour")
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("try-limit-hour=: %w", err)
	}
	o := schema.Override{Source: schema.OverrideLine, Line: a.Value("try-line"), Settings: schema.Settings{LimitHour: &n}, By: "replay", Why: "tried"}
	if w, ok := a.Opt("try-window"); ok {
		from, to, _ := strings.Cut(w, "-")
		win, err := schema.ParseWindow("", from, to)
		if err != nil {
			return nil, err
		}
		o.Source, o.Name, o.Window, o.Zone = schema.OverrideSchedule, "tried", &win, r.zone
	}
	return []schema.Override{o}, nil
}
