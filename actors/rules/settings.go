package rules

import (
	"fmt"
	"sort"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Per-line settings and schedules (schema.Override) share the rules
// stream and the table with the range rules: every node folds them, and
// a call looks up the overrides in force for its line in memory.

// settingsError is an error of a settings or schedule command that says
// itself (not "range rule") and is still one of the package's sentinels.
type settingsError struct {
	msg  string
	kind error
}

func (e *settingsError) Error() string { return "rules: " + e.msg }
func (e *settingsError) Unwrap() error { return e.kind }

func invalid(format string, a ...any) error {
	return &settingsError{msg: fmt.Sprintf(format, a...), kind: ErrInvalid}
}

// LineSettings is a called line's settings override.
type LineSettings struct {
	Line      string
	Settings  schema.Settings
	Since     time.Time
	Until     time.Time // zero: none
	CommandID string
	By, Why   string
}

// ActiveAt reports whether l is in force at t.
func (l LineSettings) ActiveAt(t time.Time) bool { return l.Until.IsZero() || t.Before(l.Until) }

// Override is l as a decision records it.
func (l LineSettings) Override() schema.Override {
	return schema.Override{Source: schema.OverrideLine, Line: l.Line, Settings: l.Settings, Since: l.Since, Until: timePtr(l.Until), By: l.By, Why: l.Why}
}

// Schedule is a settings override in force during a weekly window.
type Schedule struct {
	Name      string
	Line      string // empty: every line
	Window    schema.Window
	Zone      string
	loc       *time.Location
	Settings  schema.Settings
	Since     time.Time
	Until     time.Time // zero: none
	CommandID string
	By, Why   string
}

// ActiveAt reports whether s is in force at t: not expired, and t inside
// its window on its zone's wall clock.
func (s Schedule) ActiveAt(t time.Time) bool {
	return (s.Until.IsZero() || t.Before(s.Until)) && s.Window.Contains(t, s.loc)
}

// Override is s as a decision records it.
func (s Schedule) Override() schema.Override {
	w := s.Window
	return schema.Override{Source: schema.OverrideSchedule, Name: s.Name, Line: s.Line, Window: &w, Zone: s.Zone,
		Settings: s.Settings, Since: s.Since, Until: timePtr(s.Until), By: s.By, Why: s.Why}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Overrides returns the overrides in force for a call to line at now, in
// the order they apply (the later winning setting by setting): the line's
// settings, the schedules for every line, the schedules for line; among
// schedules of one kind, by name. It reads memory only. A table without
// settings or schedules answers nil at once.
func (t *Table) Overrides(line string, now time.Time) []schema.Override {
	if len(t.lines) == 0 && len(t.schedules) == 0 {
		return nil
	}
	var out []schema.Override
	if l, ok := t.lines[line]; ok && line != "" && l.ActiveAt(now) {
		out = append(out, l.Override())
	}
	for _, pass := range []bool{false, true} {
		for _, s := range t.schedOrder {
			if (s.Line != "") == pass && (s.Line == "" || s.Line == line) && s.ActiveAt(now) {
				out = append(out, s.Override())
			}
		}
	}
	return out
}

// Line returns line's settings override.
func (t *Table) Line(line string) (LineSettings, bool) {
	l, ok := t.lines[line]
	return l, ok
}

// Lines lists the lines' settings, by line.
func (t *Table) Lines() []LineSettings {
	out := make([]LineSettings, 0, len(t.lines))
	for _, l := range t.lines {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// Schedules lists the schedules, by name.
func (t *Table) Schedules() []Schedule { return append([]Schedule(nil), t.schedOrder...) }

// Schedule returns the schedule name.
func (t *Table) Schedule(name string) (Schedule, bool) {
	s, ok := t.schedules[name]
	return s, ok
}

func (f *folder) foldSettings(rev uint64, ev schema.Payload) (bool, error) {
	switch e := ev.(type) {
	case schema.LineSettingsSet:
		f.lines[e.Line] = LineSettings{Line: e.Line, Settings: e.Settings, Since: e.At, Until: deref(e.Until), CommandID: e.CommandID, By: e.By, Why: e.Why}
	case schema.LineSettingsCleared:
		delete(f.lines, e.Line)
	case schema.ScheduleAdded:
		loc, err := time.LoadLocation(e.Zone)
		if err != nil {
			return true, fmt.Errorf("rules: fold %s at %d: %w: zone: %v", e.EventType(), rev, ErrInvalid, err)
		}
		f.schedules[e.Name] = Schedule{Name: e.Name, Line: e.Line, Window: e.Window, Zone: e.Zone, loc: loc, Settings: e.Settings,
			Since: e.At, Until: deref(e.Until), CommandID: e.CommandID, By: e.By, Why: e.Why}
	case schema.ScheduleRemoved:
		delete(f.schedules, e.Name)
	default:
		return false, nil
	}
	return true, nil
}

// SettingsCommand is an admin's change of a line's settings or of a
// schedule.
type SettingsCommand struct {
	// Line is the called line (E.164); for a schedule, empty means every
	// line.
	Line string
	// Settings are the settings given; for a line they are merged onto
	// the line's current ones.
	Settings schema.Settings
	// Name, Window and Zone are the schedule's (schedules only).
	Name      string
	Window    schema.Window
	Zone      string
	Until     time.Time
	CommandID string
	By, Why   string
	// Valid, when set, checks the settings a command makes effective
	// against the node's global ones (policy.Config.WithOverrides).
	Valid func(schema.Settings) error
}

func checkText(by, why string) error {
	for _, f := range []struct{ name, s string }{{"by", by}, {"why", why}} {
		if err := schema.CheckCommandText(f.name, f.s); err != nil {
			return invalid("%v", err)
		}
	}
	return nil
}

func checkLine(line string) error {
	if _, err := schema.ParseRange(line); err != nil {
		return invalid("line %q is not an E.164 number", line)
	}
	return nil
}

func checkUntil(until, now time.Time) (*time.Time, error) {
	if until.IsZero() {
		return nil, nil
	}
	if !until.After(now) {
		return nil, invalid("until %s is not after now", until.UTC().Format(time.RFC3339))
	}
	u := schema.UTC(until)
	return &u, nil
}

func checkSettings(s schema.Settings, valid func(schema.Settings) error) error {
	if err := s.Check(); err != nil {
		return invalid("%v", err)
	}
	if valid != nil {
		if err := valid(s); err != nil {
			return invalid("with the global settings: %v", err)
		}
	}
	return nil
}

// SetLine checks the command setting cmd.Settings on cmd.Line (merged
// onto what the line has) and returns the event, or nil for a retry of
// the command already folded.
func (t *Table) SetLine(cmd SettingsCommand, now time.Time) (*schema.Record, error) {
	if err := checkLine(cmd.Line); err != nil {
		return nil, err
	}
	if err := checkText(cmd.By, cmd.Why); err != nil {
		return nil, err
	}
	merged := cmd.Settings
	if cur, ok := t.lines[cmd.Line]; ok {
		if cmd.CommandID != "" && cur.CommandID == cmd.CommandID {
			return nil, nil
		}
		if cur.ActiveAt(now) {
			merged = cur.Settings.Merge(cmd.Settings)
		}
	}
	if cmd.Settings.Empty() {
		merged = schema.Settings{}
	}
	if err := checkSettings(merged, cmd.Valid); err != nil {
		return nil, err
	}
	until, err := checkUntil(cmd.Until, now)
	if err != nil {
		return nil, err
	}
	return &schema.Record{ID: schema.RuleEventID(cmd.CommandID), Payload: schema.LineSettingsSet{
		Line: cmd.Line, Settings: merged, At: schema.UTC(now), Until: until, CommandID: cmd.CommandID, By: cmd.By, Why: cmd.Why,
	}}, nil
}

// ClearLine checks the command returning line to the global settings.
func (t *Table) ClearLine(line, commandID, by, why string, now time.Time) (*schema.Record, error) {
	if err := checkText(by, why); err != nil {
		return nil, err
	}
	if _, ok := t.lines[line]; !ok {
		return nil, &settingsError{msg: "line " + line + " has no settings of its own", kind: ErrNotFound}
	}
	return &schema.Record{ID: schema.RuleEventID(commandID), Payload: schema.LineSettingsCleared{
		Line: line, At: schema.UTC(now), CommandID: commandID, By: by, Why: why,
	}}, nil
}

// AddSchedule checks the command adding schedule cmd.Name. A schedule of
// that name is ErrExists: remove it first.
func (t *Table) AddSchedule(cmd SettingsCommand, now time.Time) (*schema.Record, error) {
	if err := schema.CheckScheduleName(cmd.Name); err != nil {
		return nil, invalid("%v", err)
	}
	if cmd.Line != "" {
		if err := checkLine(cmd.Line); err != nil {
			return nil, err
		}
	}
	if err := cmd.Window.Check(); err != nil {
		return nil, invalid("%v", err)
	}
	if _, err := time.LoadLocation(cmd.Zone); err != nil || cmd.Zone == "" {
		return nil, invalid("zone %q is not an IANA time zone", cmd.Zone)
	}
	if err := checkText(cmd.By, cmd.Why); err != nil {
		return nil, err
	}
	if cur, ok := t.schedules[cmd.Name]; ok {
		if cmd.CommandID != "" && cur.CommandID == cmd.CommandID {
			return nil, nil
		}
		return nil, &settingsError{kind: ErrExists, msg: fmt.Sprintf("schedule %s exists (added %s by %s: %s); remove it first", cmd.Name,
			cur.Since.Format(time.RFC3339), cur.By, cur.Why)}
	}
	base := schema.Settings{}
	if l, ok := t.lines[cmd.Line]; ok && cmd.Line != "" && l.ActiveAt(now) {
		base = l.Settings
	}
	if err := checkSettings(cmd.Settings, func(s schema.Settings) error {
		if cmd.Valid == nil {
			return nil
		}
		return cmd.Valid(base.Merge(s))
	}); err != nil {
		return nil, err
	}
	until, err := checkUntil(cmd.Until, now)
	if err != nil {
		return nil, err
	}
	return &schema.Record{ID: schema.RuleEventID(cmd.CommandID), Payload: schema.ScheduleAdded{
		Name: cmd.Name, Line: cmd.Line, Window: cmd.Window, Zone: cmd.Zone, Settings: cmd.Settings,
		At: schema.UTC(now), Until: until, CommandID: cmd.CommandID, By: cmd.By, Why: cmd.Why,
	}}, nil
}

// RemoveSchedule checks the command removing schedule name.
func (t *Table) RemoveSchedule(name, commandID, by, why string, now time.Time) (*schema.Record, error) {
	if err := checkText(by, why); err != nil {
		return nil, err
	}
	if _, ok := t.schedules[name]; !ok {
		return nil, &settingsError{msg: "no schedule " + name, kind: ErrNotFound}
	}
	return &schema.Record{ID: schema.RuleEventID(commandID), Payload: schema.ScheduleRemoved{
		Name: name, At: schema.UTC(now), CommandID: commandID, By: by, Why: why,
	}}, nil
}
