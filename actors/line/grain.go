// Package line is the under-attack mode of a called number (a "line", the
// 8-800 number in the INVITE's Request-URI): a grain per line that owns
// the line's event stream and decides when the line is under attack, a
// pure Detector of the rate of new callers, and Local, the node-side
// counter and mode cache the call path reads.
//
// How the pieces meet: every node counts, per line, the calls whose caller
// the caller grain found new (caller.Verdict.New) in an atomic counter
// (Local.Count), and sends the counts as one batch per line every Flush
// (100 ms) to the line's grain. The grain adds the batches of every node
// to its Detector; when the rate over the window exceeds the threshold it
// appends LineAttackStarted to "line-<number>" (fenced, with the expected
// revision, before anyone acts on it) and answers every batch with the
// mode, so every node that sees calls to the line learns it within a
// flush; nodes that sent nothing ask every second (Local.Poll).
// The call path reads only the node's cache (Local.Mode) and passes the
// mode to the caller grain's Admit: no per-call request to the line.
package line

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// KindName is the cluster kind of line grains.
const KindName = "line"

// AutoBy is the By of the detector's events.
const AutoBy = "policy"

// ValidLine reports whether s can name a line: an E.164 number ("+" and
// 3 to 15 digits). Calls to anything else are not counted, so a flood of
// made-up called numbers cannot make grains and streams.
func ValidLine(s string) bool {
	if len(s) < 4 || len(s) > 16 || s[0] != '+' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Deps is what every line grain of a node shares.
type Deps struct {
	Store    events.Store
	Settings Settings
	Registry *events.Registry // schema.NewRegistry()
	Clock    func() time.Time
	// Node names this node in event metadata.
	Node string
	// IdleAfter passivates a grain whose mode is off after this long
	// without a message (default 10 min).
	IdleAfter time.Duration
	// Tick is how often a grain whose mode is on checks for calm when no
	// batch arrives (default 1 s).
	Tick         time.Duration
	StoreTimeout time.Duration
	Logger       *slog.Logger
	// Observer is told of mode changes (metrics); nil is fine.
	Observer Observer
	// Fence, as caller.Deps.Fence: asked right before every append;
	// non-nil means this node may no longer own its grains, so the grain
	// writes nothing, answers ErrFenced and stops.
	Fence func() error
	// Overrides gives the per-line settings and schedules in force for a
	// line at a time (the node's rule table); their AttackRate replaces
	// Settings.Rate for the line. Nil: none.
	Overrides func(line string, now time.Time) []schema.Override
}

// Observer is told when a line's mode changes. Its methods must not block.
type Observer interface {
	AttackStarted(line string, manual bool)
	AttackEnded(line string, manual bool)
}

type noObserver struct{}

func (noObserver) AttackStarted(string, bool) {}
func (noObserver) AttackEnded(string, bool)   {}

func (d *Deps) defaults() {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Registry == nil {
		d.Registry = schema.NewRegistry()
	}
	if d.IdleAfter <= 0 {
		d.IdleAfter = 10 * time.Minute
	}
	if d.Tick <= 0 {
		d.Tick = time.Second
	}
	if d.StoreTimeout <= 0 {
		d.StoreTimeout = 5 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Observer == nil {
		d.Observer = noObserver{}
	}
}

// NewKind returns the cluster kind that activates line grains with deps.
func NewKind(deps Deps) *cluster.Kind {
	return cluster.NewKind(KindName, Props(deps))
}

// Props returns the props of a line grain; it takes its line from the
// *cluster.ClusterInit message it is sent first.
func Props(deps Deps) *actor.Props {
	deps.defaults()
	d := &deps
	return actor.PropsFromProducer(func() actor.Actor { return &grain{d: d, det: NewDetector(d.Settings)} })
}

type grain struct {
	d      *Deps
	line   string
	stream string
	det    *Detector
	// The mode folded from the stream.
	started *schema.LineAttackStarted // nil: off
	ended   *schema.LineAttackEnded   // the last period's end
	rev     uint64
	exists  bool
	loadErr error
	fenced  error
	// stopTicks ends the goroutine that sends the grain its ticks.
	stopTicks chan struct{}
	// lastMsg is when the grain last got a request (real time: it only
	// decides passivation, which the actor system times in real time).
	lastMsg time.Time
}

// tick is what the grain's own ticker sends it every Tick. Not
// protoactor's receive timeout: its timer goroutine resets and clears the
// actor's timer while the mailbox goroutine re-arms it on every message (a
// data race in the library), and a line gets a batch every flush.
type tick struct{}

func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.line = msg.Identity.Identity
		g.stream = schema.LineStream(g.line)
		g.lastMsg = time.Now()
		if err := g.load(); err != nil {
			g.loadErr = err
			g.d.Logger.Error("line grain: load failed", "line", g.line, "err", err)
		}
		g.startTicks(ctx)
	case *tick:
		if g.started == nil {
			if time.Since(g.lastMsg) >= g.d.IdleAfter {
				ctx.Stop(ctx.Self()) // idle and off: passivate
			}
			return
		}
		g.check()
	case *actor.Stopped:
		if g.stopTicks != nil {
			close(g.stopTicks)
			g.stopTicks = nil
		}
	case *anypb.Any:
		g.lastMsg = time.Now()
		g.handle(ctx, msg)
	}
}

// startTicks sends the grain a tick every Tick until it stops: while the
// mode is on a tick checks for calm when no batch comes; while it is off
// it passivates an idle grain.
func (g *grain) startTicks(ctx actor.Context) {
	stop := make(chan struct{})
	g.stopTicks = stop
	root, self, every := ctx.ActorSystem().Root, ctx.Self(), g.d.Tick
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				root.Send(self, &tick{})
			}
		}
	}()
}

func (g *grain) handle(ctx actor.Context, a *anypb.Any) {
	if g.fenced != nil {
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
	var reply Mode
	switch m := msg.(type) {
	case *Counts:
		g.det.Add(g.d.Clock(), m.New)
		err = g.check()
		reply = g.mode()
	case *GetStatus:
		g.det.Rate(g.d.Clock())
		reply = g.mode()
	case *Command:
		reply, err = g.command(m)
	default:
		err = fmt.Errorf("%w: a line grain does not take %T", ErrInvalid, msg)
	}
	g.respond(ctx, reply, err)
	if g.fenced != nil {
		ctx.Stop(ctx.Self())
	}
}

// check runs the detector and appends the change it calls for.
func (g *grain) check() error {
	if g.loadErr != nil || g.fenced != nil {
		return g.loadErr
	}
	now := g.d.Clock()
	s := g.settings(now)
	g.det.s = s
	v, rate := g.det.Check(g.started != nil, g.started != nil && g.started.Hold, now)
	var err error
	switch v {
	case Start:
		at := schema.UTC(now)
		err = g.append(schema.Record{ID: schema.LineAttackEventID(g.line, schema.TypeLineAttackStarted, at), Payload: schema.LineAttackStarted{
			Line: g.line, At: at, Rate: rate, Threshold: s.Rate, WindowMs: s.Window.Milliseconds(),
			By: AutoBy, Why: fmt.Sprintf("%.1f new callers a second over %v, threshold %g", rate, s.Window, s.Rate),
		}}, "grain", "")
	case End:
		at := schema.UTC(now)
		err = g.append(schema.Record{ID: schema.LineAttackEventID(g.line, schema.TypeLineAttackEnded, g.started.At), Payload: schema.LineAttackEnded{
			Line: g.line, Since: g.started.At, At: at, Rate: rate, Peak: g.det.Peak(), Threshold: s.Rate, CalmMs: s.Calm.Milliseconds(),
			By: AutoBy, Why: fmt.Sprintf("%.1f new callers a second or fewer for %v, threshold %g", s.Rate, s.Calm, s.Rate),
		}}, "grain", "")
	}
	if err != nil {
		g.d.Logger.Error("line grain: mode change not recorded", "line", g.line, "err", err)
	}
	return err
}

func (g *grain) command(m *Command) (Mode, error) {
	for _, t := range []struct{ field, s string }{{"by", m.By}, {"why", m.Why}} {
		if err := schema.CheckCommandText(t.field, t.s); err != nil {
			return Mode{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if m.ID != "" {
		// A retried command answers "repeated", not "already on".
		if (m.On && g.started != nil && g.started.CommandID == m.ID) || (!m.On && g.started == nil && g.ended != nil && g.ended.CommandID == m.ID) {
			r := g.mode()
			r.Repeated = true
			return r, nil
		}
	}
	now := schema.UTC(g.d.Clock())
	rate := g.det.Rate(now)
	s := g.settings(now)
	var rec schema.Record
	switch {
	case m.On && g.started != nil:
		return Mode{}, fmt.Errorf("%w: line %s is under attack since %s already", ErrState, g.line, g.started.At.Format(time.RFC3339))
	case !m.On && g.started == nil:
		return Mode{}, fmt.Errorf("%w: line %s is not under attack", ErrState, g.line)
	case m.On:
		rec = schema.Record{ID: schema.LineAttackEventID(g.line, schema.TypeLineAttackStarted, now), Payload: schema.LineAttackStarted{
			Line: g.line, At: now, Rate: rate, Threshold: s.Rate, WindowMs: s.Window.Milliseconds(),
			Manual: true, Hold: m.Hold, CommandID: m.ID, By: m.By, Why: m.Why,
		}}
	default:
		rec = schema.Record{ID: schema.LineAttackEventID(g.line, schema.TypeLineAttackEnded, g.started.At), Payload: schema.LineAttackEnded{
			Line: g.line, Since: g.started.At, At: now, Rate: rate, Peak: g.det.Peak(), Threshold: s.Rate,
			Manual: true, CommandID: m.ID, By: m.By, Why: m.Why,
		}}
	}
	if err := g.append(rec, "admin:"+m.By, m.ID); err != nil {
		return Mode{}, err
	}
	r := g.mode()
	r.Events = []string{rec.Payload.EventType()}
	return r, nil
}

// append writes rec with the revision the grain folded, then folds it.
// A conflict (another activation wrote) reloads and reports ErrState-free
// store errors; the caller's next batch decides again on the reloaded mode.
func (g *grain) append(rec schema.Record, actorName, correlation string) error {
	props, err := schema.Proposals([]schema.Record{rec}, events.Metadata{Node: g.d.Node, Actor: actorName, CorrelationID: correlation})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if g.d.Fence != nil {
		if ferr := g.d.Fence(); ferr != nil {
			g.fenced = fmt.Errorf("%w: %s on %s: %v", ErrFenced, g.line, g.d.Node, ferr)
			g.d.Logger.Warn("line grain fenced: writing nothing and stopping", "line", g.line, "err", ferr)
			return g.fenced
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.d.StoreTimeout)
	defer cancel()
	want := uint64(0)
	if g.exists {
		want = g.rev + 1
	}
	res, err := g.d.Store.Append(ctx, g.stream, events.ExactOrNoStream(g.rev, g.exists), props...)
	if err != nil {
		if errors.Is(err, events.ErrConflict) {
			err = errors.Join(err, g.reload(ctx))
		}
		return fmt.Errorf("%w: append %s: %v", ErrStore, g.stream, err)
	}
	if res.FirstRevision != want {
		return g.reload(ctx) // already written (a retry): fold what is stored
	}
	g.fold(rec.Payload)
	g.rev, g.exists = res.LastRevision, true
	return nil
}

// fold applies one event of the line's stream and announces it.
func (g *grain) fold(p schema.Payload) {
	switch e := schema.Value(p).(type) {
	case schema.LineAttackStarted:
		g.started = &e
		g.det.Started(e.At)
		g.d.Observer.AttackStarted(g.line, e.Manual)
		g.d.Logger.Warn("line under attack: challenging every caller not whitelisted or verified",
			"line", g.line, "rate", round(e.Rate), "threshold", e.Threshold, "window", time.Duration(e.WindowMs)*time.Millisecond,
			"manual", e.Manual, "hold", e.Hold, "by", e.By, "why", e.Why)
	case schema.LineAttackEnded:
		g.started, g.ended = nil, &e
		g.det.Ended()
		g.d.Observer.AttackEnded(g.line, e.Manual)
		g.d.Logger.Info("line attack over", "line", g.line, "since", e.Since, "rate", round(e.Rate), "peak", round(e.Peak),
			"threshold", e.Threshold, "manual", e.Manual, "by", e.By, "why", e.Why)
	}
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func (g *grain) load() error {
	g.started, g.ended, g.rev, g.exists = nil, nil, 0, false
	ctx, cancel := context.WithTimeout(context.Background(), g.d.StoreTimeout)
	defer cancel()
	return g.reload(ctx)
}

// reload folds the stream's events after the last one folded, quietly
// (the log and the metrics announced them when they were written).
func (g *grain) reload(ctx context.Context) error {
	next := uint64(0)
	if g.exists {
		next = g.rev + 1
	}
	evs, err := events.ReadWholeStream(ctx, g.d.Store, g.stream, next)
	if err != nil {
		return fmt.Errorf("read %s: %w", g.stream, err)
	}
	for _, ev := range evs {
		p, err := g.d.Registry.Decode(ev)
		if err != nil {
			return err
		}
		switch e := schema.Value(p.(schema.Payload)).(type) {
		case schema.LineAttackStarted:
			g.started = &e
			g.det.Started(g.d.Clock())
		case schema.LineAttackEnded:
			g.started, g.ended = nil, &e
			g.det.Ended()
		}
		g.rev, g.exists = ev.Revision, true
	}
	return nil
}

// settings are the node's detection settings with the line's overrides
// in force at now (its settings, then schedules) merged in.
func (g *grain) settings(now time.Time) Settings {
	s := g.d.Settings
	if g.d.Overrides == nil {
		return s
	}
	var o schema.Settings
	for _, ov := range g.d.Overrides(g.line, now) {
		o = o.Merge(ov.Settings)
	}
	if o.AttackRate != nil {
		s.Rate = *o.AttackRate
	}
	return s
}

func (g *grain) mode() Mode {
	now := g.d.Clock()
	m := Mode{Line: g.line, Rate: g.det.Rate(now), Threshold: g.settings(now).Rate, Revision: g.rev, Exists: g.exists}
	if s := g.started; s != nil {
		m.On, m.Since, m.Manual, m.Hold, m.By, m.Why, m.Peak = true, s.At, s.Manual, s.Hold, s.By, s.Why, g.det.Peak()
	}
	return m
}

func (g *grain) respond(ctx actor.Context, reply any, err error) {
	if err != nil {
		reply = failureOf(err)
	}
	packed, perr := pack(reply)
	if perr != nil {
		g.d.Logger.Error("line grain: pack reply", "line", g.line, "err", perr)
		return
	}
	ctx.Respond(packed)
}
