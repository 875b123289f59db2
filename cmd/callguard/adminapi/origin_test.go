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
)

// TestOriginCommands: the origin routes with the real writer of the rules
// stream over an embedded store and the node's table following it.
func TestOriginCommands(t *testing.T) {
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
		Origins: OriginWriter{Writer: &rules.Writer{Store: st, Live: live, Clock: func() time.Time { return testNow }, Node: "n1"}, Table: live},
		Clock:   func() time.Time { return testNow },
		NewID:   func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) },
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	key := func(k string) map[string]string { return map[string]string{HeaderIdempotencyKey: k} }
	tests := []struct {
		name   string
		r      req
		status int
		code   string
		want   string
	}{
		{name: "a country in lower case", r: req{method: "POST", path: "/v1/origins/countries", header: key("a"), body: `{"value":"az","level":3,"by":"alice","reason":"fraud wave"}`},
			status: http.StatusCreated, want: `"kind":"country","value":"AZ","commandId":"origin-set:a","events":["OriginRuleSet"]`},
		{name: "the same again", r: req{method: "POST", path: "/v1/origins/countries", header: key("a"), body: `{"value":"AZ","level":3,"by":"alice","reason":"fraud wave"}`},
			status: http.StatusOK, want: `"repeated":true`},
		{name: "a number type", r: req{method: "POST", path: "/v1/origins/numtypes", body: `{"value":"premium-rate","level":7,"by":"bob","reason":"never a customer"}`},
			status: http.StatusCreated, want: `"kind":"numtype","value":"premium-rate"`},
		{name: "the list", r: req{method: "GET", path: "/v1/origins"}, status: http.StatusOK, want: `"value":"AZ","level":3`},
		{name: "unknown region", r: req{method: "POST", path: "/v1/origins/countries", body: `{"value":"XX","level":3,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"value"`},
		{name: "unknown type", r: req{method: "POST", path: "/v1/origins/numtypes", body: `{"value":"premium","level":3,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "premium-rate"},
		{name: "unknown kind", r: req{method: "POST", path: "/v1/origins/planets", body: `{"value":"AZ","level":3,"by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"kind"`},
		{name: "no level", r: req{method: "POST", path: "/v1/origins/countries", body: `{"value":"GB","by":"a","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"level"`},
		{name: "remove", r: req{method: "DELETE", path: "/v1/origins/countries/AZ?reason=over", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusOK, want: `"events":["OriginRuleRemoved"]`},
		{name: "remove what is not there", r: req{method: "DELETE", path: "/v1/origins/countries/AZ?reason=over", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusNotFound, code: CodeUnknownRange},
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
		if tt.name == "a country in lower case" {
			if o := live.Origin("+994501234567", testNow); o == nil || len(o.Rules) != 1 || o.Rules[0].Level != 3 {
				t.Errorf("after the 201 the node's table gives %+v", o)
			}
		}
	}
}
