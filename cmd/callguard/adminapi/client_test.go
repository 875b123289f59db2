package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/schema"
)

func newTestClient(t *testing.T, f *fakeCallers, h History) *Client {
	t.Helper()
	s := newTestServer(t, f, h)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &Client{BaseURL: ts.URL + "/", Token: testToken, HTTP: ts.Client()}
}

func TestClientCommands(t *testing.T) {
	ctx := context.Background()
	until := testNow.Add(time.Hour)
	tests := []struct {
		name    string
		call    func(c *Client) (CommandResult, error)
		wantCmd caller.Command
	}{
		{"whitelist", func(c *Client) (CommandResult, error) {
			return c.Whitelist(ctx, WhitelistRequest{Number: "8 999 000 11 22", By: "alice", Reason: "vip", Until: until, IdempotencyKey: "w1"})
		}, caller.Command{Verb: caller.VerbWhitelist, Command: policy.Command{ID: "whitelist:w1", By: "alice", Why: "vip", Until: until}}},
		{"unwhitelist", func(c *Client) (CommandResult, error) {
			return c.Unwhitelist(ctx, "+79990001122", RemoveRequest{By: "alice", Reason: "left"})
		}, caller.Command{Verb: caller.VerbUnwhitelist, Command: policy.Command{By: "alice", Why: "left"}}},
		{"block", func(c *Client) (CommandResult, error) {
			return c.Block(ctx, "+79990001122", BlockRequest{Level: 7, By: "alice", Reason: "fraud", IdempotencyKey: "b1"})
		}, caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "block:b1", By: "alice", Why: "fraud", Level: 7}}},
		{"unblock", func(c *Client) (CommandResult, error) {
			return c.Unblock(ctx, "89990001122", RemoveRequest{By: "alice", Reason: "sorted out"})
		}, caller.Command{Verb: caller.VerbUnblock, Command: policy.Command{By: "alice", Why: "sorted out"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCallers{}
			c := newTestClient(t, f, nil)
			res, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			sent := f.sent()
			if len(sent) != 1 || sent[0].Key != key {
				t.Fatalf("grain got %+v", sent)
			}
			got, want := sent[0].Cmd, tt.wantCmd
			if want.Command.ID == "" {
				want.Command.ID = got.Command.ID
			}
			if got.Verb != want.Verb || got.Command.ID != want.Command.ID || got.Command.By != want.Command.By ||
				got.Command.Why != want.Command.Why || got.Command.Level != want.Command.Level || !got.Command.Until.Equal(want.Command.Until) {
				t.Errorf("command %+v, want %+v", got, want)
			}
			if res.Number != key || res.CommandID != got.Command.ID || res.Revision != 1 || len(res.Events) != 1 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestClientReads(t *testing.T) {
	ctx := context.Background()
	f := &fakeCallers{status: caller.Status{Exists: true, Revision: 5, Status: policy.Status{
		Level: 6, Kind: schema.Manual, Rule: schema.RuleManual, Since: testNow, Day: 2, Next: schema.Reject, NextRule: schema.RuleManual,
	}}}
	c := newTestClient(t, f, HistoryFunc(func(_ context.Context, k string) (any, error) {
		return map[string]string{"number": k}, nil
	}))
	v, err := c.Caller(ctx, "+79990001122")
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != key || !v.Known || v.Revision == nil || *v.Revision != 5 || v.Block == nil || v.Block.Level != 6 ||
		v.Block.Effect != schema.Reject || v.Counters.CallsLastDay != 2 || v.NextCall.Verdict != schema.Reject {
		t.Errorf("caller view %+v", v)
	}
	raw, err := c.History(ctx, "+79990001122")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil || h["number"] != key {
		t.Errorf("history %s (%v)", raw, err)
	}
}

func TestClientProblems(t *testing.T) {
	ctx := context.Background()
	f := &fakeCallers{cmdErr: caller.ErrState}
	c := newTestClient(t, f, nil)

	_, err := c.Unblock(ctx, "+79990001122", RemoveRequest{By: "a", Reason: "r"})
	var p *Problem
	if !errors.As(err, &p) || p.Code() != CodeStateConflict || p.Status != http.StatusConflict || !IsProblem(err, CodeStateConflict) {
		t.Fatalf("state error: %v", err)
	}
	if !strings.Contains(err.Error(), p.Detail) {
		t.Errorf("Error() %q does not carry the detail %q", err, p.Detail)
	}

	_, err = c.Block(ctx, "+79990001122", BlockRequest{Level: 10, Reason: "r"})
	if !IsProblem(err, CodeInvalidRequest) || !strings.Contains(err.Error(), "level is 10") || !strings.Contains(err.Error(), "by is required") ||
		strings.Count(err.Error(), "is 10") != 1 || strings.Contains(err.Error(), "400") || strings.Contains(err.Error(), "DELETE") {
		t.Errorf("invalid block: %v", err)
	}

	_, err = c.Caller(ctx, "not a number")
	if !IsProblem(err, CodeInvalidNumber) || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("bad number: %v", err)
	}

	wrong := *c
	wrong.Token = "wrong-token-0123456789abcdef"
	_, err = wrong.Caller(ctx, "+79990001122")
	if !IsProblem(err, CodeUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong.Token) {
		t.Errorf("the error repeats the token: %v", err)
	}

	// An answer that is not a problem (a proxy's page) is still a Problem.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer ts.Close()
	proxy := &Client{BaseURL: ts.URL, Token: testToken, HTTP: ts.Client()}
	_, err = proxy.Caller(ctx, "+79990001122")
	if !errors.As(err, &p) || p.Status != http.StatusBadGateway || !strings.Contains(p.Detail, "bad gateway") {
		t.Errorf("non-problem answer: %v", err)
	}

	if _, err := (&Client{BaseURL: "127.0.0.1:8780"}).Caller(ctx, key); err == nil || !strings.Contains(err.Error(), "base URL") {
		t.Errorf("base URL without a scheme: %v", err)
	}
}
