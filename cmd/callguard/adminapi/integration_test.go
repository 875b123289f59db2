package adminapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// TestAgainstRealGrains runs the API over the real thing: an embedded
// store, a one-member cluster hosting caller grains, and the server on a
// socket, driven through the Client the CLI uses.
func TestAgainstRealGrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster member")
	}
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now } // read-only: no test goroutine moves it
	n := actortest.New(t, actortest.WithClock(clock), actortest.WithLogger(quiet))
	store := n.Store
	norm, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	const token = "integration-token-0123456789"
	srv, err := adminapi.New(adminapi.Config{Token: token}, adminapi.Deps{
		Callers:    n.Callers,
		Normalizer: norm, Clock: clock, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	c := &adminapi.Client{BaseURL: ts.URL, Token: token, HTTP: ts.Client()}

	const number = "+79990001122"
	res, err := c.Whitelist(ctx, adminapi.WhitelistRequest{Number: "8 999 000-11-22", By: "alice", Reason: "VIP customer"})
	if err != nil {
		t.Fatalf("whitelist: %v", err)
	}
	if res.Number != number || len(res.Events) != 1 || res.Events[0] != schema.TypeWhitelisted || res.Revision != 0 {
		t.Fatalf("whitelist result %+v", res)
	}
	// The real grain refuses to block a whitelisted caller: 409.
	_, err = c.Block(ctx, number, adminapi.BlockRequest{Level: 7, By: "bob", Reason: "fraud"})
	if !adminapi.IsProblem(err, adminapi.CodeStateConflict) {
		t.Fatalf("block of a whitelisted caller: %v, want state-conflict", err)
	}
	if _, err := c.Unwhitelist(ctx, number, adminapi.RemoveRequest{By: "bob", Reason: "card compromised"}); err != nil {
		t.Fatalf("unwhitelist: %v", err)
	}
	block := adminapi.BlockRequest{Level: 7, By: "bob", Reason: "fraud dialler", Until: now.Add(48 * time.Hour), IdempotencyKey: "ticket-4711"}
	res, err = c.Block(ctx, "79990001122", block)
	if err != nil {
		t.Fatalf("block: %v", err)
	}
	if res.Repeated || res.Revision != 2 || res.CommandID != "block:ticket-4711" {
		t.Fatalf("block result %+v", res)
	}
	// A retry with the same key writes nothing.
	again, err := c.Block(ctx, number, block)
	if err != nil {
		t.Fatalf("retried block: %v", err)
	}
	if !again.Repeated || again.Revision != 2 {
		t.Fatalf("retried block %+v, want repeated at revision 2", again)
	}

	view, err := c.Caller(ctx, "%2B79990001122")
	if err != nil {
		t.Fatalf("caller: %v", err)
	}
	if !view.Known || view.Revision == nil || *view.Revision != 2 || view.Whitelist != nil || view.Block == nil ||
		view.Block.Level != 7 || view.Block.Effect != schema.Reject || view.Block.Kind != schema.Manual ||
		view.Block.Until == nil || !view.Block.Until.Equal(block.Until) || view.NextCall.Verdict != schema.Reject {
		b, _ := json.Marshal(view)
		t.Fatalf("caller view %s", b)
	}

	// The events name who did it and why.
	evs, err := events.ReadWholeStream(ctx, store, schema.CallerStream(number), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("stream holds %d events, want 3", len(evs))
	}
	reg := schema.NewRegistry()
	p, err := reg.Decode(evs[2])
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := p.(*schema.BlockApplied); !ok || b.By != "bob" || b.Why != "fraud dialler" || b.Level != 7 || b.CommandID != "block:ticket-4711" {
		t.Fatalf("last event %#v", p)
	}

	if _, err := c.Unblock(ctx, number, adminapi.RemoveRequest{By: "alice", Reason: "customer verified at the branch"}); err != nil {
		t.Fatalf("unblock: %v", err)
	}
	view, err = c.Caller(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	if view.Block != nil || view.NextCall.Verdict != schema.Pass {
		t.Fatalf("after unblock: %+v", view)
	}
	// Unblocking again does not fit the state.
	if _, err := c.Unblock(ctx, number, adminapi.RemoveRequest{By: "alice", Reason: "again"}); !adminapi.IsProblem(err, adminapi.CodeStateConflict) {
		t.Fatalf("second unblock: %v, want state-conflict", err)
	}
	// The history route has no audit behind it on this node.
	if _, err := c.History(ctx, number); !adminapi.IsProblem(err, adminapi.CodeNotImplemented) {
		t.Fatalf("history: %v, want not-implemented", err)
	}
}
