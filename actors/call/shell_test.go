package call

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// failingCallers answers Outcome with err for its first failures calls.
type failingCallers struct {
	err      error
	failures int // how many calls fail; -1 for all
	calls    int
}

func (f *failingCallers) Admit(context.Context, string, caller.Admit) (caller.Verdict, error) {
	return caller.Verdict{}, f.err
}

func (f *failingCallers) Outcome(context.Context, string, caller.Outcome) (caller.Applied, error) {
	f.calls++
	if f.failures < 0 || f.calls <= f.failures {
		return caller.Applied{}, f.err
	}
	return caller.Applied{}, nil
}

func shellFor(cs Callers, clock *actortest.Clock) *callActor {
	d := &Deps{Callers: cs, Clock: clock.Now, Sleep: clock.Sleep, Logger: slog.New(slog.DiscardHandler)}
	d.defaults()
	cfg := Config{OutcomeRetryFor: time.Minute}
	cfg.defaults()
	return &callActor{d: d, cfg: cfg, log: d.Logger}
}

func TestOutcomeReportRetriesByTheInjectedClock(t *testing.T) {
	clock := actortest.NewClock(epoch)
	cs := &failingCallers{err: fmt.Errorf("test: %w", caller.ErrUnavailable), failures: -1}
	a := shellFor(cs, clock)
	a.d.Tracker.add()
	a.reportOutcome(schema.Passed) // returns only once it gives up

	if got := a.d.Counters.OutcomesFailed.Load(); got != 1 {
		t.Errorf("OutcomesFailed = %d, want 1", got)
	}
	if elapsed := clock.Now().Sub(epoch); elapsed <= time.Minute || elapsed > time.Minute+5*time.Second {
		t.Errorf("gave up after %v of the fake clock, want just over OutcomeRetryFor (1m)", elapsed)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if i >= len(clock.Slept()) || clock.Slept()[i] != w {
			t.Fatalf("pauses %v, want them to double from 100ms up to 5s: %v...", clock.Slept(), want)
		}
	}
	if cs.calls != len(clock.Slept())+1 {
		t.Errorf("%d attempts for %d pauses", cs.calls, len(clock.Slept()))
	}
	if a.d.Tracker.Busy() != 0 {
		t.Error("the report did not mark itself done")
	}
}

func TestOutcomeReportStopsWhenItSucceedsOrIsRefused(t *testing.T) {
	clock := actortest.NewClock(epoch)
	cs := &failingCallers{err: fmt.Errorf("test: %w", caller.ErrStore), failures: 2}
	a := shellFor(cs, clock)
	a.d.Tracker.add()
	a.reportOutcome(schema.Failed)
	if cs.calls != 3 || len(clock.Slept()) != 2 || a.d.Counters.OutcomesFailed.Load() != 0 {
		t.Errorf("after two failures: %d calls, pauses %v, %d failed; want 3 calls, 2 pauses, none failed",
			cs.calls, clock.Slept(), a.d.Counters.OutcomesFailed.Load())
	}

	// A request the grain refuses will not get better: no retry.
	clock = actortest.NewClock(epoch)
	cs = &failingCallers{err: fmt.Errorf("test: %w", caller.ErrInvalid), failures: -1}
	a = shellFor(cs, clock)
	a.d.Tracker.add()
	a.reportOutcome(schema.Failed)
	if cs.calls != 1 || len(clock.Slept()) != 0 || a.d.Counters.OutcomesFailed.Load() != 1 {
		t.Errorf("refused: %d calls, pauses %v, %d failed; want 1 call, no pause, 1 failed",
			cs.calls, clock.Slept(), a.d.Counters.OutcomesFailed.Load())
	}
}

// downStore fails every append.
type downStore struct {
	events.Store
	appends int
}

func (s *downStore) Append(context.Context, string, events.Expected, ...events.Proposed) (events.AppendResult, error) {
	s.appends++
	return events.AppendResult{}, fmt.Errorf("test: %w", events.ErrUnavailable)
}

func TestStreamWriterDropsAfterRetryingByTheInjectedClock(t *testing.T) {
	clock := actortest.NewClock(epoch)
	st := &downStore{}
	c := &Counters{}
	w := newStreamWriter(st, nil, schema.CallStream("c1"), events.Metadata{Actor: "test"}, time.Minute,
		slog.New(slog.DiscardHandler), c, clock.Now, clock.Sleep)
	w.add(schema.CallStarted{CallID: "c1", At: epoch})
	w.add(schema.CallEnded{CallID: "c1", At: epoch})
	w.close()
	w.run() // returns once the batch is dropped

	if c.EventsDropped.Load() != 2 || c.EventsWritten.Load() != 0 {
		t.Errorf("dropped %d, written %d; want 2 dropped", c.EventsDropped.Load(), c.EventsWritten.Load())
	}
	if elapsed := clock.Now().Sub(epoch); elapsed <= time.Minute || elapsed > time.Minute+5*time.Second {
		t.Errorf("dropped after %v of the fake clock, want just over the retry bound (1m)", elapsed)
	}
	if st.appends != len(clock.Slept())+1 {
		t.Errorf("%d appends for %d pauses", st.appends, len(clock.Slept()))
	}
}

// recordingObserver notes what it is told.
type recordingObserver struct{ calls []string }

func (o *recordingObserver) Decided(v, action schema.Verdict, took time.Duration) {
	if action != v {
		o.calls = append(o.calls, fmt.Sprintf("decided %s (carried out: %s) in %v", v, action, took))
		return
	}
	o.calls = append(o.calls, fmt.Sprintf("decided %s in %v", v, took))
}
func (o *recordingObserver) Undecided(took time.Duration) {
	o.calls = append(o.calls, fmt.Sprintf("undecided in %v", took))
}
func (o *recordingObserver) Busy(took time.Duration) {
	o.calls = append(o.calls, fmt.Sprintf("busy in %v", took))
}
func (o *recordingObserver) ChallengeStarted() { o.calls = append(o.calls, "challenge started") }
func (o *recordingObserver) ChallengeEnded()   { o.calls = append(o.calls, "challenge ended") }

func TestCountersFollowTheMachine(t *testing.T) {
	at := func(s float64) time.Time { return epoch.Add(time.Duration(s * float64(time.Second))) }
	challenge := admitted{v: caller.Verdict{Verdict: schema.Challenge, Level: 3}, code: "47"}
	cases := []struct {
		name     string
		cfg      func(*Config)
		facts    []timedFact
		counters map[string]uint64
		observed []string
	}{{
		name: "challenge passed, bridged, billed",
		facts: []timedFact{
			{challenge, at(0.1)}, {EarlyMedia{At: at(0.2)}, at(0.2)}, {Answered{At: at(2), By: schema.PartyGuard}, at(2)},
			{Digit{Key: '4', At: at(2.5)}, at(2.5)}, {Digit{Key: '7', At: at(2.6)}, at(2.6)},
			{Ended{At: at(30), By: schema.PartyCaller, Cause: schema.EndCallerHangup}, at(30)},
		},
		counters: map[string]uint64{"challenged": 1, "challenges-passed": 1, "answered": 1, "billed": 1},
		observed: []string{"decided challenge in 50ms", "challenge started", "challenge ended"},
	}, {
		name: "challenge abandoned before the prompt: no gauge",
		facts: []timedFact{
			{challenge, at(0.1)}, {Ended{At: at(0.3), By: schema.PartyCaller, Cause: schema.EndCallerCancelled, Status: 487}, at(0.3)},
		},
		counters: map[string]uint64{"challenged": 1, "challenges-abandoned": 1, "unbilled": 1},
		observed: []string{"decided challenge in 50ms"},
	}, {
		name: "observe mode passes a reject",
		cfg:  func(c *Config) { c.Mode = schema.Observe },
		facts: []timedFact{
			{admitted{v: caller.Verdict{Verdict: schema.Reject, Level: 6}}, at(0.1)},
			{Ended{At: at(9), By: schema.PartyPBX, Cause: schema.EndPBXNoAnswer, Status: 480}, at(9)},
		},
		counters: map[string]uint64{"passed": 1, "observed": 1, "unbilled": 1},
		observed: []string{"decided reject (carried out: pass) in 50ms"},
	}, {
		name: "store down, fail closed",
		cfg:  func(c *Config) { c.StoreDown = schema.Reject },
		facts: []timedFact{
			{admitted{err: caller.ErrStore}, at(2)},
			{Ended{At: at(2), By: schema.PartyGuard, Cause: schema.EndStoreDown, Status: 503}, at(2)},
		},
		counters: map[string]uint64{"rejected": 1, "store-down": 1, "unbilled": 1},
		observed: []string{"undecided in 50ms"},
	}, {
		name: "busy: an overload answer, never the store-down policy",
		facts: []timedFact{
			{admitted{err: caller.ErrBusy}, at(0.1)},
			{Ended{At: at(0.1), By: schema.PartyGuard, Cause: schema.EndBusy, Status: 503}, at(0.1)},
		},
		counters: map[string]uint64{"rejected": 1, "unbilled": 1},
		observed: []string{"busy in 50ms"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := scriptConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			obs := &recordingObserver{}
			a := &callActor{d: &Deps{Observer: obs, Logger: slog.New(slog.DiscardHandler)}, log: slog.New(slog.DiscardHandler)}
			a.d.defaults()
			a.took = 50 * time.Millisecond
			m := newMachine(cfg, Setup{ID: "c1", Received: epoch})
			outs := m.start()
			for _, f := range tc.facts {
				outs = append(outs, m.step(f.f, f.at)...)
			}
			for _, o := range outs {
				a.tally(o)
			}
			c := a.d.Counters
			got := map[string]uint64{}
			for name, n := range map[string]uint64{
				"passed": c.Passed.Load(), "challenged": c.Challenged.Load(), "rejected": c.Rejected.Load(),
				"observed": c.Observed.Load(), "store-down": c.StoreDown.Load(),
				"challenges-passed": c.ChallengesPassed.Load(), "challenges-failed": c.ChallengesFailed.Load(),
				"challenges-abandoned": c.ChallengesAbandoned.Load(),
				"answered":             c.Answered.Load(), "billed": c.Billed.Load(), "unbilled": c.Unbilled.Load(),
			} {
				if n != 0 {
					got[name] = n
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.counters) {
				t.Errorf("counters %v, want %v", got, tc.counters)
			}
			if fmt.Sprint(obs.calls) != fmt.Sprint(tc.observed) {
				t.Errorf("observer told %q, want %q", obs.calls, tc.observed)
			}
		})
	}
}
