package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

// firstOf: a server that stops by itself is reported at once (serve then
// stops the rest); after ctx ends, both servers' answers are joined.
func TestFirstOf(t *testing.T) {
	errA, errB := errors.New("a stopped"), errors.New("b stopped")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := make(chan error, 1), make(chan error, 1)
	done := firstOf(ctx, a, b)
	b <- errB
	select {
	case err := <-done:
		if !errors.Is(err, errB) || errors.Is(err, errA) {
			t.Errorf("one server stopped by itself: %v, want its error alone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a server that stopped by itself was not reported while the other ran")
	}

	ctx, cancel = context.WithCancel(context.Background())
	a, b = make(chan error, 1), make(chan error, 1)
	done = firstOf(ctx, a, b)
	cancel()
	a <- errA
	select {
	case err := <-done:
		t.Fatalf("reported %v before the second server stopped", err)
	case <-time.After(50 * time.Millisecond):
	}
	b <- nil
	if err := <-done; !errors.Is(err, errA) {
		t.Errorf("after ctx ended: %v, want both answers joined", err)
	}
}
