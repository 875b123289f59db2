package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
)

// RangeRules applies the range rule commands (rules.Writer).
type RangeRules interface {
	Add(ctx context.Context, cmd rules.Command) (rules.Applied, error)
	Remove(ctx context.Context, list schema.RangeList, rng, commandID, by, why string) (rules.Applied, error)
}

// RangeLists answers GET /v1/ranges (the lists projection).
type RangeLists interface {
	Ranges(ctx context.Context, q lists.RangeQuery) (lists.Page[lists.RangeEntry], error)
}

// Verbs of the range commands, in command IDs.
const (
	VerbRangeWhitelist = "range-whitelist"
	VerbRangeBlock     = "range-block"
	VerbRangeRemove    = "range-remove"
)

// rangeBody is the body of POST /v1/ranges/whitelist and
// POST /v1/ranges/blocks: a prefix, or a range from..to.
type rangeBody struct {
	Prefix string `json:"prefix"`
	From   string `json:"from"`
	To     string `json:"to"`
	Level  *int   `json:"level"`
	By     string `json:"by"`
	Reason string `json:"reason"`
	Until  string `json:"until"`
}

// RangeResult answers a range command.
type RangeResult struct {
	// Range is the rule's range in stored form: "+7999123" (a prefix) or
	// "+79991230000-+79991239999".
	Range     string           `json:"range"`
	List      schema.RangeList `json:"list"`
	CommandID string           `json:"commandId"`
	// Events are the types of the events appended; empty when Repeated.
	Events []string `json:"events"`
	// Revision is the rules stream's revision after the command.
	Revision uint64 `json:"revision"`
	Repeated bool   `json:"repeated"`
}

// NormalizeRange reads a range rule as a person writes it: a prefix
// ("+7999123", "8 999 123") or two numbers of one length joined by a dash
// ("+79991230000-+79991239999", "89991230000-89991239999"), each read
// like a number (phone.Normalizer.Prefix). It returns the stored form.
func NormalizeRange(n *phone.Normalizer, s string) (string, error) {
	lo, hi, isRange, err := SplitRange(s)
	if err != nil {
		return "", err
	}
	if !isRange {
		return normalizePrefix(n, lo)
	}
	from, err := normalizePrefix(n, lo)
	if err != nil {
		return "", err
	}
	to, err := normalizePrefix(n, hi)
	if err != nil {
		return "", err
	}
	r, err := schema.ParseRange(from + "-" + to)
	if err != nil {
		return "", rangeProblem(err)
	}
	return r.String(), nil
}

// SplitRange splits a range as a person writes it at its dash: "A-B" (one
// dash), or "A-+B" when the bounds have dashes of their own. Without a
// dash it is a prefix: lo is s, isRange false.
func SplitRange(s string) (lo, hi string, isRange bool, err error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "", false, errors.New("is required")
	case strings.Count(s, "-+") == 1:
		i := strings.Index(s, "-+")
		return s[:i], s[i+1:], true, nil
	case strings.Count(s, "-") == 1:
		lo, hi, _ := strings.Cut(s, "-")
		return lo, hi, true, nil
	case strings.Contains(s, "-"):
		return "", "", false, fmt.Errorf("%q: write a range as FROM-TO with numbers of one length, such as +79991230000-+79991239999", clip(s))
	}
	return s, "", false, nil
}

func normalizePrefix(n *phone.Normalizer, s string) (string, error) {
	p, err := n.Prefix(s)
	switch {
	case err != nil || p == "" || p == phone.AnonymousKey:
		return "", fmt.Errorf("%q is not a number or the start of one, such as +7999123 or 8999123", clip(s))
	}
	if _, err := schema.ParseRange(p); err != nil {
		return "", rangeProblem(err)
	}
	return p, nil
}

// rangeProblem drops ParseRange's quoting of the whole input, which the
// field error names already.
func rangeProblem(err error) error {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, schema.ErrRange.Error()+": "); ok {
		msg = after
	}
	return errors.New(msg)
}

func (s *Server) rangeWhitelist(w http.ResponseWriter, r *http.Request) {
	s.addRange(w, r, schema.RangeWhitelist)
}

func (s *Server) rangeBlock(w http.ResponseWriter, r *http.Request) {
	s.addRange(w, r, schema.RangeBlock)
}

func (s *Server) addRange(w http.ResponseWriter, r *http.Request, list schema.RangeList) {
	if absent(w, r, s.d.Ranges == nil, "range rules") {
		return
	}
	var body rangeBody
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	cmd := rules.Command{
		List: list, Range: v.rangeOf(s.d.Normalizer, body),
		By: v.by(r, body.By), Why: v.text("reason", inBody, body.Reason), Until: v.until(body.Until, s.d.Clock()),
	}
	verb := VerbRangeWhitelist
	if list == schema.RangeBlock {
		verb = VerbRangeBlock
		switch {
		case body.Level == nil:
			v.add("level", inBody, fmt.Sprintf("is required: %d to %d (%d–%d challenge, %d–%d reject)", schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
		case *body.Level < schema.MinLevel || *body.Level > schema.MaxLevel:
			v.add("level", inBody, fmt.Sprintf("is %d, want %d to %d (%d–%d challenge, %d–%d reject)", *body.Level, schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
		default:
			cmd.Level = *body.Level
		}
	} else if body.Level != nil {
		v.add("level", inBody, "is not a member of a whitelist rule: a whitelisted range always passes")
	}
	cmd.CommandID = v.commandID(r, verb)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Ranges.Add(ctx, cmd)
	if err != nil {
		s.ruleFail(w, r, fmt.Errorf("%s %s: %w", verb, cmd.Range, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", verb, "range", cmd.Range,
		"by", cmd.By, "command_id", cmd.CommandID, "level", cmd.Level, "revision", applied.Revision, "repeated", applied.Repeated)
	status := http.StatusOK
	if !applied.Repeated {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/ranges?list="+string(list)+"&prefix="+url.QueryEscape(cmd.Range))
	}
	s.writeJSON(w, r, status, rangeResult(cmd.Range, list, cmd.CommandID, applied))
}

func (s *Server) rangeWhitelistRemove(w http.ResponseWriter, r *http.Request) {
	s.removeRange(w, r, schema.RangeWhitelist)
}

func (s *Server) rangeBlockRemove(w http.ResponseWriter, r *http.Request) {
	s.removeRange(w, r, schema.RangeBlock)
}

func (s *Server) removeRange(w http.ResponseWriter, r *http.Request, list schema.RangeList) {
	if absent(w, r, s.d.Ranges == nil, "range rules") {
		return
	}
	var body removeBody
	if !s.decode(w, r, &body, false) {
		return
	}
	var v validation
	rng, err := NormalizeRange(s.d.Normalizer, r.PathValue("range"))
	if err != nil {
		v.add("range", inPath, err.Error())
	}
	reason, in := body.Reason, inBody
	if q := r.URL.Query().Get("reason"); q != "" {
		if reason != "" && strings.TrimSpace(q) != strings.TrimSpace(reason) {
			v.add("reason", inQuery, "given in both the body and the query, differently")
		}
		reason, in = q, inQuery
	}
	by, why := v.by(r, body.By), v.text("reason", in, reason)
	id := v.commandID(r, VerbRangeRemove)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Ranges.Remove(ctx, list, rng, id, by, why)
	if err != nil {
		s.ruleFail(w, r, fmt.Errorf("remove %s %s: %w", list, rng, err))
		return
	}
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", VerbRangeRemove, "list", list, "range", rng,
		"by", by, "command_id", id, "revision", applied.Revision, "repeated", applied.Repeated)
	s.writeJSON(w, r, http.StatusOK, rangeResult(rng, list, id, applied))
}

func rangeResult(rng string, list schema.RangeList, id string, a rules.Applied) RangeResult {
	res := RangeResult{Range: rng, List: list, CommandID: id, Events: []string{}, Revision: a.Revision, Repeated: a.Repeated}
	if a.Event != "" {
		res.Events = append(res.Events, a.Event)
	}
	return res
}

// ruleFail answers an error of the rules writer (range and origin
// commands) as the problem it is.
func (s *Server) ruleFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, rules.ErrExists):
		writeProblem(w, r, newProblem(CodeRangeExists, err.Error()))
	case errors.Is(err, rules.ErrNotFound):
		writeProblem(w, r, newProblem(CodeUnknownRange, err.Error()))
	case errors.Is(err, rules.ErrInvalid):
		writeProblem(w, r, newProblem(CodeCommandRefused, err.Error()))
	default:
		s.fail(w, r, err)
	}
}

// rangeOf reads the rule's range from a body: prefix, or from and to.
func (v *validation) rangeOf(n *phone.Normalizer, b rangeBody) string {
	switch {
	case b.Prefix != "" && (b.From != "" || b.To != ""):
		v.add("prefix", inBody, "is given with from/to; give a prefix or a range, not both")
	case b.Prefix != "":
		p, err := normalizePrefix(n, b.Prefix)
		if err != nil {
			v.add("prefix", inBody, err.Error())
		}
		return p
	case b.From == "" && b.To == "":
		v.add("prefix", inBody, "is required, or from and to: the numbers the rule covers")
	case b.From == "" || b.To == "":
		v.add("from", inBody, "and to are both required for a range")
	default:
		from, errF := normalizePrefix(n, b.From)
		if errF != nil {
			v.add("from", inBody, errF.Error())
		}
		to, errT := normalizePrefix(n, b.To)
		if errT != nil {
			v.add("to", inBody, errT.Error())
		}
		if errF != nil || errT != nil {
			return ""
		}
		r, err := schema.ParseRange(from + "-" + to)
		if err != nil {
			v.add("to", inBody, rangeProblem(err).Error())
			return ""
		}
		return r.String()
	}
	return ""
}

func (s *Server) rangeList(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.RangeLists == nil, "the lists") {
		return
	}
	var v validation
	q := r.URL.Query()
	rq := lists.RangeQuery{
		List: schema.RangeList(q.Get("list")), Prefix: v.prefix(s.d.Normalizer, q), After: q.Get("after"),
		Limit: v.limit(q, lists.MaxLimit, lists.DefaultLimit), IncludeExpired: v.queryBool(q, "expired"),
	}
	if rq.List != "" && !rq.List.Valid() {
		v.add("list", inQuery, fmt.Sprintf("is %q, want whitelist or block", clip(string(rq.List))))
	}
	if v.failed(w, r) {
		return
	}
	fr := s.freshness(w, r, lists.Name)
	page, err := s.d.RangeLists.Ranges(r.Context(), rq)
	if err != nil {
		s.readFail(w, r, fmt.Errorf("ranges: %w", err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, listAnswer[lists.RangeEntry]{Page: page, Projection: fr})
}
