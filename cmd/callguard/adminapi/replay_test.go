package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReplayRoute(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	if rec := serve(t, s, req{method: "GET", path: "/v1/replay?limit-hour=3"}); rec.Code != http.StatusNotImplemented {
		t.Fatalf("replay without a Replayer: %d, want 501", rec.Code)
	}
	var got map[string]string
	s.d.Replay = ReplayFunc(func(_ context.Context, settings map[string]string) (any, error) {
		got = settings
		if settings["limit-hour"] == "lots" {
			return nil, fmt.Errorf("%w: limit-hour %q is not a number", ErrSettings, settings["limit-hour"])
		}
		return map[string]int{"callsChanged": 2}, nil
	})
	rec := serve(t, s, req{method: "GET", path: "/v1/replay?limit-hour=3&block-for=1h"})
	if rec.Code != http.StatusOK || got["limit-hour"] != "3" || got["block-for"] != "1h" {
		t.Fatalf("replay: %d %s, settings %v", rec.Code, rec.Body, got)
	}
	if v := decodeJSON[map[string]int](t, rec); v["callsChanged"] != 2 {
		t.Fatalf("replay answer %v", v)
	}
	rec = serve(t, s, req{method: "GET", path: "/v1/replay?limit-hour=lots"})
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("bad settings: %d, want 400", rec.Code)
	}
	if p := problemOfRecorder(t, rec); p.Code() != CodeInvalidRequest {
		t.Fatalf("bad settings: problem %q", p.Code())
	}
	if rec := serve(t, s, req{method: "GET", path: "/v1/replay", noAuth: true}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("replay without a token: %d, want 401", rec.Code)
	}
}

func TestClientReplaySendsSettingsAsQuery(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	var got map[string]string
	s.d.Replay = ReplayFunc(func(_ context.Context, settings map[string]string) (any, error) {
		got = settings
		return map[string]int{"calls": 1}, nil
	})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := &Client{BaseURL: ts.URL, Token: testToken, HTTP: ts.Client()}
	raw, err := c.Replay(context.Background(), map[string]string{"limit-hour": "2", "verified-for": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if got["limit-hour"] != "2" || got["verified-for"] != "1h" || strings.TrimSpace(string(raw)) != `{"calls":1}` {
		t.Fatalf("server got %v, client got %s", got, raw)
	}
}
