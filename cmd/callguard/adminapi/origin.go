package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events/schema"
)

// OriginRules applies and lists the origin rules (verdicts by the caller
// number's country and type); *rules.Writer with the node's table
// implements it (OriginWriter).
type OriginRules interface {
	SetOrigin(ctx context.Context, cmd rules.OriginCommand) (rules.Applied, error)
	RemoveOrigin(ctx context.Context, kind schema.OriginKind, value, commandID, by, why string) (rules.Applied, error)
	OriginRules() []rules.OriginRule
}

// OriginWriter is OriginRules from the rules stream's writer (commands)
// and the node's table (the list).
type OriginWriter struct {
	*rules.Writer
	Table *rules.Live
}

// OriginRules lists the origin rules the node's table holds.
func (o OriginWriter) OriginRules() []rules.OriginRule { return o.Table.OriginRules() }

// Verbs of the origin commands, in command IDs.
const (
	VerbOriginSet    = "origin-set"
	VerbOriginRemove = "origin-remove"
)

type originBody struct {
	Value  string `json:"value"`
	Level  *int   `json:"level"`
	By     string `json:"by"`
	Reason string `json:"reason"`
	Until  string `json:"until"`
}

// OriginRule is an origin rule as the API shows it.
type OriginRule struct {
	Kind  schema.OriginKind `json:"kind"`
	Value string            `json:"value"`
	Level int               `json:"level"`
	Since time.Time         `json:"since"`
	Until time.Time         `json:"until,omitzero"`
	By    string            `json:"by"`
	Why   string            `json:"why"`
}

// OriginResult answers an origin command.
type OriginResult struct {
	Kind      schema.OriginKind `json:"kind"`
	Value     string            `json:"value"`
	CommandID string            `json:"commandId"`
	// Events are the types of the events appended; empty when Repeated.
	Events   []string `json:"events"`
	Revision uint64   `json:"revision"`
	Repeated bool     `json:"repeated"`
}

// originKind reads the {kind} path segment: "countries" or "numtypes".
func originKind(v *validation, r *http.Request) schema.OriginKind {
	switch r.PathValue("kind") {
	case "countries":
		return schema.OriginCountry
	case "numtypes":
		return schema.OriginNumberType
	}
	v.add("kind", inPath, fmt.Sprintf("is %q, want countries or numtypes", clip(r.PathValue("kind"))))
	return ""
}

// originValue normalises and checks a rule's value: regions upper case,
// types lower case.
func originValue(v *validation, kind schema.OriginKind, in, field, value string) string {
	value = strings.TrimSpace(value)
	switch kind {
	case schema.OriginCountry:
		value = strings.ToUpper(value)
	case schema.OriginNumberType:
		value = strings.ToLower(value)
	default:
		return value
	}
	if value == "" {
		v.add(field, in, "is required")
		return ""
	}
	if err := rules.CheckOrigin(kind, value); err != nil {
		_, msg, _ := strings.Cut(err.Error(), rules.ErrInvalid.Error()+": ")
		v.add(field, in, msg)
	}
	return value
}

func (s *Server) originSet(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Origins == nil, "origin rules") {
		return
	}
	var body originBody
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	kind := originKind(&v, r)
	cmd := rules.OriginCommand{
		Kind: kind, Value: originValue(&v, kind, inBody, "value", body.Value),
		By: v.by(r, body.By), Why: v.text("reason", inBody, body.Reason), Until: v.until(body.Until, s.d.Clock()),
	}
	switch {
	case body.Level == nil:
		v.add("level", inBody, fmt.Sprintf("is required: %d to %d (%d–%d challenge, %d–%d reject)", schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
	case *body.Level < schema.MinLevel || *body.Level > schema.MaxLevel:
		v.add("level", inBody, fmt.Sprintf("is %d, want %d to %d (%d–%d challenge, %d–%d reject)", *body.Level, schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
	default:
		cmd.Level = *body.Level
	}
	cmd.CommandID = v.commandID(r, VerbOriginSet)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Origins.SetOrigin(ctx, cmd)
	if err != nil {
		s.ruleFail(w, r, fmt.Errorf("%s %s %s: %w", VerbOriginSet, kind, cmd.Value, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbOriginSet, "kind", kind, "value", cmd.Value,
		"by", cmd.By, "command_id", cmd.CommandID, "level", cmd.Level, "revision", applied.Revision, "repeated", applied.Repeated)
	status := http.StatusOK
	if !applied.Repeated {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, originResult(kind, cmd.Value, cmd.CommandID, applied))
}

func (s *Server) originRemove(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Origins == nil, "origin rules") {
		return
	}
	var body removeBody
	if !s.decode(w, r, &body, false) {
		return
	}
	var v validation
	kind := originKind(&v, r)
	value := originValue(&v, kind, inPath, "value", r.PathValue("value"))
	reason, in := body.Reason, inBody
	if q := r.URL.Query().Get("reason"); q != "" {
		reason, in = q, inQuery
	}
	by, why := v.by(r, body.By), v.text("reason", in, reason)
	id := v.commandID(r, VerbOriginRemove)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Origins.RemoveOrigin(ctx, kind, value, id, by, why)
	if err != nil {
		s.ruleFail(w, r, fmt.Errorf("%s %s %s: %w", VerbOriginRemove, kind, value, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbOriginRemove, "kind", kind, "value", value,
		"by", by, "command_id", id, "revision", applied.Revision, "repeated", applied.Repeated)
	s.writeJSON(w, r, http.StatusOK, originResult(kind, value, id, applied))
}

func (s *Server) originList(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Origins == nil, "origin rules") {
		return
	}
	out := []OriginRule{}
	for _, o := range s.d.Origins.OriginRules() {
		out = append(out, OriginRule{Kind: o.Kind, Value: o.Value, Level: o.Level, Since: o.Since.UTC(), Until: o.Until, By: o.By, Why: o.Why})
	}
	s.writeJSON(w, r, http.StatusOK, struct {
		Rules []OriginRule `json:"rules"`
	}{out})
}

func originResult(kind schema.OriginKind, value, id string, a rules.Applied) OriginResult {
	res := OriginResult{Kind: kind, Value: value, CommandID: id, Events: []string{}, Revision: a.Revision, Repeated: a.Repeated}
	if a.Event != "" {
		res.Events = append(res.Events, a.Event)
	}
	return res
}

// OriginRequest is the body of POST /v1/origins/{kind}.
type OriginRequest struct {
	Value  string `json:"value"`
	Level  int    `json:"level"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Until is the rule's expiry; zero for none.
	Until          time.Time `json:"until,omitzero"`
	IdempotencyKey string    `json:"-"`
}

func originPath(kind schema.OriginKind) string {
	if kind == schema.OriginCountry {
		return "/v1/origins/countries"
	}
	return "/v1/origins/numtypes"
}

// SetOrigin sets the origin rule of kind.
func (c *Client) SetOrigin(ctx context.Context, kind schema.OriginKind, req OriginRequest) (OriginResult, error) {
	var res OriginResult
	err := c.do(ctx, http.MethodPost, originPath(kind), req, req.IdempotencyKey, &res)
	return res, err
}

// RemoveOrigin removes the origin rule of kind and value.
func (c *Client) RemoveOrigin(ctx context.Context, kind schema.OriginKind, value string, req RemoveRequest) (OriginResult, error) {
	var res OriginResult
	err := c.do(ctx, http.MethodDelete, originPath(kind)+"/"+url.PathEscape(value), req, req.IdempotencyKey, &res)
	return res, err
}

// ListOrigins returns the origin rules (GET /v1/origins).
func (c *Client) ListOrigins(ctx context.Context) ([]OriginRule, error) {
	var res struct {
		Rules []OriginRule `json:"rules"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/origins", nil, "", &res)
	return res.Rules, err
}
