package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/replay"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
)

// maxWhatifNumbers bounds the numbers a what-if page lists.
const maxWhatifNumbers = 200

// whatifSetting is one input of the what-if form.
type whatifSetting struct {
	Name, Value, Current string
	Bool                 bool
	// Choices are the verdicts a setting takes, shown as a choice.
	Choices []string
}

// verdictChoices are the values of the policy's verdict settings (their
// Validate refuses any other).
var verdictChoices = map[string][]string{
	"anonymous":          {"pass", "challenge", "reject"},
	"concurrent-verdict": {"challenge", "reject"},
}

// Replay settings beyond the policy's, which cmd reads (see "callguard
// replay"): a range rule or a line's settings tried before they are
// enforced.
var whatifTries = []whatifSetting{
	{Name: "try-block"},
	{Name: "try-whitelist"},
	{Name: "try-line"},
}

// whatifData is the What-if page's Data.
type whatifData struct {
	Settings []whatifSetting
	Ran      bool
	Report   *replay.Report
	Numbers  []replay.Number
	More     int
	Err      string
	// Unavailable: the node has no replay; Viewer: the user may not run it.
	Unavailable, Viewer bool
}

// policySettings lists the policy's settings, named as the replay takes
// them, with their help and the node's current values.
func policySettings(current policy.Config) []whatifSetting {
	t := reflect.TypeFor[policy.Config]()
	v := reflect.ValueOf(current)
	var out []whatifSetting
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("env") == "" || f.Tag.Get("env") == "-" {
			continue
		}
		cur := fmt.Sprint(v.Field(i).Interface())
		if d, ok := v.Field(i).Interface().(time.Duration); ok {
			cur = d.String()
		}
		out = append(out, whatifSetting{
			Name: policy.SettingName(f.Name), Current: cur, Choices: verdictChoices[policy.SettingName(f.Name)],
			Bool: f.Type.Kind() == reflect.Bool,
		})
	}
	return out
}

// whatif serves GET /console/whatif?limit-hour=...: the replay of the
// whole log under other settings (operators and admins; it reads the
// whole log, so one runs at a time).
func (s *Server) whatif(w http.ResponseWriter, r *http.Request, c *visit) {
	d := whatifData{Unavailable: s.d.Replay == nil, Viewer: roleRank(c.acct.Role) < roleRank(RoleOperator)}
	q := r.URL.Query()
	settings := map[string]string{}
	for _, st := range append(policySettings(s.d.Policy), whatifTries...) {
		st.Value = strings.TrimSpace(q.Get(st.Name))
		if st.Value != "" {
			settings[st.Name] = st.Value
		}
		d.Settings = append(d.Settings, st)
	}
	if len(settings) == 0 || d.Unavailable {
		s.render(w, r, c, http.StatusOK, "whatif", d)
		return
	}
	if d.Viewer {
		s.renderError(w, r, c, http.StatusForbidden, "")
		return
	}
	select {
	case s.replaying <- struct{}{}:
		defer func() { <-s.replaying }()
	default:
		d.Err = translate(c.lang, "whatif.busy")
		s.render(w, r, c, http.StatusServiceUnavailable, "whatif", d)
		return
	}
	// A replay reads the whole log: the request's own time, not a page's.
	s.d.Logger.Info("console what-if", "user", c.user, "settings", settings)
	raw, err := s.d.Replay.Replay(r.Context(), settings)
	status := http.StatusOK
	switch {
	case errors.Is(err, adminapi.ErrSettings):
		d.Err, status = settingsProblem(c.lang, err), http.StatusBadRequest
	case err != nil:
		s.d.Logger.Warn("console: what-if", "err", err)
		d.Err, status = translate(c.lang, "common.failed", "replay"), http.StatusServiceUnavailable
	default:
		rep, err := asReport(raw)
		if err != nil {
			s.d.Logger.Error("console: what-if", "err", err)
			d.Err, status = translate(c.lang, "error.500"), http.StatusInternalServerError
			break
		}
		d.Ran, d.Report = true, &rep
		d.Numbers = rep.Numbers
		if len(d.Numbers) > maxWhatifNumbers {
			d.More = len(d.Numbers) - maxWhatifNumbers
			d.Numbers = d.Numbers[:maxWhatifNumbers]
		}
	}
	s.render(w, r, c, status, "whatif", d)
}

// asReport reads what Replay returned: the replay's report, or anything
// that encodes to the same JSON.
func asReport(v any) (replay.Report, error) {
	switch t := v.(type) {
	case replay.Report:
		return t, nil
	case *replay.Report:
		if t != nil {
			return *t, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return replay.Report{}, fmt.Errorf("encode the replay: %w", err)
	}
	var rep replay.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return replay.Report{}, fmt.Errorf("read the replay: %w", err)
	}
	return rep, nil
}

// settingsProblem says in the page's language which setting the replay
// refused and why; a tried rule that does not parse keeps the replay's
// English words.
func settingsProblem(lang string, err error) string {
	label := func(name string) string { return translate(lang, "setting."+name) }
	var (
		ve *adminapi.SettingValueError
		se *policy.SettingError
	)
	switch {
	case errors.As(err, &ve):
		return translate(lang, "whatif.err.value", label(ve.Setting), ve.Value)
	case errors.As(err, &se):
		name, value := label(policy.SettingName(se.Field)), fmt.Sprint(se.Value)
		switch se.Kind {
		case policy.WantNonNegative:
			return translate(lang, "whatif.err.nonnegative", name, value)
		case policy.WantPositive:
			return translate(lang, "whatif.err.positive", name, value)
		case policy.WantRange:
			return translate(lang, "whatif.err.range", name, value, se.Min, se.Max)
		case policy.WantOneOf:
			return translate(lang, "whatif.err.oneof", name, value)
		case policy.WantAtLeast:
			return translate(lang, "whatif.err.atleast", name, value, label(policy.SettingName(se.Other)), fmt.Sprint(se.OtherValue))
		case policy.WantAbove:
			return translate(lang, "whatif.err.above", name, value, label(policy.SettingName(se.Other)), fmt.Sprint(se.OtherValue))
		}
	}
	return err.Error()
}
