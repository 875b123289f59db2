package caller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// clock is a settable clock shared by the grains of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	store events.Store
	clock *clock
	pol   *policy.Policy
}

func newEnv(t *testing.T, dir string) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := embedded.Open(context.Background(), dir, embedded.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pol, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &env{store: st, clock: newClock(), pol: pol}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) deps(snapshotEvery int, idle time.Duration) caller.Deps {
	return caller.Deps{
		Store: e.store, Policy: e.pol, Clock: e.clock.Now, Node: "test",
		SnapshotEvery: snapshotEvery, IdleAfter: idle, Logger: quietLogger(),
	}
}

// startNode starts a cluster member hosting caller grains.
func startNode(t *testing.T, name string, deps caller.Deps, provider cluster.ClusterProvider) (*node.Node, *caller.Client) {
	t.Helper()
	if provider == nil {
		provider = node.SingleMemberProvider()
	}
	n, err := node.Start(context.Background(), node.Config{
		ClusterName: name, Listen: "127.0.0.1:0", Provider: provider,
		Kinds: []*cluster.Kind{caller.NewKind(deps)}, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	return n, &caller.Client{Cluster: n.Cluster, Timeout: 10 * time.Second}
}

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
	e := newEnv(t, "")
	_, c := startNode(t, "admit", e.deps(0, 0), nil)
	limit := e.pol.Config().LimitHour
	for i := 1; i <= limit; i++ {
		v := admit(t, c, fmt.Sprintf("call-%d", i))
		if v.Verdict != schema.Pass || v.Hour != i {
			t.Fatalf("call %d: got %+v, want pass with hour=%d", i, v, i)
		}
		e.clock.Advance(time.Minute)
	}
	v := admit(t, c, "call-over")
	if v.Verdict != schema.Challenge || v.Level != 3 || v.Rule != schema.RuleHourlyLimit {
		t.Fatalf("call over the limit: got %+v, want challenge at level 3 by hourly-limit", v)
	}
	// The events are in the store before the verdict was returned.
	evs, err := events.ReadWholeStream(context.Background(), e.store, schema.CallerStream(number), 0)
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
	head, _ := e.store.ReadStream(context.Background(), schema.CallerStream(number), events.Backward, ^uint64(0), 1)
	if head[0].Revision != uint64(limit+1) {
		t.Fatalf("retry wrote events: stream at revision %d, want %d", head[0].Revision, limit+1)
	}
}

func TestGrainRestartKeepsState(t *testing.T) {
	for _, snapEvery := range []int{0, 3} {
		t.Run(fmt.Sprintf("snapshotEvery=%d", snapEvery), func(t *testing.T) {
			dir := t.TempDir()
			e := newEnv(t, dir)
			n, c := startNode(t, "restart", e.deps(snapEvery, 0), nil)
			for i := range 8 {
				admit(t, c, fmt.Sprintf("c%d", i))
				e.clock.Advance(3 * time.Minute)
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
			_, hasSnap, _ := e.store.LoadSnapshot(context.Background(), schema.CallerStream(number))
			if hasSnap != (snapEvery > 0) {
				t.Fatalf("snapshot present = %v with SnapshotEvery %d", hasSnap, snapEvery)
			}
			// The process restarts: the node goes, the store is reopened.
			n.Stop(false)
			e.store.Close()
			e2 := newEnv(t, dir)
			e2.clock = e.clock
			_, c2 := startNode(t, "restart2", e2.deps(snapEvery, 0), nil)
			after, err := c2.Status(context.Background(), number)
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
	e := newEnv(t, "")
	n, c := startNode(t, "passivate", e.deps(2, 100*time.Millisecond), nil)
	for i := range 7 {
		admit(t, c, fmt.Sprintf("p%d", i))
	}
	before, err := c.Status(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	kind := n.Cluster.GetClusterKind(caller.KindName)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
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
	e := newEnv(t, "")
	_, c := startNode(t, "hot", e.deps(50, 0), nil)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
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
	checkCounts(t, e.store, n)
}

// Two activations of one number over one store, each in its own actor:
// what a cluster topology change can create for a moment. The
// expected-revision append makes one lose, reload and decide again.
func TestTwoActivationsWritingAtOnce(t *testing.T) {
	e := newEnv(t, "")
	// Plain actor systems without remoting: the grains run exactly as in a
	// cluster, but two of them own the same number.
	props := caller.Props(e.deps(0, 0))
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
	checkCounts(t, e.store, 2*per)
}

func checkFor(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(interval)
	}
}

func TestRetriedCommandIsRepeatedNotRejudged(t *testing.T) {
	e := newEnv(t, "")
	_, c := startNode(t, "retry-cmd", e.deps(0, 0), nil)
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
