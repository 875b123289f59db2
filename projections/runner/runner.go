// Package runner keeps callguard's read models up to date: each projection
// is a catch-up subscription to the global log of the event store, folding
// events into a read model kept in a bbolt file beside the store, with its
// own checkpoint in the same file.
//
// # Exactly once
//
// A projection's read model and its checkpoint live in one database, and
// the runner applies a batch of events and advances the checkpoint to the
// batch's last position in one bbolt transaction. A crash at any moment
// leaves either both or neither on disk, so after a restart the projection
// resumes right after the last event it applied: nothing is lost and
// nothing is counted twice, whatever the read model counts.
//
// # Layout
//
// The directory given to Open (<data dir>/projections beside the embedded
// store's events.db) holds one bbolt file per projection, <name>.db. One
// file each, because bbolt has one writer per file and holds its lock
// through the fsync: in separate files the projections fold, write and
// sync in parallel, which more than halves a rebuild. Each file holds
//
//	checkpoint    "checkpoint" -> JSON (position, version, recorded time
//	              of the last event applied, events consumed)
//	model         the projection's bucket; its layout is the projection's
//	              business (see each package)
//
// # Cadence
//
// A live projection does not commit once per event: the events that
// arrive are gathered and committed together when Options.BatchSize of
// them are pending or Options.CommitInterval (100 ms by default) after
// the first of them arrived, whichever comes first. At a few hundred
// calls a second that is ten commits a second per projection instead of
// thousands, and a read model stays a fraction of a second behind the
// log. A catch-up fills whole batches. Whoever needs a read model up to
// a position now (WaitFor, CatchUp, Await: the admin API before a read)
// has the pending events committed at once instead of on the cadence.
//
// # Durability
//
// Each commit is fsynced (bbolt's default), though a projection could be
// rebuilt from the log: what matters is that the checkpoint never runs
// ahead of the read model it covers, and one synced bbolt transaction
// gives that — after a crash or a power loss the file holds both or
// neither. Without the fsync (Options.NoSync), a power loss could
// persist the new meta page before the pages it points to: a torn file
// that bbolt does not always detect on open, and then a read model that
// no longer matches its checkpoint. On the cadence a projection syncs
// about ten times a second, which costs little; NoSync stays for
// benchmarks. The freelist is not synced (NoFreelistSync): bbolt
// rebuilds it on open, which is safe.
//
// # Failures
//
// A projection whose Apply or Flush fails on an event stops there: the
// events of the batch before it are committed, the failing event's
// position, stream, type and the error are logged and shown in Status
// (State Failed), and the projection does nothing more until it is
// rebuilt or the process restarts (which retries the same event: a fold
// is deterministic, so it fails again unless the code was fixed). It
// never skips an event silently.
//
// A write to its own database that fails (the commit: a full disk, an
// I/O error) is not the event's fault: the projection shows State
// Retrying with the error, and resumes by itself after a pause that
// grows from 100 ms to 5 s, until a commit succeeds. It resumes from the
// checkpoint read back from the file, never from memory: whether or not
// the failed commit reached the file, the checkpoint there is the one
// that goes with the read model there, so nothing is applied twice or
// skipped. The other projections carry on. A store that fails is
// retried the same way; that is not a projection failure.
//
// # Lag
//
// Status measures each projection against the head of the log
// (Store.Head): how many events it is behind, and for how long the oldest
// event it has not applied has been waiting, by the injected clock against
// the event's recorded time. A projection at the head is 0 behind. (The
// age of the last event applied, also in Status, is no measure of lag: a
// line quiet for an hour would read an hour behind the moment a call
// arrives.)
//
// # Versions
//
// Each projection names its Version: the shape of its read model and any
// setting the fold depends on (a time zone). A projection whose stored
// checkpoint has another version is dropped and rebuilt from the start of
// the log when the runner opens, so a read model is never a mix of two
// shapes.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/callguard/callguard/events"
)

// DirName is the projections' directory inside the data directory.
const DirName = "projections"

// DefaultBatchSize is how many events at most one transaction applies,
// and the size bound of the cadence (a live projection commits sooner,
// on CommitInterval, unless thousands of events arrive within it). A commit
// rewrites every page the batch touched, and a read model keyed by
// caller touches pages all over its tree, so a catch-up gains from big
// batches: 16384 events rebuild half again as fast as 4096, and hold a
// few megabytes per projection.
const DefaultBatchSize = 16384

// lockTimeout is how long Open waits for the file lock (see
// events/embedded: ride out a predecessor that is exiting, fail fast when
// the file is really in use).
const lockTimeout = 200 * time.Millisecond

var (
	// ErrLocked means another process has a projection's database open.
	ErrLocked = errors.New("projections database locked by another process")
	// ErrUnknownProjection means no projection of that name is registered.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrFailed means a projection stopped on an event it could not apply;
	// the error wrapping it names the projection, the position and why.
	ErrFailed = errors.New("projection failed")
	// ErrClosed means the runner was closed.
	ErrClosed = errors.New("projections closed")
	// ErrNotStarted means CatchUp was called before Start.
	ErrNotStarted = errors.New("projections not started")
)

var (
	bucketCheckpoint = []byte("checkpoint")
	bucketModel      = []byte("model")
	keyCheckpoint    = []byte("checkpoint")
)

// validName keeps projection names usable as bucket names, metric labels
// and URL path segments.
var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Projection is a read model the runner keeps up to date. A projection
// holds no state between batches outside its bucket: everything it knows
// is in the database, so rolling a transaction back rolls the projection
// back too. It is used by one goroutine at a time.
type Projection interface {
	// Name names the projection's bucket, checkpoint and metrics label:
	// lower-case letters, digits and dashes.
	Name() string
	// Version identifies the read model's shape and the settings its fold
	// depends on. When it differs from the stored one, the runner drops
	// the read model and rebuilds it from the start of the log.
	Version() string
	// Begin starts a batch in the write transaction whose projection
	// bucket is root. The runner calls Apply for each event of the batch
	// in log order, then Flush, then commits together with the
	// checkpoint.
	Begin(root *bolt.Bucket) Batch
}

// Batch applies events to a read model within one transaction. It may
// cache what it reads and writes, and must write it all by Flush.
type Batch interface {
	// Apply folds one event. An error stops the projection at this event
	// (see the package documentation); events a projection does not fold
	// must return nil.
	Apply(ev events.Event) error
	// Flush writes what Apply cached.
	Flush() error
}

// Options configure Open. The zero value of each field means its default.
type Options struct {
	// Clock measures lag (default time.Now).
	Clock func() time.Time
	// Logger receives start, failure and rebuild messages (default
	// slog.Default()).
	Logger *slog.Logger
	// BatchSize bounds the events of one transaction (default
	// DefaultBatchSize).
	BatchSize int
	// SequentialPositions says that a position's Commit counts the events
	// of the log, as the embedded store's sequence numbers do, so the lag
	// in events is the difference of two positions. Otherwise (EventStoreDB,
	// whose positions are byte offsets) the runner counts the events
	// behind by reading them, up to MaxLagCount.
	SequentialPositions bool
	// MaxLagCount bounds that count (default 1,000: every metrics scrape
	// and readiness probe pays for it); Status then reports LagEvents =
	// MaxLagCount and LagAtLeast. Lag in seconds is exact either way.
	MaxLagCount int
	// CommitInterval is the cadence of a live projection: the events
	// that arrive are gathered and committed together when BatchSize of
	// them are pending or CommitInterval after the first of them arrived,
	// whichever comes first (default DefaultCommitInterval; negative:
	// commit each arrival at once). A waiter (WaitFor, CatchUp) has the
	// events it waits for committed at once.
	CommitInterval time.Duration
	// After is the timer of the cadence and of retry pauses (default
	// time.After); tests give a fake one.
	After func(time.Duration) <-chan time.Time
	// NoSync skips the fsync of each commit. Benchmarks and tests only;
	// off by default: see "Durability" in the package documentation.
	NoSync bool
}

// DefaultCommitInterval is the default of Options.CommitInterval: at a
// few hundred calls a second, ten commits a second per projection in
// place of one per event, and a read model at most a tenth of a second
// (plus one commit) behind the log.
const DefaultCommitInterval = 100 * time.Millisecond

// Runner runs a set of projections against one store. It is safe for
// concurrent use.
type Runner struct {
	dir   string
	store events.Store
	opts  Options
	log   *slog.Logger

	// mu guards workers' lifecycle (start, stop, rebuild) and ctx.
	mu      sync.Mutex
	ctx     context.Context // Start's context; nil before Start
	closed  bool
	workers []*worker
	byName  map[string]*worker

	// commitTx commits a projection's write transaction; tests replace
	// it to make writes fail as a full disk does.
	commitTx func(*bolt.Tx) error
}

// Open opens (creating if needed) the projections' databases in dir and
// loads each projection's checkpoint, rebuilding the ones whose Version
// changed. It does not start projecting: call Start. It fails with an
// error wrapping ErrLocked when another process has a file open.
func Open(ctx context.Context, dir string, store events.Store, projections []Projection, opts Options) (*Runner, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxLagCount <= 0 {
		opts.MaxLagCount = 1000
	}
	if opts.CommitInterval == 0 {
		opts.CommitInterval = DefaultCommitInterval
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open projections in %s: %w", dir, err)
	}
	if store == nil {
		return nil, fmt.Errorf("open projections in %s: nil store", dir)
	}
	byName := make(map[string]*worker, len(projections))
	for _, p := range projections {
		name := p.Name()
		if !validName.MatchString(name) {
			return nil, fmt.Errorf("open projections: projection name %q: want lower-case letters, digits and dashes", name)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("open projections: projection %q registered twice", name)
		}
		byName[name] = nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open projections: %w", err)
	}
	r := &Runner{dir: dir, store: store, opts: opts, byName: byName,
		log: opts.Logger.With("component", "projections"), commitTx: (*bolt.Tx).Commit}
	for _, p := range projections {
		w, err := r.openWorker(p)
		if err != nil {
			r.closeDBs()
			return nil, err
		}
		r.workers = append(r.workers, w)
		r.byName[w.name] = w
		r.log.Info("projection opened", "projection", w.name, "version", w.cp.Version, "checkpoint", w.cp.position().String())
	}
	return r, nil
}

// openWorker opens p's database and loads its checkpoint.
func (r *Runner) openWorker(p Projection) (*worker, error) {
	path := filepath.Join(r.dir, p.Name()+".db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// Rebuilds delete whole buckets: the hashmap freelist frees and
		// reuses their pages without the array freelist's linear merges.
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true,
		NoSync:          r.opts.NoSync,
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open projection %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open projection %s: %w", path, err)
	}
	w := &worker{r: r, p: p, name: p.Name(), db: db, path: path, progress: make(chan struct{}), flush: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketCheckpoint); err != nil {
			return err
		}
		cp, found, err := readCheckpoint(tx)
		if err != nil {
			return err
		}
		if found && cp.Version != p.Version() {
			r.log.Warn("projection version changed; rebuilding from the start of the log",
				"projection", w.name, "stored", cp.Version, "current", p.Version())
			if err := resetProjection(tx); err != nil {
				return err
			}
			found = false
		}
		if !found {
			cp = checkpoint{Version: p.Version()}
		}
		w.cp = cp
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open projection %s: %w", path, err)
	}
	return w, nil
}

func (r *Runner) closeDBs() error {
	var errs []error
	for _, w := range r.workers {
		if err := w.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close projection %s: %w", w.path, err))
		}
	}
	return errors.Join(errs...)
}

// Dir returns the projections' directory.
func (r *Runner) Dir() string { return r.dir }

// Names returns the projections' names in registration order.
func (r *Runner) Names() []string {
	out := make([]string, len(r.workers))
	for i, w := range r.workers {
		out[i] = w.name
	}
	return out
}

// Start runs every projection in the background until ctx ends or Close.
// Calling it twice is an error.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.ctx != nil:
		return errors.New("projections: already started")
	}
	r.ctx = ctx
	for _, w := range r.workers {
		w.start(ctx)
	}
	return nil
}

// Close stops every projection, waits for the batch in flight to commit
// or roll back, and closes the database.
func (r *Runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	for _, w := range r.workers {
		w.stop()
	}
	r.mu.Unlock()
	return r.closeDBs()
}

// Rebuild drops the read models and checkpoints of the named projections
// (all of them when names is empty) and replays them from the start of
// the log. A failed projection is cleared and runs again. Readers see the
// read model fill up again from empty while it catches up.
func (r *Runner) Rebuild(ctx context.Context, names ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	ws, err := r.named(names)
	if err != nil {
		return fmt.Errorf("rebuild %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	var errs []error
	for _, w := range ws {
		w.stop()
		if err := w.db.Update(resetProjection); err != nil {
			errs = append(errs, fmt.Errorf("rebuild %s: %w", w.name, err))
		} else {
			w.reset(checkpoint{Version: w.p.Version()})
			r.log.Info("projection rebuilding from the start of the log", "projection", w.name)
		}
		if r.ctx != nil {
			w.start(r.ctx)
		}
	}
	return errors.Join(errs...)
}

// CatchUp waits until every projection has applied the log up to the head
// as it is when CatchUp is called. It returns an error wrapping ErrFailed
// as soon as a projection fails on an event, and ErrNotStarted before
// Start. A projection whose writes fail is waited for: it retries.
func (r *Runner) CatchUp(ctx context.Context) error {
	if err := r.started(); err != nil {
		return err
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("catch up: head of the log: %w", err)
	}
	for _, w := range r.workers {
		if err := w.waitFor(ctx, head); err != nil {
			return fmt.Errorf("catch up: %w", err)
		}
	}
	return nil
}

func (r *Runner) started() error {
	r.mu.Lock()
	started, closed := r.ctx != nil, r.closed
	r.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !started:
		return ErrNotStarted
	}
	return nil
}

// WaitFor waits until the named projections (all when names is empty)
// have applied the log up to pos, having what they hold committed at
// once rather than on the cadence. It returns an error wrapping ErrFailed
// when one of them stopped on an event, ctx's error when it ends first,
// and ErrNotStarted before Start.
func (r *Runner) WaitFor(ctx context.Context, pos events.Position, names ...string) error {
	if err := r.started(); err != nil {
		return err
	}
	ws, err := r.named(names)
	if err != nil {
		return fmt.Errorf("wait for %v: %w", pos, err)
	}
	for _, w := range ws {
		if err := w.waitFor(ctx, pos); err != nil {
			return fmt.Errorf("wait for %v: %w", pos, err)
		}
	}
	return nil
}

// named returns the workers of names, or all of them.
func (r *Runner) named(names []string) ([]*worker, error) {
	if len(names) == 0 {
		return r.workers, nil
	}
	ws := make([]*worker, 0, len(names))
	for _, n := range names {
		w, ok := r.byName[n]
		if !ok {
			return nil, fmt.Errorf("%q: %w", n, ErrUnknownProjection)
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// Viewer gives read access to projections' buckets; *Runner implements
// it. Read models take a Viewer so that their queries can be tested on
// any database.
type Viewer interface {
	View(name string, fn func(root *bolt.Bucket) error) error
}

var _ Viewer = (*Runner)(nil)

// View runs fn in a read transaction with the bucket of projection name,
// which is nil while the projection has applied nothing. The bucket is
// valid only inside fn.
func (r *Runner) View(name string, fn func(root *bolt.Bucket) error) error {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("view %q: %w", name, ErrUnknownProjection)
	}
	err := w.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketModel)) })
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Dump returns every key and value of projection name's bucket, nested
// buckets flattened with "/" between names: a byte-exact image of the
// read model, for tests that compare two of them.
func (r *Runner) Dump(name string) (map[string]string, error) {
	out := map[string]string{}
	err := r.View(name, func(root *bolt.Bucket) error {
		if root == nil {
			return nil
		}
		return dumpBucket(root, "", out)
	})
	return out, err
}

func dumpBucket(b *bolt.Bucket, prefix string, out map[string]string) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			return dumpBucket(b.Bucket(k), prefix+string(k)+"/", out)
		}
		out[prefix+string(k)] = string(v)
		return nil
	})
}

// resetProjection drops the read model and the checkpoint in tx.
func resetProjection(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketModel); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return fmt.Errorf("drop the read model: %w", err)
	}
	if err := tx.Bucket(bucketCheckpoint).Delete(keyCheckpoint); err != nil {
		return fmt.Errorf("drop the checkpoint: %w", err)
	}
	return nil
}

// checkpoint is what the runner stores per projection, next to its read
// model.
type checkpoint struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
	Version string `json:"version"`
	// Recorded is the store's commit time of the last event applied.
	Recorded time.Time `json:"recorded,omitzero"`
	// Events counts the events consumed since the start of the log,
	// folded or not.
	Events uint64 `json:"events"`
}

func (c checkpoint) position() events.Position {
	return events.Position{Commit: c.Commit, Prepare: c.Prepare}
}

func readCheckpoint(tx *bolt.Tx) (checkpoint, bool, error) {
	v := tx.Bucket(bucketCheckpoint).Get(keyCheckpoint)
	if v == nil {
		return checkpoint{}, false, nil
	}
	var cp checkpoint
	if err := json.Unmarshal(v, &cp); err != nil {
		return checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	}
	return cp, true, nil
}

func writeCheckpoint(tx *bolt.Tx, cp checkpoint) error {
	v, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return tx.Bucket(bucketCheckpoint).Put(keyCheckpoint, v)
}

// Copy is a consistent copy of one projection's database as of one read
// transaction: its read model and the checkpoint that goes with it.
type Copy struct {
	Name    string
	Version string
	// Position is the checkpoint in the copy: the last event its read
	// model holds (events.Start: none).
	Position events.Position
	// Events counts the events consumed up to Position.
	Events uint64
	// Size is the number of bytes WriteTo writes.
	Size int64
	io.WriterTo
}

// Backup hands fn a consistent copy of each projection's database in
// turn, in registration order, each taken in one read transaction while
// the projections go on. A copy is valid only inside fn. Opened in place
// of the original, a copy resumes from its checkpoint: the read model
// and the checkpoint are committed together, so they agree in any copy.
func (r *Runner) Backup(ctx context.Context, fn func(Copy) error) error {
	for _, w := range r.workers {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("back up projection %s: %w", w.name, err)
		}
		err := w.db.View(func(tx *bolt.Tx) error {
			cp, found, err := readCheckpoint(tx)
			if err != nil {
				return err
			}
			if !found {
				cp = checkpoint{Version: w.p.Version()}
			}
			return fn(Copy{Name: w.name, Version: cp.Version, Position: cp.position(), Events: cp.Events, Size: tx.Size(), WriterTo: tx})
		})
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			err = ErrClosed
		}
		if err != nil {
			return fmt.Errorf("back up projection %s: %w", w.name, err)
		}
	}
	return nil
}
