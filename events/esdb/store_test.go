package esdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

// deadURL is a connection string to a local port nobody listens on, with a
// short node discovery, and a password that must not show anywhere.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return fmt.Sprintf("esdb://admin:s3cr3t-pw@%s?tls=false&maxDiscoverAttempts=2&discoveryInterval=10&gossipTimeout=1", addr)
}

// These tests need no server: they drive the real client against a port
// that refuses connections, which is how a server that went away looks.

func TestOpenUnreachableIsUnavailable(t *testing.T) {
	logs := &syncWriter{w: &strings.Builder{}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, deadURL(t), WithLogger(newTestLogger(logs)))
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a port nobody listens on succeeded")
	}
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") || strings.Contains(logs.String(), "s3cr3t-pw") {
		t.Fatalf("the password shows in the error or the log:\n%v\n%s", err, logs.String())
	}
	t.Logf("Open failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// The v4 client closes itself for good when a node discovery fails; the
// store replaces it after a pause, and in the pause fails fast.
func TestClientThatClosedItselfIsReplaced(t *testing.T) {
	s, err := newStore(deadURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.pause = 50 * time.Millisecond
	ctx := t.Context()

	if _, err := s.Head(ctx); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("first Head = %v, want ErrUnavailable", err)
	}
	s.mu.Lock()
	dead := s.cur.dead.Load()
	s.mu.Unlock()
	if !dead {
		t.Fatal("the client is not marked dead after a failed discovery")
	}
	start := time.Now()
	_, err = s.Head(ctx)
	if !errors.Is(err, events.ErrUnavailable) || !strings.Contains(err.Error(), "reconnecting in") {
		t.Fatalf("Head in the pause = %v, want a fast ErrUnavailable", err)
	}
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Fatalf("Head in the pause took %v", d)
	}
	waitUntil(t, "the pause to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return time.Now().After(s.retryAt)
	})
	if _, err := s.Head(ctx); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Head after the pause = %v, want ErrUnavailable", err)
	}
	s.mu.Lock()
	gen, pause := s.gen, s.pause
	s.mu.Unlock()
	if gen != 2 {
		t.Fatalf("client generation %d after the pause, want 2", gen)
	}
	if pause != 200*time.Millisecond {
		t.Fatalf("next pause %v, want 200ms (doubled twice)", pause)
	}
}

// Many calls at once against a server that is not there all return: none
// is stranded inside the client.
func TestConcurrentCallsAgainstDeadServerAllReturn(t *testing.T) {
	s, err := newStore(deadURL(t), WithStreamPrefix("x."))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			var err error
			switch i % 4 {
			case 0:
				_, err = s.Head(ctx)
			case 1:
				_, err = s.Append(ctx, "caller-1", events.Any, events.Proposed{ID: events.DeriveID("t", fmt.Sprint(i)), Type: "T", Version: 1})
			case 2:
				_, err = s.ReadStream(ctx, "caller-1", events.Forward, 0, 10)
			case 3:
				_, _, err = s.LoadSnapshot(ctx, "caller-1")
			}
			errs <- err
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("calls against a dead server did not all return")
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, events.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call against a dead server = %v, want ErrUnavailable or a deadline", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if _, err := s.Head(t.Context()); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Head after Close = %v, want ErrClosed", err)
	}
	if err := s.Subscribe(t.Context(), events.Start, func(context.Context, events.Event) error { return nil }); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

// A subscription against a server that is not there keeps trying until
// its context ends, and then returns the context's error.
func TestSubscribeRetriesUntilContextEnds(t *testing.T) {
	s, err := newStore(deadURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.pause = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	err = s.Subscribe(ctx, events.Start, func(context.Context, events.Event) error {
		return errors.New("no event can arrive")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe = %v, want context.DeadlineExceeded", err)
	}
}

func TestCallsValidateBeforeTouchingTheServer(t *testing.T) {
	s, err := newStore(deadURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	p := events.Proposed{ID: events.DeriveID("x"), Type: "T", Version: 1}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"no events", func() error { _, err := s.Append(ctx, "s", events.Any); return err }()},
		{"empty stream", func() error { _, err := s.Append(ctx, "", events.Any, p); return err }()},
		{"system stream", func() error { _, err := s.Append(ctx, "$s", events.Any, p); return err }()},
		{"snapshot stream", func() error { _, err := s.Append(ctx, "snapshot@s", events.Any, p); return err }()},
		{"invalid event", func() error {
			_, err := s.Append(ctx, "s", events.Any, events.Proposed{Type: "T", Version: 0})
			return err
		}()},
		{"one ID twice", func() error { _, err := s.Append(ctx, "s", events.Any, p, p); return err }()},
		{"read limit", func() error { _, err := s.ReadStream(ctx, "s", events.Forward, 0, 0); return err }()},
		{"read direction", func() error { _, err := s.ReadStream(ctx, "s", events.Direction(9), 0, 1); return err }()},
		{"read all limit", func() error { _, err := s.ReadAll(ctx, events.Start, -1); return err }()},
		{"snapshot type", func() error {
			return s.SaveSnapshot(ctx, events.Snapshot{Stream: "s", Version: 1})
		}()},
		{"snapshot version", func() error {
			return s.SaveSnapshot(ctx, events.Snapshot{Stream: "s", Type: "T"})
		}()},
		{"nil handler", s.Subscribe(ctx, events.Start, nil)},
	} {
		if !errors.Is(tt.err, events.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tt.name, tt.err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		t.Fatal("an invalid call reached the client")
	}
}

// The gate lets one call through a client that has not answered yet, and
// up to its slots through one that has.
func TestConnGate(t *testing.T) {
	c := &conn{slots: make(chan struct{}, 2), probe: make(chan struct{}, 1)}
	life := t.Context()
	rel1, err := c.acquire(t.Context(), life)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.acquire(ctx, life); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second call through a client that has not answered: %v, want to wait", err)
	}
	c.ready.Store(true)
	rel1()
	rel2, err := c.acquire(t.Context(), life)
	if err != nil {
		t.Fatal(err)
	}
	rel3, err := c.acquire(t.Context(), life)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if _, err := c.acquire(ctx2, life); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third call through two slots: %v, want to wait", err)
	}
	rel2()
	rel3()
	closed, stop := context.WithCancel(t.Context())
	stop()
	c.ready.Store(false)
	c.probe <- struct{}{}
	if _, err := c.acquire(t.Context(), closed); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("acquire on a closed store = %v, want ErrClosed", err)
	}
}

// syncWriter serialises writes of concurrent loggers.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}
