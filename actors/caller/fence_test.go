package caller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// fenceStore counts appends; with conflictFirst its first append fails as
// if another activation had written, and trips the fence as it does.
type fenceStore struct {
	events.Store
	appends       atomic.Int64
	conflictFirst bool
	trip          func()
}

func (s *fenceStore) Append(ctx context.Context, stream string, exp events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	if s.appends.Add(1) == 1 && s.conflictFirst {
		s.trip()
		return events.AppendResult{}, fmt.Errorf("%w: another activation wrote", events.ErrConflict)
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

// A grain whose fence has tripped appends nothing, answers ErrFenced and
// stops, whether the fence trips before a batch, before a command's
// append, or between a batch's conflict and its reload's verdicts.
func TestFencedGrainWritesNothingAndStops(t *testing.T) {
	admitReq := func(id string) any { return caller.Admit{CallID: id, Kind: phone.KindE164} }
	block := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "cmd-1", By: "alice", Why: "fraud", Level: 7}}
	cases := []struct {
		name string
		// tripBefore trips the fence before the request; otherwise the
		// store's first append trips it (and conflicts).
		tripBefore bool
		req        any
	}{
		{"admit", true, admitReq("c1")},
		{"command", true, block},
		{"admit, conflict, then fenced before the reload answers", false, admitReq("c1")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := start(t, newClock())
			var tripped atomic.Bool
			st := &fenceStore{Store: n.Store, conflictFirst: !tc.tripBefore, trip: func() { tripped.Store(true) }}
			deps := n.Deps
			deps.Store = st
			deps.Fence = func() error {
				if tripped.Load() {
					return errors.New("membership unconfirmed")
				}
				return nil
			}
			sys := n.Node.System
			pid := sys.Root.Spawn(caller.Props(deps))
			sys.Root.Send(pid, &cluster.ClusterInit{Identity: &cluster.ClusterIdentity{Identity: number, Kind: caller.KindName}})

			if tc.tripBefore {
				// Unfenced, the grain writes.
				if _, err := caller.RequestPID(sys.Root, pid, admitReq("c0"), 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			before := st.appends.Load()
			evs, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tripBefore {
				tripped.Store(true)
			}
			_, err = caller.RequestPID(sys.Root, pid, tc.req, 10*time.Second)
			if tc.tripBefore {
				if !errors.Is(err, caller.ErrFenced) {
					t.Fatalf("fenced grain answered %v, want ErrFenced", err)
				}
				if got := st.appends.Load(); got != before {
					t.Fatalf("fenced grain appended %d times", got-before)
				}
			} else if !errors.Is(err, caller.ErrFenced) {
				// The first admit met the conflict; it must have been
				// refused, not decided again.
				t.Fatalf("grain fenced after a conflict answered %v (first request), want ErrFenced", err)
			}
			if !tc.tripBefore && st.appends.Load() != 1 {
				t.Fatalf("grain fenced after a conflict appended again: %d appends", st.appends.Load())
			}
			after, err := events.ReadWholeStream(context.Background(), n.Store, schema.CallerStream(number), 0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tripBefore && len(after) != len(evs) || !tc.tripBefore && len(after) != 0 {
				t.Fatalf("stream has %d events, had %d before the fence tripped", len(after), len(evs))
			}
			actortest.Eventually(t, 5*time.Second, func() error {
				_, err := caller.RequestPID(sys.Root, pid, caller.GetStatus{}, 200*time.Millisecond)
				if err != nil && strings.Contains(err.Error(), actor.ErrDeadLetter.Error()) {
					return nil
				}
				return fmt.Errorf("grain still answers: %v", err)
			})
		})
	}
}

// A grain that never answers in time: the cluster's placement of the
// number hangs (as when its owner is paused: disthash's lookup waits 5 s
// of its own, and cluster.Request retries). Admit returns at ctx's
// deadline, not seconds later.
func TestAdmitReturnsAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := actor.PropsFromProducer(func() actor.Actor {
		<-release // the activation never comes up while the test runs
		return &silent{}
	})
	n, err := node.Start(context.Background(), node.Config{
		ClusterName: "deadline", Listen: "127.0.0.1:0", Provider: node.SingleMemberProvider(),
		Kinds: []*cluster.Kind{cluster.NewKind(caller.KindName, hang)}, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	c := &caller.Client{Cluster: n.Cluster, Timeout: 10 * time.Second}
	const deadline = 500 * time.Millisecond
	const slack = 300 * time.Millisecond
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err := c.Admit(ctx, number, caller.Admit{CallID: fmt.Sprintf("c%d", i), Kind: phone.KindE164})
		took := time.Since(start)
		cancel()
		if !errors.Is(err, caller.ErrUnavailable) {
			t.Fatalf("Admit %d: %v, want ErrUnavailable", i, err)
		}
		if took > deadline+slack {
			t.Fatalf("Admit %d returned after %v; the deadline was %v", i, took, deadline)
		}
	}
}

// silent answers nothing.
type silent struct{}

func (silent) Receive(actor.Context) {}
