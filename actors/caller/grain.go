// Package caller is the caller grain: one virtual actor per caller number,
// owning that number's event stream. It folds the stream into the policy's
// state, decides each call with the pure policy, appends the events that
// record the decision with the revision it folded, and only then answers.
//
// Ownership: a grain's state (policy.State, the revision) belongs to the
// grain's actor and is touched only from its Receive, one message at a
// time. Two activations of one number can briefly exist during cluster
// topology changes; the expected-revision append makes the loser reload and
// decide again, so the stream stays linear.
package caller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// KindName is the cluster kind of caller grains.
const KindName = "caller"

// Deps is what every caller grain of a node shares.
type Deps struct {
	Store    events.Store
	Policy   *policy.Policy
	Registry *events.Registry // schema.NewRegistry()
	// Clock gives the time of decisions; tests inject a fake one.
	Clock func() time.Time
	// Node names this node in event metadata.
	Node string
	// SnapshotEvery saves a snapshot after this many events since the last
	// one (0 disables snapshots).
	SnapshotEvery int
	// IdleAfter passivates a grain that received nothing for this long.
	IdleAfter time.Duration
	// MaxResident bounds the grains in memory, softly: a grain activated
	// while more than this many are resident passivates after
	// PressureIdle instead of IdleAfter. A flood of fresh numbers (each
	// seen once) then costs memory for the flood's last few seconds, not
	// for IdleAfter's worth of numbers. 0: no bound.
	MaxResident int
	// PressureIdle is the idle time of grains activated over MaxResident
	// (default 5 s).
	PressureIdle time.Duration
	// StoreTimeout bounds each store call a grain makes.
	StoreTimeout time.Duration
	// MaxConflictRetries bounds reload-and-retry after revision conflicts.
	MaxConflictRetries int
	Logger             *slog.Logger
	// Observer counts active grains; nil is fine.
	Observer Observer
	// Fence is asked right before every append (and before answering
	// after a revision conflict): non-nil means this node may no longer
	// own its grains (its membership is lost or unconfirmed after a
	// pause), so the grain writes nothing, answers ErrFenced to everyone
	// waiting and stops. nil: no fencing (a node alone).
	Fence func() error
	// Ranges returns the range rules matching the caller key at now (the
	// node's rule table, actors/rules); nil: no range rules. It is called
	// for every call, so it must answer from memory.
	Ranges func(key string, now time.Time) []schema.RangeMatch
	// Overrides returns the per-line settings and schedules in force for
	// a call to line at now (the node's rule table); nil: none. Called
	// for every call, so it must answer from memory.
	Overrides func(line string, now time.Time) []schema.Override
	// Origin returns the caller key's country and type with the origin
	// rules matching them at now (the node's rule table); nil: none. Called
	// for every call, so it must answer from memory.
	Origin func(key string, now time.Time) *schema.Origin
	// OpenCallFor is how long a call counts as up when its end never
	// reaches the grain (a node that crashed mid-call): past it the call
	// stops counting towards the caller's concurrent calls (open.go).
	// Default DefaultOpenCallFor.
	OpenCallFor time.Duration

	// resident counts this node's grains in memory (see MaxResident).
	resident *atomic.Int64
}

func (d *Deps) defaults() {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Registry == nil {
		d.Registry = schema.NewRegistry()
	}
	if d.StoreTimeout <= 0 {
		d.StoreTimeout = 5 * time.Second
	}
	if d.MaxConflictRetries <= 0 {
		// Each conflict means another writer got an append in, so a loser
		// cannot lose forever; the bound only stops a broken store.
		d.MaxConflictRetries = 100
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Observer == nil {
		d.Observer = noObserver{}
	}
	if d.OpenCallFor <= 0 {
		d.OpenCallFor = DefaultOpenCallFor
	}
	if d.PressureIdle <= 0 {
		d.PressureIdle = 5 * time.Second
	}
	d.resident = new(atomic.Int64)
}

// idleAfter is the idle time of a grain activated when n grains are
// resident, itself included.
func (d *Deps) idleAfter(n int64) time.Duration {
	if d.MaxResident > 0 && n > int64(d.MaxResident) {
		if d.IdleAfter > 0 {
			return min(d.PressureIdle, d.IdleAfter)
		}
		return d.PressureIdle
	}
	return d.IdleAfter
}

// Observer is told when grains come into and leave this node's memory,
// for metrics. Its methods must not block.
type Observer interface {
	GrainActivated()
	GrainPassivated()
}

type noObserver struct{}

func (noObserver) GrainActivated()  {}
func (noObserver) GrainPassivated() {}

// NewKind returns the cluster kind that activates caller grains with deps.
func NewKind(deps Deps) *cluster.Kind {
	return cluster.NewKind(KindName, Props(deps))
}

// Props returns the props of a caller grain outside any cluster: it takes
// its number from the *cluster.ClusterInit message it is sent first.
func Props(deps Deps) *actor.Props {
	deps.defaults()
	d := &deps
	return actor.PropsFromProducer(func() actor.Actor { return &grain{d: d} })
}

type grain struct {
	d      *Deps
	key    string
	stream string
	st     policy.State
	// rev is the revision of the last event folded; exists is false while
	// the stream has no events.
	rev       uint64
	exists    bool
	sinceSnap int
	loadErr   error

	// p is the Admit pipeline (batch.go) while calls are pending; nil
	// when the grain is idle, so an idle grain does not carry it.
	p *pipeline
	// open are the caller's calls up (open.go).
	open openCalls
	// fenced is set once Deps.Fence tripped: the grain is stopping and
	// answers everything with it.
	fenced error
	// idle is how long without a message the grain passivates after (0:
	// never); lastMsg is when it last got one, idleTimer its own timer
	// (see idleTick).
	idle      time.Duration
	lastMsg   time.Time
	idleTimer *time.Timer
}

// idleTick is the grain's idle timer firing. The grain keeps its own timer
// rather than protoactor's receive timeout: that one cancels itself when
// it fires (a grain busy then, and so not passivating, never heard of it
// again and stayed resident for good), and its timer goroutine writes the
// actor context's fields unsynchronised against the mailbox's goroutine.
type idleTick struct{}

// armIdle has an idleTick sent to the grain after d.
func (g *grain) armIdle(ctx actor.Context, d time.Duration) {
	sys, self := ctx.ActorSystem(), ctx.Self()
	g.idleTimer = time.AfterFunc(d, func() { sys.Root.Send(self, &idleTick{}) })
}

func (g *grain) Receive(ctx actor.Context) {
	if _, tick := ctx.Message().(*idleTick); !tick {
		g.lastMsg = time.Now()
	}
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.d.Observer.GrainActivated()
		n := g.d.resident.Add(1)
		g.key = msg.Identity.Identity
		g.stream = schema.CallerStream(g.key)
		if err := g.load(); err != nil {
			// Answer every request with the error rather than deciding on a
			// partial history; the next activation tries again.
			g.loadErr = err
			g.d.Logger.Error("caller grain: load failed", "caller", g.key, "err", err)
		}
		g.idle = g.d.idleAfter(n)
		if g.idle > 0 {
			g.armIdle(ctx, g.idle)
		}
	case *idleTick:
		if rest := g.idle - time.Since(g.lastMsg); rest > 0 {
			g.armIdle(ctx, rest)
			return
		}
		g.passivate(ctx)
	case *actor.Stopped:
		if g.idleTimer != nil {
			g.idleTimer.Stop()
		}
		if g.key != "" {
			g.d.resident.Add(-1)
			g.d.Observer.GrainPassivated()
		}
	case *anypb.Any:
		g.handle(ctx, msg)
	case *appendDone:
		g.batchDone(ctx, msg)
	}
}

// passivationSnapshotMin is the fewest new events worth a snapshot when a
// grain passivates.
const passivationSnapshotMin = 16

// passivate stops the grain when it is idle; otherwise it looks again
// after another idle time.
func (g *grain) passivate(ctx actor.Context) {
	if g.p != nil {
		g.armIdle(ctx, g.idle)
		return // not idle after all: calls are pending
	}
	if g.open.prune(g.d.Clock()) > 0 && g.d.Policy.Config().MaxConcurrent > 0 {
		// Calls are up and their count decides: it lives here. (Without
		// the limit the count is only recorded, and a grain passivating
		// with calls up merely records fewer.) The calls are bounded by
		// the node's calls in progress, and lost ends by OpenCallFor.
		g.armIdle(ctx, g.idle)
		return
	}
	// A snapshot spares the next activation folding the events since the
	// last one; for a handful of events (a number seen once or twice, as
	// in a flood of fresh numbers) reading them costs no more than reading
	// a snapshot, and writing one would be a second append per call.
	if g.d.SnapshotEvery > 0 && g.sinceSnap >= min(g.d.SnapshotEvery, passivationSnapshotMin) {
		g.snapshot()
	}
	ctx.Stop(ctx.Self())
}

func (g *grain) handle(ctx actor.Context, a *anypb.Any) {
	if g.fenced != nil {
		// Stopping: requests already in the mailbox get the same answer.
		g.respond(ctx, nil, g.fenced)
		return
	}
	msg, err := unpack(a)
	if err != nil {
		g.respond(ctx, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	if g.loadErr != nil {
		if err := g.load(); err != nil {
			g.respond(ctx, nil, fmt.Errorf("%w: load %s: %v", ErrStore, g.stream, err))
			return
		}
		g.loadErr = nil
	}
	switch m := msg.(type) {
	case *Admit:
		if g.p != nil && len(g.p.queue) > 0 {
			g.p.queue = append(g.p.queue, queued{ctx.Sender(), m}) // keep arrival order
			return
		}
		g.admitAsync(ctx, ctx.Sender(), m)
		return
	case *Ended:
		// Answered at once: nothing is written.
		g.open.end(m.CallID)
		g.respond(ctx, Applied{}, nil)
		return
	case *GetStatus:
		// Answered at once, from the state including decided calls whose
		// batch is still being written.
		g.respond(ctx, Status{Key: g.key, Exists: g.exists, Revision: g.rev, Status: g.status()}, nil)
		return
	}
	if g.p != nil {
		g.p.queue = append(g.p.queue, queued{ctx.Sender(), msg})
		return
	}
	reply, err := g.handleSync(msg)
	g.respond(ctx, reply, err)
	if g.fenced != nil {
		g.stopFenced(ctx, nil)
	}
}

// fence asks Deps.Fence whether this activation may write; once it has
// tripped, the grain stays fenced until it stops.
func (g *grain) fence() error {
	if g.fenced != nil {
		return g.fenced
	}
	if g.d.Fence == nil {
		return nil
	}
	if err := g.d.Fence(); err != nil {
		g.fenced = fmt.Errorf("%w: %s on %s: %v", ErrFenced, g.key, g.d.Node, err)
		g.d.Logger.Warn("caller grain fenced: writing nothing and stopping", "caller", g.key, "err", err)
		return g.fenced
	}
	return nil
}

// stopFenced answers everyone waiting on the grain with g.fenced (and the
// senders of batch, taken out of the pipeline already) and stops it. A
// batch whose append is in flight may yet commit: its callers, retrying
// through the cluster, get the recorded verdict from the new owner.
func (g *grain) stopFenced(ctx actor.Context, batch []*pendingAdmit) {
	fail := func(ps []*pendingAdmit) {
		for _, p := range ps {
			for _, s := range p.senders {
				g.send(ctx, s, nil, g.fenced)
			}
		}
	}
	fail(batch)
	if g.p != nil {
		fail(g.p.inflightBatch)
		fail(g.p.next)
		for _, q := range g.p.queue {
			g.send(ctx, q.sender, nil, g.fenced)
		}
		g.p = nil
	}
	ctx.Stop(ctx.Self())
}

// handleSync runs an outcome or a command when no batch is pending: it
// decides, appends and folds before answering.
func (g *grain) handleSync(msg any) (any, error) {
	switch m := msg.(type) {
	case *Outcome:
		return g.outcome(m)
	case *Command:
		return g.command(m)
	case *GetStatus:
		return Status{Key: g.key, Exists: g.exists, Revision: g.rev, Status: g.status()}, nil
	}
	return nil, fmt.Errorf("%w: a caller grain does not take %T", ErrInvalid, msg)
}

func (g *grain) respond(ctx actor.Context, reply any, err error) {
	if err != nil {
		reply = failureOf(err)
	}
	packed, perr := pack(reply)
	if perr != nil {
		g.d.Logger.Error("caller grain: pack reply", "caller", g.key, "err", perr)
		return
	}
	ctx.Respond(packed)
}

func (g *grain) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.d.StoreTimeout)
}

// load rebuilds the state from the latest snapshot and the events after it.
func (g *grain) load() error {
	ctx, cancel := g.storeCtx()
	defer cancel()
	g.st, g.rev, g.exists, g.sinceSnap = policy.State{}, 0, false, 0
	from := uint64(0)
	snap, ok, err := g.d.Store.LoadSnapshot(ctx, g.stream)
	if err != nil {
		return fmt.Errorf("load snapshot: %w", err)
	}
	if ok && snap.Type == policy.SnapshotType && snap.Version == policy.SnapshotVersion {
		if err := json.Unmarshal(snap.Data, &g.st); err != nil {
			// A damaged snapshot costs a full replay, not the caller's history.
			g.d.Logger.Warn("caller grain: ignoring unreadable snapshot", "caller", g.key, "err", err)
			g.st = policy.State{}
		} else {
			g.rev, g.exists, from = snap.Revision, true, snap.Revision+1
		}
	}
	if err := g.catchUp(ctx, from); err != nil {
		return err
	}
	if g.d.SnapshotEvery > 0 && g.sinceSnap >= g.d.SnapshotEvery {
		// A long tail (written by another node, or before snapshots were
		// on) is folded once; the next activation should not fold it again.
		g.snapshot()
	}
	return nil
}

// catchUp folds the stream's events from revision from on.
func (g *grain) catchUp(ctx context.Context, from uint64) error {
	evs, err := events.ReadWholeStream(ctx, g.d.Store, g.stream, from)
	if err != nil {
		return fmt.Errorf("read %s: %w", g.stream, err)
	}
	for _, ev := range evs {
		p, err := g.d.Registry.Decode(ev)
		if err != nil {
			return err
		}
		payload, ok := p.(schema.Payload)
		if !ok {
			return fmt.Errorf("fold %s@%d: %T is not a caller event", g.stream, ev.Revision, p)
		}
		if err := g.d.Policy.Apply(&g.st, payload); err != nil {
			return fmt.Errorf("fold %s@%d: %w", g.stream, ev.Revision, err)
		}
		g.rev, g.exists = ev.Revision, true
		g.sinceSnap++
	}
	return nil
}

func (g *grain) reload(ctx context.Context) error {
	next := uint64(0)
	if g.exists {
		next = g.rev + 1
	}
	return g.catchUp(ctx, next)
}

// appendAndFold appends recs with the revision the grain folded and folds
// them once they are durable. It reports repeated=true when the store
// found the events already written (a retried request): the grain then
// reloads, since what is stored may differ from what it proposed.
func (g *grain) appendAndFold(ctx context.Context, recs []schema.Record, meta events.Metadata) (res events.AppendResult, repeated bool, err error) {
	props, err := schema.Proposals(recs, meta)
	if err != nil {
		return res, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	want := uint64(0)
	if g.exists {
		want = g.rev + 1
	}
	if err := g.fence(); err != nil {
		return res, false, err
	}
	res, err = g.d.Store.Append(ctx, g.stream, events.ExactOrNoStream(g.rev, g.exists), props...)
	if err != nil {
		return res, false, err
	}
	if res.FirstRevision != want {
		// Idempotent hit: the IDs were already in the stream.
		return res, true, g.reload(ctx)
	}
	for _, r := range recs {
		if err := g.d.Policy.Apply(&g.st, r.Payload); err != nil {
			// The events are stored; fold them from the store instead.
			return res, false, errors.Join(err, g.reload(ctx))
		}
	}
	g.rev, g.exists = res.LastRevision, true
	g.sinceSnap += len(recs)
	if g.d.SnapshotEvery > 0 && g.sinceSnap >= g.d.SnapshotEvery {
		g.snapshot()
	}
	return res, false, nil
}

// retryConflicts runs attempt until it does not end in a revision conflict,
// reloading the stream between tries: another activation wrote first.
func (g *grain) retryConflicts(ctx context.Context, attempt func() error) error {
	for i := 0; ; i++ {
		err := attempt()
		if err == nil || !errors.Is(err, events.ErrConflict) || i >= g.d.MaxConflictRetries {
			return err
		}
		g.d.Logger.Debug("caller grain: revision conflict, reloading", "caller", g.key, "err", err)
		if err := g.reload(ctx); err != nil {
			return err
		}
	}
}

func (g *grain) meta(actorName, correlation string) events.Metadata {
	return events.Metadata{Node: g.d.Node, Actor: actorName, CorrelationID: correlation}
}

// callRevision finds the revision of the CallReceived among appended recs.
func callRevision(recs []schema.Record, res events.AppendResult) uint64 {
	for i, r := range recs {
		if _, ok := r.Payload.(schema.CallReceived); ok {
			return res.FirstRevision + uint64(i)
		}
	}
	return res.LastRevision
}

// recordedVerdict reads back the verdict stored for callID, newest first.
func (g *grain) recordedVerdict(ctx context.Context, callID string) (Verdict, error) {
	id := schema.CallEventID(g.key, callID, schema.RoleReceived)
	from := ^uint64(0)
	for {
		evs, err := g.d.Store.ReadStream(ctx, g.stream, events.Backward, from, 256)
		if err != nil {
			return Verdict{}, fmt.Errorf("read back call %s: %w", callID, err)
		}
		for _, ev := range evs {
			if ev.ID != id {
				continue
			}
			var cr schema.CallReceived
			if err := json.Unmarshal(ev.Data, &cr); err != nil {
				return Verdict{}, fmt.Errorf("read back call %s: %w", callID, err)
			}
			return Verdict{CallID: callID, Verdict: cr.Verdict, Level: cr.Level, Rule: cr.Rule, Reason: cr.Reason,
				Hour: cr.Hour, Day: cr.Day, At: cr.At, Revision: ev.Revision, Repeated: true}, nil
		}
		if len(evs) < 256 || evs[len(evs)-1].Revision == 0 {
			return Verdict{}, fmt.Errorf("%w: call %s: its event ID is taken but not by this caller's stream", ErrInvalid, callID)
		}
		from = evs[len(evs)-1].Revision - 1
	}
}

func (g *grain) outcome(m *Outcome) (Applied, error) {
	ctx, cancel := g.storeCtx()
	defer cancel()
	var out Applied
	err := g.retryConflicts(ctx, func() error {
		recs, err := g.d.Policy.Outcome(&g.st, g.key, m.CallID, m.Outcome, g.d.Clock())
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		out, err = g.applyRecords(ctx, recs, g.meta("call", m.CallID))
		return err
	})
	if errors.Is(err, events.ErrDuplicateID) {
		return Applied{Repeated: true, Revision: g.rev}, nil
	}
	return out, storeErr(err)
}

func (g *grain) command(m *Command) (Applied, error) {
	ctx, cancel := g.storeCtx()
	defer cancel()
	// A retried command must answer "repeated", not be judged again
	// against the state it already changed (a second unblock would find
	// the caller not blocked and fail).
	if m.Command.ID != "" {
		ev, found, err := g.findRecent(ctx, schema.CommandEventID(g.key, m.Command.ID))
		if err != nil {
			return Applied{}, storeErr(err)
		}
		if found {
			return Applied{Events: []string{ev.Type}, Revision: ev.Revision, Repeated: true}, nil
		}
	}
	var out Applied
	err := g.retryConflicts(ctx, func() error {
		var (
			recs []schema.Record
			err  error
			now  = g.d.Clock()
		)
		switch m.Verb {
		case VerbWhitelist:
			recs, err = g.d.Policy.Whitelist(&g.st, g.key, m.Command, now)
		case VerbUnwhitelist:
			recs, err = g.d.Policy.Unwhitelist(&g.st, g.key, m.Command, now)
		case VerbBlock:
			recs, err = g.d.Policy.Block(&g.st, g.key, m.Command, now)
		case VerbUnblock:
			recs, err = g.d.Policy.Unblock(&g.st, g.key, m.Command, now)
		default:
			return fmt.Errorf("%w: unknown command %q", ErrInvalid, m.Verb)
		}
		if err != nil {
			return commandErr(err)
		}
		out, err = g.applyRecords(ctx, recs, g.meta("admin:"+m.Command.By, m.Command.ID))
		return err
	})
	if errors.Is(err, events.ErrDuplicateID) {
		return Applied{Repeated: true, Revision: g.rev}, nil
	}
	return out, storeErr(err)
}

// recentCommands is how far back a retried command is looked for. Admin
// commands are rare, and a retry comes seconds after the original.
const recentCommands = 256

// findRecent looks for the event with ID id among the stream's newest
// events.
func (g *grain) findRecent(ctx context.Context, id uuid.UUID) (events.Event, bool, error) {
	if !g.exists {
		return events.Event{}, false, nil
	}
	evs, err := g.d.Store.ReadStream(ctx, g.stream, events.Backward, ^uint64(0), recentCommands)
	if err != nil {
		return events.Event{}, false, fmt.Errorf("read %s: %w", g.stream, err)
	}
	for _, ev := range evs {
		if ev.ID == id {
			return ev, true, nil
		}
	}
	return events.Event{}, false, nil
}

func (g *grain) applyRecords(ctx context.Context, recs []schema.Record, meta events.Metadata) (Applied, error) {
	res, repeated, err := g.appendAndFold(ctx, recs, meta)
	if err != nil {
		return Applied{}, err
	}
	out := Applied{Revision: res.LastRevision, Repeated: repeated}
	for _, r := range recs {
		out.Events = append(out.Events, r.Payload.EventType())
	}
	return out, nil
}

func commandErr(err error) error {
	switch {
	case errors.Is(err, policy.ErrWhitelisted), errors.Is(err, policy.ErrNotWhitelisted), errors.Is(err, policy.ErrNotBlocked):
		return fmt.Errorf("%w: %v", ErrState, err)
	default:
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
}

// storeErr classifies an error that is not already one of ours as a store
// failure.
func storeErr(err error) error {
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrState) || errors.Is(err, ErrStore) || errors.Is(err, ErrFenced) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrStore, err)
}

func (g *grain) snapshot() {
	if g.fence() != nil {
		return // a stale activation's state is not worth saving
	}
	data, err := json.Marshal(&g.st)
	if err != nil {
		g.d.Logger.Error("caller grain: marshal snapshot", "caller", g.key, "err", err)
		return
	}
	ctx, cancel := g.storeCtx()
	defer cancel()
	err = g.d.Store.SaveSnapshot(ctx, events.Snapshot{
		Stream: g.stream, Revision: g.rev, Type: policy.SnapshotType, Version: policy.SnapshotVersion,
		Data: data, Recorded: g.d.Clock(),
	})
	if err != nil {
		// Snapshots are an optimisation: the events are the truth.
		g.d.Logger.Warn("caller grain: save snapshot", "caller", g.key, "err", err)
		return
	}
	g.sinceSnap = 0
}

// status is the caller's standing now, with the range rules matching it.
func (g *grain) status() policy.Status {
	now := g.d.Clock()
	return g.d.Policy.StatusWith(&g.st, g.key, now, g.ranges(now))
}

func (g *grain) overrides(line string, now time.Time) []schema.Override {
	if g.d.Overrides == nil {
		return nil
	}
	return g.d.Overrides(line, now)
}

func (g *grain) ranges(now time.Time) []schema.RangeMatch {
	if g.d.Ranges == nil {
		return nil
	}
	return g.d.Ranges(g.key, now)
}
