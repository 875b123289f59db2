package call

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/crm"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// verdictResult is the grain's answer, as the request goroutine hands it
// to the actor.
type verdictResult struct {
	v    caller.Verdict
	err  error
	took time.Duration // the grain's decision, as the call saw it
	// customer is what the CRM said of the caller (nil: nothing).
	customer *crm.Customer
}

// callActor is the shell around one call's machine: it feeds the machine
// the facts it receives and carries out what the machine returns. It owns
// the timer, the stream writer, the grain requests, the observer and the
// counters; the rules are the machine's.
type callActor struct {
	d     *Deps
	cfg   Config
	setup Setup
	fx    Effects
	log   *slog.Logger

	m         *machine
	w         *streamWriter
	stopTimer func() bool
	// took is how long the grain took to decide, for the observer.
	took time.Duration
	// ended is the CallEnded recorded, for the last log line.
	ended schema.CallEnded
	// decided is the grain's verdict, once it came (decidedOK): a call it
	// counts as up must be reported ended (see tellEnded).
	decided   schema.Verdict
	decidedOK bool
	// gauged is set while the call counts as an active challenge in the
	// metrics.
	gauged bool
}

// Receive handles one message. A panic here is caught: a restarted call
// actor would ask the grain again and act twice, so the call is ended
// instead.
func (a *callActor) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("call actor panicked; hanging up", "panic", r)
			if a.m == nil || !a.m.isOver() {
				a.fx.Hangup(Hangup{Cause: schema.EndError, Detail: "internal error"})
			}
		}
	}()
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case verdictResult:
		a.took = msg.took
		a.decided, a.decidedOK = msg.v.Verdict, msg.err == nil || a.decidedOK
		if cs, ok := a.fx.(CustomerShower); ok && msg.customer != nil {
			// Before the machine's Pass or Bridge: the session runs its
			// orders in turn.
			cs.ShowCustomer(*msg.customer)
		}
		a.apply(ctx, a.m.step(admitted{v: msg.v, err: msg.err, code: a.drawCode(msg)}, a.d.Clock()))
	case fact:
		a.apply(ctx, a.m.step(msg, a.d.Clock()))
	case *actor.Stopped:
		// Stopped without finishing (a panic, the system stopping): what
		// the call stream holds so far is still written.
		a.flush()
		a.d.Counters.Active.Add(-1)
		a.d.Tracker.done()
	}
}

func (a *callActor) start(ctx actor.Context) {
	a.m = newMachine(a.cfg, a.setup)
	a.w = newStreamWriter(a.d.Store, a.d.pending, schema.CallStream(a.setup.ID),
		events.Metadata{Node: a.d.Node, Actor: "call", CorrelationID: a.setup.ID},
		a.cfg.StreamRetryFor, a.d.Logger, a.d.Counters, a.d.Clock, a.d.Sleep)
	a.apply(ctx, a.m.start())
}

// flush closes the call stream and appends it, once, on a goroutine of
// its own.
func (a *callActor) flush() {
	if a.w == nil || a.w.closed {
		return
	}
	if a.w.close() {
		a.d.Tracker.add()
		go func() {
			defer a.d.Tracker.done()
			a.w.run()
		}()
	}
}

// drawCode draws the code for a challenge verdict, on the actor's
// goroutine (the random source need not be safe for concurrent use). It
// returns "" when the verdict is no challenge or the draw failed; the
// machine then has no code to play and hangs up a call it must challenge.
func (a *callActor) drawCode(r verdictResult) string {
	if r.err != nil || r.v.Verdict != schema.Challenge {
		return ""
	}
	code, err := DrawCode(a.d.Rand, a.cfg.CodeDigits)
	if err != nil {
		a.log.Error("cannot draw a code", "err", err)
		return ""
	}
	return code
}

// apply carries out the machine's outputs in order.
func (a *callActor) apply(ctx actor.Context, outs []output) {
	for _, o := range outs {
		a.tally(o)
		switch o := o.(type) {
		case recordEvent:
			a.w.add(o.ev)
		case noteEvent:
			// In the grain's CallReceived: counted by tally, not written.
		case askGrain:
			a.ask(ctx, o.req)
		case orderReject:
			a.fx.Reject(o.r)
		case orderPass:
			a.fx.Pass()
		case orderChallenge:
			a.fx.Challenge(o.code)
		case orderBridge:
			a.fx.Bridge()
		case orderHangup:
			a.fx.Hangup(o.h)
		case armTimer:
			system, self := ctx.ActorSystem(), ctx.Self()
			a.stopTimer = a.d.AfterFunc(o.at.Sub(a.d.Clock()), func() { system.Root.Send(self, deadlineReached{}) })
		case stopTimer:
			if a.stopTimer != nil {
				a.stopTimer()
				a.stopTimer = nil
			}
		case tellOutcome:
			a.d.Tracker.add()
			go a.reportOutcome(o.outcome)
		case finish:
			a.flush()
			a.tellEnded()
			e := a.ended
			a.log.Debug("call ended", "cause", e.Cause, "by", e.By, "status", e.Status, "durationMs", e.DurationMs, "billed", e.Billed, "detail", o.detail)
			a.logCall(o.detail)
			ctx.Stop(ctx.Self())
		}
	}
}

// tally keeps the counters and the observer in step with the machine's
// outputs: actions by the orders given, the rest by the events recorded.
func (a *callActor) tally(o output) {
	c := a.d.Counters
	var ev schema.Payload
	switch o := o.(type) {
	case orderReject:
		c.Rejected.Add(1)
	case orderPass:
		c.Passed.Add(1)
	case orderChallenge:
		c.Challenged.Add(1)
	case recordEvent:
		ev = o.ev
	case noteEvent:
		ev = o.ev
	}
	switch e := ev.(type) {
	case schema.CallDecided:
		if e.Busy {
			a.d.Observer.Busy(a.took)
			return
		}
		if e.StoreDown {
			c.StoreDown.Add(1)
			a.d.Observer.Undecided(a.took)
			a.log.Warn("no verdict; store-down policy applies", "policy", e.Action, "err", e.Error)
			return
		}
		v := e.Verdict
		if e.ActionReason != "" {
			// A challenge passed by a fallback (a late offer), not by
			// observe mode: it must not count as observed. The guard
			// counts it itself (late_offer_total).
			v = e.Action
		}
		a.d.Observer.Decided(v, e.Action, a.took)
		if e.Mode == schema.Observe && e.Verdict != schema.Pass {
			c.Observed.Add(1)
		}
		if e.ActionReason != "" {
			c.ChallengeFallbacks.Add(1)
		}
	case schema.ChallengeStarted:
		if !a.gauged {
			a.gauged = true
			a.d.Observer.ChallengeStarted()
		}
	case schema.ChallengeEnded:
		if a.gauged {
			a.d.Observer.ChallengeEnded()
		}
		switch e.Outcome {
		case schema.Passed:
			c.ChallengesPassed.Add(1)
		case schema.Failed:
			c.ChallengesFailed.Add(1)
		default:
			c.ChallengesAbandoned.Add(1)
		}
	case schema.CallEnded:
		if e.AnsweredAt != nil {
			c.Answered.Add(1)
		}
		if e.Billed {
			c.Billed.Add(1)
		} else {
			c.Unbilled.Add(1)
		}
		a.ended = e
	}
}

// ask sends Admit to the grain on a goroutine of its own; the answer
// comes back as a verdictResult message.
func (a *callActor) ask(ctx actor.Context, req caller.Admit) {
	system, self := ctx.ActorSystem(), ctx.Self()
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), a.cfg.DecideTimeout)
		defer cancel()
		start := a.d.Clock()
		var customer *crm.Customer
		if a.d.CRM != nil && a.setup.Caller.Key != phone.AnonymousKey {
			// Here, not in the grain: the grain stays fast and does no
			// I/O but the store's; the lookup has its own budget within
			// dctx, and its answer travels in Admit.
			ans := a.d.CRM.Lookup(dctx, a.setup.Caller.Key)
			req.CRM = ans.Record()
			if ans.Status == schema.CRMHit && (ans.Customer.Name != "" || ans.Customer.Segment != "" || ans.Customer.VIP) {
				customer = &ans.Customer
			}
		}
		lines := a.d.Lines
		if lines != nil {
			// The line's mode from the node's cache: the policy decides
			// with it and records it (no request to the line here).
			req.Attack = lines.Mode(a.setup.Callee)
		}
		v, err := a.d.Callers.Admit(dctx, a.setup.Caller.Key, req)
		if lines != nil && err == nil && !v.Repeated {
			lines.Count(a.setup.Callee, v.New)
		}
		system.Root.Send(self, verdictResult{v: v, err: err, took: a.d.Clock().Sub(start), customer: customer})
	}()
}

// endedTeller is what a Callers offers to hear of a call's end; a
// *caller.Client does.
type endedTeller interface {
	Ended(ctx context.Context, key string, req caller.Ended) error
}

// tellEnded tells the caller's grain the call is over, so that it stops
// counting it among the caller's calls up. Once, best effort: a grain
// that never hears of it stops counting the call after its
// OpenCallFor. A call whose verdict never came is told too (the grain may
// have decided it all the same); a rejected one, and one without a caller
// number (the shared anonymous key), were never counted.
func (a *callActor) tellEnded() {
	t, ok := a.d.Callers.(endedTeller)
	if !ok || a.setup.Caller.Anonymous() || (a.decidedOK && a.decided == schema.Reject) {
		return
	}
	key, req := a.setup.Caller.Key, caller.Ended{CallID: a.setup.ID}
	a.d.Tracker.add()
	go func() {
		defer a.d.Tracker.done()
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DecideTimeout)
		defer cancel()
		if err := t.Ended(ctx, key, req); err != nil {
			a.log.Debug("call end not told to the caller's grain", "err", err)
		}
	}()
}

// reportOutcome tells the grain how the challenge ended, retrying while
// the grain or the store is down: the outcome event's ID is derived from
// the call, so a retry the grain already applied writes nothing.
func (a *callActor) reportOutcome(o schema.Outcome) {
	defer a.d.Tracker.done()
	key := a.setup.Caller.Key
	req := caller.Outcome{CallID: a.setup.ID, Outcome: o}
	giveUp := a.d.Clock().Add(a.cfg.OutcomeRetryFor)
	pause := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DecideTimeout)
		_, err := a.d.Callers.Outcome(ctx, key, req)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, caller.ErrInvalid) || a.d.Clock().After(giveUp) {
			a.d.Counters.OutcomesFailed.Add(1)
			a.log.Error("challenge outcome not recorded", "outcome", o, "err", err)
			return
		}
		a.d.Sleep(pause)
		pause = min(2*pause, 5*time.Second)
	}
}
