package main

import (
	"context"
	"fmt"
	"io"
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
	defer g.stop()
	head, err := g.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head of the event log: %w", err)
	}
	adminDone, err := startAdmin(ctx, cfg, g)
	if err != nil {
		return err
	}
	log.Info("callguard serving", "version", version, "head", head.String(),
		"limitHour", cfg.Policy.LimitHour, "limitDay", cfg.Policy.LimitDay)
	select {
	case <-ctx.Done():
		log.Info("callguard stopping", "reason", context.Cause(ctx))
		return <-adminDone
	case err := <-adminDone:
		return fmt.Errorf("admin API stopped: %w", err)
	}
}
