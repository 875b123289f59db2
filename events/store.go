package events

import (
	"context"
)

// Direction is the order a stream is read in.
type Direction uint8

const (
	Forward Direction = iota
	Backward
)

// AppendResult says where an append put its events.
type AppendResult struct {
	// FirstRevision and LastRevision are the stream revisions of the first
	// and last appended event.
	FirstRevision uint64
	LastRevision  uint64
	// Position is the global position of the last appended event.
	Position Position
}

// Handler receives the events of a subscription one at a time, in global
// order. An error it returns ends the subscription with that error.
type Handler func(ctx context.Context, ev Event) error

// Store is an event store. Every backend passes the conformance suite in
// package storetest; a method's documented behaviour is what that suite
// checks. All methods are safe for concurrent use.
type Store interface {
	// Append adds events to the end of stream if the stream is in the
	// expected state, atomically: all of them or none. It returns only once
	// the events are durable. Events with a zero ID get a random one.
	//
	// Append is idempotent by event ID: if the events' IDs are already the
	// events at the end of this stream's history (a retry after a lost
	// reply), it returns the original result and writes nothing, whatever
	// expected says. An ID among the stream's recent events (at least its
	// last 64) that is not such a retry gives ErrDuplicateID. As in
	// EventStoreDB, IDs are checked against recent events of the same
	// stream only: not across streams (callguard derives each ID from its
	// stream's key, so they cannot collide) and not deep in a stream's
	// history (a retry follows its lost reply within seconds).
	//
	// A stream not in the expected state gives a *ConflictError.
	Append(ctx context.Context, stream string, expected Expected, evs ...Proposed) (AppendResult, error)

	// ReadStream returns up to limit events of stream starting at revision
	// from (inclusive), in direction dir. Backward from ^uint64(0) reads
	// from the end. A stream that does not exist reads as empty.
	ReadStream(ctx context.Context, stream string, dir Direction, from uint64, limit int) ([]Event, error)

	// ReadAll returns up to limit events of the global log whose positions
	// come after from, in order. Snapshots are not part of the log.
	ReadAll(ctx context.Context, from Position, limit int) ([]Event, error)

	// Subscribe calls h for every event after from, first those already
	// stored (catch-up), then each new one as it is committed (live), with
	// no gap and no duplicate at the switch. It returns when ctx is done
	// (with ctx's error), when h fails (with that error), or when the store
	// fails in a way it cannot retry.
	Subscribe(ctx context.Context, from Position, h Handler) error

	// SaveSnapshot stores snap as the latest snapshot of snap.Stream,
	// replacing any older one.
	SaveSnapshot(ctx context.Context, snap Snapshot) error

	// LoadSnapshot returns the latest snapshot of stream, and false when it
	// has none.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, bool, error)

	// Head returns the position of the last event in the global log, or
	// Start when it is empty.
	Head(ctx context.Context) (Position, error)

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// ReadWholeStream reads every event of stream in order, page by page.
func ReadWholeStream(ctx context.Context, s Store, stream string, from uint64) ([]Event, error) {
	const page = 4096
	var out []Event
	for {
		batch, err := s.ReadStream(ctx, stream, Forward, from, page)
		if err != nil {
			return out, err
		}
		out = append(out, batch...)
		if len(batch) < page {
			return out, nil
		}
		from = batch[len(batch)-1].Revision + 1
	}
}
