package adminapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/phone"
)

// newRangeServer serves the range routes with the real writer of the
// rules stream over an embedded store, and this node's table following it.
func newRangeServer(t *testing.T) (*Server, *rules.Live) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	live := rules.NewLive(st, log)
	from, err := live.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go live.Follow(ctx, from)
	var ids atomic.Int64
	s, err := New(Config{Token: testToken}, Deps{
		Callers: &fakeCallers{}, Normalizer: testNormalizer(t),
		Ranges: &rules.Writer{Store: st, Live: live, Clock: func() time.Time { return testNow }, Node: "n1"},
		Clock:  func() time.Time { return testNow },
		NewID:  func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) },
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, live
}

func TestRangeCommands(t *testing.T) {
	s, live := newRangeServer(t)
	key := func(k string) map[string]string { return map[string]string{HeaderIdempotencyKey: k} }
	tests := []struct {
		name   string
		r      req
		status int
		code   string // problem code, for refusals
		want   string // in the body
	}{
		{name: "block a prefix in national spelling", r: req{method: "POST", path: "/v1/ranges/blocks", header: key("a"),
			body: `{"prefix":"8 999 123","level":7,"by":"alice","reason":"fraud reports"}`},
			status: http.StatusCreated, want: `"range":"+7999123","list":"block","commandId":"range-block:a","events":["RangeBlocked"]`},
		{name: "the same request again", r: req{method: "POST", path: "/v1/ranges/blocks", header: key("a"),
			body: `{"prefix":"+7999123","level":7,"by":"alice","reason":"fraud reports"}`},
			status: http.StatusOK, want: `"repeated":true`},
		{name: "the same rule by another command", r: req{method: "POST", path: "/v1/ranges/blocks",
			body: `{"prefix":"+7999123","level":5,"by":"bob","reason":"again"}`},
			status: http.StatusConflict, code: CodeRangeExists, want: "remove it first"},
		{name: "a whitelist range over it", r: req{method: "POST", path: "/v1/ranges/whitelist",
			body: `{"from":"89991230000","to":"+7 999 123-00-99","by":"alice","reason":"branch lines"}`},
			status: http.StatusCreated, want: `"range":"+79991230000-+79991230099","list":"whitelist"`},
		{name: "malformed prefix", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7abc","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"prefix"`},
		{name: "bounds of two lengths", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"from":"+7999123000","to":"+79991239999","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "numbers of one length"},
		{name: "bounds reversed", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"from":"+79991239999","to":"+79991230000","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "low bound first"},
		{name: "from without to", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"from":"+79991239999","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "both required"},
		{name: "prefix and range", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7999","from":"+79991239999","to":"+79991239999","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "not both"},
		{name: "nothing to cover", r: req{method: "POST", path: "/v1/ranges/whitelist", body: `{"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "is required"},
		{name: "block without level", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7999","by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"level"`},
		{name: "level 0", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7999","level":0,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "is 0, want 1 to 9"},
		{name: "whitelist with a level", r: req{method: "POST", path: "/v1/ranges/whitelist", body: `{"prefix":"+7999","level":3,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "always passes"},
		{name: "anonymous is no range", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"anonymous","level":7,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "not a number"},
		{name: "expiry in the past", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7999","level":7,"by":"a","reason":"r","until":"2020-01-01T00:00:00Z"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "not in the future"},
		{name: "reason missing", r: req{method: "POST", path: "/v1/ranges/blocks", body: `{"prefix":"+7999","level":7,"by":"a"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"reason"`},
		{name: "remove the block", r: req{method: "DELETE", path: "/v1/ranges/blocks/%2B7999123?reason=cleared", header: map[string]string{HeaderAdmin: "bob", HeaderIdempotencyKey: "rm"}},
			status: http.StatusOK, want: `"events":["RangeRemoved"]`},
		{name: "remove it again", r: req{method: "DELETE", path: "/v1/ranges/blocks/%2B7999123?reason=cleared", header: map[string]string{HeaderAdmin: "bob", HeaderIdempotencyKey: "rm"}},
			status: http.StatusOK, want: `"repeated":true`},
		{name: "remove a rule not there", r: req{method: "DELETE", path: "/v1/ranges/blocks/%2B7999123?reason=cleared", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusNotFound, code: CodeUnknownRange, want: "no such range rule"},
		{name: "remove the whitelist range by its national spelling", r: req{method: "DELETE", path: "/v1/ranges/whitelist/89991230000-89991230099?reason=done", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusOK, want: `"range":"+79991230000-+79991230099"`},
		{name: "malformed range in the path", r: req{method: "DELETE", path: "/v1/ranges/whitelist/1-2-3?reason=done", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "FROM-TO"},
		{name: "no list read side", r: req{method: "GET", path: "/v1/ranges"}, status: http.StatusNotImplemented, code: CodeNotImplemented},
	}
	for _, tt := range tests {
		rec := serve(t, s, tt.r)
		if rec.Code != tt.status {
			t.Errorf("%s: %s answered %d, want %d: %s", tt.name, tt.r, rec.Code, tt.status, rec.Body)
			continue
		}
		body := rec.Body.String()
		if tt.code != "" {
			if p := problemOfRecorder(t, rec); p.Code() != tt.code {
				t.Errorf("%s: problem %s, want %s", tt.name, p.Code(), tt.code)
			}
		}
		if !strings.Contains(body, tt.want) {
			t.Errorf("%s: body %s, want %s in it", tt.name, body, tt.want)
		}
		if tt.name == "block a prefix in national spelling" {
			// The answer means the rule is in force on this node.
			if got := live.Lookup("+79991234567", testNow); len(got) != 1 || got[0].Level != 7 {
				t.Errorf("after the 201 the node's table has %+v", got)
			}
		}
	}
	if got := live.Table().Len(); got != 0 {
		t.Errorf("%d rules left, want none", got)
	}
}

func TestNormalizeRange(t *testing.T) {
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want, err string }{
		{in: "+7999123", want: "+7999123"},
		{in: "8 (999) 123", want: "+7999123"},
		{in: "+79991230000-+79991239999", want: "+79991230000-+79991239999"},
		{in: "89991230000-89991239999", want: "+79991230000-+79991239999"},
		{in: "+7 999 123-00-00-+7 999 123-99-99", want: "+79991230000-+79991239999"},
		{in: "", err: "is required"},
		{in: "anonymous", err: "not a number"},
		{in: "8-999-123", err: "FROM-TO"},
		{in: "+79991239999-+79991230000", err: "low bound first"},
		{in: "+7999-+79991", err: "one length"},
	}
	for _, tt := range tests {
		got, err := NormalizeRange(n, tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("NormalizeRange(%q) = %q, %v; want an error saying %q", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("NormalizeRange(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalizeRange(f *testing.F) {
	n, err := phone.New("RU")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"+7999123", "8 999 123", "89991230000-89991239999", "-", "+-+", "--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeRange(n, s)
		if err != nil {
			return
		}
		// What it accepts is a stored range that reads back as itself.
		if again, err := NormalizeRange(n, got); err != nil || again != got {
			t.Fatalf("NormalizeRange(%q) = %q, which reads back as %q, %v", s, got, again, err)
		}
	})
}
