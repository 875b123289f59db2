package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/crm"
	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/actors/users"
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
	crm     *crm.Client // nil without GUARD_CRM_URL
	numbers *phone.Normalizer
	policy  *policy.Policy
	log     *slog.Logger
	// ranges is this node's table of range rules, folded from the rules
	// stream; stopRanges ends the subscription that keeps it current.
	ranges     *rules.Live
	stopRanges func()
	// users is this node's book of the operator console's users, folded
	// from the users stream and kept current like the range rules; it
	// signs users in (the console adapts it to console.Users). hasher
	// hashes and checks their passwords, a few at once; stopUsers ends
	// the book's subscription.
	users     *users.Book
	hasher    *users.Hasher
	stopUsers func()
	// lines reaches the line grains (admin commands); local is the node's
	// counter and cache of the lines' under-attack mode, flushed by a loop
	// stopLines ends.
	lines     *line.Client
	local     *line.Local
	stopLines func()
	// callLog writes a line per call (nil when GUARD_CALL_LOG is off);
	// serve runs its report of suppressed lines.
	callLog *call.CallLog
	// spool keeps the call streams the store refused while it was down,
	// across a restart; stopPending ends the loop that records them.
	spool       *spool.Spool
	stopPending func()
	// etcd and membership are set with GUARD_CLUSTER_PROVIDER=etcd: the
	// client and the watch of this node's own registration.
	etcd       *node.Etcd
	membership *node.Watch
}

// maxHashes bounds the password hashes a node runs at once (64 MiB each,
// users.DefaultParams): a flood of console sign-ins queues behind them
// instead of taking the node's memory from its calls.
const maxHashes = 2

// userWriter is the writer of the console users' commands on this node:
// the admin API's, and the console's for its admins.
func (g *guard) userWriter(cfg Config) *users.Writer {
	return &users.Writer{Store: g.store, Book: g.users, Hasher: g.hasher, Clock: time.Now, Node: cfg.NodeName}
}

// pendingInterval is how often a running node appends the spooled call
// streams whose writers gave up retrying (call.Config.StreamRetryFor, 10
// minutes), besides the pass at start.
const pendingInterval = time.Minute

// openSpool opens the pending spool in the data directory. It is there
// whichever store the node uses: it belongs to the node, not to the log.
func openSpool(cfg Config, log *slog.Logger) (*spool.Spool, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.DataDir, err)
	}
	sp, err := spool.Open(filepath.Join(cfg.DataDir, spool.FileName))
	if err != nil {
		return nil, err
	}
	if n := sp.Len(); n > 0 {
		log.Warn("calls not yet recorded from before the restart; recording them", "pending", n, "spool", sp.Path())
	}
	return sp, nil
}

// startMembership builds the membership provider GUARD_CLUSTER_PROVIDER
// names. With single the node is a cluster of one and needs nothing
// outside the process; with etcd the nodes sharing a store register in
// etcd under a lease and see each other come and go.
func startMembership(cfg Config, log *slog.Logger) (cluster.ClusterProvider, *node.Etcd, error) {
	if cfg.ClusterProvider != providerEtcd {
		log.Info("cluster membership: single (this node alone)")
		return node.SingleMemberProvider(), nil, nil
	}
	eps := cfg.etcdEndpoints()
	log.Info("cluster membership: etcd", "endpoints", strings.Join(eps, ","), "leaseTTL", node.EtcdLeaseTTL)
	e, err := node.NewEtcd(node.EtcdConfig{Endpoints: eps, Logger: log.With("component", "membership")})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster membership: %w", err)
	}
	return e.Provider(), e, nil
}

// membershipLost is closed when this node's etcd registration is gone
// while etcd answers; nil (never ready) with single membership.
func (g *guard) membershipLost() <-chan struct{} {
	if g.membership == nil {
		return nil
	}
	return g.membership.Lost()
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
	sp, err := openSpool(cfg, log)
	if err != nil {
		return nil, errors.Join(err, rawStore.Close())
	}
	m := metrics.New()
	store := metrics.InstrumentStore(rawStore, m)
	for _, w := range cfg.clusterWarnings() {
		log.Warn(w)
	}
	provider, etcd, err := startMembership(cfg, log)
	if err != nil {
		return nil, errors.Join(err, store.Close(), sp.Close())
	}
	// The range rules are loaded before the first call can be decided and
	// kept current from the log; a store that does not answer yet only
	// delays them (the node decides without them meanwhile, and says so).
	ranges := rules.NewLive(store, log.With("component", "rules"))
	rctx, stopRanges := context.WithCancel(context.WithoutCancel(ctx))
	if err := ranges.Start(rctx, 10*time.Second); err != nil {
		log.Warn("range rules not loaded at start; calls are decided without them until the store answers", "err", err)
	} else {
		log.Info("range rules loaded", "rules", ranges.Table().Len())
	}
	// The console's users, likewise: a store that does not answer yet
	// only keeps everyone out of the console until it does.
	hasher := users.NewHasher(users.DefaultParams(), rand.Reader, maxHashes)
	book := users.NewBook(store, hasher, log.With("component", "users"))
	uctx, stopUsers := context.WithCancel(context.WithoutCancel(ctx))
	if err := book.Start(uctx, 10*time.Second); err != nil {
		log.Warn("console users not loaded at start; nobody can sign in to the console until the store answers", "err", err)
	} else {
		log.Info("console users loaded", "users", book.Len())
	}
	stopRules := func() { stopRanges(); stopUsers() }
	var fence func() error
	if etcd != nil {
		// A grain writes only while this node's membership is confirmed:
		// after a pause its lease may be gone and its numbers owned
		// elsewhere (README, Membership).
		fence = etcd.Fence
	}
	kind := caller.NewKind(caller.Deps{
		Store: store, Policy: pol, Registry: schema.NewRegistry(), Clock: time.Now,
		Node: cfg.NodeName, SnapshotEvery: cfg.SnapshotEvery, IdleAfter: cfg.GrainIdle, MaxResident: cfg.MaxGrains,
		Logger: log.With("component", "caller"), Observer: m, Fence: fence,
		Ranges: ranges.Lookup,
		// Per-line settings and schedules share the rule table.
		Overrides: ranges.Overrides,
		Origin:    ranges.Origin,
	})
	lineKind := line.NewKind(line.Deps{
		Store: store, Settings: cfg.Attack, Registry: schema.NewRegistry(), Clock: time.Now,
		Node: cfg.NodeName, Logger: log.With("component", "line"), Observer: m, Fence: fence,
		Overrides: ranges.Overrides,
	})
	n, err := node.Start(ctx, node.Config{
		ClusterName: cfg.ClusterName, Listen: cfg.ClusterListen, AdvertisedHost: cfg.ClusterAdvertisedHost,
		Provider: provider,
		Kinds:    []*cluster.Kind{kind, lineKind}, Logger: log.With("component", "cluster"),
	})
	if err != nil {
		if etcd != nil {
			err = errors.Join(err, etcd.Close())
		}
		stopRules()
		return nil, errors.Join(err, store.Close(), sp.Close())
	}
	log.Info("cluster member started", "cluster", cfg.ClusterName, "address", n.System.Address(), "id", n.System.ID)
	g := &guard{
		store: store, node: n, numbers: numbers, policy: pol, log: log, metrics: m, spool: sp,
		callers: &caller.Client{Cluster: n.Cluster, Timeout: 5 * time.Second},
		lines:   &line.Client{Cluster: n.Cluster, Timeout: 5 * time.Second},
		etcd:    etcd, ranges: ranges, stopRanges: stopRanges,
		users: book, hasher: hasher, stopUsers: stopUsers,
	}
	g.local = &line.Local{Send: g.lines.Counts, Node: cfg.NodeName, Logger: log.With("component", "line")}
	m.WatchLines(g.local.Lines)
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	ldone := make(chan struct{})
	go func() {
		defer close(ldone)
		g.local.Run(lctx)
	}()
	g.stopLines = func() { lcancel(); <-ldone }
	if etcd != nil {
		// Watched from here on, through shutdown: a lost registration
		// ends serve (see membershipLost), an unreachable etcd makes
		// /readyz say so.
		if g.membership, err = etcd.Watch(context.WithoutCancel(ctx)); err != nil {
			g.stop()
			return nil, err
		}
	}
	if cfg.CallLog {
		g.callLog = call.NewCallLog(log.With("component", "call"), cfg.CallLogRefused, time.Now)
	}
	var lookup call.CRM
	if cfg.CRM.Enabled() {
		c, err := crm.New(cfg.CRM, time.Now, m, log.With("component", "crm"))
		if err != nil {
			g.stop()
			return nil, err
		}
		m.EnableCRM()
		g.crm, lookup = c, c
		log.Info("CRM lookup on", "timeout", cfg.CRM.Timeout, "cacheTTL", cfg.CRM.CacheTTL, "negativeTTL", cfg.CRM.NegativeTTL)
	}
	calls, err := call.NewSpawner(n.System, call.Deps{
		Callers: g.callers, Lines: g.local, CRM: lookup, Store: store, Clock: time.Now, Rand: rand.Reader,
		Node: cfg.NodeName, Logger: log.With("component", "call"), Observer: m, CallLog: g.callLog, Spool: sp,
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
	m.Registry().MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "rtp_latched_total",
			Help: "RTP streams latched onto a trusted source other than their SDP address (symmetric RTP, RFC 4961; GUARD_TRUSTED_MEDIA).",
		}, func() float64 { return float64(sip.Stats().MediaLatched) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "rtp_refused_packets_total",
			Help: "RTP packets dropped because their source was neither the SDP address, the latched source, nor trusted.",
		}, func() float64 { return float64(sip.Stats().MediaRefused) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "rtcp_relayed_packets_total",
			Help: "RTCP packets relayed between the legs of calls bridged after a challenge (same trust rule as RTP).",
		}, func() float64 { return float64(sip.Stats().RTCPRelayed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "sip_no_prack_total",
			Help: "Calls ended because the carrier never PRACKed a reliable provisional response (RFC 3262, 64*T1).",
		}, func() float64 { return float64(sip.Stats().NoPrack) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "late_offer_refused_total",
			Help: "Calls to be challenged refused with 488 because their INVITE had no SDP offer (a late offer) and the carrier no 100rel (GUARD_LATE_OFFER=reject); late_offer_total{outcome=\"refused\"} too.",
		}, func() float64 { return float64(sip.Stats().LateOfferRejected) }),
	)
	// Late offers on calls to be challenged, by what became of them: one
	// name, three labelled series (their help must be the same).
	lateHelp := "Calls to be challenged whose INVITE had no SDP offer, by outcome: challenged (the guard's offer in a reliable 183, the carrier has 100rel), refused (488, GUARD_LATE_OFFER=reject) or passed (unchallenged, GUARD_LATE_OFFER=pass)."
	for outcome, n := range map[string]func() float64{
		"challenged": func() float64 { return float64(sip.Stats().LateOfferChallenged) },
		"refused":    func() float64 { return float64(sip.Stats().LateOfferRejected) },
		"passed":     func() float64 { return float64(calls.Counters().ChallengeFallbacks.Load()) },
	} {
		m.Registry().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "late_offer_total", Help: lateHelp,
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, n))
	}
	m.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Name: "range_rules",
		Help: "Range rules (whitelist or block by number prefix or range) in this node's table, expired ones not yet removed included.",
	}, func() float64 { return float64(ranges.Table().Len()) }))
	c := calls.Counters()
	m.Registry().MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Name: "calls_pending",
			Help: "Call streams the store refused (it was down) kept in the pending spool until they are appended; they survive a restart.",
		}, func() float64 { return float64(sp.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "calls_pending_recorded_total",
			Help: "Call streams appended from the pending spool (after a restart, or after their writer gave up retrying).",
		}, func() float64 { return float64(c.PendingRecorded.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "calls_spool_failures_total",
			Help: "Call streams the pending spool could not take (a full disk): retried in memory only, lost if the node stops before the store returns.",
		}, func() float64 { return float64(c.SpoolFailed.Load()) }),
	)
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		calls.RecordPending(pctx, pendingInterval)
	}()
	g.stopPending = func() { cancel(); <-done }
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

// stop ends the recording of pending calls, leaves the cluster (its
// grains stop, saving snapshots) and closes the store after them, and the
// pending spool last: a call stream refused by the closed store is kept
// there for the next start.
func (g *guard) stop() {
	if g.crm != nil {
		g.crm.Close()
	}
	if g.stopPending != nil {
		g.stopPending()
	}
	if g.stopRanges != nil {
		g.stopRanges()
	}
	if g.stopUsers != nil {
		g.stopUsers()
	}
	if g.stopLines != nil {
		g.stopLines()
	}
	if g.membership != nil {
		// Before leaving: leaving deletes the key the watch guards.
		g.membership.Stop()
	}
	g.node.Stop(false)
	if g.etcd != nil {
		// Deregisters: the others drop this node now, not a lease later.
		if err := g.etcd.Close(); err != nil {
			g.log.Error("leave etcd", "err", err)
		}
	}
	if err := g.store.Close(); err != nil {
		g.log.Error("close event store", "err", err)
	}
	if err := g.spool.Close(); err != nil {
		g.log.Error("close pending spool", "err", err)
	}
}
