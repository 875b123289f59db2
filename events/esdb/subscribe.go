package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/callguard/callguard/events"
)

// Resubscription pauses: the first after a drop, doubled after each failed
// attempt up to the last, and back to the first once a subscription
// delivers again.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
)

// Subscribe implements events.Store with EventStoreDB's catch-up
// subscription to $all, which the v4 client neither starts at a given place
// unless told (its default is the end of the log) nor restarts after a
// drop. So Subscribe asks for the position after from explicitly and runs a
// loop (resubscriber): on a drop it logs, waits (100 ms doubling to 5 s)
// and subscribes again after the last event it has seen, skipping anything
// at or before it, so no event is delivered twice or lost at a
// resubscription. The server filters out system events (or, with a stream
// prefix, other streams); the loop applies the store's whole filter.
//
// It returns ctx's error when ctx ends, the handler's error when the
// handler fails, events.ErrClosed when the store is closed, and an error
// it cannot retry (ErrPermission).
func (s *Store) Subscribe(ctx context.Context, from events.Position, h events.Handler) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("subscribe from %v: %w", from, err)
	}
	if h == nil {
		return fmt.Errorf("subscribe: %w: nil handler", events.ErrInvalid)
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()

	r := resubscriber{
		dial:  s.dial,
		log:   s.log,
		min:   resubscribeMin,
		max:   resubscribeMax,
		sleep: sleepCtx,
	}
	err := r.run(subCtx, from, h)
	var hf *handlerFailed
	switch {
	case errors.As(err, &hf):
		return hf.err // as the handler returned it
	case ctx.Err() != nil:
		return ctx.Err()
	case s.life.Err() != nil:
		return fmt.Errorf("subscribe: %w", events.ErrClosed)
	}
	return fmt.Errorf("subscribe: %w", err)
}

// dial starts one catch-up subscription to $all after from.
func (s *Store) dial(ctx context.Context, from events.Position) (feed, error) {
	opts := client.SubscribeToAllOptions{From: allFrom(from)}
	if s.names.prefix != "" {
		opts.Filter = &client.SubscriptionFilter{Type: client.StreamFilterType, Prefixes: []string{s.names.prefix}}
	} else {
		opts.Filter = client.ExcludeSystemEventsFilter()
	}
	var sub *client.Subscription
	err := s.run(ctx, func(_ context.Context, cl *client.Client) error {
		// The subscription outlives this call: it runs with the
		// subscriber's context, not run's.
		var err error
		sub, err = cl.SubscribeToAll(ctx, opts)
		if err == nil && ctx.Err() != nil {
			_ = sub.Close()
			return ctx.Err()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &subFeed{sub: sub, names: s.names}, nil
}

// feed is one attempt at a subscription: the events it delivers, in order.
type feed interface {
	// Recv waits for the next item. An error means the subscription has
	// dropped; Recv must return one when the context it was dialled with
	// ends.
	Recv() (item, error)
	Close()
}

// item is what a feed delivers.
type item struct {
	// event is false for a notice that carries no event (a checkpoint,
	// caught up): a sign of life.
	event bool
	pos   events.Position
	// keep says the event belongs to the store's global log; ev is set
	// only then.
	keep bool
	ev   events.Event
}

// subFeed is a feed over the client's subscription.
type subFeed struct {
	sub   *client.Subscription
	names names
}

func (f *subFeed) Recv() (item, error) {
	for {
		e := f.sub.Recv()
		switch {
		case e.SubscriptionDropped != nil:
			err := e.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("subscription dropped")
			}
			return item{}, wrapClientErr(err)
		case e.EventAppeared != nil:
			rec := e.EventAppeared.OriginalEvent()
			if rec == nil {
				continue
			}
			it := item{event: true, pos: fromPosition(rec.Position), keep: f.names.keep(rec)}
			if it.keep {
				it.ev = f.names.event(rec)
			}
			return it, nil
		default:
			return item{}, nil // checkpoint, caught up, fell behind
		}
	}
}

func (f *subFeed) Close() { _ = f.sub.Close() }

// resubscriber runs subscriptions one after another until the handler
// fails, the context ends, or a subscription fails in a way that retrying
// cannot mend. It is the part of Subscribe that knows nothing of
// EventStoreDB, so that a test can drive it with a fake feed.
type resubscriber struct {
	dial func(ctx context.Context, from events.Position) (feed, error)
	log  *slog.Logger
	// min and max bound the pause before a resubscription.
	min, max time.Duration
	sleep    func(ctx context.Context, d time.Duration) error
}

// handlerFailed carries the handler's error out of run, so that Subscribe
// can return it as it was.
type handlerFailed struct{ err error }

func (e *handlerFailed) Error() string { return "handler: " + e.err.Error() }

// run delivers every kept event after from to h, in order, once. It returns
// a *handlerFailed when h fails, or why it stopped.
func (r *resubscriber) run(ctx context.Context, from events.Position, h events.Handler) error {
	cur := after{pos: from}
	pause := r.min
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := r.dial(ctx, cur.pos)
		if err == nil {
			err = r.drain(ctx, f, &cur, &pause, h)
			f.Close()
			var hf *handlerFailed
			if errors.As(err, &hf) {
				return err
			}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if permanent(err) {
			return err
		}
		r.log.Warn("event subscription dropped; resubscribing", "after", cur.pos.String(), "in", pause, "err", err)
		if err := r.sleep(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, r.max)
	}
}

// drain delivers f's events until it drops or h fails.
func (r *resubscriber) drain(ctx context.Context, f feed, cur *after, pause *time.Duration, h events.Handler) error {
	for {
		it, err := f.Recv()
		if err != nil {
			return err
		}
		*pause = r.min // it is alive
		if !it.event {
			continue
		}
		if !cur.next(it.pos) {
			continue // at or before the last event seen: a resubscription's overlap
		}
		if !it.keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h(ctx, it.ev); err != nil {
			return &handlerFailed{err: err}
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
