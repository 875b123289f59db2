package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/phone"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// guard is one running node: its store, its cluster member hosting the
// caller grains, and the client that reaches any grain in the cluster.
type guard struct {
	store   events.Store
	node    *node.Node
	callers *caller.Client
	numbers *phone.Normalizer
	policy  *policy.Policy
	log     *slog.Logger
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
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	kind := caller.NewKind(caller.Deps{
		Store: store, Policy: pol, Registry: schema.NewRegistry(), Clock: time.Now,
		Node: cfg.NodeName, SnapshotEvery: cfg.SnapshotEvery, IdleAfter: cfg.GrainIdle,
		Logger: log.With("component", "caller"),
	})
	n, err := node.Start(ctx, node.Config{
		ClusterName: cfg.ClusterName, Listen: cfg.ClusterListen,
		Kinds: []*cluster.Kind{kind}, Logger: log.With("component", "cluster"),
	})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	log.Info("cluster member started", "cluster", cfg.ClusterName, "address", n.System.Address())
	return &guard{
		store: store, node: n, numbers: numbers, policy: pol, log: log,
		callers: &caller.Client{Cluster: n.Cluster, Timeout: 5 * time.Second},
	}, nil
}

// stop leaves the cluster (its grains stop, saving snapshots) and closes
// the store after them.
func (g *guard) stop() {
	g.node.Stop(false)
	if err := g.store.Close(); err != nil {
		g.log.Error("close event store", "err", err)
	}
}
