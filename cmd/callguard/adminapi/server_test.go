package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

const key = "+79990001122"

func TestCommandsSucceed(t *testing.T) {
	future := testNow.Add(72 * time.Hour)
	tests := []struct {
		name       string
		req        req
		wantStatus int
		wantKey    string
		wantCmd    caller.Command
	}{
		{
			name:       "whitelist, E.164 in the body",
			req:        req{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"alice","reason":"VIP customer"}`},
			wantStatus: http.StatusCreated, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbWhitelist, Command: policy.Command{By: "alice", Why: "VIP customer"}},
		},
		{
			name: "whitelist, national spelling, by from X-Admin, with expiry",
			req: req{method: "POST", path: "/v1/whitelist", body: `{"number":"8 999 000-11-22","reason":"  until the audit  ","until":"` + future.Format(time.RFC3339) + `"}`,
				header: map[string]string{"X-Admin": "bob"}},
			wantStatus: http.StatusCreated, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbWhitelist, Command: policy.Command{By: "bob", Why: "until the audit", Until: future}},
		},
		{
			name:       "unwhitelist, %2B in the path, JSON body",
			req:        req{method: "DELETE", path: "/v1/whitelist/%2B79990001122", body: `{"by":"alice","reason":"no longer a customer"}`},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbUnwhitelist, Command: policy.Command{By: "alice", Why: "no longer a customer"}},
		},
		{
			name:       "unwhitelist, no body: reason in the query, by in X-Admin",
			req:        req{method: "DELETE", path: "/v1/whitelist/79990001122?reason=left+the+bank", header: map[string]string{"X-Admin": "carol"}},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbUnwhitelist, Command: policy.Command{By: "carol", Why: "left the bank"}},
		},
		{
			name:       "block, spaces in the path, hard level",
			req:        req{method: "PUT", path: "/v1/blocks/8%20999%20000%2011%2022", body: `{"level":6,"by":"alice","reason":"fraud dialler"}`},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbBlock, Command: policy.Command{By: "alice", Why: "fraud dialler", Level: 6}},
		},
		{
			name:       "block with expiry, literal + in the path, Cyrillic name",
			req:        req{method: "PUT", path: "/v1/blocks/+79990001122", body: `{"level":3,"by":"Мария","reason":"спам","until":"` + future.Format(time.RFC3339) + `"}`},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbBlock, Command: policy.Command{By: "Мария", Why: "спам", Level: 3, Until: future}},
		},
		{
			name:       "block the anonymous key",
			req:        req{method: "PUT", path: "/v1/blocks/anonymous", body: `{"level":9,"by":"alice","reason":"robocalls without a number"}`},
			wantStatus: http.StatusOK, wantKey: phone.AnonymousKey,
			wantCmd: caller.Command{Verb: caller.VerbBlock, Command: policy.Command{By: "alice", Why: "robocalls without a number", Level: 9}},
		},
		{
			name:       "unblock, body",
			req:        req{method: "DELETE", path: "/v1/blocks/%2B79990001122", body: `{"by":"alice","reason":"customer called the branch"}`},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbUnblock, Command: policy.Command{By: "alice", Why: "customer called the branch"}},
		},
		{
			name:       "unblock, reason in query and body agree",
			req:        req{method: "DELETE", path: "/v1/blocks/%2B79990001122?reason=ok", body: `{"by":"alice","reason":"ok"}`},
			wantStatus: http.StatusOK, wantKey: key,
			wantCmd: caller.Command{Verb: caller.VerbUnblock, Command: policy.Command{By: "alice", Why: "ok"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCallers{}
			s := newTestServer(t, f, nil)
			rec := serve(t, s, tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s: status %d, want %d; body %s", tt.req, rec.Code, tt.wantStatus, rec.Body)
			}
			res := decodeJSON[CommandResult](t, rec)
			sent := f.sent()
			if len(sent) != 1 {
				t.Fatalf("grain got %d commands, want 1", len(sent))
			}
			got := sent[0]
			if got.Key != tt.wantKey {
				t.Errorf("key %q, want %q", got.Key, tt.wantKey)
			}
			if got.Cmd.Command.ID == "" {
				t.Errorf("command has no ID")
			}
			want := tt.wantCmd
			want.Command.ID = got.Cmd.Command.ID
			if got.Cmd.Verb != want.Verb || got.Cmd.Command.By != want.Command.By || got.Cmd.Command.Why != want.Command.Why ||
				got.Cmd.Command.Level != want.Command.Level || !got.Cmd.Command.Until.Equal(want.Command.Until) {
				t.Errorf("command %+v, want %+v", got.Cmd, want)
			}
			wantRes := CommandResult{Number: tt.wantKey, CommandID: got.Cmd.Command.ID, Events: []string{verbEvent[want.Verb]}, Revision: 1}
			if fmt.Sprint(res) != fmt.Sprint(wantRes) {
				t.Errorf("answer %+v, want %+v", res, wantRes)
			}
			if loc := rec.Header().Get("Location"); (tt.wantStatus == http.StatusCreated) != (loc != "") {
				t.Errorf("Location %q with status %d", loc, rec.Code)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	f := &fakeCallers{}
	s := newTestServer(t, f, nil)
	wl := func(header map[string]string) CommandResult {
		t.Helper()
		rec := serve(t, s, req{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"a","reason":"r"}`, header: header})
		if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		res := decodeJSON[CommandResult](t, rec)
		if res.Repeated != (rec.Code == http.StatusOK) {
			t.Errorf("status %d with repeated=%v", rec.Code, res.Repeated)
		}
		return res
	}
	first := wl(map[string]string{"Idempotency-Key": "k-1"})
	again := wl(map[string]string{"Idempotency-Key": `"k-1"`}) // the draft's quoted form is the same key
	if first.CommandID != "whitelist:k-1" || again.CommandID != first.CommandID {
		t.Errorf("command IDs %q and %q, want whitelist:k-1 twice", first.CommandID, again.CommandID)
	}
	if first.Repeated || !again.Repeated || len(again.Events) != 0 {
		t.Errorf("first %+v, retry %+v: want the retry repeated with no events", first, again)
	}
	// The same key for another kind of command is another command.
	rec := serve(t, s, req{method: "PUT", path: "/v1/blocks/%2B79990001122", body: `{"level":2,"by":"a","reason":"r"}`, header: map[string]string{"Idempotency-Key": "k-1"}})
	if res := decodeJSON[CommandResult](t, rec); res.CommandID != "block:k-1" || res.Repeated {
		t.Errorf("block under a whitelist's key: %+v", res)
	}
	// Without the header every request is a new command.
	a, b := wl(nil), wl(nil)
	if a.CommandID == b.CommandID || a.Repeated || b.Repeated {
		t.Errorf("two requests without a key: %+v and %+v", a, b)
	}
	for _, bad := range []string{strings.Repeat("k", 129), "a b", `""`, "ключ"} {
		rec := serve(t, s, req{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"a","reason":"r"}`, header: map[string]string{"Idempotency-Key": bad}})
		if p := problemOfRecorder(t, rec); p.Code() != CodeInvalidRequest || len(p.Errors) != 1 || p.Errors[0].Field != "Idempotency-Key" {
			t.Errorf("Idempotency-Key %q: %+v", bad, p)
		}
	}
}

func TestCallerStatus(t *testing.T) {
	since, until := testNow.Add(-time.Hour), testNow.Add(23*time.Hour)
	tests := []struct {
		name   string
		path   string
		status caller.Status
		want   string // the answer's JSON
	}{
		{
			name:   "never seen",
			path:   "/v1/callers/89990001122",
			status: caller.Status{Status: policy.Status{Next: schema.Pass}},
			want: `{"number":"+79990001122","known":false,"asOf":"2026-11-02T10:00:00Z","block":null,"whitelist":null,"verifiedUntil":null,` +
				`"counters":{"callsLastHour":0,"callsLastDay":0,"failedChallengesLastDay":0},"nextCall":{"verdict":"pass"}}`,
		},
		{
			name: "auto block, verified",
			path: "/v1/callers/%2B79990001122",
			status: caller.Status{Exists: true, Revision: 41, Status: policy.Status{
				Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, Since: since, Until: until,
				VerifiedUntil: testNow.Add(time.Hour), Hour: 6, Day: 9, FailedChallenges: 1,
				Next: schema.Pass, NextRule: schema.RuleVerified,
			}},
			want: `{"number":"+79990001122","known":true,"revision":41,"asOf":"2026-11-02T10:00:00Z",` +
				`"block":{"level":3,"effect":"challenge","kind":"auto","rule":"hourly-limit","since":"2026-11-02T09:00:00Z","until":"2026-11-03T09:00:00Z"},` +
				`"whitelist":null,"verifiedUntil":"2026-11-02T11:00:00Z",` +
				`"counters":{"callsLastHour":6,"callsLastDay":9,"failedChallengesLastDay":1},"nextCall":{"verdict":"pass","rule":"verified"}}`,
		},
		{
			name: "whitelisted over a manual hard block",
			path: "/v1/callers/+79990001122",
			status: caller.Status{Exists: true, Revision: 2, Status: policy.Status{
				Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, Since: since,
				Whitelisted: true, Next: schema.Pass, NextRule: schema.RuleWhitelist,
			}},
			want: `{"number":"+79990001122","known":true,"revision":2,"asOf":"2026-11-02T10:00:00Z",` +
				`"block":{"level":7,"effect":"reject","kind":"manual","rule":"manual","since":"2026-11-02T09:00:00Z","until":null},` +
				`"whitelist":{"until":null},"verifiedUntil":null,` +
				`"counters":{"callsLastHour":0,"callsLastDay":0,"failedChallengesLastDay":0},"nextCall":{"verdict":"pass","rule":"whitelist"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCallers{status: tt.status}
			s := newTestServer(t, f, nil)
			rec := serve(t, s, req{method: "GET", path: tt.path})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
				t.Errorf("answer\n got  %s\n want %s", got, tt.want)
			}
			if len(f.statusFor) != 1 || f.statusFor[0] != key {
				t.Errorf("status asked for %v, want [%s]", f.statusFor, key)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	timeline := map[string]any{"number": key, "entries": []any{map[string]any{"kind": "call"}}}
	tests := []struct {
		name       string
		history    History
		wantStatus int
		wantCode   string
	}{
		{"timeline", HistoryFunc(func(_ context.Context, k string) (any, error) {
			if k != key {
				return nil, fmt.Errorf("asked for %q", k)
			}
			return timeline, nil
		}), http.StatusOK, ""},
		{"no events", HistoryFunc(func(_ context.Context, k string) (any, error) {
			return nil, fmt.Errorf("audit %s: %w", k, ErrNotFound)
		}), http.StatusNotFound, CodeUnknownCaller},
		{"store down", HistoryFunc(func(context.Context, string) (any, error) {
			return nil, fmt.Errorf("read stream: %w", caller.ErrStore)
		}), http.StatusServiceUnavailable, CodeStoreFailed},
		{"no audit on this node", nil, http.StatusNotImplemented, CodeNotImplemented},
		{"timeline that cannot be encoded", HistoryFunc(func(context.Context, string) (any, error) {
			return map[string]any{"c": make(chan int)}, nil
		}), http.StatusInternalServerError, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, &fakeCallers{}, tt.history)
			rec := serve(t, s, req{method: "GET", path: "/v1/callers/%2B79990001122/history"})
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode == "" {
				got := decodeJSON[map[string]any](t, rec)
				if fmt.Sprint(got) != fmt.Sprint(timeline) {
					t.Errorf("timeline %v, want %v", got, timeline)
				}
				return
			}
			if p := problemOfRecorder(t, rec); p.Code() != tt.wantCode {
				t.Errorf("problem %s, want %s", p.Code(), tt.wantCode)
			}
		})
	}
}

// authedRoutes is one request per /v1 route, valid apart from the token.
var authedRoutes = []req{
	{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"a","reason":"r"}`},
	{method: "DELETE", path: "/v1/whitelist/%2B79990001122?reason=r", header: map[string]string{"X-Admin": "a"}},
	{method: "PUT", path: "/v1/blocks/%2B79990001122", body: `{"level":3,"by":"a","reason":"r"}`},
	{method: "DELETE", path: "/v1/blocks/%2B79990001122", body: `{"by":"a","reason":"r"}`},
	{method: "GET", path: "/v1/callers/%2B79990001122"},
	{method: "GET", path: "/v1/callers/%2B79990001122/history"},
	{method: "GET", path: "/v1/problems"},
}

func TestAuthentication(t *testing.T) {
	history := HistoryFunc(func(context.Context, string) (any, error) { return []string{}, nil })
	tests := []struct {
		name          string
		authorization string // "" sends none
		wantOK        bool
		wantError     string // the WWW-Authenticate error attribute
	}{
		{name: "no header"},
		{name: "wrong token", authorization: "Bearer wrong-token-0123456789abc", wantError: "invalid_token"},
		{name: "token prefix", authorization: "Bearer " + testToken[:len(testToken)-1], wantError: "invalid_token"},
		{name: "token with a suffix", authorization: "Bearer " + testToken + "x", wantError: "invalid_token"},
		{name: "empty bearer", authorization: "Bearer "},
		{name: "basic scheme", authorization: "Basic " + testToken},
		{name: "scheme only", authorization: "Bearer"},
		{name: "token without scheme", authorization: testToken},
		{name: "scheme is case-insensitive", authorization: "bearer " + testToken, wantOK: true},
		{name: "extra spaces", authorization: "Bearer   " + testToken, wantOK: true},
	}
	for _, tt := range tests {
		for _, r := range authedRoutes {
			t.Run(tt.name+"/"+r.String(), func(t *testing.T) {
				f := &fakeCallers{}
				s := newTestServer(t, f, history)
				r.noAuth = true
				r.header = map[string]string{"Authorization": tt.authorization}
				if strings.HasPrefix(r.path, "/v1/whitelist/") {
					r.header["X-Admin"] = "a"
				}
				if tt.authorization == "" {
					delete(r.header, "Authorization")
				}
				rec := serve(t, s, r)
				if tt.wantOK {
					if rec.Code >= 300 {
						t.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
					return
				}
				p := problemOfRecorder(t, rec)
				if rec.Code != http.StatusUnauthorized || p.Code() != CodeUnauthorized {
					t.Fatalf("status %d, problem %s; want 401 unauthorized", rec.Code, p.Code())
				}
				wa := rec.Header().Get("WWW-Authenticate")
				if !strings.HasPrefix(wa, `Bearer realm="callguard-admin"`) {
					t.Errorf("WWW-Authenticate %q", wa)
				}
				if got := strings.Contains(wa, `error="invalid_token"`); got != (tt.wantError != "") {
					t.Errorf("WWW-Authenticate %q, want error attribute %q", wa, tt.wantError)
				}
				if f.calls() != 0 {
					t.Errorf("an unauthenticated request reached the grain")
				}
			})
		}
	}
}

func TestPublicRoutes(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	rec := serve(t, s, req{method: "GET", path: "/healthz", noAuth: true})
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
	rec = serve(t, s, req{method: "GET", path: "/openapi.json", noAuth: true})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"openapi": "3.1.0"`) {
		t.Errorf("openapi.json: %d", rec.Code)
	}
}

func TestBadInput(t *testing.T) {
	wl := func(body string) req { return req{method: "POST", path: "/v1/whitelist", body: body} }
	blk := func(body string) req { return req{method: "PUT", path: "/v1/blocks/%2B79990001122", body: body} }
	past := testNow.Add(-time.Minute).Format(time.RFC3339)
	tests := []struct {
		name       string
		req        req
		wantStatus int
		wantCode   string
		wantFields []string // the fields of the errors list, in order
		wantDetail string   // a part of the detail
	}{
		{"letters for a number", wl(`{"number":"call-me","by":"a","reason":"r"}`), 400, CodeInvalidNumber, []string{"number"}, `"call-me"`},
		{"too few digits", wl(`{"number":"12","by":"a","reason":"r"}`), 400, CodeInvalidNumber, []string{"number"}, `"12"`},
		{"withheld word is not the anonymous key", wl(`{"number":"restricted","by":"a","reason":"r"}`), 400, CodeInvalidNumber, []string{"number"}, "restricted"},
		{"missing number", wl(`{"by":"a","reason":"r"}`), 400, CodeInvalidNumber, []string{"number"}, "required"},
		{"bad number in the path", req{method: "GET", path: "/v1/callers/not-a-number"}, 400, CodeInvalidNumber, []string{"number"}, "not-a-number"},
		{"bad number in a DELETE path", req{method: "DELETE", path: "/v1/blocks/%2B7abc?reason=r", header: map[string]string{"X-Admin": "a"}}, 400, CodeInvalidNumber, []string{"number"}, "+7abc"},
		{"bad number and no reason: all listed", wl(`{"number":"x","by":"a"}`), 400, CodeInvalidNumber, []string{"number", "reason"}, ""},
		{"level 0", blk(`{"level":0,"by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"level"}, "is 0"},
		{"level 10", blk(`{"level":10,"by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"level"}, "is 10"},
		{"level missing", blk(`{"by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"level"}, "required"},
		{"level as a string", blk(`{"level":"3","by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"level"}, "integer"},
		{"level fractional", blk(`{"level":3.5,"by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"level"}, "integer"},
		{"missing reason", wl(`{"number":"+79990001122","by":"a"}`), 400, CodeInvalidRequest, []string{"reason"}, "reason is required"},
		{"blank reason", blk(`{"level":3,"by":"a","reason":"   "}`), 400, CodeInvalidRequest, []string{"reason"}, "required"},
		{"missing reason on DELETE", req{method: "DELETE", path: "/v1/blocks/%2B79990001122", header: map[string]string{"X-Admin": "a"}}, 400, CodeInvalidRequest, []string{"reason"}, "required"},
		{"missing by", wl(`{"number":"+79990001122","reason":"r"}`), 400, CodeInvalidRequest, []string{"by"}, "X-Admin"},
		{"missing by on DELETE", req{method: "DELETE", path: "/v1/whitelist/%2B79990001122?reason=r"}, 400, CodeInvalidRequest, []string{"by"}, "required"},
		{"by and X-Admin disagree", req{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"a","reason":"r"}`, header: map[string]string{"X-Admin": "b"}}, 400, CodeInvalidRequest, []string{"by"}, "differs"},
		{"reason in query and body disagree", req{method: "DELETE", path: "/v1/blocks/%2B79990001122?reason=x", body: `{"by":"a","reason":"y"}`}, 400, CodeInvalidRequest, []string{"reason"}, "differently"},
		{"reason with a newline", wl(`{"number":"+79990001122","by":"a","reason":"r\nBlockLifted by root"}`), 400, CodeInvalidRequest, []string{"reason"}, "one line"},
		{"reason too long", wl(`{"number":"+79990001122","by":"a","reason":"` + strings.Repeat("я", policy.MaxText+1) + `"}`), 400, CodeInvalidRequest, []string{"reason"}, "at most 500"},
		{"expiry in the past", blk(`{"level":3,"by":"a","reason":"r","until":"` + past + `"}`), 400, CodeInvalidRequest, []string{"until"}, "not in the future"},
		{"expiry not RFC 3339", wl(`{"number":"+79990001122","by":"a","reason":"r","until":"tomorrow"}`), 400, CodeInvalidRequest, []string{"until"}, "RFC 3339"},
		{"several errors", blk(`{"level":11}`), 400, CodeInvalidRequest, []string{"by", "reason", "level"}, "3 fields"},
		{"unknown field", blk(`{"level":3,"by":"a","reason":"r","lvl":4}`), 400, CodeInvalidRequest, []string{"lvl"}, "not a member"},
		{"number is not a member of a block body", blk(`{"number":"+79990001122","level":3,"by":"a","reason":"r"}`), 400, CodeInvalidRequest, []string{"number"}, ""},
		{"malformed JSON", wl(`{"number":"+79990001122",`), 400, CodeMalformedJSON, nil, "middle"},
		{"not JSON", wl(`number=+79990001122`), 400, CodeMalformedJSON, nil, "not JSON"},
		{"JSON array", wl(`[{"number":"+79990001122"}]`), 400, CodeMalformedJSON, nil, "object"},
		{"two JSON values", wl(`{"number":"+79990001122","by":"a","reason":"r"}{"number":"+79990001133","by":"a","reason":"r"}`), 400, CodeMalformedJSON, nil, "more than one"},
		{"empty body", req{method: "POST", path: "/v1/whitelist"}, 400, CodeMalformedJSON, nil, "needs a JSON"},
		{"wrong media type", req{method: "POST", path: "/v1/whitelist", body: `{"number":"+79990001122","by":"a","reason":"r"}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, CodeUnsupportedMediaType, nil, "text/plain"},
		{"oversized body", wl(`{"number":"+79990001122","by":"a","reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`), 413, CodeBodyTooLarge, nil, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCallers{}
			s := newTestServer(t, f, nil)
			rec := serve(t, s, tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			p := problemOfRecorder(t, rec)
			if p.Code() != tt.wantCode {
				t.Errorf("problem %s, want %s (%+v)", p.Code(), tt.wantCode, p)
			}
			var fields []string
			for _, e := range p.Errors {
				fields = append(fields, e.Field)
				if e.In == "" || e.Detail == "" {
					t.Errorf("field error incomplete: %+v", e)
				}
			}
			if fmt.Sprint(fields) != fmt.Sprint(tt.wantFields) {
				t.Errorf("field errors %v, want %v (%+v)", fields, tt.wantFields, p.Errors)
			}
			if !strings.Contains(p.Detail+fmt.Sprint(p.Errors), tt.wantDetail) {
				t.Errorf("detail %q, errors %+v: want them to mention %q", p.Detail, p.Errors, tt.wantDetail)
			}
			if f.calls() != 0 {
				t.Errorf("a refused request reached the grain: %+v", f.sent())
			}
		})
	}
}

// TestOversizedChunkedBody covers a body with no Content-Length, which only
// the MaxBytesReader can stop.
func TestOversizedChunkedBody(t *testing.T) {
	f := &fakeCallers{}
	s := newTestServer(t, f, nil)
	body := `{"number":"+79990001122","by":"a","reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	hr := httptest.NewRequest("POST", "/v1/whitelist", strings.NewReader(body))
	hr.ContentLength = -1
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, hr)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if p := problemOfRecorder(t, rec); p.Code() != CodeBodyTooLarge {
		t.Errorf("problem %s", p.Code())
	}
	if f.calls() != 0 {
		t.Errorf("reached the grain")
	}
}

func TestGrainErrors(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantStatus  int
		wantCode    string
		wantInReply string // "" : the error's text must not be echoed
	}{
		{"state", fmt.Errorf("%w: policy: unblock +79990001122: caller is not blocked", caller.ErrState), 409, CodeStateConflict, "not blocked"},
		{"invalid", fmt.Errorf("%w: policy: block: expiry is not after now", caller.ErrInvalid), 422, CodeCommandRefused, "expiry"},
		{"store", fmt.Errorf("%w: append /var/lib/guard/events.db: disk full", caller.ErrStore), 503, CodeStoreFailed, ""},
		{"unavailable", fmt.Errorf("%w: +79990001122: timeout", caller.ErrUnavailable), 503, CodeCallerUnavailable, ""},
		{"unexpected", errors.New("secret internals"), 500, CodeInternal, ""},
	}
	for _, tt := range tests {
		for _, r := range []req{authedRoutes[0], authedRoutes[1], authedRoutes[2], authedRoutes[3], authedRoutes[4]} {
			t.Run(tt.name+"/"+r.String(), func(t *testing.T) {
				f := &fakeCallers{cmdErr: tt.err, statusErr: tt.err}
				s := newTestServer(t, f, nil)
				rec := serve(t, s, r)
				if rec.Code != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
				}
				p := problemOfRecorder(t, rec)
				if p.Code() != tt.wantCode {
					t.Errorf("problem %s, want %s", p.Code(), tt.wantCode)
				}
				if tt.wantInReply != "" && !strings.Contains(p.Detail, tt.wantInReply) {
					t.Errorf("detail %q does not say %q", p.Detail, tt.wantInReply)
				}
				if tt.wantInReply == "" && (strings.Contains(p.Detail, "disk") || strings.Contains(p.Detail, "secret")) {
					t.Errorf("detail %q leaks the internal error", p.Detail)
				}
				if ra := rec.Header().Get("Retry-After"); (tt.wantStatus == 503) != (ra == "5") {
					t.Errorf("Retry-After %q with status %d", ra, rec.Code)
				}
			})
		}
	}
}

func TestMuxErrorsAreProblems(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	tests := []struct {
		req        req
		wantStatus int
		wantCode   string
		wantAllow  string
	}{
		{req{method: "GET", path: "/v1/nothing"}, 404, CodeNotFound, ""},
		{req{method: "PUT", path: "/v1/whitelist"}, 405, CodeMethodNotAllowed, "POST"},
		{req{method: "POST", path: "/v1/blocks/%2B79990001122"}, 405, CodeMethodNotAllowed, "DELETE, PUT"},
	}
	for _, tt := range tests {
		rec := serve(t, s, tt.req)
		if rec.Code != tt.wantStatus {
			t.Fatalf("%s: status %d, want %d", tt.req, rec.Code, tt.wantStatus)
		}
		if p := problemOfRecorder(t, rec); p.Code() != tt.wantCode {
			t.Errorf("%s: problem %s, want %s", tt.req, p.Code(), tt.wantCode)
		}
		if allow := rec.Header().Get("Allow"); tt.wantAllow != "" && !strings.Contains(allow, tt.wantAllow) {
			t.Errorf("%s: Allow %q, want %q", tt.req, allow, tt.wantAllow)
		}
	}
}

func TestProblemCatalogue(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	rec := serve(t, s, req{method: "GET", path: "/v1/problems"})
	got := decodeJSON[struct{ Problems []ProblemInfo }](t, rec)
	if len(got.Problems) != len(catalogue) {
		t.Fatalf("served %d problems, catalogue has %d", len(got.Problems), len(catalogue))
	}
	seen := map[string]bool{}
	for _, p := range got.Problems {
		if seen[p.Code] {
			t.Errorf("code %s twice", p.Code)
		}
		seen[p.Code] = true
		if p.Type != ProblemTypeBase+p.Code || http.StatusText(p.Status) == "" || p.Title == "" || p.Description == "" {
			t.Errorf("incomplete entry %+v", p)
		}
	}
	// Every code constant is in the catalogue.
	for _, c := range []string{CodeUnauthorized, CodeNotFound, CodeMethodNotAllowed, CodeInvalidNumber, CodeInvalidRequest,
		CodeMalformedJSON, CodeUnsupportedMediaType, CodeBodyTooLarge, CodeStateConflict, CodeCommandRefused,
		CodeUnknownCaller, CodeStoreFailed, CodeCallerUnavailable, CodeNotImplemented, CodeInternal,
		CodeInvalidDate, CodeInvalidCSV, CodeUnknownProjection, CodeReadSideFailed} {
		if !seen[c] {
			t.Errorf("code %s is not in the catalogue", c)
		}
	}
}
