package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/metrics"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/runner"
	sipguard "github.com/callguard/callguard/sip/guard"
)

// guard is one running node: its store, its cluster member hosting the
// caller grains, the client that reaches any grain in the cluster, the
// calls and the SIP edge. startGuard is where they are built and handed
// to each other; the packages below choose nothing on their own.
type guard struct {
	store   events.Store
	node    *node.Node
	sip     *sipguard.Guard
	metrics *metrics.Metrics
	callers *caller.Client
	numbers *phone.Normalizer
	policy  *policy.Policy
	log     *slog.Logger
	// callLog writes a line per call (nil when GUARD_CALL_LOG is off);
	// serve runs its report of suppressed lines.
	callLog *call.CallLog
}

func startGuard(ctx context.Context, cfg Config, log *slog.Logger) (*guard, error) {
	pol, err := policy.New(cfg.Policy)
	if err != nil {
		return nil, err
	}
	numbers, err := phone.New(cfg.Region)
	if err != nil {
		return nil, fmt.Errorf("%sREGION: %w", envPrefix, err)
	}
	rawStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	store := metrics.InstrumentStore(rawStore, m)
	kind := caller.NewKind(caller.Deps{
		Store: store, Policy: pol, Registry: schema.NewRegistry(), Clock: time.Now,
		Node: cfg.NodeName, SnapshotEvery: cfg.SnapshotEvery, IdleAfter: cfg.GrainIdle, MaxResident: cfg.MaxGrains,
		Logger: log.With("component", "caller"), Observer: m,
	})
	n, err := node.Start(ctx, node.Config{
		ClusterName: cfg.ClusterName, Listen: cfg.ClusterListen,
		// One member alone, its membership kept in this process: a node
		// on its own store. Several nodes sharing a log need a shared
		// provider (etcd), chosen here once it exists.
		Provider: node.SingleMemberProvider(),
		Kinds:    []*cluster.Kind{kind}, Logger: log.With("component", "cluster"),
	})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	log.Info("cluster member started", "cluster", cfg.ClusterName, "address", n.System.Address())
	g := &guard{
		store: store, node: n, numbers: numbers, policy: pol, log: log, metrics: m,
		callers: &caller.Client{Cluster: n.Cluster, Timeout: 5 * time.Second},
	}
	if cfg.CallLog {
		g.callLog = call.NewCallLog(log.With("component", "call"), cfg.CallLogRefused, time.Now)
	}
	calls, err := call.NewSpawner(n.System, call.Deps{
		Callers: g.callers, Store: store, Clock: time.Now, Rand: rand.Reader,
		Node: cfg.NodeName, Logger: log.With("component", "call"), Observer: m, CallLog: g.callLog,
	}, cfg.Call)
	if err != nil {
		g.stop()
		return nil, err
	}
	m.WatchCalls(func() metrics.CallTotals {
		c := calls.Counters()
		return metrics.CallTotals{
			ChallengesPassed: c.ChallengesPassed.Load(), ChallengesFailed: c.ChallengesFailed.Load(),
			ChallengesAbandoned: c.ChallengesAbandoned.Load(), Billed: c.Billed.Load(), Unbilled: c.Unbilled.Load(),
		}
	})
	g.sip, err = sipguard.New(cfg.SIP, sipguard.Deps{
		Calls: calls, Numbers: numbers, Clock: time.Now, Logger: log, Observer: m,
	})
	if err != nil {
		g.stop()
		return nil, err
	}
	sip := g.sip
	m.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Name: "calls_in_progress",
		Help: "Calls in progress on this node's SIP side, from INVITE to the end of the call: what GUARD_MAX_CALLS caps.",
	}, func() float64 { return float64(sip.Stats().ActiveSessions) }))
	return g, nil
}

// serveSIP runs the SIP front until ctx ends and returns once it listens,
// or with the reason it cannot.
func (g *guard) serveSIP(ctx context.Context) (<-chan error, error) {
	done := make(chan error, 1)
	go func() { done <- g.sip.Serve(ctx) }()
	select {
	case <-g.sip.Ready():
		return done, nil
	case err := <-done:
		return nil, fmt.Errorf("SIP: %w", err)
	}
}

// openReadSide opens the projections in the data directory; rebuilds of
// stale ones and catching up happen once it is started.
func openReadSide(ctx context.Context, cfg Config, store events.Store, log *slog.Logger) (*readside.ReadSide, error) {
	rcfg := readside.Config{
		Dir: cfg.DataDir, Store: store, Clock: time.Now, Logger: log.With("component", "projections"),
		Reports: cfg.reportsConfig(),
		Runner:  runner.Options{BatchSize: cfg.ProjectionBatch, SequentialPositions: cfg.embeddedStore()},
	}
	rcfg.Runner.CommitInterval = cfg.ProjectionCommitInterval
	if rcfg.Runner.CommitInterval == 0 {
		rcfg.Runner.CommitInterval = -1 // the runner's "at once"
	}
	rs, err := readside.Open(ctx, rcfg)
	if err != nil {
		return nil, fmt.Errorf("open projections: %w", err)
	}
	return rs, nil
}

// stop leaves the cluster (its grains stop, saving snapshots) and closes
// the store after them.
func (g *guard) stop() {
	g.node.Stop(false)
	if err := g.store.Close(); err != nil {
		g.log.Error("close event store", "err", err)
	}
}
