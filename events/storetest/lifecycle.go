package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

// testCancelledContext: every method that takes a context fails with that
// context's error when it is already done, and does nothing. Close takes
// no context.
func testCancelledContext(t *testing.T, h *harness) {
	stream := h.stream("cancelled")
	h.append(stream, events.NoStream, h.batch(stream, 0, 3)...)
	before := h.log()
	snap := events.Snapshot{Stream: stream, Revision: 2, Type: "CallerState", Version: 1, Data: json.RawMessage(`{}`)}

	for _, c := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		target error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(h.ctx)
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"past its deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(h.ctx, time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
	} {
		ctx, cancel := c.ctx()
		defer cancel()
		what := func(call string) string { return call + " with a context " + c.name }

		_, err := h.s.Append(ctx, stream, events.Any, h.event(c.name, 0))
		wantErrIs(t, what("Append"), err, c.target)
		_, err = h.s.Append(ctx, h.stream("new-"+c.name), events.NoStream, h.event(c.name, 1))
		wantErrIs(t, what("Append to a new stream"), err, c.target)
		_, err = h.s.ReadStream(ctx, stream, events.Forward, 0, 10)
		wantErrIs(t, what("ReadStream"), err, c.target)
		_, err = h.s.ReadStream(ctx, stream, events.Backward, end, 1)
		wantErrIs(t, what("ReadStream backward"), err, c.target)
		_, err = h.s.ReadAll(ctx, h.base, 10)
		wantErrIs(t, what("ReadAll"), err, c.target)
		_, err = h.s.Head(ctx)
		wantErrIs(t, what("Head"), err, c.target)
		err = h.s.SaveSnapshot(ctx, snap)
		wantErrIs(t, what("SaveSnapshot"), err, c.target)
		_, _, err = h.s.LoadSnapshot(ctx, stream)
		wantErrIs(t, what("LoadSnapshot"), err, c.target)

		done := make(chan error, 1)
		go func() { done <- h.s.Subscribe(ctx, h.base, func(context.Context, events.Event) error { return nil }) }()
		select {
		case err := <-done:
			wantErrIs(t, what("Subscribe"), err, c.target)
		case <-time.After(promptly):
			t.Fatalf("%s still running after %v", what("Subscribe"), promptly)
		}
	}

	// None of it had an effect.
	wantIDs(t, "global log after calls with a done context", h.log(), ids(before))
	if _, ok, err := h.s.LoadSnapshot(h.ctx, stream); err != nil || ok {
		t.Fatalf("LoadSnapshot after SaveSnapshot with a done context = %v, %v; want false, nil", ok, err)
	}
}

// testClose: Close ends a running subscription, and every call after it
// returns ErrClosed.
func testClose(t *testing.T, h *harness) {
	stream := h.stream("close")
	h.append(stream, events.NoStream, h.batch(stream, 0, 2)...)
	sub := h.subscribe(h.base, nil)
	sub.waitFor(t, h.log())

	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := sub.wait(t, promptly)
	if err == nil {
		t.Fatal("Subscribe returned nil when the store was closed, want an error")
	}
	t.Logf("Subscribe returned %v when the store was closed", err)

	ctx := h.ctx
	_, err = h.s.Append(ctx, stream, events.Any, h.event("closed", 0))
	wantErrIs(t, "Append after Close", err, events.ErrClosed)
	_, err = h.s.ReadStream(ctx, stream, events.Forward, 0, 10)
	wantErrIs(t, "ReadStream after Close", err, events.ErrClosed)
	_, err = h.s.ReadAll(ctx, h.base, 10)
	wantErrIs(t, "ReadAll after Close", err, events.ErrClosed)
	_, err = h.s.Head(ctx)
	wantErrIs(t, "Head after Close", err, events.ErrClosed)
	err = h.s.SaveSnapshot(ctx, events.Snapshot{Stream: stream, Revision: 1, Type: "CallerState", Version: 1, Data: json.RawMessage(`{}`)})
	wantErrIs(t, "SaveSnapshot after Close", err, events.ErrClosed)
	_, _, err = h.s.LoadSnapshot(ctx, stream)
	wantErrIs(t, "LoadSnapshot after Close", err, events.ErrClosed)

	done := make(chan error, 1)
	go func() { done <- h.s.Subscribe(ctx, h.base, func(context.Context, events.Event) error { return nil }) }()
	select {
	case err := <-done:
		wantErrIs(t, "Subscribe after Close", err, events.ErrClosed)
	case <-time.After(promptly):
		t.Fatalf("Subscribe after Close still running after %v", promptly)
	}

	if err := h.s.Close(); err != nil && !errors.Is(err, events.ErrClosed) {
		t.Fatalf("second Close = %v, want nil or ErrClosed", err)
	}
}
