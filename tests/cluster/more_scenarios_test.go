package cluster

import (
	"fmt"
	"testing"
	"time"
)

// Scenario 4: rolling restart of all three nodes under load, one after
// the other (SIGINT, start, ready). No call fails beyond those sent to the
// node while it was down.
func TestScenario4RollingRestart(t *testing.T) {
	allOnly(t)
	s := newScenario(t, options{})
	c := s.c
	d := loadDuration(t) + 18*time.Second
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(3 * time.Second)
	var windows []func(Call) bool
	var downs []string
	for _, n := range c.Nodes {
		from := time.Now()
		if err := n.Restart(); err != nil {
			t.Errorf("restart: %v", err)
		}
		n.WaitReady(60 * time.Second)
		to := time.Now()
		windows = append(windows, window(n.Index, from.Add(-time.Second), to))
		downs = append(downs, fmt.Sprintf("node%d %.1fs", n.Index+1, to.Sub(from).Seconds()))
		time.Sleep(2 * time.Second)
	}
	wait()
	f := s.figures("scenario 4 (rolling restart)", load)
	c.checkLog(s.ctx, load.Calls(), s.acks, anyOf(windows...))
	t.Logf("FIGURES scenario 4: rolling restart, each node down then ready again: %v; calls failed (all on the restarting node): %d %s",
		downs, f.Lost, nodeCounts(f.LostByNode))
}

// Scenario 5: a fourth node joins under load. Grains move to it; no call
// fails and no event is written twice.
func TestScenario5NodeJoins(t *testing.T) {
	allOnly(t)
	s := newScenario(t, options{})
	c := s.c
	d := loadDuration(t)
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(d / 3)
	joined := time.Now()
	n := c.addNode(3)
	n.WaitReady(60 * time.Second)
	readyAfter := time.Since(joined)
	c.Logf("%s joined, ready after %.1fs", n.Name(), readyAfter.Seconds())
	// Calls go to the new node as well for the rest of the run.
	rest := time.Until(joined.Add(2 * d / 3))
	var load2 *Load
	wait2 := func() {}
	if rest > time.Second {
		load2, wait2 = c.startLoadOn(s.cs, rate(t)/4, rest, []*Node{n})
	}
	wait()
	wait2()
	f := s.figures("scenario 5 (a node joins)", load)
	calls := load.Calls()
	if load2 != nil {
		f2 := s.figures("scenario 5, calls to the new node", load2)
		calls = append(calls, load2.Calls()...)
		t.Logf("FIGURES scenario 5: the new node ready %.1fs after it started; calls to it %d, answered %d", readyAfter.Seconds(), f2.Calls, f2.Answered)
	}
	figs := c.checkLog(s.ctx, calls, s.acks, nil)
	t.Logf("FIGURES scenario 5: a node joined under load: %d calls, %d answered, %d failed; caller streams written from more than one node: %d", f.Calls, f.Answered, f.Lost, figs.MovedStreams)
}

// Scenario 6: one of three etcd members killed: no effect. Then a second
// one: quorum lost; the nodes keep deciding with the membership they knew
// and say not ready. Quorum back: ready again.
func TestScenario6EtcdQuorum(t *testing.T) {
	allOnly(t)
	s := newScenario(t, options{etcdMembers: 3})
	c := s.c
	members := c.etcd.cluster.Members
	d := loadDuration(t) + 12*time.Second
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(3 * time.Second)
	members[2].Kill()
	c.Logf("etcd member %s killed (2 of 3 left)", members[2].Name)
	time.Sleep(5 * time.Second)
	for _, n := range c.Nodes {
		if err := n.Ready(s.ctx); err != nil {
			t.Errorf("%s not ready with 2 of 3 etcd members: %v", n.Name(), err)
		}
	}
	members[1].Kill()
	lostAt := time.Now()
	c.Logf("etcd member %s killed: quorum lost", members[1].Name)
	var notReady []string
	for _, n := range c.Nodes {
		err := waitFor(s.ctx, 20*time.Second, func() error {
			if err := n.Ready(s.ctx); err != nil {
				notReady = append(notReady, fmt.Sprintf("%s after %.1fs: %v", n.Name(), time.Since(lostAt).Seconds(), err))
				return nil
			}
			return fmt.Errorf("%s still says ready", n.Name())
		})
		if err != nil {
			t.Errorf("quorum lost: %v", err)
		}
	}
	for _, line := range notReady {
		c.Logf("not ready: %s", line)
	}
	time.Sleep(4 * time.Second)
	for _, m := range members[1:] {
		if err := m.Start(s.ctx); err != nil {
			t.Fatalf("restart etcd member %s: %v", m.Name, err)
		}
	}
	back := time.Now()
	c.Logf("etcd quorum back after %.1fs", back.Sub(lostAt).Seconds())
	for _, n := range c.Nodes {
		n.WaitReady(30 * time.Second)
	}
	c.Logf("every node ready %.1fs after quorum came back", time.Since(back).Seconds())
	wait()
	f := s.figures("scenario 6 (etcd member lost, then quorum)", load)
	c.checkLog(s.ctx, load.Calls(), s.acks, nil)
	var exits int
	for _, n := range c.Nodes {
		exits += len(n.Exits())
	}
	t.Logf("FIGURES scenario 6: quorum lost %.1fs; calls %d, answered %d, failed %d; node exits %d", back.Sub(lostAt).Seconds(), f.Calls, f.Answered, f.Lost, exits)
}
