package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/esdb"
	"github.com/callguard/callguard/events/postgres"
)

// openStore opens the backend the configuration selects: EventStoreDB when
// GUARD_EVENTSTORE_URL is set, PostgreSQL when GUARD_POSTGRES_URL is (Validate
// refuses both), else the embedded store in GUARD_DATA_DIR.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (events.Store, error) {
	if cfg.PostgresURL != "" {
		s, err := postgres.Open(ctx, cfg.PostgresURL, postgres.WithLogger(log), postgres.WithMaxConns(cfg.PostgresMaxConns))
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL at %s: %w", maskSecret(cfg.PostgresURL), err)
		}
		log.Info("event store: PostgreSQL", "url", maskSecret(cfg.PostgresURL), "max_conns", cfg.PostgresMaxConns)
		return s, nil
	}
	if cfg.EventStoreURL != "" {
		s, err := esdb.Open(ctx, cfg.EventStoreURL, esdb.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("open EventStoreDB at %s: %w", maskSecret(cfg.EventStoreURL), err)
		}
		log.Info("event store: EventStoreDB", "url", maskSecret(cfg.EventStoreURL))
		return s, nil
	}
	s, err := embedded.Open(ctx, cfg.DataDir, embedded.WithLogger(log), embedded.WithClock(time.Now))
	if err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	log.Info("event store: embedded", "dir", cfg.DataDir)
	return s, nil
}
