package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy/audit"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/profiles"
)

// searchLimit is how many callers a search page lists.
const searchLimit = 50

// maxTimeline bounds the entries a caller page shows, newest first; a
// number that has called thousands of times would make the page heavy,
// and the API and CLI give the whole timeline.
const maxTimeline = 300

// numbersData is the search page's Data.
type numbersData struct {
	Q       string
	Prefix  string
	Results []profiles.Profile
	Next    string
	Err     string
	// Searched: a search ran (so an empty result says "none").
	Searched    bool
	Unavailable bool
}

// numbers serves GET /console/numbers?q=: a whole number in any usual
// spelling goes straight to its page; anything shorter is a prefix
// search of the caller profiles.
func (s *Server) numbers(w http.ResponseWriter, r *http.Request, c *visit) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := numbersData{Q: q, Unavailable: s.d.Profiles == nil}
	if q == "" {
		s.render(w, r, c, http.StatusOK, "numbers", d)
		return
	}
	if key, ok := s.wholeNumber(q); ok {
		http.Redirect(w, r, callerPath(key), http.StatusSeeOther)
		return
	}
	prefix, err := s.d.Normalizer.Prefix(q)
	if err != nil {
		d.Err = translate(c.lang, "numbers.badprefix", q)
		s.render(w, r, c, http.StatusBadRequest, "numbers", d)
		return
	}
	d.Prefix = prefix
	if s.d.Profiles == nil {
		s.render(w, r, c, http.StatusOK, "numbers", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	s.fresh(ctx, c, profiles.Name)
	page, err := s.d.Profiles.Search(ctx, profiles.Query{Prefix: prefix, After: r.URL.Query().Get("after"), Limit: searchLimit})
	switch {
	case errors.Is(err, profiles.ErrQuery):
		d.Err = err.Error()
	case err != nil:
		s.d.Logger.Warn("console: search callers", "err", err)
		d.Err = translate(c.lang, "common.failed", "profiles")
	default:
		d.Searched, d.Results = true, page.Items
		if page.Next != "" {
			d.Next = "/console/numbers?" + url.Values{"q": {q}, "after": {page.Next}}.Encode()
		}
	}
	s.render(w, r, c, http.StatusOK, "numbers", d)
}

// wholeNumber reports whether q is a whole number (or "anonymous"): it
// normalises to E.164 and reads the same as a prefix, so "8916123" (a
// prefix that also parses as some short number) stays a search.
func (s *Server) wholeNumber(q string) (string, bool) {
	if strings.EqualFold(q, phone.AnonymousKey) {
		return phone.AnonymousKey, true
	}
	n := s.d.Normalizer.Normalize(q)
	if n.Kind != phone.KindE164 {
		return "", false
	}
	p, err := s.d.Normalizer.Prefix(q)
	return n.Key, err == nil && p == n.Key
}

// callerPath is a caller's page.
func callerPath(key string) string {
	return "/console/numbers/" + url.PathEscape(key)
}

// callerKey normalises the number in a caller page's path, as the API
// does; ok false for something that is not a number.
func (s *Server) callerKey(raw string) (string, bool) {
	t := strings.TrimSpace(raw)
	if strings.EqualFold(t, phone.AnonymousKey) {
		return phone.AnonymousKey, true
	}
	n := s.d.Normalizer.Normalize(t)
	return n.Key, n.Kind == phone.KindE164
}

// callerData is the caller page's Data.
type callerData struct {
	Key    string
	Status *caller.Status
	// Next is the verdict a call now would get.
	StatusErr string
	Timeline  []timelineEntry
	Summary   *audit.Summary
	// Hidden counts the older entries not shown.
	Hidden      int
	TimelineErr string
	NoHistory   bool
	// Levels for the block form.
	Levels []int
}

// timelineEntry is one audit entry with its class in the list.
type timelineEntry struct {
	audit.Entry
	Class string
}

// caller serves GET /console/numbers/{number}.
func (s *Server) caller(w http.ResponseWriter, r *http.Request, c *visit) {
	raw := r.PathValue("number")
	key, ok := s.callerKey(raw)
	if !ok {
		s.render(w, r, c, http.StatusNotFound, "error", errorData{Status: http.StatusNotFound, Message: translate(c.lang, "numbers.badnumber", raw)})
		return
	}
	if raw != key {
		http.Redirect(w, r, callerPath(key), http.StatusSeeOther)
		return
	}
	d := callerData{Key: key}
	for l := schema.MinLevel; l <= schema.MaxLevel; l++ {
		d.Levels = append(d.Levels, l)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.d.Callers.Status(ctx, key)
	if err != nil {
		s.d.Logger.Warn("console: caller status", "number", key, "err", err)
		d.StatusErr = s.commandErrText(c.lang, err)
	} else {
		d.Status = &st
	}
	if s.d.History == nil {
		d.NoHistory = true
	} else if raw, err := s.d.History.History(ctx, key); err != nil && !errors.Is(err, adminapi.ErrNotFound) {
		s.d.Logger.Warn("console: caller history", "number", key, "err", err)
		d.TimelineErr = s.commandErrText(c.lang, err)
	} else if err == nil {
		tl, err := asTimeline(raw)
		if err != nil {
			s.d.Logger.Error("console: caller history", "number", key, "err", err)
			d.TimelineErr = translate(c.lang, "error.500")
		} else {
			d.Summary = &tl.Summary
			entries := tl.Entries
			if len(entries) > maxTimeline {
				d.Hidden = len(entries) - maxTimeline
				entries = entries[len(entries)-maxTimeline:]
			}
			for i := len(entries) - 1; i >= 0; i-- {
				d.Timeline = append(d.Timeline, timelineEntry{Entry: entries[i], Class: entryClass(entries[i])})
			}
		}
	}
	s.render(w, r, c, http.StatusOK, "caller", d)
}

// asTimeline reads what History returned: the audit timeline, as a value
// or pointer, or anything that encodes to the same JSON.
func asTimeline(v any) (audit.Timeline, error) {
	switch t := v.(type) {
	case audit.Timeline:
		return t, nil
	case *audit.Timeline:
		if t != nil {
			return *t, nil
		}
		return audit.Timeline{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return audit.Timeline{}, fmt.Errorf("encode the history: %w", err)
	}
	var tl audit.Timeline
	if err := json.Unmarshal(b, &tl); err != nil {
		return audit.Timeline{}, fmt.Errorf("read the history as a timeline: %w", err)
	}
	return tl, nil
}

// entryClass is an entry's class in <ol id="timeline">: call, challenge,
// block (a block set, by the rules or by hand, or running out), command
// (an admin's whitelist, unwhitelist or unblock), other.
func entryClass(e audit.Entry) string {
	switch e.Kind {
	case audit.KindCall:
		return "call"
	case audit.KindChallenge:
		return "challenge"
	case audit.KindBlock:
		return "block"
	case audit.KindUnblock, audit.KindWhitelist, audit.KindUnwhitelist:
		return "command"
	case audit.KindExpiry:
		return "expiry"
	}
	return "other"
}

// commandVerbs are the verbs the caller page posts.
var commandVerbs = map[string]bool{
	caller.VerbWhitelist: true, caller.VerbUnwhitelist: true, caller.VerbBlock: true, caller.VerbUnblock: true,
}

// callerCommand serves POST /console/numbers/{number}/{verb}: the same
// command the API's handlers send, by the signed-in user, then back to
// the caller's page with a flash.
func (s *Server) callerCommand(w http.ResponseWriter, r *http.Request, c *visit) {
	verb := r.PathValue("verb")
	key, ok := s.callerKey(r.PathValue("number"))
	if !ok || !commandVerbs[verb] {
		s.renderError(w, r, c, http.StatusNotFound, "")
		return
	}
	in := adminapi.CommandInput{
		Verb: verb, Number: key, By: c.acct.Name, Reason: r.PostFormValue("why"),
		ID: verb + ":" + s.d.NewID(),
	}
	var formErr string
	if verb == caller.VerbWhitelist || verb == caller.VerbBlock {
		until, err := s.formUntil(r.PostFormValue("until"))
		if err != nil {
			formErr = translate(c.lang, "caller.baduntil", r.PostFormValue("until"))
		}
		in.Until = until
	}
	if verb == caller.VerbBlock {
		if l, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("level"))); err == nil {
			in.Level = &l
		}
	}
	back := callerPath(key)
	if formErr != "" {
		s.flash(c, formErr, true)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	_, cmd, err := adminapi.CallerCommand(s.d.Normalizer, s.d.Clock(), in)
	var ce *adminapi.CommandError
	if errors.As(err, &ce) {
		s.flash(c, translate(c.lang, "caller.refused", fieldErrors(ce.Errors)), true)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	if err != nil {
		s.d.Logger.Error("console: build a command", "err", err)
		s.renderError(w, r, c, http.StatusInternalServerError, "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	applied, err := s.d.Callers.Command(ctx, key, cmd)
	if err != nil {
		s.d.Logger.Warn("console command failed", "verb", verb, "number", key, "by", cmd.Command.By, "command_id", cmd.Command.ID, "err", err)
		s.flash(c, s.commandErrText(c.lang, err), true)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	s.d.Logger.Info("console command", "verb", verb, "number", key, "by", cmd.Command.By, "command_id", cmd.Command.ID,
		"level", cmd.Command.Level, "events", applied.Events, "revision", applied.Revision, "repeated", applied.Repeated)
	s.flash(c, translate(c.lang, "caller.done."+verb, key), false)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// formUntil reads an expiry typed in a form: empty, a datetime-local
// value ("2026-12-31T18:00") or a date (the end of that day) in the
// console's zone, or RFC 3339. It returns RFC 3339 for CallerCommand.
func (s *Server) formUntil(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339, raw); err == nil {
		return t.Format(time.RFC3339), nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, raw, s.d.Zone); err == nil {
			return t.Format(time.RFC3339), nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", raw, s.d.Zone); err == nil {
		return t.AddDate(0, 0, 1).Add(-time.Second).Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("%q is not a time", raw)
}

// fieldErrors joins the API's field errors for a flash.
func fieldErrors(errs []adminapi.FieldError) string {
	parts := make([]string, len(errs))
	for i, fe := range errs {
		field := fe.Field
		if field == "reason" {
			field = "why"
		}
		parts[i] = field + " " + fe.Detail
	}
	return strings.Join(parts, "; ")
}

// commandErrText says what went wrong with a grain or the store in the
// page's language; the details are in the log.
func (s *Server) commandErrText(lang string, err error) string {
	switch {
	case errors.Is(err, caller.ErrState):
		return translate(lang, "caller.err.state", err.Error())
	case errors.Is(err, caller.ErrInvalid):
		return translate(lang, "caller.refused", err.Error())
	case errors.Is(err, caller.ErrStore), errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrClosed):
		return translate(lang, "caller.err.store")
	case errors.Is(err, caller.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return translate(lang, "caller.err.unavailable")
	}
	return translate(lang, "error.500")
}
