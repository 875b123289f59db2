package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/line"
)

// Lines is what the API needs of the line grains (the under-attack mode
// of each called number); *line.Client implements it.
type Lines interface {
	Command(ctx context.Context, number string, cmd line.Command) (line.Mode, error)
	Status(ctx context.Context, number string) (line.Mode, error)
}

var _ Lines = (*line.Client)(nil)

type attackBody struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
	// Hold keeps the mode on until switched off by hand; without it the
	// mode ends by itself once the line has been calm for GUARD_ATTACK_CALM.
	Hold bool `json:"hold"`
}

// AttackView is a line's under-attack mode as the API shows it.
type AttackView struct {
	Line string `json:"line"`
	// UnderAttack: every caller of the line who is not whitelisted or
	// verified recently is challenged.
	UnderAttack bool      `json:"underAttack"`
	Since       time.Time `json:"since,omitzero"`
	Manual      bool      `json:"manual,omitempty"`
	Hold        bool      `json:"hold,omitempty"`
	By          string    `json:"by,omitempty"`
	Why         string    `json:"why,omitempty"`
	// Rate is the line's new or unverified callers a second now (over
	// GUARD_ATTACK_WINDOW), Threshold GUARD_ATTACK_RATE, Peak the highest
	// rate of the current period.
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	Peak      float64 `json:"peak,omitempty"`
	// Events and Repeated answer a command, as CommandResult does.
	Events    []string `json:"events,omitempty"`
	CommandID string   `json:"commandId,omitempty"`
	Repeated  bool     `json:"repeated,omitempty"`
}

func attackView(m line.Mode) AttackView {
	return AttackView{
		Line: m.Line, UnderAttack: m.On, Since: m.Since.UTC(), Manual: m.Manual, Hold: m.Hold, By: m.By, Why: m.Why,
		Rate: m.Rate, Threshold: m.Threshold, Peak: m.Peak, Events: m.Events, Repeated: m.Repeated,
	}
}

// lineNumber reads the called number in the path like a caller's number.
func (s *Server) lineNumber(v *validation, r *http.Request) string {
	n := v.number(s.d.Normalizer, r.PathValue("number"), "number", inPath)
	if n != "" && !line.ValidLine(n) {
		v.add("number", inPath, "is not a called number (E.164)")
	}
	return n
}

func (s *Server) attackStatus(w http.ResponseWriter, r *http.Request) {
	if s.d.Lines == nil {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node runs without the lines' under-attack mode"))
		return
	}
	var v validation
	n := s.lineNumber(&v, r)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	m, err := s.d.Lines.Status(ctx, n)
	if err != nil {
		s.fail(w, r, lineErr("attack status "+n, err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, attackView(m))
}

func (s *Server) attackOn(w http.ResponseWriter, r *http.Request)  { s.attackCommand(w, r, true) }
func (s *Server) attackOff(w http.ResponseWriter, r *http.Request) { s.attackCommand(w, r, false) }

// attackCommand switches a line's mode: PUT on (body required), DELETE
// off (body optional, reason also in the query, as the other DELETEs).
func (s *Server) attackCommand(w http.ResponseWriter, r *http.Request, on bool) {
	if s.d.Lines == nil {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node runs without the lines' under-attack mode"))
		return
	}
	var body attackBody
	if !s.decode(w, r, &body, on) {
		return
	}
	var v validation
	n := s.lineNumber(&v, r)
	reason, in := body.Reason, inBody
	if q := r.URL.Query().Get("reason"); q != "" && !on {
		if reason != "" && strings.TrimSpace(q) != strings.TrimSpace(reason) {
			v.add("reason", inQuery, "given in both the body and the query, differently")
		}
		reason, in = q, inQuery
	}
	if !on && body.Hold {
		v.add("hold", inBody, "only switching on can hold the mode")
	}
	verb := "attack-off"
	if on {
		verb = "attack-on"
	}
	cmd := line.Command{On: on, Hold: body.Hold, By: v.by(r, body.By), Why: v.text("reason", in, reason)}
	cmd.ID = v.commandID(r, verb)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	m, err := s.d.Lines.Command(ctx, n, cmd)
	if err != nil {
		s.fail(w, r, lineErr(verb+" "+n, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", verb, "line", n,
		"by", cmd.By, "command_id", cmd.ID, "hold", cmd.Hold, "events", m.Events, "repeated", m.Repeated)
	view := attackView(m)
	view.CommandID = cmd.ID
	if view.Events == nil {
		view.Events = []string{}
	}
	s.writeJSON(w, r, http.StatusOK, view)
}

// lineErr gives a line grain's error the caller grain's sentinel of the
// same meaning, so that fail answers it with the same problem.
func lineErr(what string, err error) error {
	for _, p := range []struct{ from, to error }{
		{line.ErrInvalid, caller.ErrInvalid}, {line.ErrState, caller.ErrState},
		{line.ErrStore, caller.ErrStore}, {line.ErrUnavailable, caller.ErrUnavailable}, {line.ErrFenced, caller.ErrUnavailable},
	} {
		if errors.Is(err, p.from) {
			return fmt.Errorf("%s: %w: %v", what, p.to, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
