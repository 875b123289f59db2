package esdb

import (
	"context"
	"fmt"
	"math"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/callguard/callguard/events"
)

// Pages of $all: how many records one read asks for. At least 2, so that
// a page whose first record is the position read from (EventStoreDB reads
// $all from a position inclusively) still makes progress.
const (
	minAllPage = 64
	maxAllPage = 4096
	// headFirstPage is Head's first page: the last event of the store is
	// usually among the last few records of $all.
	headFirstPage = 32
)

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if err := checkStream(stream); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("read stream %s: %w: limit %d", stream, events.ErrInvalid, limit)
	}
	if dir != events.Forward && dir != events.Backward {
		return nil, fmt.Errorf("read stream %s: %w: direction %d", stream, events.ErrInvalid, dir)
	}
	if dir == events.Forward && from > math.MaxInt64 {
		// Past any revision EventStoreDB can hold (and ^uint64(0), its
		// "end" marker, would mean something else to the server).
		if s.isClosed() {
			return nil, fmt.Errorf("read stream %s: %w", stream, events.ErrClosed)
		}
		return nil, nil
	}
	name := s.names.stream(stream)
	var out []events.Event
	err := s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		opts := client.ReadStreamOptions{Direction: client.Forwards, From: client.Revision(from)}
		if dir == events.Backward {
			opts.Direction = client.Backwards
			if from != ^uint64(0) {
				// EventStoreDB reads backwards over the revisions
				// from-limit+1..from that exist, so a start past the end
				// would return less than limit events, or none, although
				// they exist: start at the end instead.
				t, ok, err := tail(ctx, cl, name, 1)
				if err != nil {
					return err
				}
				if !ok {
					return nil
				}
				if from < t[0].EventNumber {
					opts.From = client.Revision(from)
				} else {
					opts.From = client.End{}
				}
			} else {
				opts.From = client.End{}
			}
		}
		recs, err := readRecords(cl.ReadStream(ctx, name, opts, uint64(limit)))
		if classify(err) == kindNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		out = make([]events.Event, len(recs))
		for i, r := range recs {
			out[i] = s.names.event(r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return out, nil
}

// ReadAll implements events.Store. It reads $all forwards in pages and
// keeps the events of the store's streams: system streams and events, the
// snapshot streams, and with a stream prefix other stores' streams, are left
// out, so a page of $all can yield fewer events than it holds.
func (s *Store) ReadAll(ctx context.Context, from events.Position, limit int) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read all from %v: %w", from, err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("read all from %v: %w: limit %d", from, events.ErrInvalid, limit)
	}
	var out []events.Event
	err := s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		cur := after{pos: from}
		page := uint64(min(max(limit+1, minAllPage), maxAllPage))
		for {
			recs, err := readRecords(cl.ReadAll(ctx, client.ReadAllOptions{Direction: client.Forwards, From: allFrom(cur.pos)}, page))
			if err != nil {
				return err
			}
			for _, r := range recs {
				p := fromPosition(r.Position)
				if !cur.next(p) {
					continue
				}
				if s.names.keep(r) {
					out = append(out, s.names.event(r))
					if len(out) == limit {
						return nil
					}
				}
			}
			if uint64(len(recs)) < page {
				return nil
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read all from %v: %w", from, err)
	}
	return out, nil
}

// Head implements events.Store: the position of the last event of the
// store's global log, found by reading $all backwards past system events
// (and, with a stream prefix, other stores' events).
func (s *Store) Head(ctx context.Context) (events.Position, error) {
	if err := ctx.Err(); err != nil {
		return events.Start, fmt.Errorf("head: %w", err)
	}
	var head events.Position
	err := s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		var (
			from client.AllPosition = client.End{}
			prev events.Position
			have bool
			page = uint64(headFirstPage)
		)
		for ; ; page = maxAllPage {
			recs, err := readRecords(cl.ReadAll(ctx, client.ReadAllOptions{Direction: client.Backwards, From: from}, page))
			if err != nil {
				return err
			}
			for _, r := range recs {
				p := fromPosition(r.Position)
				if have && !p.Less(prev) {
					continue // the record read from, again
				}
				prev, have = p, true
				if s.names.keep(r) {
					head = p
					return nil
				}
			}
			if uint64(len(recs)) < page {
				head = events.Start
				return nil
			}
			from = client.Position{Commit: prev.Commit, Prepare: prev.Prepare}
		}
	})
	if err != nil {
		return events.Start, fmt.Errorf("head: %w", err)
	}
	return head, nil
}

// after tracks a reader's place in the global log: it accepts positions in
// strictly increasing order after the one it started from. Starting from
// events.Start it accepts any first position, even the zero one.
type after struct {
	pos  events.Position
	seen bool // pos is a position already accepted (or the start given)
}

// next reports whether p comes after the place, and moves there if so.
func (a *after) next(p events.Position) bool {
	if (a.seen || a.pos != events.Start) && !a.pos.Less(p) {
		return false
	}
	a.pos, a.seen = p, true
	return true
}
