package caller_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
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

// benchNode is a node whose policy limits let benchmark traffic pass
// without blocks, so that every Admit is a full decision and append.
func benchNode(b *testing.B, clock *actortest.Clock, idle time.Duration) *actortest.Node {
	b.Helper()
	cfg := policy.DefaultConfig()
	cfg.LimitHour, cfg.LimitDay = 1_000_000, 1_000_000
	return start(b, clock, actortest.WithPolicy(cfg), actortest.WithIdleAfter(idle))
}

// benchAdmit is the request the call actor sends: with the call as it
// arrived, which the grain's CallReceived records.
func benchAdmit(id, key string) caller.Admit {
	return caller.Admit{
		CallID: id, Kind: phone.KindE164, Callee: "+78005553535", Source: "192.0.2.1:5060",
		SIPCallID: id + "@carrier", Identity: "<sip:" + key + "@carrier>", IdentityFrom: "pai", Transport: "UDP", Mode: schema.Enforce,
	}
}

func reportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkAdmitDistinct: every call from a different number, so each
// Admit activates a grain, folds an empty stream and appends durably; the
// store's group commit shares fsyncs between concurrent grains.
func BenchmarkAdmitDistinct(b *testing.B) {
	c := benchNode(b, newClock(), 0).Callers
	var seq atomic.Int64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			key := fmt.Sprintf("+7999%07d", n)
			if _, err := c.Admit(context.Background(), key, benchAdmit(fmt.Sprintf("d%d", n), key)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "decisions/s")
}

// BenchmarkAdmitHot: one number called from 64 goroutines. A grain decides
// one call at a time (each decision depends on the previous one), so this
// is bounded by one durable append per decision.
func BenchmarkAdmitHot(b *testing.B) {
	c := benchNode(b, newClock(), 0).Callers
	var seq atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			if _, err := c.Admit(context.Background(), number, benchAdmit(fmt.Sprintf("h%d", n), number)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "decisions/s")
}

// BenchmarkGrainMemory activates 100,000 grains, each with a typical
// history of three calls today, and reports the heap each one holds:
// actor, mailbox, cluster bookkeeping and folded state together.
func BenchmarkGrainMemory(b *testing.B) {
	const grains = 100_000
	for range b.N {
		n := benchNode(b, newClock(), 0)
		c := n.Callers
		// Seed the histories directly in the store, so that activation
		// folds them; the grains are then activated by a status request.
		ctx := context.Background()
		for i := 0; i < grains; i += 1000 {
			errs := make(chan error, 1000)
			for j := i; j < i+1000; j++ {
				go func() { errs <- seedCalls(ctx, n, fmt.Sprintf("+7998%07d", j), 3) }()
			}
			for range 1000 {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		}
		before := heapInUse()
		sem := make(chan struct{}, 256)
		errs := make(chan error, grains)
		for j := range grains {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				s, err := c.Status(ctx, fmt.Sprintf("+7998%07d", j))
				if err == nil && s.Status.Day != 3 {
					err = fmt.Errorf("grain %d folded %d calls, want 3", j, s.Status.Day)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		for range cap(sem) {
			sem <- struct{}{}
		}
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/grains, "bytes/grain")
		runtime.KeepAlive(c)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// seedCalls appends n decided calls for key, a minute apart, as the grain
// would have.
func seedCalls(ctx context.Context, node *actortest.Node, key string, n int) error {
	var st policy.State
	var recs []schema.Record
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range n {
		dec, err := node.Policy.Decide(&st, policy.Call{ID: fmt.Sprintf("%s-%d", key, i), Caller: phone.Number{Key: key, Kind: phone.KindE164}}, at)
		if err != nil {
			return err
		}
		for _, r := range dec.Records {
			if err := node.Policy.Apply(&st, r.Payload); err != nil {
				return err
			}
		}
		recs = append(recs, dec.Records...)
		at = at.Add(time.Minute)
	}
	props, err := schema.Proposals(recs, events.Metadata{Actor: "bench"})
	if err != nil {
		return err
	}
	_, err = node.Store.Append(ctx, schema.CallerStream(key), events.NoStream, props...)
	return err
}

// BenchmarkRehydrate activates a grain whose number has 10,000 events, from
// the events alone and from a snapshot plus the events after it.
func BenchmarkRehydrate(b *testing.B) {
	const history = 10_000
	for _, withSnapshot := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshot=%v", withSnapshot), func(b *testing.B) {
			clock := actortest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
			n := benchNode(b, clock, 0)
			ctx := context.Background()
			key := "+79997776655"
			seedHistory(b, n, clock, key, history)
			deps := n.Deps
			sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
			defer sys.Shutdown()
			if withSnapshot {
				// The first activation folds the whole stream and saves a
				// snapshot of it.
				deps.SnapshotEvery = history / 2
				activate(b, sys, deps, key)
				if _, ok, _ := n.Store.LoadSnapshot(ctx, schema.CallerStream(key)); !ok {
					b.Fatal("no snapshot was saved")
				}
			}
			b.ResetTimer()
			for range b.N {
				activate(b, sys, deps, key)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/activation")
		})
	}
}

// seedHistory appends n decided calls for key in batches.
func seedHistory(b *testing.B, node *actortest.Node, clock *actortest.Clock, key string, n int) {
	ctx := context.Background()
	var st policy.State
	at := clock.Now().Add(-time.Duration(n) * time.Second)
	var rev uint64
	exists := false
	for done := 0; done < n; {
		var recs []schema.Record
		for i := 0; i < 1000 && done < n; i++ {
			dec, err := node.Policy.Decide(&st, policy.Call{ID: fmt.Sprintf("r%d", done), Caller: phone.Number{Key: key, Kind: phone.KindE164}}, at)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range dec.Records {
				if err := node.Policy.Apply(&st, r.Payload); err != nil {
					b.Fatal(err)
				}
			}
			recs = append(recs, dec.Records...)
			at = at.Add(time.Second)
			done++
		}
		props, err := schema.Proposals(recs, events.Metadata{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		res, err := node.Store.Append(ctx, schema.CallerStream(key), events.ExactOrNoStream(rev, exists), props...)
		if err != nil {
			b.Fatal(err)
		}
		rev, exists = res.LastRevision, true
	}
}

// activate spawns a fresh grain for key, waits until it has folded its
// history and answered, and stops it.
func activate(b *testing.B, sys *actor.ActorSystem, deps caller.Deps, key string) {
	pid := sys.Root.Spawn(caller.Props(deps))
	defer sys.Root.Stop(pid)
	sys.Root.Send(pid, &cluster.ClusterInit{Identity: &cluster.ClusterIdentity{Identity: key, Kind: caller.KindName}})
	if _, err := caller.RequestPID(sys.Root, pid, caller.GetStatus{}, 30*time.Second); err != nil {
		b.Fatal(err)
	}
}
