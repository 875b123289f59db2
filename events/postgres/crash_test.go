package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/postgres"
	"github.com/callguard/callguard/events/postgres/pgtest"
)

// TestAppendsSurviveServerCrash appends from several writers while the
// server is restarted and then killed with SIGKILL (crash recovery from
// the WAL). Writers retry a failed append with the same event ID, as
// callguard's grains do. Afterwards every acknowledged event is stored
// exactly once, each stream has no gap and no duplicate, and a
// subscription that ran throughout delivered each event once, in order.
func TestAppendsSurviveServerCrash(t *testing.T) {
	srv := pgtest.Start(t)
	s := openURL(t, srv.URL(), postgres.WithPollInterval(50*time.Millisecond))
	ctx := t.Context()

	const writers = 8
	type delivered struct {
		mu   sync.Mutex
		seen map[uuid.UUID]int
		last events.Position
		err  error
	}
	sub := &delivered{seen: map[uuid.UUID]int{}}
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.Subscribe(subCtx, events.Start, func(_ context.Context, ev events.Event) error {
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if !sub.last.Less(ev.Position) && sub.err == nil {
				sub.err = fmt.Errorf("position %v delivered after %v", ev.Position, sub.last)
			}
			sub.last = ev.Position
			sub.seen[ev.ID]++
			return nil
		})
	}()

	var (
		stop    atomic.Bool
		acked   [writers]atomic.Int64
		retries atomic.Int64
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	idOf := func(w, i int) uuid.UUID { return events.DeriveID("crash", fmt.Sprint(w), fmt.Sprint(i)) }
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("crash-%d", w)
			for i := 0; !stop.Load(); i++ {
				p := proposed(fmt.Sprintf("%d-%d", w, i))
				p.ID = idOf(w, i)
				exp := events.ExactOrNoStream(uint64(i-1), i > 0)
				for {
					actx, cancel := context.WithTimeout(ctx, 10*time.Second)
					res, err := s.Append(actx, stream, exp, p)
					cancel()
					if err == nil {
						if res.LastRevision != uint64(i) {
							errs <- fmt.Errorf("%s: event %d at revision %d", stream, i, res.LastRevision)
							return
						}
						acked[w].Store(int64(i + 1))
						break
					}
					if !errors.Is(err, events.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
						errs <- fmt.Errorf("%s: append %d: %w", stream, i, err)
						return
					}
					retries.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	total := func() int64 {
		var n int64
		for i := range acked {
			n += acked[i].Load()
		}
		return n
	}
	waitAcked := func(n int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d acknowledged appends", n), func() error {
			if got := total(); got < n {
				return fmt.Errorf("%d acknowledged", got)
			}
			return nil
		})
	}
	waitAcked(200)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitAcked(total() + 200)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // appends fail meanwhile and are retried
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitAcked(total() + 200)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d appends acknowledged, %d retried across a restart and a SIGKILL", total(), retries.Load())
	if retries.Load() == 0 {
		t.Fatal("no append failed while the server was down: the test did not test anything")
	}

	var want []uuid.UUID
	for w := range writers {
		stream := fmt.Sprintf("crash-%d", w)
		evs, err := events.ReadWholeStream(ctx, s, stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A writer retries until its append is acknowledged, so what is
		// stored is exactly what was acknowledged.
		if n := acked[w].Load(); int64(len(evs)) != n {
			t.Fatalf("%s: %d events stored, %d acknowledged", stream, len(evs), n)
		}
		for i, ev := range evs {
			if ev.Revision != uint64(i) || ev.ID != idOf(w, i) {
				t.Fatalf("%s: event %d is revision %d ID %v, want revision %d ID %v", stream, i, ev.Revision, ev.ID, i, idOf(w, i))
			}
			want = append(want, ev.ID)
		}
	}
	waitFor(t, "subscription across the crash", func() error {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if sub.err != nil {
			return sub.err
		}
		for _, id := range want {
			if sub.seen[id] != 1 {
				return fmt.Errorf("event %v delivered %d times", id, sub.seen[id])
			}
		}
		if len(sub.seen) != len(want) {
			return fmt.Errorf("%d events delivered, %d stored", len(sub.seen), len(want))
		}
		return nil
	})
	stopSub()
	if err := <-subDone; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
}
