package siptest

import (
	"context"
	"sync"
	"time"
)

// notifier wakes every waiter on each state change: waiters take the current
// channel, check their condition, and block on the channel, which notify
// closes and replaces. Taking the channel before checking means no change
// between the check and the wait is lost.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// until blocks until cond is true or ctx ends; the error then wraps ctx's.
func (n *notifier) until(ctx context.Context, cond func() bool) error {
	for {
		ch := n.wait()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Poll calls check every interval until it returns nil, and returns nil; if
// ctx ends first it returns ctx's error joined with check's last error, so a
// failing test says what it was waiting for. It is the harness's answer to
// sleeping in tests (the nats-server checkFor habit).
func Poll(ctx context.Context, interval time.Duration, check func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return &PollError{Cause: context.Cause(ctx), Last: err}
		}
	}
}

// PollError is Poll's error when the context ends before the check passes.
type PollError struct {
	Cause error // the context's error
	Last  error // the check's last error
}

func (e *PollError) Error() string { return e.Cause.Error() + ": " + e.Last.Error() }

// Unwrap returns both errors, so errors.Is finds context.DeadlineExceeded
// as well as the check's own sentinel.
func (e *PollError) Unwrap() []error { return []error{e.Cause, e.Last} }
