package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callguard/callguard/events"
)

// recentIDs is how many of a stream's newest events an append compares its
// IDs with (at least; a longer append compares as many as it has events),
// as the embedded store does.
const recentIDs = 64

// row is what an append reads of a stream's newest events.
type row struct {
	rev uint64
	id  uuid.UUID
	pos events.Position
}

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	if err := s.enter(ctx); err != nil {
		return events.AppendResult{}, fmt.Errorf("postgres: append to %s: %w", stream, err)
	}
	batch, err := prepare(stream, evs)
	if err != nil {
		return events.AppendResult{}, fmt.Errorf("postgres: append to %s: %w", stream, err)
	}
	for attempt := 0; ; attempt++ {
		res, err := s.appendTx(ctx, stream, expected, batch)
		// The stream lock makes a unique violation impossible unless
		// another writer ignores it; reading the stream again gives that
		// writer's revision as a conflict (or recognises a retry).
		if err != nil && unique(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return res, s.wrap("append to "+stream, err)
		}
		s.committed()
		return res, nil
	}
}

// batchArgs are an append's events as the column arrays of its INSERT.
type batchArgs struct {
	ids      []uuid.UUID
	idText   []string
	types    []string
	versions []int32
	data     [][]byte
	meta     []string
}

func prepare(stream string, evs []events.Proposed) (*batchArgs, error) {
	if stream == "" {
		return nil, fmt.Errorf("%w: empty stream name", events.ErrInvalid)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: no events", events.ErrInvalid)
	}
	b := &batchArgs{
		ids:      make([]uuid.UUID, len(evs)),
		idText:   make([]string, len(evs)),
		types:    make([]string, len(evs)),
		versions: make([]int32, len(evs)),
		data:     make([][]byte, len(evs)),
		meta:     make([]string, len(evs)),
	}
	seen := make(map[uuid.UUID]struct{}, len(evs))
	for i, p := range evs {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		id := p.ID
		if id == uuid.Nil {
			id = uuid.New()
		}
		if _, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: event ID %s twice in one append", events.ErrInvalid, id)
		}
		seen[id] = struct{}{}
		meta, err := json.Marshal(p.Meta)
		if err != nil {
			return nil, fmt.Errorf("marshal metadata: %w", err)
		}
		data := []byte(p.Data)
		if data == nil {
			data = []byte{} // NOT NULL column; an empty payload reads back empty
		}
		b.ids[i], b.idText[i], b.types[i], b.versions[i], b.data[i], b.meta[i] = id, id.String(), p.Type, int32(p.Version), data, string(meta)
	}
	return b, nil
}

const insertSQL = `
INSERT INTO callguard_events (stream, revision, id, type, version, data, meta)
SELECT $1, $2 + u.o - 1, u.id, u.type, u.version, u.data, u.meta
FROM unnest($3::uuid[], $4::text[], $5::int[], $6::bytea[], $7::jsonb[])
	WITH ORDINALITY AS u(id, type, version, data, meta, o)
ORDER BY u.o
RETURNING tx_id, position`

const recentSQL = `SELECT revision, id, tx_id, position FROM callguard_events WHERE stream = $1 ORDER BY revision DESC LIMIT $2`

// appendTx runs one append in two round trips: BEGIN, the stream lock and
// the read of the stream's newest events pipelined in one, the INSERT (with
// the NOTIFY) and COMMIT in the other. A connection left inside a
// transaction by an error is closed, not reused, when it is released.
func (s *Store) appendTx(ctx context.Context, stream string, expected events.Expected, b *batchArgs) (events.AppendResult, error) {
	var res events.AppendResult
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()

	n := len(b.ids)
	var first pgx.Batch
	first.Queue(`BEGIN`)
	// The lock comes before anything gives this transaction an xid: the
	// xid is then assigned after the stream's previous append committed,
	// so revisions of a stream also ascend in (tx_id, position).
	first.Queue(`SELECT pg_advisory_xact_lock($1)`, lockKey(stream))
	var recent []row
	first.Queue(recentSQL, stream, max(recentIDs, n)).Query(func(rows pgx.Rows) error {
		var err error
		recent, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var (
				x        row
				rev, pos int64
			)
			err := r.Scan(&rev, &x.id, &x.pos.Commit, &pos)
			x.rev, x.pos.Prepare = uint64(rev), uint64(pos)
			return x, err
		})
		return err
	})
	if err := conn.SendBatch(ctx, &first).Close(); err != nil {
		return res, err
	}
	rollback := func() {
		// Ends the transaction and frees the stream lock; should it fail,
		// Release closes the connection, which does the same.
		_, _ = conn.Exec(ctx, `ROLLBACK`)
	}
	if res, ok, err := retry(stream, b.ids, recent); ok || err != nil {
		rollback()
		return res, err
	}
	exists := len(recent) > 0
	var last uint64
	if exists {
		last = recent[0].rev
	}
	if !expected.Check(last, exists) {
		rollback()
		actual := events.NoRevision
		if exists {
			actual = int64(last)
		}
		return res, &events.ConflictError{Stream: stream, Expected: expected, Actual: actual}
	}
	next := uint64(0)
	if exists {
		next = last + 1
	}
	var second pgx.Batch
	second.Queue(insertSQL, stream, int64(next), b.idText, b.types, b.versions, b.data, b.meta).Query(func(rows pgx.Rows) error {
		var pos events.Position
		_, err := pgx.ForEachRow(rows, []any{&pos.Commit, &pos.Prepare}, func() error {
			if res.Position.Less(pos) {
				res.Position = pos
			}
			return nil
		})
		return err
	})
	if s.opts.notifyInTx {
		second.Queue(`SELECT pg_notify($1, '')`, channel)
	}
	if s.opts.beforeCommit == nil {
		second.Queue(`COMMIT`)
	}
	if err := conn.SendBatch(ctx, &second).Close(); err != nil {
		return events.AppendResult{}, err
	}
	if s.opts.beforeCommit != nil {
		s.opts.beforeCommit(ctx, stream)
		if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
			return events.AppendResult{}, err
		}
	}
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		// COMMIT of an aborted transaction answers ROLLBACK, not an error.
		return events.AppendResult{}, fmt.Errorf("transaction not committed (status %c)", st)
	}
	res.FirstRevision, res.LastRevision = next, next+uint64(n)-1
	return res, nil
}

// retry reports whether ids are already the newest events of the stream,
// in order (a retry of an append whose reply was lost): ok is true and res
// is that append's result. If some of the IDs are among the recent events
// but not that way, err wraps ErrDuplicateID. recent is newest first.
func retry(stream string, ids []uuid.UUID, recent []row) (res events.AppendResult, ok bool, err error) {
	n := len(ids)
	tail := 0 // newest rows that are the append's events, newest first
	for i, r := range recent {
		for j, id := range ids {
			if id != r.id {
				continue
			}
			if i < n && j == n-1-i && tail == i {
				tail++
				break
			}
			return res, false, fmt.Errorf("%w: event %s is stored in %s at revision %d", events.ErrDuplicateID, id, stream, r.rev)
		}
		if tail == n {
			return events.AppendResult{
				FirstRevision: recent[0].rev - uint64(n) + 1,
				LastRevision:  recent[0].rev,
				Position:      recent[0].pos,
			}, true, nil
		}
	}
	if tail > 0 {
		// Only the newest of the events are stored: not a retry of one
		// append.
		return res, false, fmt.Errorf("%w: event %s is stored in %s at revision %d", events.ErrDuplicateID, ids[n-1], stream, recent[0].rev)
	}
	return res, false, nil
}
