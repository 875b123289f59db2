package actortest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

// Node is a cluster member hosting caller grains, the store they append
// to, and a client that reaches them.
type Node struct {
	// Store is the store as the grains see it: the embedded store, or the
	// one WithStore gave, behind the WithStoreWrapper wrapper if any.
	Store events.Store
	// Policy is the policy the grains decide with.
	Policy *policy.Policy
	// Deps are the grains' dependencies, for tests that spawn a grain
	// themselves (caller.Props) outside the cluster.
	Deps caller.Deps
	// Node is the cluster member.
	Node *node.Node
	// Callers asks the grains through the cluster.
	Callers *caller.Client
	// Dir is the embedded store's directory; empty with WithStore.
	Dir string

	stopOnce sync.Once
	stopErr  error
	closers  []func() error // run in reverse on Stop
}

// Option changes what Start starts.
type Option func(*config)

type config struct {
	policy        policy.Config
	wrap          func(events.Store) events.Store
	store         events.Store
	dir           string
	clock         func() time.Time
	logger        *slog.Logger
	snapshotEvery int
	idleAfter     time.Duration
	maxResident   int
	pressureIdle  time.Duration
	provider      cluster.ClusterProvider
	clusterName   string
	clientTimeout time.Duration
	ranges        func(string, time.Time) []schema.RangeMatch
}

// WithRanges sets caller.Deps.Ranges: the range rules the grains look up.
func WithRanges(lookup func(key string, now time.Time) []schema.RangeMatch) Option {
	return func(c *config) { c.ranges = lookup }
}

// WithPolicy sets the grains' policy configuration; default
// policy.DefaultConfig().
func WithPolicy(cfg policy.Config) Option { return func(c *config) { c.policy = cfg } }

// WithStoreWrapper puts wrap around the store before the grains get it,
// for a store that fails on demand. Node.Store is the wrapped store.
func WithStoreWrapper(wrap func(events.Store) events.Store) Option {
	return func(c *config) { c.wrap = wrap }
}

// WithStore hosts the grains on s instead of opening an embedded store:
// several members of one cluster share one store this way. Stop leaves s
// open.
func WithStore(s events.Store) Option { return func(c *config) { c.store = s } }

// WithDir opens the embedded store in dir, which Stop keeps, so that a
// test can stop the node and start another on the same events. By
// default the store lives in a temporary directory Stop removes.
func WithDir(dir string) Option { return func(c *config) { c.dir = dir } }

// WithClock gives the grains their clock (a Clock's Now); default
// time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithLogger receives the store's, the node's and the grains' logs;
// default discarded.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithSnapshotEvery sets caller.Deps.SnapshotEvery (default 0: none).
func WithSnapshotEvery(n int) Option { return func(c *config) { c.snapshotEvery = n } }

// WithIdleAfter sets caller.Deps.IdleAfter: how long a grain waits idle
// before it passivates (default the grain's own).
func WithIdleAfter(d time.Duration) Option { return func(c *config) { c.idleAfter = d } }

// WithMaxResident sets caller.Deps.MaxResident and PressureIdle: beyond n
// grains in memory, a grain activated passivates after idle.
func WithMaxResident(n int, idle time.Duration) Option {
	return func(c *config) { c.maxResident, c.pressureIdle = n, idle }
}

// WithProvider joins the node to a cluster through p, so that several
// members in one process (sharing an in-process agent) form one cluster;
// give them one WithClusterName and one WithStore. Default: a cluster of
// this member alone.
func WithProvider(p cluster.ClusterProvider) Option { return func(c *config) { c.provider = p } }

// WithClusterName names the cluster; default "actortest".
func WithClusterName(name string) Option { return func(c *config) { c.clusterName = name } }

// WithClientTimeout bounds a request of Node.Callers whose context has no
// deadline; default 10 s.
func WithClientTimeout(d time.Duration) Option { return func(c *config) { c.clientTimeout = d } }

// singleMember is the membership of a node alone: the one place the kit
// names it.
func singleMember() cluster.ClusterProvider { return node.SingleMemberProvider() }

// Start opens the store, starts the member and returns it; Stop undoes
// both. For TestMain, where there is no testing.TB; tests use New.
func Start(ctx context.Context, opts ...Option) (*Node, error) {
	cfg := config{
		policy: policy.DefaultConfig(), clusterName: "actortest", clientTimeout: 10 * time.Second,
		logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	n := &Node{}
	if err := n.start(ctx, cfg); err != nil {
		return nil, errors.Join(err, n.Stop())
	}
	return n, nil
}

func (n *Node) start(ctx context.Context, cfg config) error {
	pol, err := policy.New(cfg.policy)
	if err != nil {
		return fmt.Errorf("actortest: %w", err)
	}
	n.Policy = pol
	store := cfg.store
	if store == nil {
		n.Dir = cfg.dir
		if n.Dir == "" {
			if n.Dir, err = os.MkdirTemp("", "actortest-"); err != nil {
				return fmt.Errorf("actortest: %w", err)
			}
			dir := n.Dir
			n.closers = append(n.closers, func() error { return os.RemoveAll(dir) })
		}
		st, err := embedded.Open(ctx, n.Dir, embedded.WithLogger(cfg.logger))
		if err != nil {
			return fmt.Errorf("actortest: %w", err)
		}
		n.closers = append(n.closers, st.Close)
		store = st
	}
	if cfg.wrap != nil {
		store = cfg.wrap(store)
	}
	n.Store = store
	n.Deps = caller.Deps{
		Store: store, Policy: pol, Clock: cfg.clock, Node: "test",
		SnapshotEvery: cfg.snapshotEvery, IdleAfter: cfg.idleAfter, Logger: cfg.logger,
		MaxResident: cfg.maxResident, PressureIdle: cfg.pressureIdle, Ranges: cfg.ranges,
	}
	provider := cfg.provider
	if provider == nil {
		provider = singleMember()
	}
	member, err := node.Start(ctx, node.Config{
		ClusterName: cfg.clusterName, Listen: "127.0.0.1:0", Provider: provider,
		Kinds: []*cluster.Kind{caller.NewKind(n.Deps)}, Logger: cfg.logger,
	})
	if err != nil {
		return fmt.Errorf("actortest: %w", err)
	}
	n.closers = append(n.closers, func() error { member.Stop(false); return nil })
	n.Node = member
	n.Callers = &caller.Client{Cluster: member.Cluster, Timeout: cfg.clientTimeout}
	return nil
}

// Stop stops the member, closes the store the kit opened and removes its
// temporary directory. It may be called more than once; later calls
// return the first one's error.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		var errs []error
		for i := len(n.closers) - 1; i >= 0; i-- {
			errs = append(errs, n.closers[i]())
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// New is Start for a test: it fails tb if the node does not start, and
// stops it when tb ends.
func New(tb testing.TB, opts ...Option) *Node {
	tb.Helper()
	n, err := Start(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Errorf("actortest: stop: %v", err)
		}
	})
	return n
}
