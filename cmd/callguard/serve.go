package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callguard/callguard/projections/metrics"
)

func runServe(ctx context.Context, args []string, environ []string, _, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve (configuration comes from GUARD_* variables: see callguard config)", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	for _, msg := range unknownVars(environ) {
		log.Warn(msg)
	}
	g, err := startGuard(ctx, cfg, log)
	if err != nil {
		return err
	}
	// The call log's last count of suppressed lines, once every call has
	// ended (after g.stop below).
	defer g.callLog.ReportSuppressed(context.WithoutCancel(ctx))
	// Stopped last: the SIP front drains its calls (hangs them up and
	// writes their final events) and the projections close before the
	// store does.
	defer g.stop()
	head, err := g.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head of the event log: %w", err)
	}
	rs, err := openReadSide(ctx, cfg, g.store, log)
	if err != nil {
		return err
	}
	defer rs.Close()
	// stopSignal ends on SIGINT or SIGTERM; ctx below also when an edge
	// fails.
	stopSignal := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := rs.Start(ctx); err != nil {
		return fmt.Errorf("start projections: %w", err)
	}
	g.metrics.WatchProjections(rs.Runner)
	callLogDone := make(chan struct{})
	go func() {
		defer close(callLogDone)
		g.callLog.Run(ctx, 0)
	}()
	defer func() { cancel(); <-callLogDone }()
	health := &metrics.Health{Store: g.store, Projections: rs.Runner,
		MaxLagSeconds: cfg.ReadyMaxLag.Seconds(), MaxLagEvents: cfg.ReadyMaxLagEvents}
	if g.membership != nil {
		health.Membership = g.membership.Ready
	}
	// /readyz answers from here on, but says ready only once the SIP
	// front, the admin API and the console all listen.
	var serving atomic.Bool
	health.Serving = serving.Load
	metricsDone, err := serveMetrics(ctx, cfg, g, health)
	if err != nil {
		return err
	}
	sipDone, err := g.serveSIP(ctx)
	if err != nil {
		cancel()
		return errors.Join(err, <-metricsDone)
	}
	adminDone, err := startAdmin(ctx, cfg, g, rs, health)
	if err != nil {
		cancel()
		return errors.Join(err, <-sipDone, <-metricsDone)
	}
	serving.Store(true)
	log.Info("callguard serving", "version", version, "head", head.String(),
		"limitHour", cfg.Policy.LimitHour, "limitDay", cfg.Policy.LimitDay, "mode", cfg.Call.Mode)
	if err := sdNotify(environ, "READY=1\nSTATUS=serving"); err != nil {
		log.Warn("could not tell systemd the guard is serving", "err", err)
	}
	var sipErr, adminErr error
	select {
	case <-ctx.Done():
		log.Info("callguard stopping", "reason", context.Cause(ctx))
		_ = sdNotify(environ, "STOPPING=1") // best effort: systemd knows from the signal anyway
		sipErr, adminErr = <-sipDone, <-adminDone
	case adminErr = <-adminDone:
		cancel()
		// A signal may end the edge before this select sees ctx end: a
		// clean stop after the signal is the signal's, not a failure. (Not
		// ctx: cancel has just ended it.)
		if adminErr != nil || stopSignal.Err() == nil {
			adminErr = fmt.Errorf("admin API stopped: %v", adminErr)
		}
		sipErr = <-sipDone
	case sipErr = <-sipDone:
		cancel()
		if sipErr != nil || stopSignal.Err() == nil {
			sipErr = fmt.Errorf("SIP stopped: %v", sipErr)
		}
		adminErr = <-adminDone
	case <-g.membershipLost():
		// The others have removed this node and re-activated its numbers
		// elsewhere; protoactor would keep it out of the cluster while
		// its stale grains went on answering. Its grains stop at once,
		// then everything else, and the non-zero exit has the supervisor
		// start it again under a new identity.
		lost := g.membership.Err()
		log.Error("callguard stopping: exiting so that a supervisor restarts this node with a new identity", "reason", lost)
		g.node.Stop(false)
		cancel()
		sipErr, adminErr = <-sipDone, <-adminDone
		return errors.Join(lost, sipErr, adminErr, <-metricsDone)
	}
	return errors.Join(sipErr, adminErr, <-metricsDone)
}

// serveMetrics serves /metrics, /healthz and /readyz on
// GUARD_METRICS_LISTEN until ctx ends. They carry no secrets and need no
// token, so the default listens on loopback only.
func serveMetrics(ctx context.Context, cfg Config, g *guard, health *metrics.Health) (<-chan error, error) {
	handler, err := metricsHandler(cfg, metrics.Mux(g.metrics, health))
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	if cfg.MetricsListen == "" {
		done <- nil
		return done, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsListen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	paths := "/metrics /healthz /readyz"
	if cfg.Pprof {
		paths += " /debug/pprof"
	}
	g.log.Info("metrics listening", "addr", ln.Addr().String(), "paths", paths)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return done, nil
}

// metricsHandler is what the metrics listener serves: the metrics and
// health probes, and with GUARD_PPROF Go's profiler under /debug/pprof/.
//
// The profiler shows the process's memory, goroutines and command line
// and lets anyone who reaches it burn CPU for a profile's duration, so it
// is off by default and served only on a loopback metrics listener: a
// GUARD_PPROF with GUARD_METRICS_LISTEN on another address (or none) is a
// configuration error, not a silent exposure. It shares the metrics
// listener rather than opening a port of its own: one address to secure,
// and the one an operator already tunnels to.
func metricsHandler(cfg Config, base http.Handler) (http.Handler, error) {
	if !cfg.Pprof {
		return base, nil
	}
	if !loopbackListen(cfg.MetricsListen) {
		return nil, fmt.Errorf("%sPPROF needs %sMETRICS_LISTEN on a loopback address (127.0.0.1:port, [::1]:port or localhost:port), not %q: the profiler must not be reachable from the network",
			envPrefix, envPrefix, cfg.MetricsListen)
	}
	mux := http.NewServeMux()
	mux.Handle("/", base)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux, nil
}

// loopbackListen reports whether host:port listens on loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
