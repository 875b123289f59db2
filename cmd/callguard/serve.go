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
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close event store", "err", err)
		}
	}()
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head of the event log: %w", err)
	}
	log.Info("callguard serving", "version", version, "head", head.String())
	<-ctx.Done()
	log.Info("callguard stopping", "reason", context.Cause(ctx))
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
