package caller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// start starts a one-member node of caller grains on a store of its own,
// on the test's clock.
func start(tb testing.TB, clock *actortest.Clock, opts ...actortest.Option) *actortest.Node {
	tb.Helper()
	return actortest.New(tb, append([]actortest.Option{actortest.WithClock(clock.Now), actortest.WithLogger(quietLogger())}, opts...)...)
}

func newClock() *actortest.Clock { return actortest.NewClock(actortest.Epoch) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

const number = "+79990001122"

func admit(t *testing.T, c *caller.Client, callID string) caller.Verdict {
	t.Helper()
	v, err := c.Admit(context.Background(), number, caller.Admit{CallID: callID, Kind: phone.KindE164, Callee: "+78005553535"})
	if err != nil {
		t.Fatalf("Admit %s: %v", callID, err)
	}
	return v
}

func TestAdmitFollowsTheHourlyLimit(t *testing.T) {
	clock := newClock()
	n := start(t, clock)
	c := n.Callers
	limit := n.Policy.Config().LimitHour
	for i := 1; i <= limit; i++ {
		v := admit(t, c, fmt.Sprintf("call-%d", i))
		if v.Verdict != schema.Pass || v.Hour != i {
			t.Fatalf("call %d: got %+v, want pass with hour=%d", i, v, i)
		}
		clock.Advance(time.Minute)
	}
	v := admit(t, c, "call-over")
	if v.Verdict != schema.Challenge || v.Level != 3 || v.Rule != schema.RuleHourlyLimit {
		t.Fatalf("call over the limit: got %+v, want challenge at level 3 by hourly-limit", v)
	}
	// The events are in the store before the verdict was returned.
	evs, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if len(evs) != limit+2 || types[limit] != schema.TypeCallReceived || types[limit+1] != schema.TypeBlockApplied {
		t.Fatalf("stream holds %v, want %d CallReceived then BlockApplied", types, limit+1)
	}
	// A retried request for the same call returns the recorded verdict and
	// writes nothing.
	again := admit(t, c, "call-over")
	if !again.Repeated || again.Verdict != v.Verdict || again.Revision != v.Revision {
		t.Fatalf("retried Admit: got %+v, want the recorded %+v marked repeated", again, v)
	}
	head, _ := n.Store.ReadStream(context.Background(), schema.CallerStream(number), events.Backward, ^uint64(0), 1)
	if head[0].Revision != uint64(limit+1) {
		t.Fatalf("retry wrote events: stream at revision %d, want %d", head[0].Revision, limit+1)
	}
}

func TestGrainRestartKeepsState(t *testing.T) {
	for _, snapEvery := range []int{0, 3} {
		t.Run(fmt.Sprintf("snapshotEvery=%d", snapEvery), func(t *testing.T) {
			dir := t.TempDir()
			clock := newClock()
			n := start(t, clock, actortest.WithDir(dir), actortest.WithSnapshotEvery(snapEvery))
			c := n.Callers
			for i := range 8 {
				admit(t, c, fmt.Sprintf("c%d", i))
				clock.Advance(3 * time.Minute)
			}
			if _, err := c.Outcome(context.Background(), number, caller.Outcome{CallID: "c7", Outcome: schema.Failed}); err != nil {
				t.Fatal(err)
			}
			before, err := c.Status(context.Background(), number)
			if err != nil {
				t.Fatal(err)
			}
			if before.Status.Level != 3 || before.Status.Day != 8 {
				t.Fatalf("status before restart: %+v, want level 3 with 8 calls today", before)
			}
			_, hasSnap, _ := n.Store.LoadSnapshot(context.Background(), schema.CallerStream(number))
			if hasSnap != (snapEvery > 0) {
				t.Fatalf("snapshot present = %v with SnapshotEvery %d", hasSnap, snapEvery)
			}
			// The process restarts: the node goes, the store is reopened.
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
			n2 := start(t, clock, actortest.WithDir(dir), actortest.WithSnapshotEvery(snapEvery))
			after, err := n2.Callers.Status(context.Background(), number)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
				t.Fatalf("state after restart differs:\n before %+v\n after  %+v", before, after)
			}
		})
	}
}

func TestPassivatedGrainComesBackTheSame(t *testing.T) {
	n := start(t, newClock(), actortest.WithSnapshotEvery(2), actortest.WithIdleAfter(100*time.Millisecond))
	c := n.Callers
	for i := range 7 {
		admit(t, c, fmt.Sprintf("p%d", i))
	}
	before, err := c.Status(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	kind := n.Node.Cluster.GetClusterKind(caller.KindName)
	actortest.Eventually(t, 5*time.Second, func() error {
		if k := kind.Count(); k != 0 {
			return fmt.Errorf("%d grains still active", k)
		}
		return nil
	})
	after, err := c.Status(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		t.Fatalf("state after passivation differs:\n before %+v\n after  %+v", before, after)
	}
}

// slowStore makes every Append take delay: a store slower than the
// grains' idle time.
type slowStore struct {
	events.Store
	delay time.Duration
}

func (s slowStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	time.Sleep(s.delay)
	return s.Store.Append(ctx, stream, expected, evs...)
}

// A grain that was not idle when its idle time ran out (an append slower
// than IdleAfter in flight, or calls up that the concurrency limit
// counts) passivates once it is idle: protoactor cancels the receive
// timeout when it fires, so the grain must set it again.
func TestGrainPassivatesOnceIdleAfterBeingBusyAtItsIdleTime(t *testing.T) {
	const idle = 50 * time.Millisecond
	countIsZero := func(n *actortest.Node) func() error {
		kind := n.Node.Cluster.GetClusterKind(caller.KindName)
		return func() error {
			if k := kind.Count(); k != 0 {
				return fmt.Errorf("%d grains still active", k)
			}
			return nil
		}
	}
	t.Run("slow append", func(t *testing.T) {
		n := start(t, newClock(), actortest.WithIdleAfter(idle),
			actortest.WithStoreWrapper(func(s events.Store) events.Store { return slowStore{s, 8 * idle} }))
		admit(t, n.Callers, "slow-1")
		actortest.Eventually(t, 10*time.Second, countIsZero(n))
	})
	t.Run("call up", func(t *testing.T) {
		cfg := policy.DefaultConfig()
		cfg.MaxConcurrent = 3
		n := start(t, newClock(), actortest.WithIdleAfter(idle), actortest.WithPolicy(cfg))
		admit(t, n.Callers, "up-1")
		// The call is up past the idle time: the grain stays.
		time.Sleep(8 * idle)
		if k := n.Node.Cluster.GetClusterKind(caller.KindName).Count(); k != 1 {
			t.Fatalf("%d grains active with a call up, want 1", k)
		}
		if err := n.Callers.Ended(context.Background(), number, caller.Ended{CallID: "up-1"}); err != nil {
			t.Fatal(err)
		}
		actortest.Eventually(t, 10*time.Second, countIsZero(n))
	})
}

// Beyond MaxResident grains in memory, a grain activated passivates after
// PressureIdle rather than IdleAfter: a flood of numbers seen once leaves
// the grains resident before it, and sheds the rest within seconds.
func TestGrainsOverMaxResidentPassivateSoon(t *testing.T) {
	n := start(t, newClock(), actortest.WithIdleAfter(time.Hour), actortest.WithMaxResident(3, 100*time.Millisecond))
	kind := n.Node.Cluster.GetClusterKind(caller.KindName)
	for i := range 8 {
		v, err := n.Callers.Admit(context.Background(), fmt.Sprintf("+7999000%04d", i), caller.Admit{CallID: fmt.Sprintf("m%d", i), Kind: phone.KindE164, Callee: "+78005553535"})
		if err != nil {
			t.Fatalf("Admit %d: %v", i, err)
		}
		if v.Verdict != schema.Pass {
			t.Fatalf("call %d: %s, want pass", i, v.Verdict)
		}
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		if k := kind.Count(); k != 3 {
			return fmt.Errorf("%d grains resident, want the first 3 (MaxResident)", k)
		}
		return nil
	})
	// A passivated grain comes back with its history.
	st, err := n.Callers.Status(context.Background(), "+79990000007")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || st.Status.Hour != 1 {
		t.Fatalf("status of a passivated caller: %+v, want its one call", st)
	}
}

// checkCounts asserts the caller's stream holds want CallReceived events
// whose day counts are 1..want with no gap and no repeat.
func checkCounts(t *testing.T, st events.Store, want int) {
	t.Helper()
	evs, err := events.ReadWholeStream(context.Background(), st, schema.CallerStream(number), 0)
	if err != nil {
		t.Fatal(err)
	}
	reg := schema.NewRegistry()
	var days []int
	ids := map[string]bool{}
	for _, ev := range evs {
		if ev.Type != schema.TypeCallReceived {
			continue
		}
		p, err := reg.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		cr := p.(*schema.CallReceived)
		if ids[cr.CallID] {
			t.Fatalf("call %s recorded twice", cr.CallID)
		}
		ids[cr.CallID] = true
		days = append(days, cr.Day)
	}
	if len(days) != want {
		t.Fatalf("%d CallReceived events, want %d", len(days), want)
	}
	for i, d := range days {
		if d != i+1 {
			t.Fatalf("CallReceived #%d has day count %d, want %d (lost update)", i, d, i+1)
		}
	}
}

func TestConcurrentAdmitsForOneNumber(t *testing.T) {
	n := start(t, newClock(), actortest.WithSnapshotEvery(50))
	c := n.Callers
	const calls = 200
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			_, err := c.Admit(context.Background(), number, caller.Admit{CallID: fmt.Sprintf("h%03d", i), Kind: phone.KindE164})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCounts(t, n.Store, calls)
}

// Two activations of one number over one store, each in its own actor:
// what a cluster topology change can create for a moment. The
// expected-revision append makes one lose, reload and decide again.
func TestTwoActivationsWritingAtOnce(t *testing.T) {
	n := start(t, newClock())
	// Plain actor systems without remoting: the grains run exactly as in a
	// cluster, but two of them own the same number.
	props := caller.Props(n.Deps)
	var grains []*actor.PID
	var systems []*actor.ActorSystem
	for range 2 {
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
		t.Cleanup(sys.Shutdown)
		pid := sys.Root.Spawn(props)
		sys.Root.Send(pid, &cluster.ClusterInit{Identity: &cluster.ClusterIdentity{Identity: number, Kind: caller.KindName}})
		grains = append(grains, pid)
		systems = append(systems, sys)
	}
	const per = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for i := range per {
		for j := range grains {
			wg.Go(func() {
				v, err := caller.RequestPID(systems[j].Root, grains[j], caller.Admit{CallID: fmt.Sprintf("n%d-%03d", j, i), Kind: phone.KindE164}, 10*time.Second)
				if err != nil {
					errs <- err
				} else if _, ok := v.(*caller.Verdict); !ok {
					errs <- fmt.Errorf("reply %T, want a verdict", v)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCounts(t, n.Store, 2*per)
}

func TestRetriedCommandIsRepeatedNotRejudged(t *testing.T) {
	c := start(t, newClock()).Callers
	ctx := context.Background()
	block := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "cmd-1", By: "alice", Why: "fraud", Level: 7}}
	if _, err := c.Command(ctx, number, block); err != nil {
		t.Fatal(err)
	}
	unblock := caller.Command{Verb: caller.VerbUnblock, Command: policy.Command{ID: "cmd-2", By: "alice", Why: "sorted out"}}
	first, err := c.Command(ctx, number, unblock)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Command(ctx, number, unblock)
	if err != nil {
		t.Fatalf("retried unblock: %v, want it reported as repeated", err)
	}
	if !again.Repeated || again.Revision != first.Revision {
		t.Fatalf("retried unblock = %+v, want repeated at revision %d", again, first.Revision)
	}
	// A new unblock (another ID) is judged: the caller is not blocked.
	unblock.Command.ID = "cmd-3"
	if _, err := c.Command(ctx, number, unblock); !errors.Is(err, caller.ErrState) {
		t.Fatalf("second, distinct unblock = %v, want ErrState", err)
	}
}
