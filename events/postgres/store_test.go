package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/postgres"
	"github.com/callguard/callguard/events/postgres/pgtest"
)

func proposed(tag string) events.Proposed {
	return events.Proposed{
		ID:      events.DeriveID("pg-test", tag),
		Type:    "TestEvent",
		Version: 1,
		Data:    json.RawMessage(fmt.Sprintf(`{"tag":%q}`, tag)),
	}
}

// collector is a subscription's events, safe to read while it runs.
type collector struct {
	mu  sync.Mutex
	evs []events.Event
}

func (c *collector) handle(_ context.Context, ev events.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, ev)
	return nil
}

func (c *collector) ids() []uuid.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uuid.UUID, len(c.evs))
	for i, ev := range c.evs {
		out[i] = ev.ID
	}
	return out
}

// waitFor polls f until it returns nil or 10 s have passed.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 10 s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameIDs(got, want []uuid.UUID) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d events %v, want %v", len(got), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("event %d is %v, want %v (got %v)", i, got[i], want[i], got)
		}
	}
	return nil
}

// TestGlobalLogDoesNotSkipSlowTransaction holds one write open in its
// transaction while a later one commits, and checks that a reader of the
// global log, and a subscription, neither skip the slow event once it
// commits nor see the later one before it. A position-ordered read ("rows
// after my checkpoint") would return the later event, move its checkpoint
// past the open transaction's position, and never see the slow event.
func TestGlobalLogDoesNotSkipSlowTransaction(t *testing.T) {
	slow, fast := proposed("slow"), proposed("fast")
	tests := []struct {
		name string
		// hold, if set, starts the slow write on a connection of its own
		// and returns once it is inserted but not committed, with the
		// function that commits it. Unset, the slow write is an Append of
		// the store held open by its before-commit hook.
		hold func(t *testing.T, url string) (commit func())
	}{
		{"slow append of the store", nil},
		{"slow raw insert on another connection", func(t *testing.T, url string) func() {
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close(context.Background()) })
			tx, err := conn.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(t.Context(), `INSERT INTO callguard_events (stream, revision, id, type, version, data, meta)
				VALUES ('slow', 0, $1, $2, 1, $3, '{}')`, slow.ID.String(), slow.Type, []byte(slow.Data))
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := tx.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			hook := postgres.WithBeforeCommit(func(ctx context.Context, stream string) {
				if stream != "slow" {
					return
				}
				once.Do(func() { close(held) })
				<-release
			})
			s, url := open(t, hook, postgres.WithPollInterval(50*time.Millisecond))
			ctx := t.Context()

			sub := &collector{}
			subCtx, stopSub := context.WithCancel(ctx)
			subDone := make(chan error, 1)
			go func() { subDone <- s.Subscribe(subCtx, events.Start, sub.handle) }()
			defer func() {
				stopSub()
				if err := <-subDone; !errors.Is(err, context.Canceled) {
					t.Errorf("Subscribe = %v, want context.Canceled", err)
				}
			}()

			var commit func()
			slowDone := make(chan error, 1)
			if tt.hold == nil {
				go func() {
					_, err := s.Append(ctx, "slow", events.NoStream, slow)
					slowDone <- err
				}()
				select {
				case <-held:
				case err := <-slowDone:
					t.Fatalf("slow append returned before its hook: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("slow append did not reach its commit")
				}
				commit = func() {
					close(release)
					if err := <-slowDone; err != nil {
						t.Fatalf("slow append: %v", err)
					}
				}
			} else {
				close(release)
				commit = tt.hold(t, url)
			}

			fastRes, err := s.Append(ctx, "fast", events.NoStream, fast)
			if err != nil {
				t.Fatalf("fast append: %v", err)
			}

			// The reader's checkpoint while the slow write is open.
			got, err := s.ReadAll(ctx, events.Start, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Fatalf("ReadAll with a write still open = %d events (%s first), want none: the open write would be skipped", len(got), got[0].Stream)
			}
			head, err := s.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if head != events.Start {
				t.Fatalf("Head with a write still open = %v, want Start", head)
			}
			checkpoint := events.Start
			for _, ev := range got {
				checkpoint = ev.Position
			}
			time.Sleep(100 * time.Millisecond) // let the subscription poll past the fast commit
			if n := len(sub.ids()); n != 0 {
				t.Fatalf("subscription delivered %d events while the earlier write was open", n)
			}

			commit()
			want := []uuid.UUID{slow.ID, fast.ID}
			got, err = s.ReadAll(ctx, checkpoint, 10)
			if err != nil {
				t.Fatal(err)
			}
			gotIDs := make([]uuid.UUID, len(got))
			for i, ev := range got {
				gotIDs[i] = ev.ID
			}
			if err := sameIDs(gotIDs, want); err != nil {
				t.Fatalf("ReadAll from the checkpoint after the commit: %v", err)
			}
			if got[1].Position != fastRes.Position {
				t.Fatalf("fast event read at %v, its append said %v", got[1].Position, fastRes.Position)
			}
			waitFor(t, "subscription", func() error { return sameIDs(sub.ids(), want) })
		})
	}
}

// TestServerDown stops the server under an open store: calls fail with
// ErrUnavailable, and once the server is back they succeed again and a
// subscription that was running resumes where it was.
func TestServerDown(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.URL()
	s := openURL(t, url, postgres.WithPollInterval(50*time.Millisecond))
	ctx := t.Context()

	sub := &collector{}
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() { subDone <- s.Subscribe(subCtx, events.Start, sub.handle) }()
	defer func() {
		stopSub()
		if err := <-subDone; !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe = %v, want context.Canceled", err)
		}
	}()

	before := proposed("before")
	if _, err := s.Append(ctx, "s", events.NoStream, before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription before the stop", func() error { return sameIDs(sub.ids(), []uuid.UUID{before.ID}) })

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := proposed("down")
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := s.Append(ctx, "s", events.Exact(0), down); return err }},
		{"ReadStream", func() error { _, err := s.ReadStream(ctx, "s", events.Forward, 0, 10); return err }},
		{"ReadAll", func() error { _, err := s.ReadAll(ctx, events.Start, 10); return err }},
		{"Head", func() error { _, err := s.Head(ctx); return err }},
		{"LoadSnapshot", func() error { _, _, err := s.LoadSnapshot(ctx, "s"); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, events.ErrUnavailable) {
			t.Errorf("%s with the server down = %v, want ErrUnavailable", c.name, err)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err := postgres.Open(openCtx, url)
	cancel()
	if !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("Open with the server down = %v, want ErrUnavailable", err)
	}

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The failed Append wrote nothing; appending it again now succeeds.
	waitFor(t, "append after restart", func() error {
		_, err := s.Append(ctx, "s", events.Exact(0), down)
		return err
	})
	waitFor(t, "subscription after restart", func() error {
		return sameIDs(sub.ids(), []uuid.UUID{before.ID, down.ID})
	})
}

// TestIdempotentRetryAnswersOriginalResult checks that a retry of a
// committed append returns exactly the original AppendResult, even after
// other streams were written in between.
func TestIdempotentRetryAnswersOriginalResult(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	batch := []events.Proposed{proposed("r1"), proposed("r2"), proposed("r3")}
	if _, err := s.Append(ctx, "r", events.NoStream, proposed("r0")); err != nil {
		t.Fatal(err)
	}
	orig, err := s.Append(ctx, "r", events.Exact(0), batch...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "other", events.Any, proposed("o")); err != nil {
		t.Fatal(err)
	}
	again, err := s.Append(ctx, "r", events.Exact(0), batch...)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again != orig {
		t.Fatalf("retry = %+v, want the original %+v", again, orig)
	}
	if orig.FirstRevision != 1 || orig.LastRevision != 3 {
		t.Fatalf("original = %+v, want revisions 1..3", orig)
	}
}

// TestTwoStoresOneDatabase checks that Open is idempotent and that two
// stores on one database (two nodes) keep one stream's revisions and
// see each other's events, including through a subscription woken by
// NOTIFY from the other store.
func TestTwoStoresOneDatabase(t *testing.T) {
	a, url := open(t)
	b := openURL(t, url, postgres.WithPollInterval(time.Hour)) // only NOTIFY can wake it
	ctx := t.Context()

	sub := &collector{}
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() { subDone <- b.Subscribe(subCtx, events.Start, sub.handle) }()
	defer func() { stopSub(); <-subDone }()

	e0, e1 := proposed("e0"), proposed("e1")
	if _, err := a.Append(ctx, "x", events.NoStream, e0); err != nil {
		t.Fatal(err)
	}
	_, err := b.Append(ctx, "x", events.NoStream, e1)
	var ce *events.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 0 {
		t.Fatalf("second store's NoStream append = %v, want a conflict at revision 0", err)
	}
	waitFor(t, "subscription on the other store", func() error { return sameIDs(sub.ids(), []uuid.UUID{e0.ID}) })
	// The subscription has caught up and waits; its poll interval is an
	// hour, and b itself appends nothing, so only a's NOTIFY can wake it.
	if _, err := a.Append(ctx, "x", events.Exact(0), e1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription woken by NOTIFY", func() error {
		return sameIDs(sub.ids(), []uuid.UUID{e0.ID, e1.ID})
	})
}

// TestConcurrentOpen opens several stores at once on a new database, as
// nodes starting together do: creating the tables must not race.
func TestConcurrentOpen(t *testing.T) {
	url := needServer(t).NewDatabaseT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
}

// TestSynchronousCommitStaysOn opens a store on a database whose default
// is synchronous_commit off: its sessions must still wait for the WAL
// flush, or an acknowledged append could be lost in a crash.
func TestSynchronousCommitStaysOn(t *testing.T) {
	srv := needServer(t)
	url := srv.NewDatabaseT(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := conn.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `ALTER DATABASE `+db+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(t.Context())

	s := openURL(t, url)
	got, err := s.Setting(t.Context(), "synchronous_commit")
	if err != nil {
		t.Fatal(err)
	}
	if got != "on" {
		t.Fatalf("synchronous_commit in the store's session = %q, want on", got)
	}
}
