package caller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// gatedStore holds its first Append until open is closed, saying on
// entered that it got there, and counts the conflicts the store answers.
type gatedStore struct {
	events.Store
	entered   chan struct{}
	open      chan struct{}
	first     sync.Once
	conflicts atomic.Int64
}

func (s *gatedStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	s.first.Do(func() {
		close(s.entered)
		<-s.open
	})
	res, err := s.Store.Append(ctx, stream, expected, evs...)
	if errors.Is(err, events.ErrConflict) {
		s.conflicts.Add(1)
	}
	return res, err
}

// The expected stream revision is the fencing token between two
// activations of one caller (a topology change, a paused node): a stale
// activation's append fails, it reloads and decides again, and it never
// answers a verdict that is not the one durable at the revision it gives.
// The first round forces the interleaving (the stale activation decided
// before the other one wrote); the second lets both race.
func TestStaleActivationAnswersOnlyDurableVerdicts(t *testing.T) {
	n := start(t, newClock())
	gate := &gatedStore{Store: n.Store, entered: make(chan struct{}), open: make(chan struct{})}
	opened := make(chan struct{})
	close(opened)
	other := &gatedStore{Store: n.Store, entered: make(chan struct{}), open: opened}
	stale, fresh := n.Deps, n.Deps
	stale.Store, fresh.Store = gate, other
	var grains []*actor.PID
	var systems []*actor.ActorSystem
	for _, deps := range []caller.Deps{stale, fresh} {
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
		t.Cleanup(sys.Shutdown)
		pid := sys.Root.Spawn(caller.Props(deps))
		sys.Root.Send(pid, &cluster.ClusterInit{Identity: &cluster.ClusterIdentity{Identity: number, Kind: caller.KindName}})
		grains, systems = append(grains, pid), append(systems, sys)
	}
	var mu sync.Mutex
	var answered []caller.Verdict
	admit := func(j int, callID string) error {
		v, err := caller.RequestPID(systems[j].Root, grains[j], caller.Admit{CallID: callID, Kind: phone.KindE164}, 20*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", callID, err)
		}
		verdict, ok := v.(*caller.Verdict)
		if !ok {
			return fmt.Errorf("%s: reply %T, want a verdict", callID, v)
		}
		mu.Lock()
		answered = append(answered, *verdict)
		mu.Unlock()
		return nil
	}

	// Round one: the stale activation decides on the empty stream and
	// stalls in its append; the other one records a call meanwhile.
	staleDone := make(chan error, 1)
	go func() { staleDone <- admit(0, "stale") }()
	select {
	case <-gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale activation never appended")
	}
	if err := admit(1, "fresh"); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	if err := <-staleDone; err != nil {
		t.Fatal(err)
	}
	if gate.conflicts.Load() == 0 {
		t.Fatal("the stale activation's append did not conflict")
	}

	// Round two: both at once.
	const per = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for i := range per {
		for j := range grains {
			wg.Go(func() {
				if err := admit(j, fmt.Sprintf("n%d-%03d", j, i)); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	evs, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
	if err != nil {
		t.Fatal(err)
	}
	reg := schema.NewRegistry()
	received := map[uint64]*schema.CallReceived{}
	for i, ev := range evs {
		if ev.Revision != uint64(i) {
			t.Fatalf("event #%d has revision %d: the stream is not linear", i, ev.Revision)
		}
		if ev.Type != schema.TypeCallReceived {
			continue
		}
		p, err := reg.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		received[ev.Revision] = p.(*schema.CallReceived)
	}
	if len(answered) != 2*per+2 {
		t.Fatalf("%d verdicts answered, want %d", len(answered), 2*per+2)
	}
	for _, v := range answered {
		cr := received[v.Revision]
		if cr == nil || cr.CallID != v.CallID {
			t.Fatalf("verdict for %s names revision %d, which holds %+v", v.CallID, v.Revision, cr)
		}
		if cr.Verdict != v.Verdict || cr.Level != v.Level || cr.Hour != v.Hour || cr.Day != v.Day || !cr.At.Equal(v.At) {
			t.Fatalf("%s: answered %+v, recorded %+v", v.CallID, v, *cr)
		}
		if v.CallID == "stale" && v.Day != 2 {
			t.Fatalf("the stale activation answered day count %d, want 2 (decided again after the other's call)", v.Day)
		}
	}
	checkCounts(t, n.Store, 2*per+2)
	t.Logf("revision conflicts met: %d and %d (round one forced one)", gate.conflicts.Load(), other.conflicts.Load())
}
