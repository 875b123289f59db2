package embedded

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
)

// request is one Append or SaveSnapshot handed to the writer.
type request struct {
	ctx      context.Context
	stream   string
	expected events.Expected
	evs      []events.Proposed // IDs only: the payloads are in recs
	recs     [][]byte          // encoded records, revision and time to fill in
	snap     *events.Snapshot  // set for SaveSnapshot
	reply    chan reply        // buffered: the writer never blocks on it
}

// fail wraps err as the error of req's call.
func (r *request) fail(err error) error {
	if r.snap != nil {
		return fmt.Errorf("save snapshot of %s: %w", r.stream, err)
	}
	return fmt.Errorf("append %s: %w", r.stream, err)
}

type reply struct {
	res events.AppendResult
	err error
}

// A batch is cut at these sizes so that one transaction's dirty pages stay
// bounded; requests left over go into the next commit.
const (
	maxBatchRequests = 1024
	maxBatchEvents   = 64 << 10
	// gatherWait bounds how long the writer waits for the callers of the
	// last commit to come back before it starts the next one.
	gatherWait = 100 * time.Microsecond
	// maxArena is the largest transaction buffer kept between commits.
	maxArena = 8 << 20
)

// run is the writer goroutine: it owns every write transaction. It takes all
// requests that are waiting, applies them in one transaction, commits once
// and replies to each. It returns when Close has closed reqs and every
// request sent before that is answered.
func (s *Store) run(head uint64) {
	defer close(s.wdone)
	w := writer{s: s, head: head}
	batch := make([]*request, 0, 64)
	// callers estimates how many goroutines append concurrently: those
	// answered by the last commit plus those that queued during it.
	callers := 0
	for req := range s.reqs {
		if callers > 1 {
			// The callers answered by the last commit are about to append
			// again; let them run first so that they join this commit
			// instead of waiting a whole commit for the next one.
			deadline := time.Now().Add(gatherWait)
			for len(s.reqs)+1 < callers && time.Now().Before(deadline) {
				runtime.Gosched()
			}
		}
		batch = append(batch[:0], req)
		n := len(req.evs)
	drain:
		for len(batch) < maxBatchRequests && n < maxBatchEvents {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += len(r.evs)
			default:
				break drain
			}
		}
		w.commit(batch)
		callers = len(batch) + len(s.reqs)
		s.stats.commits.Add(1)
		s.stats.requests.Add(int64(len(batch)))
		clear(batch) // drop references to answered requests
	}
}

// writer is the state of the writer goroutine.
type writer struct {
	s       *Store
	head    uint64 // last committed sequence
	arena   []byte // keys and values of the transaction in progress
	replies []reply
}

// alloc returns n bytes of arena. bbolt keeps references to values until
// the transaction ends, so arena memory is reused only after it ends.
func (w *writer) alloc(n int) []byte {
	if n > cap(w.arena)-len(w.arena) {
		w.arena = make([]byte, 0, max(n, 1<<20))
	}
	start := len(w.arena)
	w.arena = w.arena[:start+n]
	return w.arena[start : start : start+n]
}

// commit applies and commits batch, then answers every request in it.
func (w *writer) commit(batch []*request) {
	w.replies = append(w.replies[:0], make([]reply, len(batch))...)
	head, err := w.apply(batch, w.replies)
	w.arena = w.arena[:0]
	if cap(w.arena) > maxArena {
		w.arena = nil // do not keep the buffer of one huge append alive
	}
	if err != nil && len(batch) > 1 {
		// A storage error while applying (not a rejected request): retry
		// each request alone so that one bad request cannot fail the rest.
		w.s.log.Warn("group commit failed; retrying requests one by one", "requests", len(batch), "err", err)
		for _, req := range batch {
			w.commit([]*request{req})
		}
		return
	}
	if err != nil {
		// The disk may recover (space freed, device back); a retry with the
		// same IDs is safe whatever happened.
		w.replies[0] = reply{err: batch[0].fail(fmt.Errorf("%w: %w", events.ErrUnavailable, err))}
		w.s.log.Error("commit failed", "stream", batch[0].stream, "err", err)
	}
	wrote := err == nil && head != w.head
	if wrote {
		w.head = head
		// Published before the replies, so that a caller that reads after
		// its Append returns sees its events.
		w.s.head.Store(head)
	}
	for i, req := range batch {
		req.reply <- w.replies[i]
	}
	if wrote {
		w.s.wake()
	}
}

// apply runs batch in one write transaction and commits it. It returns the
// new head. An error means nothing of the batch was committed.
func (w *writer) apply(batch []*request, replies []reply) (uint64, error) {
	tx, err := w.s.db.Begin(true)
	if err != nil {
		return w.head, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after a commit
	t := txn{
		w:         w,
		log:       tx.Bucket(bucketLog),
		idx:       tx.Bucket(bucketIdx),
		snapshots: tx.Bucket(bucketSnapshots),
	}
	t.nowTime = w.s.clock()
	t.now = timeNanos(t.nowTime)
	// The head is read from the database rather than trusted from memory:
	// after a failed commit the file is the only authority.
	if k, _ := t.log.Cursor().Last(); k != nil {
		t.head = u64(k)
	}
	t.idxCur = t.idx.Cursor()
	// Sequential keys: full pages split cleanly, so fill them completely.
	t.log.FillPercent = 1.0
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			replies[i] = reply{err: req.fail(err)} // the caller gave up: skip
			continue
		}
		if req.snap != nil {
			if err := t.saveSnapshot(req.snap); err != nil {
				return w.head, fmt.Errorf("save snapshot: %w", err)
			}
			continue
		}
		res, reqErr, err := t.append(req)
		if err != nil {
			return w.head, err
		}
		replies[i] = reply{res: res, err: reqErr}
	}
	if err := tx.Commit(); err != nil {
		return w.head, fmt.Errorf("commit: %w", err)
	}
	st := tx.Stats()
	w.s.stats.pages.Add(st.GetWrite())
	return t.head, nil
}

// txn is one write transaction of the writer.
type txn struct {
	w                   *writer
	log, idx, snapshots *bolt.Bucket
	idxCur              *bolt.Cursor
	key                 []byte // scratch idx key
	head                uint64
	now                 int64 // commit time, Unix nanoseconds
	nowTime             time.Time
}

// append applies one Append request. reqErr rejects the request alone; err
// is a storage failure that dooms the transaction. A request is checked in
// full before anything is written, so a rejected one leaves no trace, and
// it sees the writes of the requests before it in the same transaction.
func (t *txn) append(req *request) (res events.AppendResult, reqErr, err error) {
	if res, ok, reqErr := t.retry(req); ok || reqErr != nil {
		return res, reqErr, nil
	}
	last, exists := t.lastRevision(req.stream)
	if !req.expected.Check(last, exists) {
		actual := events.NoRevision
		if exists {
			actual = int64(last)
		}
		return res, &events.ConflictError{Stream: req.stream, Expected: req.expected, Actual: actual}, nil
	}
	first := uint64(0)
	if exists {
		first = last + 1
	}
	for i := range req.evs {
		p := &req.evs[i]
		rev := first + uint64(i)
		t.head++
		seq := seqKey(t.w.alloc(8), t.head)
		rec := req.recs[i]
		setPlace(rec, rev, t.now)
		if err := t.log.Put(seq, rec); err != nil {
			return res, nil, fmt.Errorf("%s: put event: %w", req.stream, err)
		}
		// The index entry carries the event's ID, so that a retry is
		// recognised from the stream's tail without a store-wide ID index.
		if err := t.idx.Put(revKey(t.w.alloc(2+len(req.stream)+8), req.stream, rev), append(append(t.w.alloc(24), seq...), p.ID[:]...)); err != nil {
			return res, nil, fmt.Errorf("%s: put index: %w", req.stream, err)
		}
	}
	lastRev := first + uint64(len(req.evs)) - 1
	return events.AppendResult{
		FirstRevision: first,
		LastRevision:  lastRev,
		Position:      events.Position{Commit: t.head, Prepare: t.head},
	}, nil, nil
}

// recentIDs is how many of a stream's newest events an append compares its
// IDs with. A retry comes within seconds of the lost reply, so its events
// are among the newest; checking further back would cost every append a
// walk down its stream's index (EventStoreDB, likewise, checks only recent
// IDs). Keeping no store-wide ID index saves each append a randomly placed
// page in every group commit's fsync.
const recentIDs = 64

// retry reports whether req's events are already the last events of
// req.stream, in order (a retry of an append whose reply was lost): ok is
// true and res is that append's result. If some of the IDs are among the
// stream's recent events but not that way, reqErr wraps ErrDuplicateID.
func (t *txn) retry(req *request) (res events.AppendResult, ok bool, reqErr error) {
	n := len(req.evs)
	t.key = revKey(t.key[:0], req.stream, ^uint64(0))
	prefixLen := len(t.key) - 8
	var k, v []byte
	if k, _ = t.idxCur.Seek(t.key); k == nil {
		k, v = t.idxCur.Last()
	} else {
		k, v = t.idxCur.Prev()
	}
	var (
		tail    int // newest entries that are req's events, newest first
		lastRev uint64
		lastSeq uint64
	)
	for i := 0; i < recentIDs && k != nil && len(k) == prefixLen+8 && bytes.Equal(k[:prefixLen], t.key[:prefixLen]); i++ {
		if len(v) < 8+16 {
			return res, false, req.fail(fmt.Errorf("%w: index entry of %s without an event ID", errCorrupt, req.stream))
		}
		if i == 0 {
			lastRev, lastSeq = u64(k[prefixLen:]), u64(v)
		}
		id := uuid.UUID(v[8:24])
		for j := range req.evs {
			if req.evs[j].ID != id {
				continue
			}
			if i < n && j == n-1-i && tail == i {
				tail++
				break
			}
			return res, false, t.dupErr(req, id, u64(v))
		}
		if tail == n {
			return events.AppendResult{
				FirstRevision: lastRev - uint64(n) + 1,
				LastRevision:  lastRev,
				Position:      events.Position{Commit: lastSeq, Prepare: lastSeq},
			}, true, nil
		}
		k, v = t.idxCur.Prev()
	}
	if tail > 0 {
		// Only the newest of req's events are stored: not a retry of one
		// append.
		return res, false, t.dupErr(req, req.evs[n-1].ID, lastSeq)
	}
	return res, false, nil
}

func (t *txn) lastRevision(stream string) (uint64, bool) {
	t.key = revKey(t.key[:0], stream, ^uint64(0))
	return lastRevision(t.idxCur, t.key)
}

func (t *txn) dupErr(req *request, id uuid.UUID, seq uint64) error {
	return req.fail(fmt.Errorf("%w: event %s is stored at position %d", events.ErrDuplicateID, id, seq))
}

func (t *txn) saveSnapshot(snap *events.Snapshot) error {
	snap.Recorded = t.nowTime
	v := appendSnapshot(t.w.alloc(1+4*10+len(snap.Type)+len(snap.Data)), snap)
	return t.snapshots.Put([]byte(snap.Stream), v)
}
