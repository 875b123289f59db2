package cluster

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/siptest"
)

// leaseTTL is the etcd lease of a node (actors/node.EtcdLeaseTTL, fixed
// by protoactor-go's provider): the time after which a dead node's
// grains move.
const leaseTTL = 3 * time.Second

// reactivationBar is what scenario 1 holds the re-activation time to: the
// lease and two seconds (for the keepalive period, the member list update
// and the first append on the new node).
const reactivationBar = leaseTTL + 2*time.Second

// all reports whether every scenario runs (CALLGUARD_FAILURE_SUITE=all);
// allOnly skips t otherwise.
func allOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("CALLGUARD_FAILURE_SUITE") != "all" {
		t.Skip("scenario runs only with CALLGUARD_FAILURE_SUITE=all (go tool task failure-suite)")
	}
}

// scenario is what every scenario starts with: three nodes ready, the
// whitelisted and blocked numbers set up.
type scenario struct {
	t    *testing.T
	ctx  context.Context
	c    *Cluster
	cs   *Callers
	acks *Acks
}

func newScenario(t *testing.T, o options) *scenario {
	t.Helper()
	if testing.Short() {
		t.Skip("the failure suite starts real processes; skipped with -short")
	}
	c := newCluster(t, o)
	s := &scenario{t: t, ctx: t.Context(), c: c, acks: &Acks{}}
	s.cs = c.setupCallers(s.ctx, s.acks)
	c.Logf("cluster ready: %d nodes, etcd %d member(s), PostgreSQL at port %d", len(c.Nodes), c.opts.etcdMembers, c.pg.server.Port())
	return s
}

// figures logs a scenario's load figures in one block.
func (s *scenario) figures(name string, l *Load) Figures {
	f := l.Figures()
	s.t.Logf("FIGURES %s: %s", name, f)
	return f
}

// window says whether a call to node idx was in progress within [from,
// to]: sent by to and not answered before from. A call sent earlier is in
// the window too when it was still waiting (on a loaded machine a call
// may wait seconds for its answer): it was on the node when it failed.
func window(idx int, from, to time.Time) func(Call) bool {
	return func(c Call) bool {
		return c.Node == idx && inProgress(c, from, to)
	}
}

// inProgress says whether call c was sent by to and not answered before
// from. A call without an answer waited callTimeout for one.
func inProgress(c Call, from, to time.Time) bool {
	end := c.Sent.Add(callTimeout)
	if c.Answered() {
		end = c.Sent.Add(c.Latency)
	}
	return !c.Sent.After(to) && !end.Before(from)
}

func anyOf(fs ...func(Call) bool) func(Call) bool {
	return func(c Call) bool {
		return slices.ContainsFunc(fs, func(f func(Call) bool) bool { return f(c) })
	}
}

// Scenario 1: SIGKILL one node under load. Its numbers re-activate on the
// two others within the lease and two seconds; the calls sent to the dead
// node are lost, every other call is answered; nothing acknowledged is
// lost, nothing counted twice.
func TestScenario1KillOneNode(t *testing.T) {
	s := newScenario(t, options{})
	c := s.c
	victim := c.Nodes[2]
	probes := s.probeNumbers(victim, 24)
	d := loadDuration(t)
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(d / 3)
	killed := time.Now()
	victim.Kill()
	react := s.measureReactivation(killed, probes, []*Node{c.Nodes[0], c.Nodes[1]})
	wait()
	// Lost: the calls sent to the dead node, and on the others those whose
	// grain request was in flight to it when it died.
	inFlight := func(call Call) bool {
		return call.Node != victim.Index && inProgress(call, killed.Add(-time.Second), killed.Add(time.Second))
	}
	lost := anyOf(window(victim.Index, killed.Add(-time.Second), time.Now()), inFlight)
	f := s.figures("scenario 1 (SIGKILL one node)", load)
	figs := c.checkLog(s.ctx, load.Calls(), s.acks, lost)
	t.Logf("FIGURES scenario 1: re-activation on the survivors after SIGKILL: %s (bar: lease %v + 2 s = %v); calls lost with the killed node: %d; lost on the survivors (in flight to the dead node's grains): %d; told 503 on the survivors while the numbers moved: %d",
		react, leaseTTL, reactivationBar, f.LostByNode[victim.Index], f.Lost-f.LostByNode[victim.Index], figs.Busy)
	if react.Max > reactivationBar || react.Missing > 0 {
		t.Errorf("re-activation took %s, over the bar of %v", react, reactivationBar)
	}
	// Back with a new identity, the cluster is whole again.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	victim.WaitReady(60 * time.Second)
}

// Scenario 2: SIGSTOP a node longer than its lease, then SIGCONT. Its
// stale activations are fenced (no interleaved writers, counts
// consecutive), and it leaves: it exits non-zero and the supervisor
// restarts it under a new identity.
func TestScenario2PauseLongerThanLease(t *testing.T) {
	s := newScenario(t, options{})
	c := s.c
	victim := c.Nodes[1]
	d := loadDuration(t) + 4*time.Second
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(d / 4)
	paused := time.Now()
	victim.Pause()
	time.Sleep(leaseTTL + 4*time.Second)
	victim.Resume()
	resumed := time.Now()
	oldName := victim.Exits()
	// It must notice its lease is gone and exit non-zero.
	err := waitFor(s.ctx, 20*time.Second, func() error {
		for _, ex := range victim.Exits()[len(oldName):] {
			if !ex.Expected {
				return nil
			}
		}
		return fmt.Errorf("%s still running", victim.Name())
	})
	if err != nil {
		t.Errorf("the paused node did not exit after SIGCONT with its lease gone: %v", err)
	}
	var exit Exit
	for _, ex := range victim.Exits() {
		if !ex.Expected {
			exit = ex
		}
	}
	if exit.Name != "" {
		if exit.Err == nil {
			t.Errorf("%s exited with status 0 after losing its lease; want non-zero so that a supervisor restarts it", exit.Name)
		}
		c.Logf("%s exited %v, %.1fs after SIGCONT", exit.Name, exit.Err, exit.At.Sub(resumed).Seconds())
	}
	victim.WaitReady(60 * time.Second)
	back := time.Now()
	c.Logf("node%d back as %s", victim.Index+1, victim.Name())
	wait()
	f := s.figures("scenario 2 (SIGSTOP longer than the lease)", load)
	c.checkLog(s.ctx, load.Calls(), s.acks, window(victim.Index, paused.Add(-time.Second), back))
	t.Logf("FIGURES scenario 2: paused %v; exit %.1fs after SIGCONT (%v); back ready as %s %.1fs after SIGCONT; calls lost on the paused node: %d",
		resumed.Sub(paused).Round(100*time.Millisecond), exit.At.Sub(resumed).Seconds(), exit.Err, victim.Name(), back.Sub(resumed).Seconds(), f.LostByNode[victim.Index])
}

// Scenario 3: a client retries after a timeout whose first attempt had
// committed, on another node: the INVITE again (same Call-ID, From tag,
// CSeq and source) and an admin command again (same Idempotency-Key). Each
// is counted once.
func TestScenario3RetryCountedOnce(t *testing.T) {
	s := newScenario(t, options{})
	c := s.c
	load, wait := c.startLoad(s.cs, rate(t), loadDuration(t))

	// The INVITE: five distinct calls from one number, the fifth tried
	// on every node. Had a retry counted, the sixth call would be the
	// seventh of the hour; it must be the sixth, the first over the
	// limit of five.
	number := fmt.Sprintf("+7994%07d", time.Now().UnixNano()%10_000_000)
	local := fmt.Sprintf("127.0.0.1:%d", porttest.Port(t))
	place := func(n *Node, run string) int {
		t.Helper()
		res, err := siptest.LoadRun(s.ctx, n.SIP, 1, time.Second, siptest.LoadOptions{
			Run: run, LocalAddr: local, Caller: func(int) string { return number }, Timeout: 6 * time.Second,
		})
		if err != nil {
			t.Fatalf("call from %s to %s: %v", number, n.Name(), err)
		}
		for code, k := range res.Finals {
			if k > 0 {
				return code
			}
		}
		return 0
	}
	for i := range 4 {
		if got := place(c.Nodes[i%3], fmt.Sprintf("%s-c%d", c.name, i)); got != 200 {
			t.Fatalf("call %d from %s: %d, want 200", i+1, number, got)
		}
	}
	retried := c.name + "-c4"
	for _, n := range c.Nodes {
		if got := place(n, retried); got != 200 {
			t.Errorf("call 5 from %s sent to %s: %d, want 200 (the verdict recorded at the first attempt)", number, n.Name(), got)
		}
	}
	if got := place(c.Nodes[1], c.name+"-c5"); got != 603 {
		t.Errorf("call 6 from %s: %d, want 603 (sixth of the hour, over the limit of 5)", number, got)
	}

	// The admin command: a block acknowledged on node 1, the client
	// retries it on node 2 and 3 with the same key.
	blocked := fmt.Sprintf("+7993%07d", time.Now().UnixNano()%10_000_000)
	req := adminapi.BlockRequest{Level: 8, By: "failure-suite", Reason: "retried command", IdempotencyKey: c.name + "-retry-block"}
	first, err := c.Nodes[0].Client().Block(s.ctx, blocked, req)
	if err != nil {
		t.Fatalf("block %s: %v", blocked, err)
	}
	s.acks.add(first)
	for _, n := range c.Nodes[1:] {
		again, err := n.Client().Block(s.ctx, blocked, req)
		if err != nil {
			t.Fatalf("block %s again on %s: %v", blocked, n.Name(), err)
		}
		if !again.Repeated || again.CommandID != first.CommandID || again.Revision != first.Revision {
			t.Errorf("retried block on %s: %+v, want the first answer %+v repeated", n.Name(), again, first)
		}
	}
	wait()
	s.figures("scenario 3 (client retries)", load)
	c.checkLog(s.ctx, load.Calls(), s.acks, nil)
	// Every node folds the shared log into read models of its own: all
	// three answer the same lists and report.
	c.checkSameReads(s.ctx, t)

	store, err := c.openStore(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	evs, err := store.ReadStream(s.ctx, schema.CallerStream(number), events.Forward, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := countType(evs, schema.TypeCallReceived); n != 6 {
		t.Errorf("%s: %d calls recorded, want 6 (the retried INVITE once)", number, n)
	}
	evs, err = store.ReadStream(s.ctx, schema.CallerStream(blocked), events.Forward, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := countType(evs, schema.TypeBlockApplied); n != 1 {
		t.Errorf("%s: %d blocks recorded, want 1 (the retried command once)", blocked, n)
	}
	t.Logf("FIGURES scenario 3: an INVITE retried on all three nodes recorded once (6 calls for 6 distinct INVITEs); a block retried on two other nodes with its idempotency key written once")
}

func countType(evs []events.Event, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// Scenario 7: PostgreSQL restarted under load. While it is away the
// store-down policy (pass) decides; every call so decided is recorded when
// it returns; nothing acknowledged is lost. One node is also restarted
// while PostgreSQL is away: what it had not yet recorded must survive.
func TestScenario7PostgresRestart(t *testing.T) {
	s := newScenario(t, options{})
	c := s.c
	d := loadDuration(t) + 4*time.Second
	load, wait := c.startLoad(s.cs, rate(t), d)
	time.Sleep(d / 4)
	// Admin commands go on through the outage; only those acknowledged
	// must be in the log.
	stopCmds := make(chan struct{})
	var cmdWG sync.WaitGroup
	var tried, acked int
	cmdWG.Add(1)
	go func() {
		defer cmdWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stopCmds:
				return
			case <-time.After(200 * time.Millisecond):
			}
			n := c.Nodes[i%len(c.Nodes)]
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			res, err := n.Client().Whitelist(ctx, adminapi.WhitelistRequest{
				Number: fmt.Sprintf("+7992%03d%04d", time.Now().UnixNano()%1000, i), By: "failure-suite", Reason: "during the outage",
				IdempotencyKey: fmt.Sprintf("%s-outage-%d", c.name, i),
			})
			cancel()
			tried++
			if err == nil {
				acked++
				s.acks.add(res)
			}
		}
	}()
	down := time.Now()
	if err := c.pg.server.Stop(); err != nil {
		t.Fatal(err)
	}
	c.Logf("PostgreSQL stopped")
	time.Sleep(2 * time.Second)
	// A node restarted while the store is away keeps its unrecorded calls.
	restarted := c.Nodes[0]
	restartFrom := time.Now()
	if err := restarted.Stop(); err != nil {
		t.Logf("stop during the outage: %v", err)
	}
	time.Sleep(2 * time.Second)
	if err := c.pg.server.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	c.Logf("PostgreSQL started again after %.1fs", up.Sub(down).Seconds())
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	restarted.WaitReady(60 * time.Second)
	restartTo := time.Now()
	wait()
	close(stopCmds)
	cmdWG.Wait()
	f := s.figures("scenario 7 (PostgreSQL restarted)", load)
	figs := c.checkLog(s.ctx, load.Calls(), s.acks, window(restarted.Index, restartFrom.Add(-time.Second), restartTo))
	t.Logf("FIGURES scenario 7: PostgreSQL away %.1fs; calls decided by the store-down policy and recorded when it returned: %d; admin commands during the run %d, acknowledged %d (all in the log); calls lost on the node restarted during the outage: %d",
		up.Sub(down).Seconds(), figs.ByPolicy, tried, acked, f.LostByNode[restarted.Index])
	if figs.ByPolicy == 0 {
		t.Errorf("no call was decided by the store-down policy while PostgreSQL was away: the outage was not exercised")
	}
}
