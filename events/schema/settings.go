package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Per-line settings and schedules are policy data of the rules stream
// (RulesStream), like the range rules: an admin's command writes an event
// there, every node folds it into its rule table, and a call is decided
// with the overrides in force for its called line at its time. A
// CallReceived records the overrides it was decided with (Overrides), so
// the audit and a replay need no rule table.
//
// An override is partial: only the settings it gives replace the global
// ones (GUARD_LIMIT_HOUR and the others). They apply in this order, the
// later winning setting by setting: the line's settings, then schedules
// for every line, then schedules for the call's line.

// Event types of per-line settings and schedules (rules stream).
const (
	TypeLineSettingsSet     = "LineSettingsSet"
	TypeLineSettingsCleared = "LineSettingsCleared"
	TypeScheduleAdded       = "ScheduleAdded"
	TypeScheduleRemoved     = "ScheduleRemoved"
)

// ErrSettings marks malformed settings, windows or schedule names.
var ErrSettings = errors.New("invalid settings")

// Settings is a partial set of policy settings: nil fields keep the
// setting they override.
type Settings struct {
	LimitHour  *int `json:"limitHour,omitempty"`
	LimitDay   *int `json:"limitDay,omitempty"`
	LimitLevel *int `json:"limitLevel,omitempty"`
	// BlockFor is in nanoseconds, as time.Duration marshals.
	BlockFor  *time.Duration `json:"blockFor,omitempty"`
	Anonymous *Verdict       `json:"anonymous,omitempty"`
	// AttackRate is the line's under-attack threshold, new callers a
	// second (GUARD_ATTACK_RATE; 0 disables detection on the line).
	AttackRate *float64 `json:"attackRate,omitempty"`
}

// Empty reports whether s overrides nothing.
func (s Settings) Empty() bool {
	return s.LimitHour == nil && s.LimitDay == nil && s.LimitLevel == nil && s.BlockFor == nil && s.Anonymous == nil && s.AttackRate == nil
}

// Merge returns s with the settings o gives replacing s's.
func (s Settings) Merge(o Settings) Settings {
	if o.LimitHour != nil {
		s.LimitHour = o.LimitHour
	}
	if o.LimitDay != nil {
		s.LimitDay = o.LimitDay
	}
	if o.LimitLevel != nil {
		s.LimitLevel = o.LimitLevel
	}
	if o.BlockFor != nil {
		s.BlockFor = o.BlockFor
	}
	if o.Anonymous != nil {
		s.Anonymous = o.Anonymous
	}
	if o.AttackRate != nil {
		s.AttackRate = o.AttackRate
	}
	return s
}

// Check reports the first setting of s out of its range, each on its own
// (how they combine with the global settings is the policy's to check).
func (s Settings) Check() error {
	switch {
	case s.Empty():
		return fmt.Errorf("%w: no setting given", ErrSettings)
	case s.LimitHour != nil && *s.LimitHour < 0:
		return fmt.Errorf("%w: limit-hour is %d, want 0 (off) or more", ErrSettings, *s.LimitHour)
	case s.LimitDay != nil && *s.LimitDay < 0:
		return fmt.Errorf("%w: limit-day is %d, want 0 (off) or more", ErrSettings, *s.LimitDay)
	case s.LimitLevel != nil && (*s.LimitLevel < MinLevel || *s.LimitLevel > MaxLevel):
		return fmt.Errorf("%w: limit-level is %d, want %d to %d", ErrSettings, *s.LimitLevel, MinLevel, MaxLevel)
	case s.BlockFor != nil && *s.BlockFor <= 0:
		return fmt.Errorf("%w: block-for is %s, want a positive duration", ErrSettings, *s.BlockFor)
	case s.Anonymous != nil && !s.Anonymous.Valid():
		return fmt.Errorf("%w: anonymous is %q, want pass, challenge or reject", ErrSettings, *s.Anonymous)
	case s.AttackRate != nil && !(*s.AttackRate >= 0 && *s.AttackRate <= 1e6):
		return fmt.Errorf("%w: attack-rate is %g, want 0 (off) to 1000000 new callers a second", ErrSettings, *s.AttackRate)
	}
	return nil
}

// String lists the settings s gives, as the CLI flags name them
// ("limit-hour=2 anonymous=challenge").
func (s Settings) String() string {
	var f []string
	if s.LimitHour != nil {
		f = append(f, "limit-hour="+strconv.Itoa(*s.LimitHour))
	}
	if s.LimitDay != nil {
		f = append(f, "limit-day="+strconv.Itoa(*s.LimitDay))
	}
	if s.LimitLevel != nil {
		f = append(f, "limit-level="+strconv.Itoa(*s.LimitLevel))
	}
	if s.BlockFor != nil {
		f = append(f, "block-for="+s.BlockFor.String())
	}
	if s.Anonymous != nil {
		f = append(f, "anonymous="+string(*s.Anonymous))
	}
	if s.AttackRate != nil {
		f = append(f, "attack-rate="+strconv.FormatFloat(*s.AttackRate, 'g', -1, 64))
	}
	return strings.Join(f, " ")
}

// Window is a weekly time window in a time zone's wall clock: from From
// to To (HH:MM, To exclusive) on the days Days names (the day the window
// starts; none: every day). A window whose To is not after From crosses
// midnight into the next day; From equal to To is the whole day. Times
// are compared on the zone's wall clock, so a window keeps its local
// hours across a change of daylight saving time.
type Window struct {
	Days []string `json:"days,omitempty"`
	From string   `json:"from"`
	To   string   `json:"to"`
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWindow reads a window: days as "mon-fri", "sat,sun", "mon,wed-fri"
// or "" (every day), from and to as HH:MM (24:00 allowed for to).
func ParseWindow(days, from, to string) (Window, error) {
	w := Window{From: from, To: to}
	if _, err := minuteOf(from, false); err != nil {
		return Window{}, fmt.Errorf("%w: from: %v", ErrSettings, err)
	}
	if _, err := minuteOf(to, true); err != nil {
		return Window{}, fmt.Errorf("%w: to: %v", ErrSettings, err)
	}
	if days == "" {
		return w, nil
	}
	var set [7]bool
	for _, part := range strings.Split(strings.ToLower(days), ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		i, j := dayIndex(a), dayIndex(b)
		if !isRange {
			j = i
		}
		if i < 0 || j < 0 {
			return Window{}, fmt.Errorf("%w: days %q: want mon..sun, as mon-fri or sat,sun", ErrSettings, days)
		}
		for d := i; ; d = (d + 1) % 7 {
			set[d] = true
			if d == j {
				break
			}
		}
	}
	// Stored in week order from Monday, so one set has one spelling.
	for k := 1; k <= 7; k++ {
		if set[k%7] {
			w.Days = append(w.Days, weekdays[k%7])
		}
	}
	if len(w.Days) == 7 {
		w.Days = nil
	}
	return w, nil
}

// Check reports whether w is well formed (as ParseWindow makes them).
func (w Window) Check() error {
	_, err := ParseWindow(strings.Join(w.Days, ","), w.From, w.To)
	return err
}

func dayIndex(s string) int {
	for i, d := range weekdays {
		if s == d {
			return i
		}
	}
	return -1
}

// minuteOf reads HH:MM as minutes after midnight; 24:00 only when end.
func minuteOf(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || mm < 0 || mm > 59 || hh < 0:
		return 0, fmt.Errorf("%q: want HH:MM", s)
	case hh == 24 && mm == 0 && end:
		return 24 * 60, nil
	case hh > 23:
		return 0, fmt.Errorf("%q: want HH:MM from 00:00 to 23:59", s)
	}
	return hh*60 + mm, nil
}

func (w Window) on(d time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, s := range w.Days {
		if s == weekdays[d] {
			return true
		}
	}
	return false
}

// Contains reports whether t falls in w on loc's wall clock. A window
// that crosses midnight belongs to the day it starts: "fri 22:00–07:00"
// holds Saturday 03:00.
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	from, err1 := minuteOf(w.From, false)
	to, err2 := minuteOf(w.To, true)
	if err1 != nil || err2 != nil {
		return false
	}
	length := ((to-from)%(24*60) + 24*60) % (24 * 60)
	if length == 0 {
		length = 24 * 60
	}
	l := t.In(loc)
	now, day := l.Hour()*60+l.Minute(), l.Weekday()
	if now >= from && now-from < length && w.on(day) {
		return true
	}
	// The window that started the day before and runs past midnight.
	return now+24*60-from < length && w.on((day+6)%7)
}

// String says w for people: "22:00–07:00 every day", "00:00–24:00 sat,sun".
func (w Window) String() string {
	days := "every day"
	if len(w.Days) > 0 {
		days = strings.Join(w.Days, ",")
	}
	return w.From + "–" + w.To + " " + days
}

// CheckScheduleName reports whether name is a usable schedule name: 1 to
// 32 letters, digits, '-' or '_'.
func CheckScheduleName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("%w: schedule name %q: want 1 to 32 letters, digits, - or _", ErrSettings, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: schedule name %q: want 1 to 32 letters, digits, - or _", ErrSettings, name)
		}
	}
	return nil
}

// LineSettingsSet records an admin setting the overrides of a called
// line: Settings is the line's whole override from now on (the edges
// merge what was set before with what the command gives).
type LineSettingsSet struct {
	Line     string    `json:"line"`
	Settings Settings  `json:"settings"`
	At       time.Time `json:"at"`
	// Until is when the settings end by themselves; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// LineSettingsCleared records an admin returning a line to the global
// settings.
type LineSettingsCleared struct {
	Line      string    `json:"line"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
}

// ScheduleAdded records an admin adding a schedule: Settings apply to
// calls to Line (every line when empty) while Window holds, on the wall
// clock of Zone (GUARD_TIMEZONE of the node that took the command).
type ScheduleAdded struct {
	Name     string    `json:"name"`
	Line     string    `json:"line,omitempty"`
	Window   Window    `json:"window"`
	Zone     string    `json:"zone"`
	Settings Settings  `json:"settings"`
	At       time.Time `json:"at"`
	// Until is when the schedule ends by itself; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// ScheduleRemoved records an admin removing the schedule Name.
type ScheduleRemoved struct {
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
}

// Override sources.
const (
	OverrideLine     = "line"
	OverrideSchedule = "schedule"
)

// Override is a settings override as a decision applied it: the
// CallReceived of a call records the ones in force (Overrides), in the
// order they applied, so that the audit explains and a replay reproduces
// the verdict without the rule table.
type Override struct {
	// Source is OverrideLine or OverrideSchedule.
	Source string `json:"source"`
	// Name is the schedule's name (schedules only).
	Name string `json:"name,omitempty"`
	// Line is the called line the override is for; empty: every line.
	Line string `json:"line,omitempty"`
	// Window and Zone are the schedule's window (schedules only).
	Window   *Window    `json:"window,omitempty"`
	Zone     string     `json:"zone,omitempty"`
	Settings Settings   `json:"settings"`
	Since    time.Time  `json:"since"`
	Until    *time.Time `json:"until,omitempty"`
	By       string     `json:"by"`
	Why      string     `json:"why"`
}

// Explain names o for a verdict's reason: "line +78005553535" or
// "schedule 'night' (22:00–07:00 every day Europe/Moscow)".
func (o Override) Explain() string {
	if o.Source == OverrideSchedule && o.Window != nil {
		return fmt.Sprintf("schedule '%s' (%s %s)", o.Name, o.Window, o.Zone)
	}
	if o.Source == OverrideSchedule {
		return fmt.Sprintf("schedule '%s'", o.Name)
	}
	return "settings of line " + o.Line
}

func (LineSettingsSet) EventType() string     { return TypeLineSettingsSet }
func (LineSettingsCleared) EventType() string { return TypeLineSettingsCleared }
func (ScheduleAdded) EventType() string       { return TypeScheduleAdded }
func (ScheduleRemoved) EventType() string     { return TypeScheduleRemoved }

func (LineSettingsSet) EventVersion() int     { return 1 }
func (LineSettingsCleared) EventVersion() int { return 1 }
func (ScheduleAdded) EventVersion() int       { return 1 }
func (ScheduleRemoved) EventVersion() int     { return 1 }

func settingsPayloads() []Payload {
	return []Payload{LineSettingsSet{}, LineSettingsCleared{}, ScheduleAdded{}, ScheduleRemoved{}}
}
