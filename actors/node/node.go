// Package node starts a guard node's actor system and joins it to the
// protoactor-go cluster in which caller numbers live as virtual actors
// (grains).
//
// Who builds what: cmd/callguard (the composition root) chooses the
// membership provider, builds the grain kinds and calls Start; it then
// hands the node's actor system to the call spawner (actors/call) and the
// cluster to the grain client (actors/caller). This package chooses
// nothing on its own: Config.Provider is required.
//
// One node alone is a one-member cluster: the same code path as a
// scaled-out deployment, so a grain's behaviour never depends on how many
// nodes there are. Its membership is SingleMemberProvider, kept in this
// process. Several nodes share their membership in etcd (NewEtcd, with a
// Watch of the node's own registration) and the identity lookup
// (consistent hashing over the members) routes each number to one
// activation.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	_ "github.com/callguard/callguard/events/protoconflict" // before protoactor's gossip.proto registers
)

// Config describes one node.
type Config struct {
	// ClusterName must be the same on every node of one deployment.
	ClusterName string
	// Listen is the host:port of the node's actor remoting endpoint.
	// Port 0 picks a free port. Keep it on loopback or a private network:
	// remoting is not authenticated.
	Listen string
	// AdvertisedHost is the address other members use to reach this node,
	// when it differs from the listen host.
	AdvertisedHost string
	// Provider is the membership provider (required): SingleMemberProvider
	// for a node alone, or Etcd.Provider for a member of a deployment.
	Provider cluster.ClusterProvider
	// Kinds are the grain kinds this node hosts.
	Kinds []*cluster.Kind
	// RequestTimeout bounds one grain request, retries included. Zero
	// means 5 s.
	RequestTimeout time.Duration
	// Logger receives the actor system's logs; protoactor-go logs at info
	// level generously, so they are passed on at warn and above only.
	Logger *slog.Logger
}

// Node is a running member of the cluster.
type Node struct {
	System  *actor.ActorSystem
	Cluster *cluster.Cluster
	stop    sync.Once
}

// ErrConfig is the sentinel of every Config.Validate error.
var ErrConfig = errors.New("node configuration")

// Validate reports everything wrong with c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.ClusterName == "" {
		bad("cluster name is empty")
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen address %q: %v", c.Listen, err)
	} else if _, err := strconv.Atoi(port); err != nil {
		bad("listen port %q is not a number", port)
	}
	if c.Provider == nil {
		bad("no membership provider (SingleMemberProvider for a node alone)")
	}
	if c.RequestTimeout < 0 {
		bad("request timeout %v is negative", c.RequestTimeout)
	}
	return errors.Join(errs...)
}

// Start creates the actor system, starts remoting and joins the cluster.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portStr) // both checked by Validate
	if port == 0 {
		// protoactor's remote needs the real port before it listens, so
		// that the node's address (and so its PIDs) is known up front.
		free, err := freePort(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
		port = free
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	libLog := slog.New(minLevel{logger.Handler(), slog.LevelWarn}).With("lib", "protoactor")
	system := actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLog }),
		actor.WithDeadLetterRequestLogging(false),
	))
	var ropts []remote.ConfigOption
	if cfg.AdvertisedHost != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(net.JoinHostPort(cfg.AdvertisedHost, strconv.Itoa(port))))
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ccfg := cluster.Configure(cfg.ClusterName, cfg.Provider, disthash.New(),
		remote.Configure(host, port, ropts...),
		cluster.WithKinds(cfg.Kinds...),
		cluster.WithRequestTimeout(timeout),
	)
	c := cluster.New(system, ccfg)
	if err := startMember(c); err != nil {
		system.Shutdown()
		return nil, fmt.Errorf("start node %s: %w", cfg.Listen, err)
	}
	return &Node{System: system, Cluster: c}, nil
}

// startMember turns protoactor's panics on start-up failure into errors.
func startMember(c *cluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("join cluster: %v", r)
		}
	}()
	c.StartMember()
	return nil
}

// Stop leaves the cluster. Graceful stop hands the node's grains over and
// takes a few seconds; use it on shutdown of a multi-node deployment.
// Stop may be called more than once; only the first call acts.
func (n *Node) Stop(graceful bool) {
	n.stop.Do(func() { n.Cluster.Shutdown(graceful) })
}

func freePort(ctx context.Context, host string) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// minLevel drops records below a level before they reach the handler.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
