package follow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/follow"
)

const stream = "counter"

// sum is the folded value of the test stream: the total of its "Add"
// events. An event of type "Bad" does not fold.
type sum struct {
	rev   int64 // -1: no event
	total int
}

func revision(s *sum) (uint64, bool) {
	if s.rev < 0 {
		return 0, false
	}
	return uint64(s.rev), true
}

func foldSum(cur *sum, ev events.Event) (*sum, error) {
	if cur.rev >= 0 && ev.Revision <= uint64(cur.rev) {
		return cur, nil // delivered again
	}
	if ev.Type != "Add" {
		return nil, fmt.Errorf("%s@%d: cannot fold a %q", ev.Stream, ev.Revision, ev.Type)
	}
	var p struct{ N int }
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		return nil, err
	}
	return &sum{rev: int64(ev.Revision), total: cur.total + p.N}, nil
}

func readSum(ctx context.Context, store events.Store) (*sum, error) {
	evs, err := events.ReadWholeStream(ctx, store, stream, 0)
	if err != nil {
		return nil, err
	}
	s := &sum{rev: -1}
	for _, ev := range evs {
		if s, err = foldSum(s, ev); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var config = follow.Config[sum]{
	Stream:   stream,
	Read:     readSum,
	Fold:     foldSum,
	Revision: revision,
	Prefix:   "counter",
	Name:     "counter",
	Item:     "count",
}

// logs records the messages logged at each level.
type logs struct {
	mu  sync.Mutex
	got []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Level.String()+" "+r.Message)
	return nil
}

func (l *logs) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.got, msg)
}

func open(ctx context.Context, t *testing.T) events.Store {
	t.Helper()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func add(ctx context.Context, t *testing.T, st events.Store, name, typ string, n int) uint64 {
	t.Helper()
	res, err := st.Append(ctx, name, events.Any, events.Proposed{Type: typ, Version: 1, Data: fmt.Appendf(nil, `{"N":%d}`, n)})
	if err != nil {
		t.Fatal(err)
	}
	return res.LastRevision
}

func waitFor(ctx context.Context, t *testing.T, s *follow.Stream[sum], rev uint64) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitFor(wctx, rev); err != nil {
		t.Fatal(err)
	}
}

// TestTwoNodesFollowOneStore: two Streams on one store, as two nodes on a
// shared log, load what was written before them, then fold each later
// event of their stream; other streams are skipped, and an event that does
// not fold is logged and skipped without stopping the ones after it.
func TestTwoNodesFollowOneStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := open(ctx, t)
	add(ctx, t, st, stream, "Add", 2)
	add(ctx, t, st, "other", "Add", 100)

	var nodes []*follow.Stream[sum]
	var logged []*logs
	for range 2 {
		l := &logs{}
		s := follow.New(st, &sum{rev: -1}, config, slog.New(l))
		if _, ok := revision(s.Current()); ok {
			t.Fatal("a revision before Load")
		}
		from, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Current(); got.total != 2 || got.rev != 0 {
			t.Fatalf("after Load: %+v, want total 2 at revision 0", got)
		}
		go s.Follow(ctx, from)
		nodes, logged = append(nodes, s), append(logged, l)
	}

	add(ctx, t, st, stream, "Add", 3)
	add(ctx, t, st, "other", "Add", 100)
	add(ctx, t, st, stream, "Bad", 1000)
	last := add(ctx, t, st, stream, "Add", 5)
	for i, s := range nodes {
		waitFor(ctx, t, s, last)
		if got := s.Current(); got.total != 10 || got.rev != int64(last) {
			t.Fatalf("node %d: %+v, want total 10 at revision %d", i, got, last)
		}
		if !logged[i].has("ERROR count not folded") {
			t.Fatalf("node %d: the event that does not fold was not logged: %q", i, logged[i].got)
		}
	}
}

// TestWaitForEndsWithItsContext: a revision never written is waited for
// until ctx ends, and the error says which.
func TestWaitForEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := open(ctx, t)
	s := follow.New(st, &sum{rev: -1}, config, slog.New(slog.DiscardHandler))
	if err := s.Start(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer wcancel()
	err := s.WaitFor(wctx, 7)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "counter: wait for revision 7") {
		t.Fatalf("WaitFor: %v, want the deadline, named", err)
	}
	// A waiter already waiting is woken by the fold that reaches it.
	done := make(chan error, 1)
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		done <- s.WaitFor(wctx, 1)
	}()
	add(ctx, t, st, stream, "Add", 1)
	add(ctx, t, st, stream, "Add", 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.Current(); got.total != 2 {
		t.Fatalf("after WaitFor: %+v", got)
	}
}

// flaky is a store whose subscriptions end with an error after their
// first event, and whose Head fails while down is set.
type flaky struct {
	events.Store
	subs atomic.Int32
	down atomic.Bool
}

var errBroken = errors.New("store: connection lost")

func (f *flaky) Subscribe(ctx context.Context, from events.Position, h events.Handler) error {
	f.subs.Add(1)
	return f.Store.Subscribe(ctx, from, func(ctx context.Context, ev events.Event) error {
		if err := h(ctx, ev); err != nil {
			return err
		}
		return errBroken
	})
}

func (f *flaky) Head(ctx context.Context) (events.Position, error) {
	if f.down.Load() {
		return events.Start, errBroken
	}
	return f.Store.Head(ctx)
}

// TestResubscribesAfterTheSubscriptionEnds: every subscription ends after
// one event, and the follower goes on from where it was, missing nothing
// and folding nothing twice.
func TestResubscribesAfterTheSubscriptionEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &flaky{Store: open(ctx, t)}
	l := &logs{}
	s := follow.New(st, &sum{rev: -1}, config, slog.New(l))
	if err := s.Start(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for n := 1; n <= 3; n++ {
		last = add(ctx, t, st, stream, "Add", n)
	}
	waitFor(ctx, t, s, last)
	if got := s.Current(); got.total != 6 {
		t.Fatalf("after three subscriptions: %+v, want total 6", got)
	}
	if n := st.subs.Load(); n < 3 {
		t.Fatalf("%d subscriptions for three events that each end one", n)
	}
	if !l.has("WARN counter: subscription ended; resubscribing") {
		t.Fatalf("the ended subscription was not logged: %q", l.got)
	}
}

// TestStartRetriesTheFirstLoad: a store that does not answer fails Start,
// which goes on trying in the background and follows once it loads.
func TestStartRetriesTheFirstLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &flaky{Store: open(ctx, t)}
	add(ctx, t, st, stream, "Add", 4)
	st.down.Store(true)
	l := &logs{}
	s := follow.New(st, &sum{rev: -1}, config, slog.New(l))
	err := s.Start(ctx, time.Second)
	if !errors.Is(err, errBroken) || !strings.HasPrefix(err.Error(), "counter: load: head: ") {
		t.Fatalf("Start on a store that is down: %v", err)
	}
	if _, ok := revision(s.Current()); ok {
		t.Fatalf("a value without a load: %+v", s.Current())
	}
	st.down.Store(false)
	waitFor(ctx, t, s, 0)
	if got := s.Current(); got.total != 4 {
		t.Fatalf("after the retried load: %+v", got)
	}
	if !l.has("WARN counter not loaded; retrying") {
		t.Fatalf("the failed load was not logged: %q", l.got)
	}
}
