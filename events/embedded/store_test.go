package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger())}, opts...)
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ev(typ string, data string) events.Proposed {
	return events.Proposed{ID: uuid.New(), Type: typ, Version: 1, Data: []byte(data)}
}

func TestOpenLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	start := time.Now()
	s2, err := Open(context.Background(), dir, WithLogger(quietLogger()))
	if err == nil {
		_ = s2.Close()
		t.Fatal("second Open of one directory succeeded")
	}
	if !errors.Is(err, events.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open took %v to fail, want fast", d)
	}
}

// TestLockChild holds a store open for TestOpenLockedOtherProcess.
func TestLockChild(t *testing.T) {
	dir := os.Getenv("EMBEDDED_LOCK_CHILD_DIR")
	if dir == "" {
		t.Skip("helper process of TestOpenLockedOtherProcess")
	}
	s, err := Open(context.Background(), dir, WithLogger(quietLogger()))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	defer s.Close()
	fmt.Println("READY")
	time.Sleep(10 * time.Second) // killed by the parent long before
}

func TestOpenLockedOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$")
	cmd.Env = append(os.Environ(), "EMBEDDED_LOCK_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "READY" {
		t.Fatalf("child said %q, %v", line, err)
	}
	_, err = Open(context.Background(), dir, WithLogger(quietLogger()))
	if !errors.Is(err, events.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open while another process holds the directory: err = %v, want ErrLocked naming %s", err, dir)
	}
	// Once the holder is gone, the directory opens.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	openTest(t, dir)
}

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := t.TempDir() + "/a/b"
	openTest(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %v, want 0700", perm)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	s := openTest(t, dir, WithClock(func() time.Time { return at }))
	r1, err := s.Append(ctx, "a", events.NoStream, ev("A", `{"n":1}`), ev("A", `{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "b", events.NoStream, ev("B", `{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, events.Snapshot{Stream: "a", Revision: 1, Type: "S", Version: 1, Data: []byte(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	before, err := s.ReadAll(ctx, events.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	head, err := s.Head(ctx)
	if err != nil || head != (events.Position{Commit: 3, Prepare: 3}) {
		t.Fatalf("Head after reopen = %v, %v; want 3", head, err)
	}
	after, err := s.ReadAll(ctx, events.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("log changed across reopen:\n%v\n%v", before, after)
	}
	for _, e := range after {
		if !e.Recorded.Equal(at) {
			t.Errorf("Recorded = %v, want the injected clock's %v", e.Recorded, at)
		}
	}
	snap, ok, err := s.LoadSnapshot(ctx, "a")
	if err != nil || !ok || snap.Revision != 1 || string(snap.Data) != `{"n":2}` || !snap.Recorded.Equal(at) {
		t.Fatalf("snapshot after reopen = %+v, %v, %v", snap, ok, err)
	}
	// The log and the stream continue where they were.
	r2, err := s.Append(ctx, "a", events.Exact(r1.LastRevision), ev("A", `{"n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if r2.FirstRevision != 2 || r2.Position != (events.Position{Commit: 4, Prepare: 4}) {
		t.Fatalf("append after reopen = %+v", r2)
	}
}

func TestCallsAfterClose(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.Append(ctx, "a", events.Any, ev("A", `{}`)); err != nil {
		t.Fatal(err)
	}
	subErr := make(chan error, 1)
	go func() {
		subErr <- s.Subscribe(ctx, events.Start, func(context.Context, events.Event) error { return nil })
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-subErr:
		if !errors.Is(err, events.ErrClosed) {
			t.Errorf("Subscribe ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not end at Close")
	}
	calls := map[string]func() error{
		"Append": func() error { _, err := s.Append(ctx, "a", events.Any, ev("A", `{}`)); return err },
		"ReadStream": func() error {
			_, err := s.ReadStream(ctx, "a", events.Forward, 0, 10)
			return err
		},
		"ReadAll":      func() error { _, err := s.ReadAll(ctx, events.Start, 10); return err },
		"Head":         func() error { _, err := s.Head(ctx); return err },
		"SaveSnapshot": func() error { return s.SaveSnapshot(ctx, events.Snapshot{Stream: "a", Type: "S", Version: 1}) },
		"LoadSnapshot": func() error { _, _, err := s.LoadSnapshot(ctx, "a"); return err },
		"Subscribe": func() error {
			return s.Subscribe(ctx, events.Start, func(context.Context, events.Event) error { return nil })
		},
		"Close": s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, events.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseWithPendingAppends checks what Close promises to appends in
// flight: each either is committed and reports success, or reports
// ErrClosed and is not stored.
func TestCloseWithPendingAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	type outcome struct {
		stream string
		err    error
	}
	results := make(chan outcome, 1000)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				stream := fmt.Sprintf("g%d-%d", g, i)
				_, err := s.Append(ctx, stream, events.NoStream, ev("A", `{}`), ev("B", `{}`))
				results <- outcome{stream, err}
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	s = openTest(t, dir)
	ok := 0
	for r := range results {
		got, err := s.ReadStream(ctx, r.stream, events.Forward, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.err == nil:
			ok++
			if len(got) != 2 {
				t.Errorf("%s: acknowledged append has %d events after reopen", r.stream, len(got))
			}
		case errors.Is(r.err, events.ErrClosed):
			if len(got) != 0 {
				t.Errorf("%s: append that got ErrClosed was stored", r.stream)
			}
		default:
			t.Errorf("%s: unexpected error %v", r.stream, r.err)
		}
	}
	if ok == 0 {
		t.Error("no append succeeded before Close")
	}
}

// TestBatchRequestsAreIndependent drives one group commit directly: requests
// in one transaction see each other's writes, and a rejected request neither
// fails the others nor leaves a trace.
func TestBatchRequestsAreIndependent(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.Append(ctx, "old", events.NoStream, ev("O", `{}`), ev("O", `{}`)); err != nil {
		t.Fatal(err)
	}
	oldEvs, _ := s.ReadStream(ctx, "old", events.Forward, 0, 10)
	a1, a2, b1 := ev("A", `1`), ev("A", `2`), ev("B", `1`)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	req := func(ctx context.Context, stream string, exp events.Expected, evs ...events.Proposed) *request {
		return newAppendRequest(ctx, stream, exp, evs)
	}
	batch := []*request{
		req(ctx, "a", events.NoStream, a1),                                                    // ok: a@0, pos 3
		req(ctx, "a", events.NoStream, ev("A", `x`)),                                          // conflict: sees a@0 from above
		req(ctx, "b", events.Any, b1, events.Proposed{ID: a1.ID, Type: "B", Version: 1}),      // ok: IDs are per stream, b@0..1, pos 4..5
		req(ctx, "a", events.Exact(0), a2),                                                    // ok: a@1, pos 6
		req(ctx, "a", events.NoStream, a1),                                                    // a1 stored but no longer the end: duplicate
		req(ctx, "a", events.Exact(7), a2),                                                    // retry of the previous one: idempotent
		req(cancelled, "c", events.Any, ev("C", `{}`)),                                        // caller gone: skipped
		req(ctx, "old", events.Any, events.Proposed{ID: oldEvs[1].ID, Type: "O", Version: 1}), // retry of old@1
		{ctx: ctx, stream: "a", snap: &events.Snapshot{Stream: "a", Revision: 1, Type: "S", Version: 1}, reply: make(chan reply, 1)},
	}
	w := writer{s: s, head: 2}
	w.commit(batch)
	check := []func(reply) error{
		wantResult(0, 0, 3),
		wantErr(events.ErrConflict),
		wantResult(0, 1, 5),
		wantResult(1, 1, 6),
		wantErr(events.ErrDuplicateID),
		wantResult(1, 1, 6),
		wantErr(context.Canceled),
		wantResult(1, 1, 2),
		wantErr(nil),
	}
	for i, req := range batch {
		if err := check[i](<-req.reply); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	all, err := s.ReadAll(ctx, events.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || all[2].ID != a1.ID || all[4].ID != a1.ID || all[5].ID != a2.ID {
		t.Fatalf("log after batch: %v", all)
	}
	if got, _ := s.ReadStream(ctx, "b", events.Forward, 0, 10); len(got) != 2 || got[1].ID != a1.ID {
		t.Errorf("b holds %v, want b1 and an event with a1's ID (IDs are unique per stream)", got)
	}
	if got, _ := s.ReadStream(ctx, "c", events.Forward, 0, 10); len(got) != 0 {
		t.Errorf("cancelled request left events in c: %v", got)
	}
	if _, ok, _ := s.LoadSnapshot(ctx, "a"); !ok {
		t.Error("snapshot in the batch was not saved")
	}
}

func wantResult(first, last, pos uint64) func(reply) error {
	return func(r reply) error {
		want := events.AppendResult{FirstRevision: first, LastRevision: last, Position: events.Position{Commit: pos, Prepare: pos}}
		if r.err != nil || r.res != want {
			return fmt.Errorf("got %+v, %v; want %+v", r.res, r.err, want)
		}
		return nil
	}
}

func wantErr(target error) func(reply) error {
	return func(r reply) error {
		if !errors.Is(r.err, target) || (target == nil && r.err != nil) {
			return fmt.Errorf("err = %v, want %v", r.err, target)
		}
		return nil
	}
}

func TestConflictError(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	_, err := s.Append(ctx, "a", events.StreamExists, ev("A", `{}`))
	var ce *events.ConflictError
	if !errors.As(err, &ce) || ce.Actual != events.NoRevision || ce.Stream != "a" || !ce.Expected.IsStreamExists() {
		t.Fatalf("err = %#v", err)
	}
	if _, err := s.Append(ctx, "a", events.NoStream, ev("A", `{}`), ev("A", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, "a", events.Exact(0), ev("A", `{}`))
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("err = %#v", err)
	}
}

// TestSubscribeUnderLoad checks the catch-up to live switch while writers
// commit continuously: every event exactly once, in order.
func TestSubscribeUnderLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openTest(t, t.TempDir())
	for i := range 50 {
		if _, err := s.Append(ctx, fmt.Sprint("pre", i), events.Any, ev("A", `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	const writers, each = 8, 200
	total := uint64(50 + writers*each)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(ctx, fmt.Sprint("w", g), events.Any, ev("A", fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var next uint64 = 1
	errDone := errors.New("done")
	err := s.Subscribe(ctx, events.Start, func(_ context.Context, e events.Event) error {
		if e.Position.Commit != next {
			return fmt.Errorf("got position %d, want %d", e.Position.Commit, next)
		}
		next++
		if next > total {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	wg.Wait()
}
