package caller

import (
	"errors"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// A hot number (one bot redialling) must not be limited to one fsync per
// call. While one append of a grain is in flight, the Admits that arrive
// are decided at once on the state as it will be after that append
// (speculatively folded) and appended together as the next batch; each
// caller is answered only when the batch that holds its call is durable.
// If a batch fails, the grain reloads the committed state and decides the
// calls of that batch and of the next one again.
//
// Outcomes and admin commands take the simple path (decide, append, fold)
// when no batch is pending; otherwise they wait in the queue, behind any
// Admits that came after them too, so the stream keeps the order messages
// arrived in.

// pendingAdmit is one decided call waiting for its batch to be durable.
type pendingAdmit struct {
	m       *Admit
	senders []*actor.PID // the request and any repeats of it
	dec     policy.Decision
	tries   int
}

// queued is a message that arrived while batches were pending.
type queued struct {
	sender *actor.PID
	msg    any
}

// appendDone reports the end of a batch's append to the grain.
type appendDone struct {
	batch []*pendingAdmit
	want  uint64 // the revision the batch's first event was to get
	res   events.AppendResult
	err   error
}

// pipeline is a busy grain's Admit pipeline: the batch whose append is in
// flight, the calls decided on top of it, and messages waiting their turn.
type pipeline struct {
	inflight      bool
	inflightBatch []*pendingAdmit
	next          []*pendingAdmit
	queue         []queued
}

func (g *grain) busy() bool { return g.p != nil && (g.p.inflight || len(g.p.next) > 0) }

// pipe returns the pipeline, creating it for the first pending call.
func (g *grain) pipe() *pipeline {
	if g.p == nil {
		g.p = &pipeline{}
	}
	return g.p
}

// settle drops the pipeline once nothing is pending or waiting.
func (g *grain) settle() {
	if g.p != nil && !g.busy() && len(g.p.queue) == 0 {
		g.p = nil
	}
}

// admitAsync decides m now and answers once its batch is durable.
func (g *grain) admitAsync(ctx actor.Context, sender *actor.PID, m *Admit) {
	if p := g.pendingFor(m.CallID); p != nil {
		p.senders = append(p.senders, sender) // a repeat of a pending call
		return
	}
	if slices.Contains(g.st.CallIDs, m.CallID) {
		sctx, cancel := g.storeCtx()
		v, err := g.recordedVerdict(sctx, m.CallID)
		cancel()
		g.send(ctx, sender, v, storeErr(err))
		return
	}
	p := &pendingAdmit{m: m, senders: []*actor.PID{sender}}
	if err := g.decide(p); err != nil {
		g.send(ctx, sender, nil, err)
		return
	}
	pl := g.pipe()
	pl.next = append(pl.next, p)
	if !pl.inflight {
		g.flush(ctx)
	}
}

func (g *grain) pendingFor(callID string) *pendingAdmit {
	if g.p == nil {
		return nil
	}
	for _, p := range g.p.inflightBatch {
		if p.m.CallID == callID {
			return p
		}
	}
	for _, p := range g.p.next {
		if p.m.CallID == callID {
			return p
		}
	}
	return nil
}

// decide decides p on the current (speculative) state and folds its
// records into that state.
func (g *grain) decide(p *pendingAdmit) error {
	call := policy.Call{
		ID: p.m.CallID, Caller: phone.Number{Key: g.key, Kind: p.m.Kind},
		Presented: p.m.Presented, Callee: p.m.Callee, Source: p.m.Source, Attack: p.m.Attack, CRM: p.m.CRM,
		Wire: policy.Wire{
			SIPCallID: p.m.SIPCallID, CallerKind: p.m.Kind.String(), Identity: p.m.Identity,
			IdentityFrom: p.m.IdentityFrom, Transport: p.m.Transport, Mode: p.m.Mode,
			ChallengeFallback: p.m.ChallengeFallback,
		},
	}
	now := g.d.Clock()
	call.Ranges = g.ranges(now)
	call.Overrides = g.overrides(p.m.Callee, now)
	if g.d.Origin != nil {
		call.Origin = g.d.Origin(g.key, now)
	}
	if g.key != phone.AnonymousKey {
		g.open.prune(now)
		call.Concurrent = g.open.others(p.m.CallID, now)
	}
	dec, err := g.d.Policy.Decide(&g.st, call, now)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if g.key != phone.AnonymousKey && dec.Verdict != schema.Reject {
		g.open.start(p.m.CallID, now.Add(g.d.OpenCallFor))
	}
	for _, r := range dec.Records {
		if err := g.d.Policy.Apply(&g.st, r.Payload); err != nil {
			return fmt.Errorf("%w: fold %s: %v", ErrStore, r.Payload.EventType(), err)
		}
	}
	p.dec = dec
	return nil
}

// flush starts the append of the next batch.
func (g *grain) flush(ctx actor.Context) {
	pl := g.pipe()
	batch := pl.next
	pl.next = nil
	if g.fence() != nil {
		g.stopFenced(ctx, batch)
		return
	}
	var props []events.Proposed
	for _, p := range batch {
		ps, err := schema.Proposals(p.dec.Records, g.meta("grain", p.m.CallID))
		if err != nil {
			// Marshalling our own payloads cannot fail but for a bug.
			panic(fmt.Sprintf("caller grain: %v", err))
		}
		props = append(props, ps...)
	}
	want := uint64(0)
	if g.exists {
		want = g.rev + 1
	}
	expected := events.ExactOrNoStream(g.rev, g.exists)
	pl.inflight, pl.inflightBatch = true, batch
	self, root, store, stream := ctx.Self(), ctx.ActorSystem().Root, g.d.Store, g.stream
	sctx, cancel := g.storeCtx()
	go func() {
		defer cancel()
		res, err := store.Append(sctx, stream, expected, props...)
		root.Send(self, &appendDone{batch: batch, want: want, res: res, err: err})
	}()
}

// batchDone answers the calls of a durable batch, or decides them again.
func (g *grain) batchDone(ctx actor.Context, d *appendDone) {
	pl := g.pipe()
	pl.inflight, pl.inflightBatch = false, nil
	if d.err == nil && d.res.FirstRevision == d.want {
		g.rev, g.exists = d.res.LastRevision, true
		rev := d.res.FirstRevision
		for _, p := range d.batch {
			v := Verdict{
				CallID: p.m.CallID, Verdict: p.dec.Verdict, Level: p.dec.Level, Rule: p.dec.Rule, Reason: p.dec.Reason,
				Hour: p.dec.Hour, Day: p.dec.Day, At: p.dec.At, New: p.dec.New,
				Revision: callRevision(p.dec.Records, events.AppendResult{FirstRevision: rev}),
			}
			for _, s := range p.senders {
				g.send(ctx, s, v, nil)
			}
			rev += uint64(len(p.dec.Records))
			g.sinceSnap += len(p.dec.Records)
		}
	} else {
		g.redo(ctx, d)
	}
	if len(pl.next) > 0 {
		g.flush(ctx)
		return
	}
	if g.d.SnapshotEvery > 0 && g.sinceSnap >= g.d.SnapshotEvery {
		g.snapshot() // only when nothing speculative is folded in
	}
	g.drain(ctx)
}

// redo handles a failed batch: reload the committed state and decide its
// calls, and those decided on top of it, again. A store failure fails the
// batch's own calls; a conflict (another activation wrote) or a duplicate
// (a call was already recorded) decides them again.
func (g *grain) redo(ctx actor.Context, d *appendDone) {
	pl := g.pipe()
	again := append(d.batch, pl.next...)
	pl.next = nil
	if err := g.load(); err != nil {
		g.loadErr = err
		for _, p := range again {
			for _, s := range p.senders {
				g.send(ctx, s, nil, fmt.Errorf("%w: reload %s: %v", ErrStore, g.stream, err))
			}
		}
		return
	}
	if g.fence() != nil {
		// Another activation may own the number now: answer nothing from
		// this one's reload, and decide nothing again.
		g.stopFenced(ctx, again)
		return
	}
	retriable := d.err == nil || errors.Is(d.err, events.ErrConflict) || errors.Is(d.err, events.ErrDuplicateID)
	for i, p := range again {
		if i < len(d.batch) && !retriable {
			for _, s := range p.senders {
				g.send(ctx, s, nil, storeErr(d.err))
			}
			continue
		}
		if slices.Contains(g.st.CallIDs, p.m.CallID) {
			sctx, cancel := g.storeCtx()
			v, err := g.recordedVerdict(sctx, p.m.CallID)
			cancel()
			for _, s := range p.senders {
				g.send(ctx, s, v, storeErr(err))
			}
			continue
		}
		if p.tries++; p.tries > g.d.MaxConflictRetries {
			for _, s := range p.senders {
				g.send(ctx, s, nil, fmt.Errorf("%w: %d revision conflicts in a row", ErrStore, p.tries))
			}
			continue
		}
		if err := g.decide(p); err != nil {
			for _, s := range p.senders {
				g.send(ctx, s, nil, err)
			}
			continue
		}
		pl.next = append(pl.next, p)
	}
}

// drain handles the messages that waited while batches were pending, in
// the order they came, until one of them starts a batch again.
func (g *grain) drain(ctx actor.Context) {
	for g.p != nil && len(g.p.queue) > 0 && !g.busy() {
		q := g.p.queue[0]
		g.p.queue = g.p.queue[1:]
		if m, ok := q.msg.(*Admit); ok {
			g.admitAsync(ctx, q.sender, m)
			continue
		}
		reply, err := g.handleSync(q.msg)
		g.send(ctx, q.sender, reply, err)
		if g.fenced != nil {
			g.stopFenced(ctx, nil)
			return
		}
	}
	g.settle()
}

// send answers sender; replies and failures are packed like Respond's.
func (g *grain) send(ctx actor.Context, sender *actor.PID, reply any, err error) {
	if sender == nil {
		return
	}
	if err != nil {
		reply = failureOf(err)
	}
	packed, perr := pack(reply)
	if perr != nil {
		g.d.Logger.Error("caller grain: pack reply", "caller", g.key, "err", perr)
		return
	}
	ctx.Send(sender, packed)
}
