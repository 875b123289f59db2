package call

import (
	"errors"
	"slices"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/schema"
)

// The call's rules, as a pure state machine: a fact and the time it is
// handled go in; the events to record and the orders to carry out come
// out. The machine reads no clock, starts no goroutine and does no I/O;
// the actor (actor.go) feeds it and executes what it returns. Its scripts
// are in testdata/*.txt (see machine_test.go).
//
// The rules, in the order a call meets them:
//
//  1. The grain is asked, with all the call's record needs: the grain's
//     CallReceived records the call's arrival, the verdict and the action
//     (events/schema/calls.go, "What a call writes").
//  2. The decision is the grain's to record. Observe mode acts on every
//     verdict by passing. No verdict because the node is busy
//     (caller.ErrBusy: its bound on decisions in flight is reached, or the
//     grain answered late while the store was healthy) rejects with an
//     overload answer, in observe mode too: overload never turns into
//     passing everything. No verdict for any other reason (the grain or
//     the store failed) takes the store-down policy: pass (fail open) or
//     reject (fail closed); observe mode still passes. Without a verdict
//     the call stream records the arrival and the decision (CallStarted,
//     CallDecided): no CallReceived holds them.
//  2a. A reject carried out is recorded by CallReceived alone: the call
//     stream is not written at all, its end only noted.
//  3. A caller who left before the verdict is recorded as gone once the
//     verdict is in, so that the stream reads in order; a challenge decided
//     for them is abandoned, and the grain is told.
//  4. A challenge plays the code in early media and answers the call; the
//     deadline is the carrier's grace interval minus one second after the
//     200 OK, so a caller who never types costs nothing.
//  5. One attempt only: the code is judged once as many keys as it has
//     digits are in; a second try would double a guessing bot's odds. Keys
//     other than 0-9 are not part of a code.
//  6. Right: the timer stops and the call is bridged to the PBX. Wrong,
//     typed during the announcement: the call is refused at once, it need
//     never be answered. Wrong after the 200 OK: the hang-up waits for the
//     deadline, the same moment as for a caller who typed nothing, so a bot
//     learns nothing from the timing.
//  7. The grain hears how every challenge it decided ended (passed,
//     failed, abandoned), once; never for a call it did not record.
//  8. The end is recorded with the answered duration; the carrier bills an
//     answered call that lasted the whole grace interval or longer.

// fact is something that happened to the call: a message from the SIP
// side, the grain's answer, or the deadline.
type fact interface{ isFact() }

// admitted is the grain's answer to Admit. code is the challenge code the
// shell drew for a challenge verdict ("" when the draw failed or none was
// needed): the machine stays deterministic by never drawing it itself.
type admitted struct {
	v    caller.Verdict
	err  error
	code string
}

// deadlineReached is the challenge timer firing.
type deadlineReached struct{}

func (admitted) isFact()        {}
func (deadlineReached) isFact() {}
func (EarlyMedia) isFact()      {}
func (Answered) isFact()        {}
func (Digit) isFact()           {}
func (PBXAnswered) isFact()     {}
func (Ended) isFact()           {}

// output is what the machine asks of its shell, in the order given.
type output interface{ isOutput() }

type (
	// recordEvent appends an event to the call stream. The shell writes
	// the stream once, at finish.
	recordEvent struct{ ev schema.Payload }
	// noteEvent is an event of the call's record that the call stream
	// does not hold, since the grain's CallReceived says it: the shell
	// counts it and writes nothing.
	noteEvent struct{ ev schema.Payload }
	// askGrain sends Admit to the caller's grain; the answer comes back
	// as admitted.
	askGrain struct{ req caller.Admit }
	// The orders for the SIP session, one per Effects method.
	orderReject    struct{ r Rejection }
	orderPass      struct{}
	orderChallenge struct{ code string }
	orderBridge    struct{}
	orderHangup    struct{ h Hangup }
	// armTimer asks for deadlineReached at the given time.
	armTimer struct{ at time.Time }
	// stopTimer disarms the timer; deadlineReached may still arrive if it
	// had fired already, and is then ignored.
	stopTimer struct{}
	// tellOutcome reports the challenge's outcome to the grain.
	tellOutcome struct{ outcome schema.Outcome }
	// finish closes the call stream and stops the actor: the call is over.
	// detail is the SIP side's note on the end, for the log.
	finish struct{ detail string }
)

func (recordEvent) isOutput()    {}
func (noteEvent) isOutput()      {}
func (askGrain) isOutput()       {}
func (orderReject) isOutput()    {}
func (orderPass) isOutput()      {}
func (orderChallenge) isOutput() {}
func (orderBridge) isOutput()    {}
func (orderHangup) isOutput()    {}
func (armTimer) isOutput()       {}
func (stopTimer) isOutput()      {}
func (tellOutcome) isOutput()    {}
func (finish) isOutput()         {}

// phase is where a call is in its life.
type phase uint8

const (
	deciding    phase = iota // waiting for the grain
	passing                  // on the pass path (or rejected, waiting for Ended)
	challenging              // announcing the code or waiting for it
	judged                   // the attempt was judged: bridging or hanging up
	over                     // Ended received and recorded
)

// machine is the state of one call. It is not safe for concurrent use:
// the call actor owns it and steps it from Receive only.
type machine struct {
	cfg   Config
	setup Setup
	phase phase

	decided   bool
	verdict   caller.Verdict
	storeDown bool
	busy      bool // no verdict: the node was busy
	action    schema.Verdict

	code       string
	typed      []rune
	methods    []string
	outcome    schema.Outcome // set once the grain was told
	answeredAt time.Time
	timerArmed bool

	// Each event type is recorded at most once: a call stream's event IDs
	// are derived from the call and the type.
	mediaRecorded, bridgeRecorded bool

	// complete is set when the grain's CallReceived is the call's whole
	// record (a reject carried out): nothing goes to the call stream.
	complete bool

	// ended holds an Ended that came before the verdict: it is recorded
	// once the decision is, so that the stream reads in order.
	ended *Ended
}

func newMachine(cfg Config, setup Setup) *machine {
	return &machine{cfg: cfg, setup: setup}
}

// isOver reports whether the call ended and was recorded.
func (m *machine) isOver() bool { return m.phase == over }

// start asks the grain for a verdict; the grain records the call.
func (m *machine) start() []output {
	s := m.setup
	req := caller.Admit{
		CallID: s.ID, Kind: s.Caller.Kind, Callee: s.Callee, Source: s.Source,
		SIPCallID: s.SIPCallID, Identity: s.Presented, IdentityFrom: s.IdentityFrom, Transport: s.Transport, Mode: m.cfg.Mode,
		ChallengeFallback: s.ChallengeFallback,
	}
	if s.Caller.Anonymous() {
		// The grain of an anonymous caller is shared by every withheld
		// number; what was presented is all it can tell them apart by.
		req.Presented = s.Presented
	}
	return []output{askGrain{req}}
}

// started is the call's arrival, for a call stream that must say it
// itself: no CallReceived does.
func (m *machine) started() schema.CallStarted {
	s := m.setup
	return schema.CallStarted{
		CallID: s.ID, SIPCallID: s.SIPCallID, Caller: s.Caller.Key, CallerKind: s.Caller.Kind.String(),
		Presented: s.Presented, IdentityFrom: s.IdentityFrom, Callee: s.Callee,
		Source: s.Source, Transport: s.Transport, Mode: m.cfg.Mode, At: schema.UTC(s.Received),
	}
}

// decision records dec: only noted when the grain recorded the call
// (dec.CallerRevision set), else written to the call stream after the
// call's arrival. A reject carried out is then the call's whole record.
func (m *machine) decision(dec schema.CallDecided) []output {
	if dec.CallerRevision == nil {
		return []output{recordEvent{m.started()}, recordEvent{dec}}
	}
	m.complete = m.action == schema.Reject
	return []output{noteEvent{dec}}
}

// step applies one fact handled at now and returns what to do about it.
func (m *machine) step(f fact, now time.Time) []output {
	if m.phase == over {
		return nil // the stream is closed; late facts change nothing
	}
	switch f := f.(type) {
	case admitted:
		return m.onVerdict(f, now)
	case EarlyMedia:
		if m.phase != challenging || m.mediaRecorded {
			return nil
		}
		m.mediaRecorded = true
		return []output{recordEvent{schema.ChallengeStarted{
			CallID: m.setup.ID, Digits: len(m.code), Codec: f.Codec, TelephoneEvent: f.TelephoneEvent, At: schema.UTC(f.At),
		}}}
	case Answered:
		return m.onAnswered(f)
	case Digit:
		return m.onDigit(f, now)
	case deadlineReached:
		return m.onDeadline(now)
	case PBXAnswered:
		if m.bridgeRecorded {
			return nil
		}
		m.bridgeRecorded = true
		return []output{recordEvent{schema.CallBridged{CallID: m.setup.ID, At: schema.UTC(f.At)}}}
	case Ended:
		return m.onEnded(f, now)
	}
	return nil
}

func (m *machine) onVerdict(f admitted, now time.Time) []output {
	if m.decided {
		return nil
	}
	m.decided = true
	dec := schema.CallDecided{CallID: m.setup.ID, Mode: m.cfg.Mode, At: schema.UTC(now)}
	switch {
	case errors.Is(f.err, caller.ErrBusy):
		// The node is saturated (caller.Client.classify says how it
		// tells that from a store that is down). Passing would feed the
		// flood to the PBX, and store-down's fail-open would turn overload
		// into "pass everything": the caller is told to retry later.
		// Nothing was recorded for this call by the grain, as with
		// store-down, so it is told nothing.
		m.busy = true
		m.action = schema.Reject
		dec.Busy, dec.Error, dec.Action = true, f.err.Error(), m.action
	case f.err != nil:
		// The grain could not record a verdict: fail open or closed as
		// configured. caller.ErrInvalid (a request the grain refuses) is
		// treated alike: the caller must not be punished for our bug.
		m.storeDown = true
		m.action = m.cfg.StoreDown
		if m.cfg.Mode == schema.Observe {
			m.action = schema.Pass // observe mode refuses nothing
		}
		dec.StoreDown, dec.Error, dec.Action = true, f.err.Error(), m.action
	default:
		m.verdict = f.v
		// As the grain recorded it: observe mode passes every call, and a
		// challenge that cannot be carried out is passed by the fallback.
		m.action, dec.ActionReason = schema.ActionWith(m.cfg.Mode, f.v.Verdict, m.setup.ChallengeFallback)
		rev := f.v.Revision
		dec.Verdict, dec.Level, dec.Rule, dec.Reason, dec.Action, dec.CallerRevision =
			f.v.Verdict, f.v.Level, f.v.Rule, f.v.Reason, m.action, &rev
	}
	out := m.decision(dec)
	if m.ended != nil {
		// The caller left while the grain decided. A challenge that never
		// started is still the grain's to hear about: the caller
		// abandoned it.
		if m.recorded() && m.action == schema.Challenge {
			out = m.challengeEnded(out, schema.Abandoned, "caller-left", now)
		}
		return m.end(out, *m.ended)
	}
	switch m.action {
	case schema.Reject:
		m.phase = passing
		return append(out, orderReject{Rejection{
			StoreDown: m.storeDown, Busy: m.busy, Error: dec.Error, Rule: m.verdict.Rule, Level: m.verdict.Level, Reason: m.verdict.Reason,
		}})
	case schema.Challenge:
		if f.code == "" {
			// Without a code there is no challenge; hang up rather than
			// pass a caller the policy wanted checked.
			m.phase = passing
			return append(out, orderHangup{Hangup{Cause: schema.EndError, Detail: "no code"}})
		}
		m.code, m.phase = f.code, challenging
		return append(out, orderChallenge{f.code})
	default:
		m.phase = passing
		return append(out, orderPass{})
	}
}

func (m *machine) onAnswered(f Answered) []output {
	if !m.answeredAt.IsZero() {
		return nil
	}
	m.answeredAt = f.At
	out := []output{recordEvent{schema.CallAnswered{CallID: m.setup.ID, By: f.By, At: schema.UTC(f.At)}}}
	if m.phase != challenging {
		return out
	}
	// The window runs from the 200 OK: the carrier's grace interval starts
	// there, and the guard must hang up one second before it ends.
	m.timerArmed = true
	return append(out, armTimer{f.At.Add(m.cfg.Window())})
}

func (m *machine) onDigit(f Digit, now time.Time) []output {
	if m.phase != challenging || f.Key < '0' || f.Key > '9' {
		// Keys outside the window, and * # A-D, are not part of a code.
		return nil
	}
	m.typed = append(m.typed, f.Key)
	if !slices.Contains(m.methods, f.Method) {
		m.methods = append(m.methods, f.Method)
	}
	if len(m.typed) < len(m.code) {
		return nil
	}
	// One attempt only: a second try would double a guessing bot's odds.
	correct := codeMatches(m.code, string(m.typed))
	m.phase = judged
	out := []output{recordEvent{schema.CodeEntered{
		CallID: m.setup.ID, Correct: correct, Digits: len(m.typed), Methods: slices.Clone(m.methods), At: schema.UTC(f.At),
	}}}
	if correct {
		out = m.stopTimer(out)
		out = m.challengeEnded(out, schema.Passed, "code-correct", now)
		return append(out, orderBridge{})
	}
	out = m.challengeEnded(out, schema.Failed, "code-wrong", now)
	if m.answeredAt.IsZero() {
		// Wrong before the 200 OK (typed during the announcement): refuse
		// the call now, it need never be answered.
		return append(out, orderHangup{Hangup{Cause: schema.EndChallengeFailed, Detail: "wrong code"}})
	}
	// Answered: the deadline hangs up, at the same moment as for a caller
	// who typed nothing, so a bot learns nothing from the timing.
	return out
}

func (m *machine) onDeadline(now time.Time) []output {
	m.timerArmed = false
	switch m.phase {
	case challenging:
		m.phase = judged
		out := m.challengeEnded(nil, schema.Failed, "no-code", now)
		return append(out, orderHangup{Hangup{Cause: schema.EndChallengeFailed, Detail: "no code"}})
	case judged:
		if m.outcome == schema.Failed {
			return []output{orderHangup{Hangup{Cause: schema.EndChallengeFailed, Detail: "wrong code"}}}
		}
	}
	return nil
}

func (m *machine) onEnded(f Ended, now time.Time) []output {
	if !m.decided {
		if m.ended == nil {
			m.ended = &f
		}
		return nil
	}
	var out []output
	if m.outcome == "" && m.code != "" {
		cause := "caller-left"
		if f.Cause == schema.EndMediaFailed {
			cause = "media-failed"
		}
		out = m.challengeEnded(out, schema.Abandoned, cause, now)
	}
	return m.end(out, f)
}

// end records CallEnded and finishes the call.
func (m *machine) end(out []output, f Ended) []output {
	out = m.stopTimer(out)
	m.phase = over
	ev := schema.CallEnded{
		CallID: m.setup.ID, Cause: f.Cause, By: f.By, Status: f.Status,
		At: schema.UTC(f.At), GraceMs: m.cfg.Grace.Milliseconds(),
	}
	if !m.answeredAt.IsZero() {
		at := schema.UTC(m.answeredAt)
		ev.AnsweredAt = &at
		ev.Status = 0
		ev.DurationMs = max(0, f.At.Sub(m.answeredAt).Milliseconds())
		// The carrier bills an answered call that lasted the whole grace
		// interval or longer.
		ev.Billed = ev.DurationMs >= m.cfg.Grace.Milliseconds()
	}
	if m.complete {
		return append(out, noteEvent{ev}, finish{detail: f.Detail})
	}
	return append(out, recordEvent{ev}, finish{detail: f.Detail})
}

func (m *machine) stopTimer(out []output) []output {
	if !m.timerArmed {
		return out
	}
	m.timerArmed = false
	return append(out, stopTimer{})
}

// challengeEnded records the challenge's outcome and tells the grain, once.
func (m *machine) challengeEnded(out []output, o schema.Outcome, cause string, now time.Time) []output {
	if m.outcome != "" {
		return out
	}
	m.outcome = o
	out = append(out, recordEvent{schema.ChallengeEnded{CallID: m.setup.ID, Outcome: o, Cause: cause, At: schema.UTC(now)}})
	if !m.recorded() {
		return out // the grain never recorded this call
	}
	return append(out, tellOutcome{o})
}

// recorded reports whether the grain recorded the call (it gave a
// verdict).
func (m *machine) recorded() bool { return !m.storeDown && !m.busy }
