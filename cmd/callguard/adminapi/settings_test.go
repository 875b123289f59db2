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

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

func TestSettingsCommands(t *testing.T) {
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
		Settings: SettingsDeps{
			Rules: &rules.Writer{Store: st, Live: live, Clock: func() time.Time { return testNow }, Node: "n1"},
			Table: live.Table, Zone: "Europe/Moscow",
			Valid: func(s schema.Settings) error { return policy.DefaultConfig().WithOverrides(s).Validate() },
		},
		Clock:  func() time.Time { return testNow },
		NewID:  func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) },
		Logger: log,
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
		{name: "set a line's hour limit, national spelling", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", header: key("a"),
			body: `{"limitHour":2,"by":"alice","reason":"card line"}`},
			status: http.StatusCreated, want: `"line":"+78005553535","commandId":"line-set:a","events":["LineSettingsSet"]`},
		{name: "again", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", header: key("a"),
			body: `{"limitHour":2,"by":"alice","reason":"card line"}`},
			status: http.StatusOK, want: `"repeated":true`},
		{name: "no setting", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", body: `{"by":"alice","reason":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "none given"},
		{name: "bad duration", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", body: `{"blockFor":"soon","by":"alice","reason":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"blockFor"`},
		{name: "bad verdict", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", body: `{"anonymous":"maybe","by":"alice","reason":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "pass, challenge or reject"},
		{name: "invalid with the global settings", r: req{method: "PUT", path: "/v1/lines/88005553535/settings", body: `{"limitDay":1,"by":"alice","reason":"x"}`},
			status: http.StatusUnprocessableEntity, code: CodeCommandRefused, want: "must be at least"},
		{name: "not a line", r: req{method: "PUT", path: "/v1/lines/abc/settings", body: `{"limitHour":1,"by":"alice","reason":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidNumber, want: `"field":"number"`},
		{name: "bad attack rate", r: req{method: "PUT", path: "/v1/lines/88005550000/settings", body: `{"attackRate":-1,"by":"alice","reason":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: "attack-rate is -1"},
		{name: "set a line's attack rate", r: req{method: "PUT", path: "/v1/lines/88005550000/settings", body: `{"attackRate":30,"by":"alice","reason":"busy line"}`},
			status: http.StatusCreated, want: `"line":"+78005550000"`},
		{name: "list the attack rate", r: req{method: "GET", path: "/v1/lines/settings"}, status: http.StatusOK, want: `"line":"+78005550000","settings":{"attackRate":30}`},
		{name: "add a night schedule", r: req{method: "POST", path: "/v1/schedules",
			body: `{"name":"night","from":"22:00","to":"07:00","limitHour":1,"by":"bob","reason":"bots at night"}`},
			status: http.StatusCreated, want: `"schedule":"night"`},
		{name: "same name", r: req{method: "POST", path: "/v1/schedules",
			body: `{"name":"night","from":"23:00","to":"06:00","limitHour":1,"by":"bob","reason":"again"}`},
			status: http.StatusConflict, code: CodeScheduleExists, want: "remove it first"},
		{name: "bad window", r: req{method: "POST", path: "/v1/schedules",
			body: `{"name":"x","from":"22","to":"07:00","days":"mon-fri","limitHour":1,"by":"bob","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"window"`},
		{name: "bad name", r: req{method: "POST", path: "/v1/schedules",
			body: `{"name":"a b","from":"22:00","to":"07:00","limitHour":1,"by":"bob","reason":"r"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"field":"name"`},
		{name: "list lines", r: req{method: "GET", path: "/v1/lines/settings"}, status: http.StatusOK, want: `"line":"+78005553535","settings":{"limitHour":2}`},
		{name: "list schedules", r: req{method: "GET", path: "/v1/schedules"}, status: http.StatusOK, want: `"name":"night","window":{"from":"22:00","to":"07:00"},"zone":"Europe/Moscow"`},
		{name: "remove the schedule", r: req{method: "DELETE", path: "/v1/schedules/night?reason=day", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusOK, want: `"events":["ScheduleRemoved"]`},
		{name: "remove it again", r: req{method: "DELETE", path: "/v1/schedules/night?reason=day", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusNotFound, code: CodeUnknownSettings, want: "no schedule night"},
		{name: "clear the line", r: req{method: "DELETE", path: "/v1/lines/%2B78005553535/settings?reason=done", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusOK, want: `"events":["LineSettingsCleared"]`},
		{name: "clear it again", r: req{method: "DELETE", path: "/v1/lines/%2B78005553535/settings?reason=done", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusNotFound, code: CodeUnknownSettings, want: "no settings of its own"},
		{name: "clear the busy line", r: req{method: "DELETE", path: "/v1/lines/%2B78005550000/settings?reason=done", header: map[string]string{HeaderAdmin: "bob"}},
			status: http.StatusOK, want: `"events":["LineSettingsCleared"]`},
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
	}
	if l, sc := live.Table().Lines(), live.Table().Schedules(); len(l) != 0 || len(sc) != 0 {
		t.Errorf("left: %+v %+v", l, sc)
	}
}
