package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events/schema"
)

// SettingsRules applies the per-line settings and schedule commands
// (rules.Writer) and shows the node's rule table.
type SettingsRules interface {
	SetLine(ctx context.Context, cmd rules.SettingsCommand) (rules.Applied, error)
	ClearLine(ctx context.Context, line, commandID, by, why string) (rules.Applied, error)
	AddSchedule(ctx context.Context, cmd rules.SettingsCommand) (rules.Applied, error)
	RemoveSchedule(ctx context.Context, name, commandID, by, why string) (rules.Applied, error)
}

// SettingsDeps are what the per-line settings and schedule routes need.
type SettingsDeps struct {
	Rules SettingsRules
	// Table is the node's rule table (rules.Live.Table): GET answers
	// from it, as the node decides.
	Table func() *rules.Table
	// Zone is GUARD_TIMEZONE: the zone of schedules added here.
	Zone string
	// Valid checks settings made effective against the node's global
	// settings (policy.Config.WithOverrides(...).Validate).
	Valid func(schema.Settings) error
}

// Verbs of the settings commands, in command IDs.
const (
	VerbLineSet        = "line-set"
	VerbLineClear      = "line-clear"
	VerbScheduleAdd    = "schedule-add"
	VerbScheduleRemove = "schedule-remove"
)

// SettingsBody is the settings part of PUT /v1/lines/{number}/settings
// and POST /v1/schedules: only the settings given override the global
// ones.
type SettingsBody struct {
	LimitHour  *int `json:"limitHour,omitempty"`
	LimitDay   *int `json:"limitDay,omitempty"`
	LimitLevel *int `json:"limitLevel,omitempty"`
	// BlockFor is a Go duration ("2h", "30m").
	BlockFor  string          `json:"blockFor,omitempty"`
	Anonymous *schema.Verdict `json:"anonymous,omitempty"`
	// AttackRate is the line's under-attack threshold, new callers a second.
	AttackRate *float64 `json:"attackRate,omitempty"`
}

// LineSettingsRequest is the body of PUT /v1/lines/{number}/settings.
type LineSettingsRequest struct {
	SettingsBody
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Until is when the settings end (RFC 3339); empty for never.
	Until          string `json:"until,omitempty"`
	IdempotencyKey string `json:"-"`
}

// ScheduleRequest is the body of POST /v1/schedules.
type ScheduleRequest struct {
	Name string `json:"name"`
	// Days are the days the window starts on ("mon-fri", "sat,sun");
	// empty: every day. From and To are HH:MM in GUARD_TIMEZONE; a To
	// not after From crosses midnight.
	Days string `json:"days,omitempty"`
	From string `json:"from"`
	To   string `json:"to"`
	// Line limits the schedule to one called number; empty: every line.
	Line string `json:"line,omitempty"`
	SettingsBody
	By             string `json:"by,omitempty"`
	Reason         string `json:"reason"`
	Until          string `json:"until,omitempty"`
	IdempotencyKey string `json:"-"`
}

// SettingsResult answers a settings or schedule command.
type SettingsResult struct {
	Line      string   `json:"line,omitempty"`
	Schedule  string   `json:"schedule,omitempty"`
	CommandID string   `json:"commandId"`
	Events    []string `json:"events"`
	Revision  uint64   `json:"revision"`
	Repeated  bool     `json:"repeated"`
}

// LineSettingsView is a line's settings as GET shows them.
type LineSettingsView struct {
	Line     string          `json:"line"`
	Settings schema.Settings `json:"settings"`
	Since    time.Time       `json:"since"`
	Until    time.Time       `json:"until,omitzero"`
	By       string          `json:"by"`
	Why      string          `json:"why"`
	Expired  bool            `json:"expired,omitempty"`
}

// ScheduleView is a schedule as GET /v1/schedules shows it.
type ScheduleView struct {
	Name     string          `json:"name"`
	Line     string          `json:"line,omitempty"`
	Window   schema.Window   `json:"window"`
	Zone     string          `json:"zone"`
	Settings schema.Settings `json:"settings"`
	Since    time.Time       `json:"since"`
	Until    time.Time       `json:"until,omitzero"`
	By       string          `json:"by"`
	Why      string          `json:"why"`
	// Active: the window holds now and the schedule has not expired.
	Active  bool `json:"active"`
	Expired bool `json:"expired,omitempty"`
}

// SettingsView answers GET /v1/lines/settings and GET /v1/schedules.
type SettingsView struct {
	Lines     []LineSettingsView `json:"lines,omitempty"`
	Schedules []ScheduleView     `json:"schedules,omitempty"`
	// Revision is the rules stream's revision the node's table has folded.
	Revision uint64 `json:"revision"`
}

func (v *validation) settings(b SettingsBody) schema.Settings {
	s := schema.Settings{LimitHour: b.LimitHour, LimitDay: b.LimitDay, LimitLevel: b.LimitLevel, Anonymous: b.Anonymous, AttackRate: b.AttackRate}
	if b.BlockFor != "" {
		d, err := time.ParseDuration(b.BlockFor)
		if err != nil || d <= 0 {
			v.add("blockFor", inBody, fmt.Sprintf("is %q, want a positive duration such as 2h or 30m", clip(b.BlockFor)))
			return s
		}
		s.BlockFor = &d
	}
	if s.Empty() {
		v.add("settings", inBody, "none given: give at least one of limitHour, limitDay, limitLevel, blockFor, anonymous, attackRate")
		return s
	}
	if err := s.Check(); err != nil {
		v.add("settings", inBody, strings.TrimPrefix(err.Error(), schema.ErrSettings.Error()+": "))
	}
	return s
}

func (s *Server) lineSettingsSet(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Rules == nil, "per-line settings") {
		return
	}
	var body LineSettingsRequest
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	cmd := rules.SettingsCommand{
		Line: s.lineNumber(&v, r), Settings: v.settings(body.SettingsBody),
		By: v.by(r, body.By), Why: v.text("reason", inBody, body.Reason), Until: v.until(body.Until, s.d.Clock()),
		Valid: s.d.Settings.Valid,
	}
	cmd.CommandID = v.commandID(r, VerbLineSet)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	a, err := s.d.Settings.Rules.SetLine(ctx, cmd)
	if err != nil {
		s.settingsFail(w, r, fmt.Errorf("line %s: %w", cmd.Line, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbLineSet, "line", cmd.Line, "settings", cmd.Settings.String(),
		"by", cmd.By, "command_id", cmd.CommandID, "revision", a.Revision, "repeated", a.Repeated)
	status := http.StatusOK
	if !a.Repeated {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, settingsResult(cmd.Line, "", cmd.CommandID, a))
}

func (s *Server) lineSettingsClear(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Rules == nil, "per-line settings") {
		return
	}
	var v validation
	n := s.lineNumber(&v, r)
	by, why, id, ok := s.removal(w, r, &v, VerbLineClear)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	a, err := s.d.Settings.Rules.ClearLine(ctx, n, id, by, why)
	if err != nil {
		s.settingsFail(w, r, fmt.Errorf("clear line %s: %w", n, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbLineClear, "line", n,
		"by", by, "command_id", id, "revision", a.Revision, "repeated", a.Repeated)
	s.writeJSON(w, r, http.StatusOK, settingsResult(n, "", id, a))
}

// removal reads a DELETE's by and reason (body or query) and command ID.
func (s *Server) removal(w http.ResponseWriter, r *http.Request, v *validation, verb string) (by, why, id string, ok bool) {
	var body removeBody
	if !s.decode(w, r, &body, false) {
		return "", "", "", false
	}
	reason, in := body.Reason, inBody
	if q := r.URL.Query().Get("reason"); q != "" {
		if reason != "" && strings.TrimSpace(q) != strings.TrimSpace(reason) {
			v.add("reason", inQuery, "given in both the body and the query, differently")
		}
		reason, in = q, inQuery
	}
	by, why = v.by(r, body.By), v.text("reason", in, reason)
	id = v.commandID(r, verb)
	return by, why, id, !v.failed(w, r)
}

func (s *Server) scheduleAdd(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Rules == nil, "schedules") {
		return
	}
	var body ScheduleRequest
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	cmd := rules.SettingsCommand{
		Name: body.Name, Settings: v.settings(body.SettingsBody), Zone: s.d.Settings.Zone,
		By: v.by(r, body.By), Why: v.text("reason", inBody, body.Reason), Until: v.until(body.Until, s.d.Clock()),
		Valid: s.d.Settings.Valid,
	}
	if err := schema.CheckScheduleName(body.Name); err != nil {
		v.add("name", inBody, "is "+fmt.Sprintf("%q", clip(body.Name))+", want 1 to 32 letters, digits, - or _")
	}
	if body.Line != "" {
		cmd.Line = v.number(s.d.Normalizer, body.Line, "line", inBody)
	}
	win, err := schema.ParseWindow(body.Days, body.From, body.To)
	if err != nil {
		v.add("window", inBody, strings.TrimPrefix(err.Error(), schema.ErrSettings.Error()+": "))
	}
	cmd.Window = win
	cmd.CommandID = v.commandID(r, VerbScheduleAdd)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	a, err := s.d.Settings.Rules.AddSchedule(ctx, cmd)
	if err != nil {
		s.settingsFail(w, r, fmt.Errorf("schedule %s: %w", cmd.Name, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbScheduleAdd, "schedule", cmd.Name, "line", cmd.Line,
		"window", cmd.Window.String(), "zone", cmd.Zone, "settings", cmd.Settings.String(),
		"by", cmd.By, "command_id", cmd.CommandID, "revision", a.Revision, "repeated", a.Repeated)
	status := http.StatusOK
	if !a.Repeated {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, settingsResult(cmd.Line, cmd.Name, cmd.CommandID, a))
}

func (s *Server) scheduleRemove(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Rules == nil, "schedules") {
		return
	}
	var v validation
	name := r.PathValue("name")
	by, why, id, ok := s.removal(w, r, &v, VerbScheduleRemove)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	a, err := s.d.Settings.Rules.RemoveSchedule(ctx, name, id, by, why)
	if err != nil {
		s.settingsFail(w, r, fmt.Errorf("remove schedule %s: %w", name, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbScheduleRemove, "schedule", name,
		"by", by, "command_id", id, "revision", a.Revision, "repeated", a.Repeated)
	s.writeJSON(w, r, http.StatusOK, settingsResult("", name, id, a))
}

func (s *Server) settingsList(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Table == nil, "per-line settings") {
		return
	}
	s.writeJSON(w, r, http.StatusOK, settingsView(s.d.Settings.Table(), s.d.Clock(), true, false))
}

func (s *Server) scheduleList(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Settings.Table == nil, "schedules") {
		return
	}
	s.writeJSON(w, r, http.StatusOK, settingsView(s.d.Settings.Table(), s.d.Clock(), false, true))
}

func settingsView(t *rules.Table, now time.Time, lines, schedules bool) SettingsView {
	var out SettingsView
	out.Revision, _ = t.Revision()
	if lines {
		out.Lines = []LineSettingsView{}
		for _, l := range t.Lines() {
			out.Lines = append(out.Lines, LineSettingsView{Line: l.Line, Settings: l.Settings, Since: l.Since, Until: l.Until,
				By: l.By, Why: l.Why, Expired: !l.ActiveAt(now)})
		}
	}
	if schedules {
		out.Schedules = []ScheduleView{}
		for _, sc := range t.Schedules() {
			out.Schedules = append(out.Schedules, ScheduleView{Name: sc.Name, Line: sc.Line, Window: sc.Window, Zone: sc.Zone,
				Settings: sc.Settings, Since: sc.Since, Until: sc.Until, By: sc.By, Why: sc.Why,
				Active: sc.ActiveAt(now), Expired: !sc.Until.IsZero() && !now.Before(sc.Until)})
		}
	}
	return out
}

func settingsResult(line, name, id string, a rules.Applied) SettingsResult {
	res := SettingsResult{Line: line, Schedule: name, CommandID: id, Events: []string{}, Revision: a.Revision, Repeated: a.Repeated}
	if a.Event != "" {
		res.Events = append(res.Events, a.Event)
	}
	return res
}

func (s *Server) settingsFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, rules.ErrExists):
		writeProblem(w, r, newProblem(CodeScheduleExists, err.Error()))
	case errors.Is(err, rules.ErrNotFound):
		writeProblem(w, r, newProblem(CodeUnknownSettings, err.Error()))
	case errors.Is(err, rules.ErrInvalid):
		writeProblem(w, r, newProblem(CodeCommandRefused, err.Error()))
	default:
		s.fail(w, r, err)
	}
}
