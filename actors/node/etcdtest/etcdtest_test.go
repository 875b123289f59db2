package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/node/etcdtest"
)

func TestMemberStopsAndRestarts(t *testing.T) {
	m := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Healthy(ctx); err != nil {
		t.Fatalf("fresh member: %v", err)
	}
	for name, end := range map[string]func(){"stop": m.Stop, "kill": m.Kill} {
		end()
		if m.Running() {
			t.Fatalf("%s: still running", name)
		}
		if err := m.Healthy(ctx); err == nil {
			t.Fatalf("%s: still answers healthy", name)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatalf("restart after %s: %v", name, err)
		}
	}
}

func TestClusterKeepsQuorumWithOneMemberDown(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("%d endpoints, want 3", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Members[0].Kill()
	// Two of three keep a leader (an election may be under way: poll).
	if err := c.Members[1].WaitHealthy(ctx); err != nil {
		t.Fatalf("two of three: %v", err)
	}
	c.Members[1].Kill()
	// One of three has no quorum: /health turns false within an election
	// timeout or so.
	deadline := time.Now().Add(10 * time.Second)
	for c.Members[2].Healthy(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the last member still says healthy without a quorum")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range c.Members[:2] {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Members[2].WaitHealthy(ctx); err != nil {
		t.Fatalf("quorum back: %v", err)
	}
}
