//go:build !race

// Two members in one process race inside protoactor-go (see
// actors/caller/cluster_test.go); this test runs without -race.

package line_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/events/embedded"
)

// Two nodes count new callers to one line on their own; the line's one
// grain adds their batches, switches the mode on, and both nodes' caches
// learn it from the answers to their batches.
func TestTwoNodesCombineTheirCountsInOneGrain(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	agent := test.NewInMemAgent()
	quiet := slog.New(slog.DiscardHandler)
	var locals []*line.Local
	var members []*node.Node
	for i := range 2 {
		deps := line.Deps{Store: st, Settings: line.Settings{Rate: 10, Window: 5 * time.Second, Calm: time.Minute}, Node: fmt.Sprint("n", i), Logger: quiet}
		n, err := node.Start(ctx, node.Config{
			ClusterName: "lines", Listen: "127.0.0.1:0", Provider: test.NewTestProvider(agent),
			Kinds: []*cluster.Kind{line.NewKind(deps)}, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Stop(false)
		c := &line.Client{Cluster: n.Cluster, Timeout: 10 * time.Second}
		members = append(members, n)
		locals = append(locals, &line.Local{Send: c.Counts, Node: deps.Node, Timeout: 10 * time.Second})
	}
	actortest.Eventually(t, 10*time.Second, func() error {
		for _, n := range members {
			if got := len(n.Cluster.MemberList.Members().Members()); got != 2 {
				return fmt.Errorf("%d members seen, want 2", got)
			}
		}
		return nil
	})
	const l = "+78005551234"
	// 30 new callers a node over 5 s is 12 a second in all: over 10.
	for _, loc := range locals {
		for range 30 {
			loc.Count(l, true)
		}
	}
	locals[0].FlushNow(ctx) // 30 in the window: 6/s, not yet
	if m := locals[0].Mode(l); m != nil {
		t.Fatalf("one node's 30 new callers switched the mode on: %+v", m)
	}
	locals[1].FlushNow(ctx) // 60: 12/s
	if m := locals[1].Mode(l); m == nil {
		t.Fatal("both nodes' counts did not switch the mode on")
	}
	// The first node learns it at its next batch or poll.
	locals[0].Count(l, false)
	locals[0].FlushNow(ctx)
	if m := locals[0].Mode(l); m == nil {
		t.Fatal("the other node did not learn the mode from its next batch")
	}
	if a, b := members[0].Cluster.GetClusterKind(line.KindName).Count(), members[1].Cluster.GetClusterKind(line.KindName).Count(); a+b != 1 {
		t.Fatalf("line activations %d and %d, want one in all", a, b)
	}
}
