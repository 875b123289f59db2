// Package reports is what managers read about the line: per day and per
// called (toll-free) number, the calls that came in and what became of
// them, the calls that cost nothing, the calls the PBX did not answer,
// the money the guard saved, the callers that called or were blocked
// most, and the calls per hour of day.
//
// # Sources
//
// The caller streams are always there: CallReceived (a call, its callee
// and its verdict) and ChallengeOutcome give the calls in, the verdicts
// and the challenge outcomes; BlockApplied the blocks per caller. The
// call streams (events/schema/calls.go) add what happened on the wire:
// whether the call was answered, by the PBX or by the guard, how long it
// lasted and whether the carrier bills it. A CallReceived of the current
// shape (with Action) also opens the call, as CallStarted and CallDecided
// did in logs written before, and a reject carried out ends there: no
// call stream follows it (Arrived). Both shapes give the same figures.
// The current shape relies on the log's order: a call's stream is
// appended only once its CallReceived is durable, so the fold meets the
// CallReceived first.
// Figures that need the call streams (unbilled, offered, connected,
// unanswered, billed minutes) are 0 in a log without them, and Tracked
// says how many calls they cover; the verdict figures never need them.
// A call the guard could not decide (the store was down, or the node too
// busy) has a call stream but no CallReceived: it counts as a call in, and
// as StoreDown or Busy.
//
// # Days
//
// Every call counts on the day, and in the hour, its decision (or, for a
// store-down call, its arrival) fell in the configured time zone, and so
// do its challenge outcome and its end, however much later they come.
//
// # Observe mode
//
// The verdict figures (Passed, Challenged, Rejected) count what the guard
// did with each call (CallReceived.Action), not what the policy decided:
// in observe mode (schema.Observe) every call is passed, whatever its
// verdict, and WouldChallenge and WouldReject count the verdicts observe
// mode did not carry out. Those calls went to the PBX like any other, so
// they count in Offered, Connected, billed minutes, and never in the
// money saved; what they cost is kept apart (WouldRejectBilled...,
// WouldChallengeBilled...), which is what enforcing would change: the
// billed minutes of the would-be rejected calls are what enforcing would
// have saved, and those of the would-be challenged calls what it would
// have saved had their callers failed the challenge. A CallReceived
// written before Mode and Action existed reads as enforced.
//
// # Money saved
//
// The estimate, per row: every rejected call and every failed challenge
// would, without the guard, have reached the PBX and cost what an
// answered call costs on average, so
//
//	saved minutes = (Rejected + ChallengesFailed) × minutes per call
//	              − minutes billed for those calls anyway
//	saved         = saved minutes × tariff per minute
//
// where minutes per call is the average billed length of the row's calls
// connected to the PBX (per started minute, or per second with
// Config.Billing "second"), or Config.AssumedMinutes when the row has
// none to average (no call streams, or no connected call that day).
// Abandoned challenges are left out: a caller who hung up on the
// announcement may have been a person. It is an estimate: a blocked
// dialler would often have hung up sooner, or called on and on.
//
// # Read model
//
// Fold functions are pure (Counters and one event in, Counters out); the
// projection stores raw counts and minutes only, so the tariff and the
// billing rule apply at query time and can change without a rebuild.
// The time zone is part of the projection's version: changing it
// rebuilds the reports.
package reports

import (
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Counters are the raw figures of one day and callee.
type Counters struct {
	// CallsIn counts calls decided (CallReceived) plus calls the store
	// could not decide (StoreDown) and calls the node was too busy to
	// decide (Busy).
	CallsIn int
	// What the guard did with the decided calls (the action: the verdict
	// when enforcing, pass in observe mode).
	Passed     int
	Challenged int
	Rejected   int
	// ChallengedByAttack counts the challenged calls whose rule was the
	// line's under-attack mode (schema.RuleAttack), in Challenged too.
	ChallengedByAttack int
	// WouldChallenge and WouldReject count the calls observe mode passed
	// whose verdict was challenge or reject (counted in Passed too).
	WouldChallenge int
	WouldReject    int
	// Outcomes of the challenges.
	ChallengesPassed    int
	ChallengesFailed    int
	ChallengesAbandoned int
	// StoreDown counts calls with no verdict (the store-down policy
	// handled them).
	StoreDown int
	// Busy counts calls answered 503 because the node was overloaded
	// (no verdict, never the store-down policy).
	Busy int

	// From the call streams, counted when the call ends.

	// Tracked counts calls whose end was recorded.
	Tracked int
	// Unbilled counts ended calls the carrier does not bill (never
	// answered, or ended within the grace interval); AnsweredUnbilled
	// those among them that were answered (mostly challenges).
	Unbilled         int
	AnsweredUnbilled int
	// Offered counts calls sent to the PBX (passed, or passed their
	// challenge); Connected those the PBX answered; Unanswered the rest
	// (no answer, busy, unreachable, or the caller gave up waiting).
	Offered    int
	Connected  int
	Unanswered int
	// ConnectedBilled counts connected calls the carrier bills, and
	// ConnectedMs / ConnectedMinutes their length (exact, and in started
	// minutes).
	ConnectedBilled  int
	ConnectedMs      int64
	ConnectedMinutes int64
	// BilledCalls counts every billed call, BilledMs and BilledMinutes
	// their length.
	BilledCalls   int
	BilledMs      int64
	BilledMinutes int64
	// BlockedBilledMs and BlockedBilledMinutes are what rejected and
	// failed-challenge calls were billed anyway (should be 0: a challenge
	// ends within the grace interval).
	BlockedBilledMs      int64
	BlockedBilledMinutes int64
	// WouldRejectBilled... and WouldChallengeBilled... are the billed
	// calls among WouldReject and WouldChallenge, and their length: what
	// those calls cost because the guard only observed them.
	WouldRejectBilledCalls      int
	WouldRejectBilledMs         int64
	WouldRejectBilledMinutes    int64
	WouldChallengeBilledCalls   int
	WouldChallengeBilledMs      int64
	WouldChallengeBilledMinutes int64

	// Hours counts CallsIn by hour of day.
	Hours [24]int
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.CallsIn += o.CallsIn
	c.Passed += o.Passed
	c.Challenged += o.Challenged
	c.ChallengedByAttack += o.ChallengedByAttack
	c.Rejected += o.Rejected
	c.ChallengesPassed += o.ChallengesPassed
	c.ChallengesFailed += o.ChallengesFailed
	c.ChallengesAbandoned += o.ChallengesAbandoned
	c.StoreDown += o.StoreDown
	c.Busy += o.Busy
	c.Tracked += o.Tracked
	c.Unbilled += o.Unbilled
	c.AnsweredUnbilled += o.AnsweredUnbilled
	c.Offered += o.Offered
	c.Connected += o.Connected
	c.Unanswered += o.Unanswered
	c.ConnectedBilled += o.ConnectedBilled
	c.ConnectedMs += o.ConnectedMs
	c.ConnectedMinutes += o.ConnectedMinutes
	c.BilledCalls += o.BilledCalls
	c.BilledMs += o.BilledMs
	c.BilledMinutes += o.BilledMinutes
	c.BlockedBilledMs += o.BlockedBilledMs
	c.BlockedBilledMinutes += o.BlockedBilledMinutes
	c.WouldChallenge += o.WouldChallenge
	c.WouldReject += o.WouldReject
	c.WouldRejectBilledCalls += o.WouldRejectBilledCalls
	c.WouldRejectBilledMs += o.WouldRejectBilledMs
	c.WouldRejectBilledMinutes += o.WouldRejectBilledMinutes
	c.WouldChallengeBilledCalls += o.WouldChallengeBilledCalls
	c.WouldChallengeBilledMs += o.WouldChallengeBilledMs
	c.WouldChallengeBilledMinutes += o.WouldChallengeBilledMinutes
	for h := range c.Hours {
		c.Hours[h] += o.Hours[h]
	}
}

// CallerCounters are one caller's figures of one day, for the top lists.
type CallerCounters struct {
	Calls int
	// Passed, Challenged and Rejected count what the guard did (see
	// Counters); Observed the calls observe mode passed whose verdict was
	// challenge or reject.
	Passed     int
	Challenged int
	Rejected   int
	Observed   int
	Failed     int
	// Blocks counts the blocks applied to the caller that day.
	Blocks int
}

// Add adds o to c.
func (c *CallerCounters) Add(o CallerCounters) {
	c.Calls += o.Calls
	c.Passed += o.Passed
	c.Challenged += o.Challenged
	c.Rejected += o.Rejected
	c.Observed += o.Observed
	c.Failed += o.Failed
	c.Blocks += o.Blocks
}

// Call is what the reports remember of a call between its first event
// and its last: where it counts (Day, Hour, Callee) and what happened to
// it so far.
type Call struct {
	Day    string
	Hour   int
	Callee string
	// Caller is the caller key of a call stream's call.
	Caller string
	// From the call stream.
	Action    schema.Verdict
	Verdict   schema.Verdict
	Outcome   schema.Outcome
	Offered   bool
	Connected bool
}

// Acted is what the guard did with the call of e: its Action, or for an
// event written before Action existed, its verdict (those guards'
// observe mode is not told apart: they read as enforced).
func Acted(e schema.CallReceived) schema.Verdict {
	if e.Action != "" {
		return e.Action
	}
	return e.Verdict
}

// Received folds a decided call into its day's counters (c) and its
// caller's (cc): by what the guard did with it, and, when observe mode
// passed a call the verdict would have challenged or rejected, as such.
func Received(c Counters, cc CallerCounters, e schema.CallReceived, hour int) (Counters, CallerCounters) {
	c.CallsIn++
	c.Hours[hour]++
	cc.Calls++
	switch Acted(e) {
	case schema.Pass:
		c.Passed++
		cc.Passed++
	case schema.Challenge:
		c.Challenged++
		cc.Challenged++
		if e.Rule == schema.RuleAttack {
			c.ChallengedByAttack++
		}
	case schema.Reject:
		c.Rejected++
		cc.Rejected++
	}
	if Acted(e) == schema.Pass {
		switch e.Verdict {
		case schema.Challenge:
			c.WouldChallenge++
			cc.Observed++
		case schema.Reject:
			c.WouldReject++
			cc.Observed++
		}
	}
	return c, cc
}

// Arrived folds a CallReceived of the current shape (e.Recorded) as the
// start of its call, what CallStarted and CallDecided were to a call
// stream before: the call's verdict and action, and whether it was sent to
// the PBX. A reject carried out (e.Complete) has no call stream: it ends
// here, never answered, unbilled, and is counted as ended. An event of
// the old shape changes nothing; its call stream says it.
func Arrived(c Counters, call Call, e schema.CallReceived) (Call, Counters) {
	if !e.Recorded() {
		return call, c
	}
	call.Action, call.Verdict = e.Action, e.Verdict
	if e.Action == schema.Pass {
		call.Offered = true
	}
	if e.Complete() {
		c = Ended(c, call, schema.CallEnded{Cause: schema.EndRejected, By: schema.PartyGuard})
	}
	return call, c
}

// Outcome folds a challenge's outcome into the counters of its call's day
// and of its caller's.
func Outcome(c Counters, cc CallerCounters, o schema.Outcome) (Counters, CallerCounters) {
	switch o {
	case schema.Passed:
		c.ChallengesPassed++
	case schema.Failed:
		c.ChallengesFailed++
		cc.Failed++
	case schema.Abandoned:
		c.ChallengesAbandoned++
	}
	return c, cc
}

// Decided folds a call stream's CallDecided into the call, and into its
// day's counters when the store could not decide it or the node was too
// busy to (such a call has no CallReceived to count it).
func Decided(c Counters, call Call, e schema.CallDecided) (Counters, Call) {
	call.Action, call.Verdict = e.Action, e.Verdict
	if e.Action == schema.Pass {
		call.Offered = true
	}
	switch {
	case e.StoreDown:
		c.CallsIn++
		c.StoreDown++
		c.Hours[call.Hour]++
	case e.Busy:
		c.CallsIn++
		c.Busy++
		c.Hours[call.Hour]++
	}
	return c, call
}

// ChallengeEnded folds the end of a call's challenge into the call: a
// passed challenge sends the call on to the PBX.
func ChallengeEnded(call Call, e schema.ChallengeEnded) Call {
	call.Outcome = e.Outcome
	if e.Outcome == schema.Passed {
		call.Offered = true
	}
	return call
}

// Answered folds CallAnswered and CallBridged: the PBX answering the
// call (directly, or after a passed challenge) connects it.
func Answered(call Call, by schema.Party) Call {
	if by == schema.PartyPBX {
		call.Connected = true
	}
	return call
}

// Ended folds the end of a call into its day's counters.
func Ended(c Counters, call Call, e schema.CallEnded) Counters {
	c.Tracked++
	answered := e.AnsweredAt != nil
	if !e.Billed {
		c.Unbilled++
		if answered {
			c.AnsweredUnbilled++
		}
	}
	if call.Offered {
		c.Offered++
		if call.Connected {
			c.Connected++
		} else {
			c.Unanswered++
		}
	}
	if e.Billed {
		ms, minutes := e.DurationMs, startedMinutes(e.DurationMs)
		c.BilledCalls++
		c.BilledMs += ms
		c.BilledMinutes += minutes
		if call.Connected {
			c.ConnectedBilled++
			c.ConnectedMs += ms
			c.ConnectedMinutes += minutes
		}
		if call.Action == schema.Reject || call.Outcome == schema.Failed {
			c.BlockedBilledMs += ms
			c.BlockedBilledMinutes += minutes
		}
		if call.Action == schema.Pass {
			switch call.Verdict {
			case schema.Reject:
				c.WouldRejectBilledCalls++
				c.WouldRejectBilledMs += ms
				c.WouldRejectBilledMinutes += minutes
			case schema.Challenge:
				c.WouldChallengeBilledCalls++
				c.WouldChallengeBilledMs += ms
				c.WouldChallengeBilledMinutes += minutes
			}
		}
	}
	return c
}

// startedMinutes is a call's length in started minutes: how per-minute
// tariffs bill it.
func startedMinutes(ms int64) int64 {
	if ms <= 0 {
		return 0
	}
	return (ms + int64(time.Minute/time.Millisecond) - 1) / int64(time.Minute/time.Millisecond)
}
