package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/events"
)

// subscribePage is how many events a subscription reads per query.
const subscribePage = 512

// Subscribe implements events.Store. It reads the table page by page from
// from; at the end it waits for a notification, an append of this Store or
// the poll interval, whichever comes first, and reads again. While the
// server is unreachable it keeps retrying at the poll interval.
func (s *Store) Subscribe(ctx context.Context, from events.Position, h events.Handler) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("postgres: subscribe: %w", err)
	}
	// The subscription also ends at Close.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	cur := from
	failures := 0
	for {
		wake := s.wakeup() // before reading, so that no wake-up is missed
		evs, err := s.readAll(ctx, cur, subscribePage)
		if err != nil {
			if s.closed.Load() {
				return fmt.Errorf("postgres: subscribe: %w", events.ErrClosed)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("postgres: subscribe: %w", ctx.Err())
			}
			err = s.wrap("subscribe", err)
			if !errors.Is(err, events.ErrUnavailable) {
				return err
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				s.opts.log.Warn("postgres: subscription cannot read; retrying", "from", cur, "failures", failures, "err", err)
			}
		} else {
			failures = 0
			for _, ev := range evs {
				if err := h(ctx, ev); err != nil {
					return err
				}
				cur = ev.Position
			}
			if len(evs) == subscribePage {
				continue
			}
		}
		t := time.NewTimer(s.opts.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if s.closed.Load() {
				return fmt.Errorf("postgres: subscribe: %w", events.ErrClosed)
			}
			return fmt.Errorf("postgres: subscribe: %w", ctx.Err())
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}
