package line_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

const (
	testLine  = "+78005551234"
	otherLine = "+78005559999"
)

type observer struct {
	mu     sync.Mutex
	events []string
}

func (o *observer) AttackStarted(l string, manual bool) { o.add("start " + l) }
func (o *observer) AttackEnded(l string, manual bool)   { o.add("end " + l) }
func (o *observer) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, s)
}

type fixture struct {
	store  events.Store
	clock  *actortest.Clock
	client *line.Client
	obs    *observer
	fence  *atomic.Value // error
	// attackRate is testLine's per-line threshold; nil: none.
	attackRate atomic.Pointer[float64]
}

func start(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{store: st, clock: actortest.NewClock(actortest.Epoch), obs: &observer{}, fence: &atomic.Value{}}
	deps := line.Deps{
		Store: st, Settings: line.Settings{Rate: 10, Window: 2 * time.Second, Calm: time.Minute},
		Clock: f.clock.Now, Node: "test", Logger: slog.New(slog.DiscardHandler), Observer: f.obs,
		Tick: 20 * time.Millisecond,
		Overrides: func(l string, _ time.Time) []schema.Override {
			r := f.attackRate.Load()
			if l != testLine || r == nil {
				return nil
			}
			// A later override without the setting keeps the earlier one's.
			return []schema.Override{{Source: schema.OverrideLine, Line: l, Settings: schema.Settings{AttackRate: r}},
				{Source: schema.OverrideSchedule, Name: "x", Settings: schema.Settings{LimitHour: new(int)}}}
		},
		Fence: func() error {
			if e, ok := f.fence.Load().(error); ok && e != nil {
				return e
			}
			return nil
		},
	}
	n, err := node.Start(ctx, node.Config{
		ClusterName: "linetest", Listen: "127.0.0.1:0", Provider: node.SingleMemberProvider(),
		Kinds: []*cluster.Kind{line.NewKind(deps)}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	f.client = &line.Client{Cluster: n.Cluster, Timeout: 10 * time.Second}
	return f
}

func (f *fixture) stream(t *testing.T) []string {
	t.Helper()
	evs, err := events.ReadWholeStream(context.Background(), f.store, schema.LineStream(testLine), 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

// Batches from several nodes add up; the mode starts once their rate
// exceeds the threshold, is appended before any answer says so, and ends
// by itself after calm, even when no batch comes (the grain ticks).
func TestGrainStartsAndEndsTheMode(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	m, err := f.client.Counts(ctx, testLine, line.Counts{Node: "a", New: 10})
	if err != nil || m.On {
		t.Fatalf("10 new callers in 2 s: %+v, %v; want off", m, err)
	}
	f.clock.Advance(200 * time.Millisecond)
	m, err = f.client.Counts(ctx, testLine, line.Counts{Node: "b", New: 11})
	if err != nil || !m.On || m.Manual {
		t.Fatalf("21 new callers in 2 s from two nodes: %+v, %v; want on", m, err)
	}
	if m.Rate != 10.5 || m.Threshold != 10 || !m.Since.Equal(f.clock.Now()) {
		t.Fatalf("mode %+v: want rate 10.5, threshold 10, since now", m)
	}
	if got := f.stream(t); len(got) != 1 || got[0] != schema.TypeLineAttackStarted {
		t.Fatalf("line stream %v, want one LineAttackStarted", got)
	}
	// Calm: nothing for a minute past the window. The grain ends the mode
	// on its own tick.
	f.clock.Advance(2*time.Second + time.Minute)
	actortest.Eventually(t, 10*time.Second, func() error {
		if got := f.stream(t); len(got) != 2 {
			return errors.New("not ended yet")
		}
		return nil
	})
	m, err = f.client.Status(ctx, testLine)
	if err != nil || m.On {
		t.Fatalf("after calm: %+v, %v; want off", m, err)
	}
	evs, _ := events.ReadWholeStream(ctx, f.store, schema.LineStream(testLine), 0)
	p, err := schema.NewRegistry().Decode(evs[1])
	if err != nil {
		t.Fatal(err)
	}
	end := *p.(*schema.LineAttackEnded)
	if end.Manual || end.Peak != 10.5 || end.By != line.AutoBy || end.CalmMs != 60000 {
		t.Fatalf("ended %+v", end)
	}
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	if len(f.obs.events) != 2 || f.obs.events[0] != "start "+testLine || f.obs.events[1] != "end "+testLine {
		t.Fatalf("observer saw %v", f.obs.events)
	}
}

// A line's own attack rate (per-line settings) replaces the global
// threshold for it alone, lower or higher, and the started event records
// the line's threshold.
func TestGrainPerLineThreshold(t *testing.T) {
	ctx := context.Background()
	t.Run("lower", func(t *testing.T) {
		f := start(t)
		low := 4.0
		f.attackRate.Store(&low)
		m, err := f.client.Counts(ctx, otherLine, line.Counts{Node: "a", New: 10})
		if err != nil || m.On || m.Threshold != 10 {
			t.Fatalf("other line, rate 5: %+v, %v; want off at the global threshold 10", m, err)
		}
		m, err = f.client.Counts(ctx, testLine, line.Counts{Node: "a", New: 10})
		if err != nil || !m.On || m.Threshold != 4 {
			t.Fatalf("rate 5 over a line threshold of 4: %+v, %v; want on, threshold 4", m, err)
		}
		evs, _ := events.ReadWholeStream(ctx, f.store, schema.LineStream(testLine), 0)
		if len(evs) != 1 {
			t.Fatalf("line stream: %d events, want 1", len(evs))
		}
		p, err := schema.NewRegistry().Decode(evs[0])
		if err != nil {
			t.Fatal(err)
		}
		if st := *p.(*schema.LineAttackStarted); st.Threshold != 4 || st.Rate != 5 {
			t.Fatalf("started %+v: want threshold 4, rate 5", st)
		}
	})
	t.Run("higher", func(t *testing.T) {
		f := start(t)
		high := 50.0
		f.attackRate.Store(&high)
		m, err := f.client.Counts(ctx, testLine, line.Counts{Node: "a", New: 40})
		if err != nil || m.On || m.Threshold != 50 {
			t.Fatalf("rate 20 under a line threshold of 50: %+v, %v; want off", m, err)
		}
		if got := f.stream(t); len(got) != 0 {
			t.Fatalf("line stream %v, want none", got)
		}
		// The setting is read at every check: cleared, the global one applies.
		f.attackRate.Store(nil)
		f.clock.Advance(100 * time.Millisecond)
		m, err = f.client.Counts(ctx, testLine, line.Counts{Node: "a", New: 1})
		if err != nil || !m.On || m.Threshold != 10 {
			t.Fatalf("after clearing: %+v, %v; want on at the global threshold", m, err)
		}
	})
}

// An admin switches the mode on and off; a held mode outlasts calm; a
// command that does not fit the mode is refused; a retried command is
// applied once.
func TestGrainManualCommands(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	on := line.Command{On: true, Hold: true, By: "alice", Why: "carrier warned of a campaign", ID: "k1"}
	m, err := f.client.Command(ctx, testLine, on)
	if err != nil || !m.On || !m.Manual || !m.Hold || m.By != "alice" {
		t.Fatalf("on: %+v, %v", m, err)
	}
	if m, err := f.client.Command(ctx, testLine, on); err != nil || !m.Repeated {
		t.Fatalf("retried on: %+v, %v; want repeated", m, err)
	}
	if _, err := f.client.Command(ctx, testLine, line.Command{On: true, By: "bob", Why: "again"}); !errors.Is(err, line.ErrState) {
		t.Fatalf("on while on: %v, want ErrState", err)
	}
	f.clock.Advance(10 * time.Minute)
	time.Sleep(100 * time.Millisecond) // ticks that must not end a held mode
	if m, err := f.client.Status(ctx, testLine); err != nil || !m.On {
		t.Fatalf("held mode after 10 min of calm: %+v, %v", m, err)
	}
	off := line.Command{By: "alice", Why: "campaign over", ID: "k2"}
	if m, err := f.client.Command(ctx, testLine, off); err != nil || m.On || len(m.Events) != 1 {
		t.Fatalf("off: %+v, %v", m, err)
	}
	if m, err := f.client.Command(ctx, testLine, off); err != nil || !m.Repeated {
		t.Fatalf("retried off: %+v, %v", m, err)
	}
	if _, err := f.client.Command(ctx, testLine, line.Command{By: "bob", Why: "x"}); !errors.Is(err, line.ErrState) {
		t.Fatalf("off while off: %v, want ErrState", err)
	}
	if _, err := f.client.Command(ctx, testLine, line.Command{On: true, By: "bob", Why: "two\nlines"}); !errors.Is(err, line.ErrInvalid) {
		t.Fatalf("why on two lines: %v, want ErrInvalid", err)
	}
	if _, err := f.client.Status(ctx, "8005551234"); !errors.Is(err, line.ErrInvalid) {
		t.Fatalf("not E.164: %v, want ErrInvalid", err)
	}
	if got := f.stream(t); len(got) != 2 {
		t.Fatalf("line stream %v, want started and ended once each", got)
	}
}

// A fenced grain writes nothing, and answers ErrFenced (the client
// retries until its deadline, then says unavailable).
func TestFencedLineGrainWritesNothing(t *testing.T) {
	f := start(t)
	f.fence.Store(errors.New("membership unconfirmed"))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := f.client.Command(ctx, testLine, line.Command{On: true, By: "alice", Why: "test"})
	if !errors.Is(err, line.ErrUnavailable) {
		t.Fatalf("fenced: %v, want unavailable", err)
	}
	if got := f.stream(t); len(got) != 0 {
		t.Fatalf("a fenced grain wrote %v", got)
	}
}
