package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/callguard/callguard/events"
)

const eventColumns = `stream, revision, id, type, version, data, meta, recorded, tx_id, position`

// visible is the condition that keeps the global log gap-free: only rows of
// transactions older than every transaction still running, so that no
// event can later commit with a position before one already read.
const visible = `tx_id < pg_snapshot_xmin(pg_current_snapshot())`

func scanEvent(r pgx.CollectableRow) (events.Event, error) {
	var (
		ev       events.Event
		rev, pos int64
		version  int32
		meta     []byte
	)
	if err := r.Scan(&ev.Stream, &rev, &ev.ID, &ev.Type, &version, (*[]byte)(&ev.Data), &meta, &ev.Recorded, &ev.Position.Commit, &pos); err != nil {
		return ev, err
	}
	ev.Revision, ev.Position.Prepare, ev.Version = uint64(rev), uint64(pos), int(version)
	if err := json.Unmarshal(meta, &ev.Meta); err != nil {
		return ev, fmt.Errorf("metadata of %s@%d: %w", ev.Stream, rev, err)
	}
	return ev, nil
}

func checkLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d", events.ErrInvalid, limit)
	}
	return nil
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", stream, err)
	}
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", stream, err)
	}
	start := int64(min(from, math.MaxInt64))
	q := `SELECT ` + eventColumns + ` FROM callguard_events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	if dir == events.Backward {
		q = `SELECT ` + eventColumns + ` FROM callguard_events WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`
	}
	rows, err := s.pool.Query(ctx, q, stream, start, limit)
	if err != nil {
		return nil, s.wrap("read "+stream, err)
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, s.wrap("read "+stream, err)
	}
	return evs, nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, from events.Position, limit int) ([]events.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("postgres: read all: %w", err)
	}
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("postgres: read all: %w", err)
	}
	evs, err := s.readAll(ctx, from, limit)
	if err != nil {
		return nil, s.wrap("read all", err)
	}
	return evs, nil
}

func (s *Store) readAll(ctx context.Context, from events.Position, limit int) ([]events.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM callguard_events
		WHERE (tx_id, position) > ($1::xid8, $2::bigint) AND `+visible+`
		ORDER BY tx_id, position LIMIT $3`,
		from.Commit, int64(min(from.Prepare, math.MaxInt64)), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// Head implements events.Store: the last event a reader of the global log
// can see now (an append still committing is not part of it yet).
func (s *Store) Head(ctx context.Context) (events.Position, error) {
	if err := s.enter(ctx); err != nil {
		return events.Start, fmt.Errorf("postgres: head: %w", err)
	}
	var (
		p   events.Position
		pos int64
	)
	err := s.pool.QueryRow(ctx, `SELECT tx_id, position FROM callguard_events WHERE `+visible+`
		ORDER BY tx_id DESC, position DESC LIMIT 1`).Scan(&p.Commit, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Start, nil
	}
	if err != nil {
		return events.Start, s.wrap("head", err)
	}
	p.Prepare = uint64(pos)
	return p, nil
}

// SaveSnapshot implements events.Store.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("postgres: save snapshot of %s: %w", snap.Stream, err)
	}
	if snap.Stream == "" || snap.Type == "" || snap.Version < 1 {
		return fmt.Errorf("postgres: save snapshot: %w: stream %q type %q version %d", events.ErrInvalid, snap.Stream, snap.Type, snap.Version)
	}
	data := []byte(snap.Data)
	if data == nil {
		data = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO callguard_snapshots (stream, revision, type, version, data, recorded)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (stream) DO UPDATE SET revision = EXCLUDED.revision, type = EXCLUDED.type,
			version = EXCLUDED.version, data = EXCLUDED.data, recorded = EXCLUDED.recorded`,
		snap.Stream, int64(snap.Revision), snap.Type, int32(snap.Version), data)
	return s.wrap("save snapshot of "+snap.Stream, err)
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, bool, error) {
	if err := s.enter(ctx); err != nil {
		return events.Snapshot{}, false, fmt.Errorf("postgres: load snapshot of %s: %w", stream, err)
	}
	snap := events.Snapshot{Stream: stream}
	var (
		rev     int64
		version int32
	)
	err := s.pool.QueryRow(ctx, `SELECT revision, type, version, data, recorded FROM callguard_snapshots WHERE stream = $1`, stream).
		Scan(&rev, &snap.Type, &version, (*[]byte)(&snap.Data), &snap.Recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Snapshot{}, false, nil
	}
	if err != nil {
		return events.Snapshot{}, false, s.wrap("load snapshot of "+stream, err)
	}
	snap.Revision, snap.Version = uint64(rev), int(version)
	return snap, true, nil
}
