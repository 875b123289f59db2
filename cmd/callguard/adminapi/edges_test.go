package adminapi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
)

// Bodies that encoding/json would take silently: a member given twice
// (it keeps the last) and text that is not UTF-8 (it substitutes U+FFFD).
// Each is a 400 naming the member, and nothing reaches a grain.
func TestBodyEdgesAreRefused(t *testing.T) {
	f := &fakeCallers{}
	s := newTestServer(t, f, nil)
	for _, tc := range []struct {
		name, path, body, field, detail string
	}{
		{"duplicate level", "/v1/blocks/%2B79990001122", `{"level":6,"level":1,"by":"a","reason":"r"}`, "level", "is given twice"},
		{"duplicate reason", "/v1/blocks/%2B79990001122", `{"level":6,"by":"a","reason":"r","reason":"s"}`, "reason", "is given twice"},
		{"invalid UTF-8 reason", "/v1/blocks/%2B79990001122", "{\"level\":6,\"by\":\"a\",\"reason\":\"bad \xff\xfe text\"}", "reason", "not valid UTF-8"},
		{"invalid UTF-8 by", "/v1/blocks/%2B79990001122", "{\"level\":6,\"by\":\"\xc3\",\"reason\":\"r\"}", "by", "not valid UTF-8"},
		{"invalid UTF-8 member name", "/v1/blocks/%2B79990001122", "{\"level\":6,\"by\":\"a\",\"reason\":\"r\",\"\xff\":1}", "\uFFFD", "member name that is not valid UTF-8"},
		{"duplicate in whitelist", "/v1/whitelist", `{"number":"+79990001122","number":"+79990009999","by":"a","reason":"r"}`, "number", "is given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if tc.path == "/v1/whitelist" {
				method = http.MethodPost
			}
			rec := serve(t, s, req{method: method, path: tc.path, body: tc.body})
			p := problemOfRecorder(t, rec)
			if rec.Code != http.StatusBadRequest || p.Code() != CodeInvalidRequest || len(p.Errors) != 1 ||
				p.Errors[0].Field != tc.field || !strings.Contains(p.Errors[0].Detail, tc.detail) {
				t.Fatalf("%d %+v; want 400 naming %q: %q", rec.Code, p, tc.field, tc.detail)
			}
		})
	}
	// Unicode in a reason, escaped or not, and the same member name in
	// two objects are fine.
	for _, body := range []string{
		`{"level":6,"by":"a","reason":"спам \u00e9 \ud83d\ude00"}`,
		`{"level":6,"by":"a","reason":"r","until":"2099-01-01T00:00:00Z"}`,
	} {
		if rec := serve(t, s, req{method: http.MethodPut, path: "/v1/blocks/%2B79990001122", body: body}); rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
		}
	}
	if n := f.calls(); n != 2 {
		t.Fatalf("%d commands reached the grains, want the 2 valid ones", n)
	}
	if fe := scanJSON([]byte(`{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}`)); fe != nil {
		t.Fatalf("scanJSON of distinct members: %+v", fe)
	}
	if fe := scanJSON([]byte(`{"a":{"x":1,"x":2}}`)); fe == nil || fe.Field != "a.x" {
		t.Fatalf("scanJSON of a nested duplicate: %+v", fe)
	}
}

// The withheld-caller key is blocked on purpose only: "anonymous" is a
// documented key (every caller without a usable number), while anything
// else that is not a number is refused rather than read as it.
func TestAnonymousKeyIsExplicit(t *testing.T) {
	f := &fakeCallers{}
	s := newTestServer(t, f, nil)
	rec := serve(t, s, req{method: http.MethodPut, path: "/v1/blocks/anonymous", body: `{"level":7,"by":"a","reason":"no withheld calls"}`})
	if rec.Code != http.StatusOK || len(f.sent()) != 1 || f.sent()[0].Key != phone.AnonymousKey {
		t.Fatalf("block anonymous: %d %s %+v", rec.Code, rec.Body, f.sent())
	}
	for _, path := range []string{"/v1/blocks/anonymus", "/v1/blocks/unknown", "/v1/blocks/private", "/v1/blocks/%2B"} {
		rec := serve(t, s, req{method: http.MethodPut, path: path, body: `{"level":7,"by":"a","reason":"r"}`})
		if rec.Code != http.StatusBadRequest || codeOf(t, rec) != CodeInvalidNumber {
			t.Errorf("%s: %d %s, want invalid-number", path, rec.Code, rec.Body)
		}
	}
	if len(f.sent()) != 1 {
		t.Fatalf("a refused key reached the grains: %+v", f.sent())
	}
}

// One rule for ?limit= on every paged route: absent is the default, 1 to
// the most is taken, anything else (zero, negative, too large) refused.
func TestLimitRule(t *testing.T) {
	s, fl, fr, fp, _ := withReadSide(t, &fakeCallers{})
	for _, tc := range []struct {
		route     string
		most, def int
		got       func() int
	}{
		{"/v1/blacklist", lists.MaxLimit, lists.DefaultLimit, func() int { return fl.last().Limit }},
		{"/v1/whitelist", lists.MaxLimit, lists.DefaultLimit, func() int { return fl.last().Limit }},
		{"/v1/callers", profiles.MaxLimit, profiles.DefaultLimit, func() int { return fp.got.Limit }},
		{"/v1/reports/top", reports.MaxTop, reports.DefaultTop, func() int { return fr.gotT.Limit }},
	} {
		for _, bad := range []string{"-1", "0", strconv.Itoa(tc.most + 1), "-99999999999999999999", "ten"} {
			rec := serve(t, s, req{method: http.MethodGet, path: tc.route + "?limit=" + bad})
			p := problemOfRecorder(t, rec)
			if rec.Code != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != "limit" {
				t.Errorf("%s?limit=%s: %d %+v", tc.route, bad, rec.Code, p)
			}
			if bad == "-1" && !strings.Contains(p.Error(), "limit is -1, want 1 to "+strconv.Itoa(tc.most)) {
				t.Errorf("%s?limit=-1: %q does not state the rule", tc.route, p.Error())
			}
		}
		for _, good := range []int{1, tc.most} {
			if rec := serve(t, s, req{method: http.MethodGet, path: tc.route + "?limit=" + strconv.Itoa(good)}); rec.Code != 200 || tc.got() != good {
				t.Errorf("%s?limit=%d: %d, query limit %d", tc.route, good, rec.Code, tc.got())
			}
		}
		if rec := serve(t, s, req{method: http.MethodGet, path: tc.route}); rec.Code != 200 || tc.got() != 0 {
			t.Errorf("%s without limit: %d, query limit %d (want 0: the default)", tc.route, rec.Code, tc.got())
		}
	}
}

// A prefix is read like a number: 8999 in region RU is +7999.
func TestPrefixIsNormalised(t *testing.T) {
	s, fl, _, fp, _ := withReadSide(t, &fakeCallers{})
	for _, p := range []string{"8999123", "%2B7999123", "7999123", "8%20999%20123"} {
		if rec := serve(t, s, req{method: http.MethodGet, path: "/v1/blacklist?prefix=" + p}); rec.Code != 200 || fl.last().Prefix != "+7999123" {
			t.Errorf("blacklist?prefix=%s: %d, prefix %q", p, rec.Code, fl.last().Prefix)
		}
		if rec := serve(t, s, req{method: http.MethodGet, path: "/v1/callers?prefix=" + p}); rec.Code != 200 || fp.got.Prefix != "+7999123" {
			t.Errorf("callers?prefix=%s: %d, prefix %q", p, rec.Code, fp.got.Prefix)
		}
	}
	if rec := serve(t, s, req{method: http.MethodGet, path: "/v1/callers?prefix=abc"}); rec.Code != 400 {
		t.Errorf("prefix=abc: %d", rec.Code)
	}
}
