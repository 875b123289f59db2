package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/callguard/callguard/projections/metrics"
)

func runServe(ctx context.Context, args []string, environ []string, _, stderr io.Writer) error {
	if len(args) > 0 {
		return usageError{"usage: callguard serve (configuration comes from GUARD_* variables)"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	g, err := startGuard(ctx, cfg, log)
	if err != nil {
		return err
	}
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := rs.Start(ctx); err != nil {
		return fmt.Errorf("start projections: %w", err)
	}
	g.metrics.WatchProjections(rs.Runner)
	health := &metrics.Health{Store: g.store, Projections: rs.Runner,
		MaxLagSeconds: cfg.ReadyMaxLag.Seconds(), MaxLagEvents: cfg.ReadyMaxLagEvents}
	metricsDone, err := serveMetrics(ctx, cfg, g, health)
	if err != nil {
		return err
	}
	sipDone, err := g.serveSIP(ctx)
	if err != nil {
		cancel()
		return errors.Join(err, <-metricsDone)
	}
	adminDone, err := startAdmin(ctx, cfg, g, rs)
	if err != nil {
		cancel()
		return errors.Join(err, <-sipDone, <-metricsDone)
	}
	log.Info("callguard serving", "version", version, "head", head.String(),
		"limitHour", cfg.Policy.LimitHour, "limitDay", cfg.Policy.LimitDay, "mode", cfg.Call.Mode)
	var sipErr, adminErr error
	select {
	case <-ctx.Done():
		log.Info("callguard stopping", "reason", context.Cause(ctx))
		sipErr, adminErr = <-sipDone, <-adminDone
	case adminErr = <-adminDone:
		cancel()
		adminErr = fmt.Errorf("admin API stopped: %v", adminErr)
		sipErr = <-sipDone
	case sipErr = <-sipDone:
		cancel()
		sipErr = fmt.Errorf("SIP stopped: %v", sipErr)
		adminErr = <-adminDone
	}
	return errors.Join(sipErr, adminErr, <-metricsDone)
}

// serveMetrics serves /metrics, /healthz and /readyz on
// GUARD_METRICS_LISTEN until ctx ends. They carry no secrets and need no
// token, so the default listens on loopback only.
func serveMetrics(ctx context.Context, cfg Config, g *guard, health *metrics.Health) (<-chan error, error) {
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
	srv := &http.Server{Handler: metrics.Mux(g.metrics, health), ReadHeaderTimeout: 5 * time.Second}
	g.log.Info("metrics listening", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
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
