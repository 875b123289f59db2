package adminapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/line"
)

// fakeLines records the commands it gets and answers from its mode.
type fakeLines struct {
	on   bool
	cmds []line.Command
}

func (f *fakeLines) Command(_ context.Context, n string, c line.Command) (line.Mode, error) {
	if c.On == f.on {
		return line.Mode{}, fmt.Errorf("%w: already so", line.ErrState)
	}
	f.on = c.On
	f.cmds = append(f.cmds, c)
	return line.Mode{Line: n, On: c.On, Manual: true, Hold: c.Hold, By: c.By, Why: c.Why, Since: testNow, Events: []string{"LineAttackStarted"}}, nil
}

func (f *fakeLines) Status(_ context.Context, n string) (line.Mode, error) {
	return line.Mode{Line: n, On: f.on, Rate: 3.5, Threshold: 10}, nil
}

func newAttackServer(t *testing.T, l Lines) *Server {
	t.Helper()
	s, err := New(Config{Token: testToken}, Deps{Callers: &fakeCallers{}, Lines: l, Normalizer: testNormalizer(t), Clock: func() time.Time { return testNow }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The attack routes read the line like a number, take who and why like
// the other commands, refuse what does not fit, and answer 501 on a node
// without lines.
func TestAttackRoutes(t *testing.T) {
	f := &fakeLines{}
	s := newAttackServer(t, f)
	rec := serve(t, s, req{method: http.MethodPut, path: "/v1/lines/88005553535/attack", body: `{"by":"alice","reason":"warned","hold":true}`, header: map[string]string{HeaderIdempotencyKey: "k1"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("on: %d %s", rec.Code, rec.Body)
	}
	v := decodeJSON[AttackView](t, rec)
	if !v.UnderAttack || v.Line != "+78005553535" || !v.Hold || v.CommandID != "attack-on:k1" || len(f.cmds) != 1 || f.cmds[0].ID != "attack-on:k1" || f.cmds[0].By != "alice" {
		t.Fatalf("on: %+v, commands %+v", v, f.cmds)
	}
	for _, tc := range []struct {
		r    req
		code int
		want string
	}{
		{req{method: http.MethodPut, path: "/v1/lines/+78005553535/attack", body: `{"by":"bob","reason":"again"}`}, http.StatusConflict, CodeStateConflict},
		{req{method: http.MethodPut, path: "/v1/lines/+78005553535/attack", body: `{"by":"bob"}`}, http.StatusBadRequest, CodeInvalidRequest},
		{req{method: http.MethodPut, path: "/v1/lines/anonymous/attack", body: `{"by":"bob","reason":"x"}`}, http.StatusBadRequest, CodeInvalidRequest},
		{req{method: http.MethodDelete, path: "/v1/lines/+78005553535/attack", body: `{"by":"bob","reason":"x","hold":true}`}, http.StatusBadRequest, CodeInvalidRequest},
	} {
		rec := serve(t, s, tc.r)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d", tc.r, tc.r.body, rec.Code, rec.Body, tc.code)
			continue
		}
		if p := problemOfRecorder(t, rec); p.Code() != tc.want {
			t.Errorf("%s: problem %s, want %s", tc.r, p.Code(), tc.want)
		}
	}
	rec = serve(t, s, req{method: http.MethodDelete, path: "/v1/lines/+78005553535/attack?reason=over", header: map[string]string{HeaderAdmin: "alice"}})
	if rec.Code != http.StatusOK || f.on || f.cmds[1].Why != "over" || f.cmds[1].By != "alice" {
		t.Fatalf("off: %d %s %+v", rec.Code, rec.Body, f.cmds)
	}
	rec = serve(t, s, req{method: http.MethodGet, path: "/v1/lines/+78005553535/attack"})
	if v := decodeJSON[AttackView](t, rec); rec.Code != http.StatusOK || v.UnderAttack || v.Rate != 3.5 || v.Threshold != 10 {
		t.Fatalf("status: %d %+v", rec.Code, v)
	}
	if rec := serve(t, newAttackServer(t, nil), req{method: http.MethodGet, path: "/v1/lines/+78005553535/attack"}); rec.Code != http.StatusNotImplemented {
		t.Fatalf("without lines: %d", rec.Code)
	}
}
