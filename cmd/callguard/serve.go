package main

import (
	"context"
	"errors"
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
	// Stopped last: the SIP front drains its calls (hangs them up and
	// writes their final events) before the store closes.
	defer g.stop()
	head, err := g.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head of the event log: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sipDone, err := g.serveSIP(ctx)
	if err != nil {
		return err
	}
	adminDone, err := startAdmin(ctx, cfg, g)
	if err != nil {
		cancel()
		return errors.Join(err, <-sipDone)
	}
	log.Info("callguard serving", "version", version, "head", head.String(),
		"limitHour", cfg.Policy.LimitHour, "limitDay", cfg.Policy.LimitDay, "mode", cfg.SIP.Mode)
	var sipErr, adminErr error
	select {
	case <-ctx.Done():
		log.Info("callguard stopping", "reason", context.Cause(ctx))
		sipErr, adminErr = <-sipDone, <-adminDone
	case adminErr = <-adminDone:
		cancel()
		adminErr = fmt.Errorf("admin API stopped: %w", adminErr)
		sipErr = <-sipDone
	case sipErr = <-sipDone:
		cancel()
		sipErr = fmt.Errorf("SIP stopped: %w", sipErr)
		adminErr = <-adminDone
	}
	return errors.Join(sipErr, adminErr)
}
