//go:build !race

// protoactor-go's remote.Start writes grpc's process-wide logger each time a
// node starts, while the gRPC server of a node already running reads it: a
// data race inside the library whenever two members share a process. The
// multi-member tests therefore run without -race (.ci/run has a pass for
// them); cluster_race_test.go says so when -race is on.

package caller_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/phone"
)

func TestTwoMembersRouteANumberToOneActivation(t *testing.T) {
	clock := newClock()
	agent := test.NewInMemAgent()
	m1 := start(t, clock, actortest.WithClusterName("two"), actortest.WithProvider(test.NewTestProvider(agent)))
	m2 := start(t, clock, actortest.WithClusterName("two"), actortest.WithProvider(test.NewTestProvider(agent)), actortest.WithStore(m1.Store))
	n1, n2, c1, c2 := m1.Node, m2.Node, m1.Callers, m2.Callers
	actortest.Eventually(t, 10*time.Second, func() error {
		if a, b := len(n1.Cluster.MemberList.Members().Members()), len(n2.Cluster.MemberList.Members().Members()); a != 2 || b != 2 {
			return fmt.Errorf("members seen: %d and %d, want 2 and 2", a, b)
		}
		return nil
	})
	numbers := []string{"+79990000001", "+79990000002", "+79990000003", "+79990000004", "+79990000005", "+79990000006"}
	for i, num := range numbers {
		for j, c := range []*caller.Client{c1, c2} {
			if _, err := c.Admit(context.Background(), num, caller.Admit{CallID: fmt.Sprintf("r%d-%d", i, j), Kind: phone.KindE164}); err != nil {
				t.Fatal(err)
			}
		}
	}
	k1, k2 := n1.Cluster.GetClusterKind(caller.KindName).Count(), n2.Cluster.GetClusterKind(caller.KindName).Count()
	if int(k1+k2) != len(numbers) {
		t.Fatalf("activations: %d on one member, %d on the other; want %d in all (one per number)", k1, k2, len(numbers))
	}
	if k1 == 0 || k2 == 0 {
		t.Logf("all %d numbers hashed to one member (%d/%d)", len(numbers), k1, k2)
	}
	for _, num := range numbers {
		p1, p2 := n1.Cluster.Get(num, caller.KindName), n2.Cluster.Get(num, caller.KindName)
		if p1 == nil || p2 == nil || p1.Address != p2.Address || p1.Id != p2.Id {
			t.Fatalf("%s resolves to %v on one member and %v on the other", num, p1, p2)
		}
		s, err := c2.Status(context.Background(), num)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status.Day != 2 {
			t.Fatalf("%s: %d calls today, want 2 (both members' calls in one grain)", num, s.Status.Day)
		}
	}
	var addrs []string
	for _, num := range numbers {
		addrs = append(addrs, n1.Cluster.Get(num, caller.KindName).Address)
	}
	sort.Strings(addrs)
	t.Logf("activation addresses: %v", addrs)
}
