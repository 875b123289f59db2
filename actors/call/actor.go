package call

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// phase is where a call is in its life.
type phase uint8

const (
	deciding    phase = iota // waiting for the grain
	passing                  // on the pass path (or rejected, waiting for Ended)
	challenging              // announcing the code or waiting for it
	judged                   // the attempt was judged: bridging or hanging up
	over                     // Ended received and recorded
)

// Internal messages.
type (
	verdictResult struct {
		v    caller.Verdict
		err  error
		took time.Duration // the grain's decision, as the call saw it
	}
	deadline struct{}
)

type callActor struct {
	// gauged is set while the call counts as an active challenge in the
	// metrics.
	gauged bool
	d      *Deps
	cfg    Config
	setup  Setup
	fx     Effects
	log    *slog.Logger

	w     *streamWriter
	phase phase

	decided   bool
	verdict   caller.Verdict
	storeDown bool
	action    schema.Verdict

	code       string
	typed      []rune
	methods    []string
	outcome    schema.Outcome // set once the grain was told
	answeredAt time.Time
	stopTimer  func() bool

	// ended holds an Ended that came before the verdict: it is recorded
	// once the decision is, so that the stream reads in order.
	ended *Ended
}

// Receive handles one message. A panic here is caught: a restarted call
// actor would ask the grain again and act twice, so the call is ended
// instead.
func (a *callActor) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("call actor panicked; hanging up", "panic", r)
			if a.phase != over {
				a.fx.Hangup(Hangup{Cause: schema.EndError, Detail: "internal error"})
			}
		}
	}()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case verdictResult:
		a.onVerdict(ctx, m)
	case EarlyMedia:
		if a.phase == challenging {
			if !a.gauged {
				a.gauged = true
				a.d.Observer.ChallengeStarted()
			}
			a.w.add(schema.ChallengeStarted{CallID: a.setup.ID, Digits: len(a.code), Codec: m.Codec, TelephoneEvent: m.TelephoneEvent, At: schema.UTC(m.At)})
		}
	case Answered:
		a.onAnswered(ctx, m)
	case Digit:
		a.onDigit(m)
	case deadline:
		a.onDeadline()
	case PBXAnswered:
		a.w.add(schema.CallBridged{CallID: a.setup.ID, At: schema.UTC(m.At)})
	case Ended:
		a.onEnded(ctx, m)
	case *actor.Stopped:
		a.d.Counters.Active.Add(-1)
		a.d.Tracker.done()
	}
}

func (a *callActor) start(ctx actor.Context) {
	s := a.setup
	a.w = newStreamWriter(a.d.Store, schema.CallStream(s.ID),
		events.Metadata{Node: a.d.Node, Actor: "call", CorrelationID: s.ID},
		a.cfg.StreamRetryFor, a.d.Logger, a.d.Counters)
	a.d.Tracker.add()
	go func() {
		defer a.d.Tracker.done()
		a.w.run()
	}()
	a.w.add(schema.CallStarted{
		CallID: s.ID, SIPCallID: s.SIPCallID, Caller: s.Caller.Key, CallerKind: s.Caller.Kind.String(),
		Presented: s.Presented, IdentityFrom: s.IdentityFrom, Callee: s.Callee,
		Source: s.Source, Transport: s.Transport, Mode: a.cfg.Mode, At: schema.UTC(s.Received),
	})
	req := caller.Admit{CallID: s.ID, Kind: s.Caller.Kind, Callee: s.Callee, Source: s.Source}
	if s.Caller.Anonymous() {
		req.Presented = s.Presented
	}
	system, self := ctx.ActorSystem(), ctx.Self()
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), a.cfg.DecideTimeout)
		defer cancel()
		start := time.Now()
		v, err := a.d.Callers.Admit(dctx, s.Caller.Key, req)
		system.Root.Send(self, verdictResult{v: v, err: err, took: time.Since(start)})
	}()
}

func (a *callActor) onVerdict(ctx actor.Context, m verdictResult) {
	if a.decided {
		return
	}
	a.decided = true
	now := a.d.Clock()
	dec := schema.CallDecided{CallID: a.setup.ID, Mode: a.cfg.Mode, At: schema.UTC(now)}
	if m.err != nil {
		// The grain could not record a verdict: fail open or closed as
		// configured. caller.ErrInvalid (a request the grain refuses) is
		// treated alike: the caller must not be punished for our bug.
		a.storeDown = true
		a.action = a.cfg.StoreDown
		if a.cfg.Mode == schema.Observe {
			a.action = schema.Pass // observe mode refuses nothing
		}
		dec.StoreDown, dec.Error, dec.Action = true, m.err.Error(), a.action
		a.d.Counters.StoreDown.Add(1)
		a.d.Observer.Undecided(m.took)
		a.log.Warn("no verdict; store-down policy applies", "policy", a.action, "err", m.err)
	} else {
		a.d.Observer.Decided(m.v.Verdict, m.took)
		a.verdict = m.v
		a.action = m.v.Verdict
		if a.cfg.Mode == schema.Observe {
			a.action = schema.Pass
			if m.v.Verdict != schema.Pass {
				a.d.Counters.Observed.Add(1)
			}
		}
		rev := m.v.Revision
		dec.Verdict, dec.Level, dec.Rule, dec.Reason, dec.Action, dec.CallerRevision =
			m.v.Verdict, m.v.Level, m.v.Rule, m.v.Reason, a.action, &rev
	}
	a.w.add(dec)
	if a.ended != nil {
		// The caller left while the grain decided. A challenge that never
		// started is still the grain's to hear about: the caller
		// abandoned it.
		if !a.storeDown && a.action == schema.Challenge {
			a.challengeEnded(schema.Abandoned, "caller-left")
		}
		a.record(ctx, *a.ended)
		return
	}
	switch a.action {
	case schema.Reject:
		a.d.Counters.Rejected.Add(1)
		a.phase = passing
		a.fx.Reject(Rejection{StoreDown: a.storeDown, Error: dec.Error, Rule: a.verdict.Rule, Level: a.verdict.Level, Reason: a.verdict.Reason})
	case schema.Challenge:
		code, err := DrawCode(a.d.Rand, a.cfg.CodeDigits)
		if err != nil {
			// Without randomness there is no challenge; hang up rather
			// than pass a caller the policy wanted checked.
			a.log.Error("cannot draw a code", "err", err)
			a.phase = passing
			a.fx.Hangup(Hangup{Cause: schema.EndError, Detail: "no code"})
			return
		}
		a.d.Counters.Challenged.Add(1)
		a.code, a.phase = code, challenging
		a.fx.Challenge(code)
	default:
		a.d.Counters.Passed.Add(1)
		a.phase = passing
		a.fx.Pass()
	}
}

func (a *callActor) onAnswered(ctx actor.Context, m Answered) {
	if !a.answeredAt.IsZero() {
		return
	}
	a.answeredAt = m.At
	a.w.add(schema.CallAnswered{CallID: a.setup.ID, By: m.By, At: schema.UTC(m.At)})
	if a.phase != challenging {
		return
	}
	// The window runs from the 200 OK: the carrier's grace interval starts
	// there, and the guard must hang up one second before it ends.
	left := m.At.Add(a.cfg.Window()).Sub(a.d.Clock())
	system, self := ctx.ActorSystem(), ctx.Self()
	a.stopTimer = a.d.AfterFunc(left, func() { system.Root.Send(self, deadline{}) })
}

func (a *callActor) onDigit(m Digit) {
	if a.phase != challenging || m.Key < '0' || m.Key > '9' {
		// Keys outside the window, and * # A-D, are not part of a code.
		return
	}
	a.typed = append(a.typed, m.Key)
	if !slices.Contains(a.methods, m.Method) {
		a.methods = append(a.methods, m.Method)
	}
	if len(a.typed) < len(a.code) {
		return
	}
	// One attempt only: a second try would double a guessing bot's odds.
	correct := codeMatches(a.code, string(a.typed))
	a.phase = judged
	a.w.add(schema.CodeEntered{CallID: a.setup.ID, Correct: correct, Digits: len(a.typed), Methods: a.methods, At: schema.UTC(m.At)})
	if correct {
		a.stop()
		a.challengeEnded(schema.Passed, "code-correct")
		a.fx.Bridge()
		return
	}
	a.challengeEnded(schema.Failed, "code-wrong")
	if a.answeredAt.IsZero() {
		// Wrong before the 200 OK (typed during the announcement): refuse
		// the call now, it need never be answered.
		a.fx.Hangup(Hangup{Cause: schema.EndChallengeFailed, Detail: "wrong code"})
		return
	}
	// Answered: the deadline timer hangs up, at the same moment as for a
	// caller who typed nothing, so a bot learns nothing from the timing.
}

func (a *callActor) onDeadline() {
	switch a.phase {
	case challenging:
		a.challengeEnded(schema.Failed, "no-code")
		a.phase = judged
		a.fx.Hangup(Hangup{Cause: schema.EndChallengeFailed, Detail: "no code"})
	case judged:
		if a.outcome == schema.Failed {
			a.fx.Hangup(Hangup{Cause: schema.EndChallengeFailed, Detail: "wrong code"})
		}
	}
}

func (a *callActor) onEnded(ctx actor.Context, m Ended) {
	if a.phase == over {
		return
	}
	if !a.decided {
		a.ended = &m
		return
	}
	if a.outcome == "" && a.code != "" {
		cause := "caller-left"
		if m.Cause == schema.EndMediaFailed {
			cause = "media-failed"
		}
		a.challengeEnded(schema.Abandoned, cause)
	}
	a.record(ctx, m)
}

// record writes CallEnded, closes the stream and stops the actor.
func (a *callActor) record(ctx actor.Context, m Ended) {
	a.stop()
	a.phase = over
	ev := schema.CallEnded{
		CallID: a.setup.ID, Cause: m.Cause, By: m.By, Status: m.Status,
		At: schema.UTC(m.At), GraceMs: a.cfg.Grace.Milliseconds(),
	}
	if !a.answeredAt.IsZero() {
		at := schema.UTC(a.answeredAt)
		ev.AnsweredAt = &at
		ev.Status = 0
		ev.DurationMs = max(0, m.At.Sub(a.answeredAt).Milliseconds())
		// The carrier bills an answered call that lasted the whole grace
		// interval or longer.
		ev.Billed = ev.DurationMs >= a.cfg.Grace.Milliseconds()
		a.d.Counters.Answered.Add(1)
	}
	if ev.Billed {
		a.d.Counters.Billed.Add(1)
	} else {
		a.d.Counters.Unbilled.Add(1)
	}
	a.w.add(ev)
	a.w.close()
	a.log.Debug("call ended", "cause", m.Cause, "by", m.By, "status", m.Status, "durationMs", ev.DurationMs, "billed", ev.Billed, "detail", m.Detail)
	ctx.Stop(ctx.Self())
}

func (a *callActor) stop() {
	if a.stopTimer != nil {
		a.stopTimer()
		a.stopTimer = nil
	}
}

// challengeEnded records the challenge's outcome and tells the grain, once.
func (a *callActor) challengeEnded(o schema.Outcome, cause string) {
	if a.outcome != "" {
		return
	}
	a.outcome = o
	if a.gauged {
		a.d.Observer.ChallengeEnded()
	}
	switch o {
	case schema.Passed:
		a.d.Counters.ChallengesPassed.Add(1)
	case schema.Failed:
		a.d.Counters.ChallengesFailed.Add(1)
	default:
		a.d.Counters.ChallengesAbandoned.Add(1)
	}
	a.w.add(schema.ChallengeEnded{CallID: a.setup.ID, Outcome: o, Cause: cause, At: schema.UTC(a.d.Clock())})
	if a.storeDown {
		return // the grain never recorded this call
	}
	a.d.Tracker.add()
	go a.reportOutcome(o)
}

// reportOutcome tells the grain how the challenge ended, retrying while
// the grain or the store is down: the outcome event's ID is derived from
// the call, so a retry the grain already applied writes nothing.
func (a *callActor) reportOutcome(o schema.Outcome) {
	defer a.d.Tracker.done()
	key := a.setup.Caller.Key
	req := caller.Outcome{CallID: a.setup.ID, Outcome: o}
	giveUp := time.Now().Add(a.cfg.OutcomeRetryFor)
	pause := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DecideTimeout)
		_, err := a.d.Callers.Outcome(ctx, key, req)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, caller.ErrInvalid) || time.Now().After(giveUp) {
			a.d.Counters.OutcomesFailed.Add(1)
			a.log.Error("challenge outcome not recorded", "outcome", o, "err", err)
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Second)
	}
}
