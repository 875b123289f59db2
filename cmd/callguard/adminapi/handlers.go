package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Request bodies as the server decodes them. Until is a string so that a
// malformed time is reported against its field; Level is a pointer so that
// a missing level is told apart from level 0.
type (
	whitelistBody struct {
		Number string `json:"number"`
		By     string `json:"by"`
		Reason string `json:"reason"`
		Until  string `json:"until"`
	}
	blockBody struct {
		Level  *int   `json:"level"`
		By     string `json:"by"`
		Reason string `json:"reason"`
		Until  string `json:"until"`
	}
	removeBody struct {
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
)

// Where a field of a request comes from, for FieldError.In.
const (
	inBody   = "body"
	inPath   = "path"
	inQuery  = "query"
	inHeader = "header"
)

// HeaderAdmin names the admin when the body does not (see "Who did it").
const HeaderAdmin = "X-Admin"

// HeaderIdempotencyKey makes a command safe to retry (see "Idempotency").
const HeaderIdempotencyKey = "Idempotency-Key"

// maxIdempotencyKey bounds the header; the key becomes part of an event.
const maxIdempotencyKey = 128

func (s *Server) whitelist(w http.ResponseWriter, r *http.Request) {
	var body whitelistBody
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	key, cmd := v.callerCommand(s.d.Normalizer, s.d.Clock(), CommandInput{
		Verb: caller.VerbWhitelist, Number: body.Number, Reason: body.Reason, Until: body.Until,
	}, fieldsAt{number: inBody, reason: inBody, by: func(v *validation) string { return v.by(r, body.By) }})
	cmd.ID = v.commandID(r, caller.VerbWhitelist)
	if v.failed(w, r) {
		return
	}
	s.command(w, r, key, caller.VerbWhitelist, cmd)
}

func (s *Server) unwhitelist(w http.ResponseWriter, r *http.Request) {
	s.remove(w, r, caller.VerbUnwhitelist)
}

func (s *Server) unblock(w http.ResponseWriter, r *http.Request) {
	s.remove(w, r, caller.VerbUnblock)
}

// remove serves the two DELETEs: their body is optional, since many
// clients send none with DELETE, and its members may come from the query
// and the X-Admin header instead.
func (s *Server) remove(w http.ResponseWriter, r *http.Request, verb string) {
	var body removeBody
	if !s.decode(w, r, &body, false) {
		return
	}
	var v validation
	reason, in := body.Reason, inBody
	var conflict bool
	if q := r.URL.Query().Get("reason"); q != "" {
		conflict = reason != "" && strings.TrimSpace(q) != strings.TrimSpace(reason)
		reason, in = q, inQuery
	}
	key, cmd := v.callerCommand(s.d.Normalizer, s.d.Clock(), CommandInput{Verb: verb, Number: r.PathValue("number"), Reason: reason},
		fieldsAt{number: inPath, reason: in, by: func(v *validation) string {
			if conflict {
				v.add("reason", inQuery, "given in both the body and the query, differently")
			}
			return v.by(r, body.By)
		}})
	cmd.ID = v.commandID(r, verb)
	if v.failed(w, r) {
		return
	}
	s.command(w, r, key, verb, cmd)
}

func (s *Server) block(w http.ResponseWriter, r *http.Request) {
	var body blockBody
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	key, cmd := v.callerCommand(s.d.Normalizer, s.d.Clock(), CommandInput{
		Verb: caller.VerbBlock, Number: r.PathValue("number"), Reason: body.Reason, Until: body.Until, Level: body.Level,
	}, fieldsAt{number: inPath, reason: inBody, by: func(v *validation) string { return v.by(r, body.By) }})
	cmd.ID = v.commandID(r, caller.VerbBlock)
	if v.failed(w, r) {
		return
	}
	s.command(w, r, key, caller.VerbBlock, cmd)
}

// CommandInput is an admin's command on one caller as an edge received
// it: the admin API from JSON, the console from a form.
type CommandInput struct {
	// Verb is caller.VerbWhitelist, VerbUnwhitelist, VerbBlock or
	// VerbUnblock.
	Verb string
	// Number is the caller in any spelling the normaliser accepts, or
	// "anonymous".
	Number string
	// By names the admin, Reason says why (both required, one line each).
	By, Reason string
	// Until is an optional RFC 3339 expiry in the future (whitelist and
	// block only).
	Until string
	// Level is the block's level (block only, required).
	Level *int
	// ID is the command's ID, which makes a retry idempotent (required).
	ID string
}

// CommandError lists what is wrong with a CommandInput, field by field.
type CommandError struct {
	Errors []FieldError
}

func (e *CommandError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + " " + fe.Detail
	}
	return "invalid command: " + strings.Join(parts, "; ")
}

// CallerCommand checks an admin's command on a caller exactly as the API
// does and returns the caller's key and the command to send to its
// grain, or a *CommandError. The console posts its forms through it, so
// that a command means the same from either edge.
func CallerCommand(n *phone.Normalizer, now time.Time, in CommandInput) (string, caller.Command, error) {
	var v validation
	key, cmd := v.callerCommand(n, now, in, fieldsAt{number: inBody, reason: inBody, by: func(v *validation) string {
		if strings.TrimSpace(in.By) == "" {
			v.add("by", inBody, "is required: name the admin")
			return ""
		}
		return v.text("by", inBody, in.By)
	}})
	if strings.TrimSpace(in.ID) == "" {
		v.add("id", inBody, "is required")
	}
	cmd.ID = in.ID
	if len(v.errs) > 0 {
		return "", caller.Command{}, &CommandError{Errors: v.errs}
	}
	return key, caller.Command{Verb: in.Verb, Command: cmd}, nil
}

// fieldsAt says where a request's fields came from, and how it names the
// admin (the API takes a body member or a header).
type fieldsAt struct {
	number, reason string
	by             func(*validation) string
}

// callerCommand validates a command on a caller, field errors in the
// order the API has always listed them: number, by, reason, until, level.
// It leaves the command's ID to the caller.
func (v *validation) callerCommand(n *phone.Normalizer, now time.Time, in CommandInput, at fieldsAt) (string, policy.Command) {
	key := v.number(n, in.Number, "number", at.number)
	cmd := policy.Command{By: at.by(v), Why: v.text("reason", at.reason, in.Reason)}
	switch in.Verb {
	case caller.VerbWhitelist, caller.VerbBlock:
		cmd.Until = v.until(in.Until, now)
	case caller.VerbUnwhitelist, caller.VerbUnblock:
	default:
		v.add("verb", inPath, fmt.Sprintf("%q is not whitelist, unwhitelist, block or unblock", clip(in.Verb)))
	}
	if in.Verb != caller.VerbBlock {
		return key, cmd
	}
	switch {
	case in.Level == nil:
		v.add("level", inBody, fmt.Sprintf("is required: %d to %d (%d–%d challenge, %d–%d reject)", schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
	case *in.Level < schema.MinLevel || *in.Level > schema.MaxLevel:
		v.add("level", inBody, fmt.Sprintf("is %d, want %d to %d (%d–%d challenge, %d–%d reject; to lift a block, unblock the number)", *in.Level, schema.MinLevel, schema.MaxLevel, schema.MinLevel, schema.SoftMax, schema.HardMin, schema.MaxLevel))
	default:
		cmd.Level = *in.Level
	}
	return key, cmd
}

// command sends a validated command to the caller's grain and answers
// with where its events landed: 201 for a new whitelist entry, 200
// otherwise (and for a repeat, which created nothing).
func (s *Server) command(w http.ResponseWriter, r *http.Request, key, verb string, cmd policy.Command) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Callers.Command(ctx, key, caller.Command{Verb: verb, Command: cmd})
	if err != nil {
		s.fail(w, r, fmt.Errorf("%s %s: %w", verb, key, err))
		return
	}
	// The audit trail proper is the event; this line ties it to the
	// request for whoever reads the guard's log.
	s.d.Logger.Info("admin command", "request_id", requestID(r), "verb", verb, "number", key,
		"by", cmd.By, "command_id", cmd.ID, "level", cmd.Level, "events", applied.Events,
		"revision", applied.Revision, "repeated", applied.Repeated)
	res := CommandResult{
		Number: key, CommandID: cmd.ID, Events: applied.Events,
		Revision: applied.Revision, Repeated: applied.Repeated,
	}
	if res.Events == nil {
		res.Events = []string{}
	}
	status := http.StatusOK
	if verb == caller.VerbWhitelist && !applied.Repeated {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/callers/"+url.PathEscape(key))
	}
	s.writeJSON(w, r, status, res)
}

func (s *Server) callerStatus(w http.ResponseWriter, r *http.Request) {
	var v validation
	key := v.number(s.d.Normalizer, r.PathValue("number"), "number", inPath)
	if v.failed(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.d.Callers.Status(ctx, key)
	if err != nil {
		s.fail(w, r, fmt.Errorf("status %s: %w", key, err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, callerView(st, s.d.Clock()))
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	var v validation
	key := v.number(s.d.Normalizer, r.PathValue("number"), "number", inPath)
	if v.failed(w, r) {
		return
	}
	if s.d.History == nil {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node runs without the audit timeline"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	timeline, err := s.d.History.History(ctx, key)
	if err != nil {
		s.fail(w, r, fmt.Errorf("history %s: %w", key, err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, timeline)
}

// replay runs a what-if replay of the whole log. It reads only, so GET;
// each query parameter overrides one policy setting.
func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	if s.d.Replay == nil {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node runs without replay"))
		return
	}
	settings := make(map[string]string)
	for k, vs := range r.URL.Query() {
		settings[k] = vs[len(vs)-1]
	}
	// A replay reads the whole log: it gets the whole write timeout, not
	// the per-command one.
	rep, err := s.d.Replay.Replay(r.Context(), settings)
	if errors.Is(err, ErrSettings) {
		writeProblem(w, r, newProblem(CodeInvalidRequest, err.Error()))
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("replay: %w", err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, rep)
}

func (s *Server) problems(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, struct {
		Problems []ProblemInfo `json:"problems"`
	}{Catalogue()})
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc) // a write error means the client left
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	// Liveness of the HTTP server only; whether the cluster and the store
	// answer shows in the 503s of the real endpoints.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// fail answers err as the problem its sentinel calls for. Store and
// internal errors are logged in full but answered in general terms: their
// text can name files and hosts, which a client has no use for.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	log := s.d.Logger.With("request_id", requestID(r), "err", err)
	var p *Problem
	switch {
	case errors.Is(err, ErrNotFound):
		p = newProblem(CodeUnknownCaller, err.Error())
	case errors.Is(err, caller.ErrInvalid):
		p = newProblem(CodeCommandRefused, err.Error())
	case errors.Is(err, caller.ErrState):
		p = newProblem(CodeStateConflict, err.Error())
	case errors.Is(err, caller.ErrStore), errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrClosed):
		log.Warn("admin API: event store failed")
		p = newProblem(CodeStoreFailed, "the event store failed; retry with the same idempotency key")
	case errors.Is(err, caller.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.Warn("admin API: caller grain unavailable")
		p = newProblem(CodeCallerUnavailable, "the caller's grain did not answer in time; retry with the same idempotency key")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		log.Debug("admin API: request cancelled")
		p = newProblem(CodeCallerUnavailable, "the request was cancelled")
	default:
		log.Error("admin API: unexpected error")
		p = newProblem(CodeInternal, "internal error")
	}
	writeProblem(w, r, p)
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	// Marshal before writing anything, so that a value that cannot be
	// encoded (only a History's could) gets a problem, not half a
	// document.
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode the answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a write error means the client left
}

// decode reads the JSON body into dst, strictly: one object, known
// members only, at most MaxBodyBytes. A body is optional when !required
// (the DELETEs). It answers the problem itself and returns false when the
// body is refused.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any, required bool) bool {
	if r.ContentLength > MaxBodyBytes {
		writeProblem(w, r, newProblem(CodeBodyTooLarge, fmt.Sprintf("the body is %d bytes; the limit is %d", r.ContentLength, MaxBodyBytes)))
		return false
	}
	if r.ContentLength == 0 { // net/http sets 0 for "no body", -1 for chunked
		if required {
			writeProblem(w, r, newProblem(CodeMalformedJSON, "the request needs a JSON object body"))
			return false
		}
		return true
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		writeProblem(w, r, newProblem(CodeUnsupportedMediaType, fmt.Sprintf("Content-Type is %q; send application/json", clip(r.Header.Get("Content-Type")))))
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		if fe := scanJSON(body); fe != nil {
			v := validation{errs: []FieldError{*fe}}
			v.failed(w, r)
			return false
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(dst)
		if err == nil {
			// Exactly one JSON value: trailing data is a client bug that
			// could hide a second, ignored command.
			if _, terr := dec.Token(); terr != io.EOF {
				err = terr
				if err == nil {
					err = errors.New("more than one JSON value in the body")
				}
			}
		}
	}
	if err == nil {
		return true
	}
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, newProblem(CodeBodyTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", tooBig.Limit)))
	case errors.Is(err, io.EOF) && required:
		writeProblem(w, r, newProblem(CodeMalformedJSON, "the request needs a JSON object body"))
	case errors.Is(err, io.EOF):
		return true // a chunked, empty body
	case errors.As(err, &syntax):
		writeProblem(w, r, newProblem(CodeMalformedJSON, fmt.Sprintf("the body is not JSON: %v (at byte %d)", syntax, syntax.Offset)))
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeProblem(w, r, newProblem(CodeMalformedJSON, "the body ends in the middle of a JSON value"))
	case errors.As(err, &typeError) && typeError.Field == "":
		writeProblem(w, r, newProblem(CodeMalformedJSON, fmt.Sprintf("the body is a JSON %s; it must be an object", typeError.Value)))
	case errors.As(err, &typeError):
		var v validation
		v.add(typeError.Field, inBody, fmt.Sprintf("is a JSON %s, want %s", typeError.Value, jsonKind(typeError)))
		v.failed(w, r)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for DisallowUnknownFields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		var v validation
		v.add(clip(name), inBody, "is not a member of this request")
		v.failed(w, r)
	default:
		writeProblem(w, r, newProblem(CodeMalformedJSON, clip(err.Error())))
	}
	return false
}

// scanJSON finds what encoding/json lets through silently: a member
// given twice in one object (it keeps the last, so {"level":6,"level":1}
// would block at level 1 while a log or a proxy that reads the first saw
// 6) and a string that is not valid UTF-8 (it substitutes U+FFFD, so the
// event would record text the admin did not send). It names the member.
// Syntax errors are left to the decoder, which reports them with their
// offset.
func scanJSON(body []byte) *FieldError {
	type object struct {
		seen    map[string]bool
		wantKey bool
	}
	var (
		stack []*object
		names []string // the member path, for nested objects
		prev  int64
	)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	name := func(key string) string {
		return clip(strings.ToValidUTF8(strings.Join(append(names, key), "."), "\uFFFD"))
	}
	// valueDone is called after a whole value: in an object it was a
	// member's, and the next token is a key again.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].wantKey = true
			names = names[:len(names)-1]
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder reports
		}
		raw := body[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		var top *object
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if !utf8.Valid(raw) {
				return &FieldError{Field: name(key), In: inBody, Detail: "is a member name that is not valid UTF-8"}
			}
			if top.seen[key] {
				return &FieldError{Field: name(key), In: inBody, Detail: "is given twice; send each member once"}
			}
			top.seen[key] = true
			top.wantKey = false
			names = append(names, key)
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &object{seen: map[string]bool{}, wantKey: true})
			case '[':
				stack = append(stack, nil) // an array: no keys
			default: // ']' (a '}' is handled above)
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if !utf8.Valid(raw) {
				field := "body"
				if len(names) > 0 {
					field = clip(strings.ToValidUTF8(strings.Join(names, "."), "\uFFFD"))
				}
				return &FieldError{Field: field, In: inBody, Detail: "is not valid UTF-8 text"}
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

func jsonKind(e *json.UnmarshalTypeError) string {
	t := e.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int:
		return "an integer"
	case reflect.String:
		return "a string"
	default:
		return "a " + t.String()
	}
}

// validation collects every field error of a request, so that one answer
// lists all that must be fixed.
type validation struct {
	errs []FieldError
	// badNumber: the request names no caller (see failed).
	badNumber bool
}

func (v *validation) add(field, in, detail string) {
	v.errs = append(v.errs, FieldError{Field: field, In: in, Detail: detail})
}

// failed answers the collected errors, if any, and reports whether it did.
// The problem is invalid-number when the number is among them (the
// request names no caller at all), else invalid-request.
func (v *validation) failed(w http.ResponseWriter, r *http.Request) bool {
	if len(v.errs) == 0 {
		return false
	}
	var p *Problem
	for _, e := range v.errs {
		if v.badNumber && e.Field == "number" {
			p = newProblem(CodeInvalidNumber, "number "+e.Detail)
			break
		}
	}
	if p == nil {
		if len(v.errs) == 1 {
			p = newProblem(CodeInvalidRequest, v.errs[0].Field+" "+v.errs[0].Detail)
		} else {
			p = newProblem(CodeInvalidRequest, fmt.Sprintf("%d fields are invalid; see errors", len(v.errs)))
		}
	}
	p.Errors = v.errs
	writeProblem(w, r, p)
	return true
}

// number normalises a caller number. Only E.164 numbers and the literal
// "anonymous" are accepted: the normaliser maps everything unparsable to
// the anonymous key, and a typo must not turn into a command about every
// caller without a number.
func (v *validation) number(n *phone.Normalizer, input, field, in string) string {
	t := strings.TrimSpace(input)
	if t == "" {
		v.badNumber = true
		v.add(field, in, "is required")
		return ""
	}
	if strings.EqualFold(t, phone.AnonymousKey) {
		return phone.AnonymousKey
	}
	num := n.Normalize(t)
	if num.Kind != phone.KindE164 {
		v.badNumber = true
		v.add(field, in, fmt.Sprintf("%q is not a phone number: use E.164 such as +79990001122, a national number of region %s, or %q", clip(input), n.Region(), phone.AnonymousKey))
		return ""
	}
	return num.Key
}

// text checks a free-text member (by, reason) by the policy's rule
// (schema.CheckCommandText), to answer per field before the grain is
// asked. It returns it trimmed.
func (v *validation) text(field, in, value string) string {
	t := strings.TrimSpace(value)
	var te *schema.TextError
	if err := schema.CheckCommandText(field, t); errors.As(err, &te) {
		v.add(field, in, te.Problem)
	}
	return t
}

// by returns the admin's name from the body or the X-Admin header.
func (v *validation) by(r *http.Request, body string) string {
	header := strings.TrimSpace(r.Header.Get(HeaderAdmin))
	switch body = strings.TrimSpace(body); {
	case body != "" && header != "" && body != header:
		v.add("by", inBody, fmt.Sprintf("differs from the %s header; give one or make them agree", HeaderAdmin))
		return body
	case body != "":
		return v.text("by", inBody, body)
	case header != "":
		return v.text(HeaderAdmin, inHeader, header)
	default:
		v.add("by", inBody, fmt.Sprintf("is required: name the admin in by or in the %s header", HeaderAdmin))
		return ""
	}
}

// until parses an optional RFC 3339 expiry, which must be in the future.
func (v *validation) until(value string, now time.Time) time.Time {
	if value == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	switch {
	case err != nil:
		v.add("until", inBody, fmt.Sprintf("%q is not an RFC 3339 time such as 2026-12-31T23:59:59Z", clip(value)))
	case !t.After(now):
		v.add("until", inBody, fmt.Sprintf("%s is not in the future (now %s)", t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	return t
}

// commandID returns the ID of the command (see "Idempotency").
func (v *validation) commandID(r *http.Request, verb string) string {
	raw, ok := r.Header[http.CanonicalHeaderKey(HeaderIdempotencyKey)]
	if !ok {
		return requestID(r)
	}
	// The draft standard sends the key as a structured-field string
	// (quoted); plain keys are common too.
	key := strings.TrimSpace(strings.Join(raw, ","))
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	if key == "" || len(key) > maxIdempotencyKey || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		v.add(HeaderIdempotencyKey, inHeader, fmt.Sprintf("must be 1 to %d visible ASCII characters", maxIdempotencyKey))
		return ""
	}
	return verb + ":" + key
}
