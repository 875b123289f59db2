package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Status is a caller's standing at a moment, for the admin API and
// reports. It is computed, never stored.
type Status struct {
	// Block in force at the moment (Level 0: none). Until is zero for a
	// block without expiry.
	Level int              `json:"level"`
	Kind  schema.BlockKind `json:"kind,omitempty"`
	Rule  schema.Rule      `json:"rule,omitempty"`
	Since time.Time        `json:"since,omitzero"`
	Until time.Time        `json:"until,omitzero"`
	// Whitelisted, with the entry's expiry (zero for none).
	Whitelisted    bool      `json:"whitelisted,omitempty"`
	WhitelistUntil time.Time `json:"whitelistUntil,omitzero"`
	// VerifiedUntil is zero unless a passed challenge still counts.
	VerifiedUntil time.Time `json:"verifiedUntil,omitzero"`
	// Hour and Day are the calls in the windows ending at the moment; a
	// call at that moment would make them one more.
	Hour int `json:"hour"`
	Day  int `json:"day"`
	// FailedChallenges counts the failures of the last day that escalation
	// would count (none for the anonymous key, which is not escalated).
	FailedChallenges int `json:"failedChallenges"`
	// Next is the verdict a call at the moment would get, and NextRule
	// what would decide it.
	Next     schema.Verdict `json:"next"`
	NextRule schema.Rule    `json:"nextRule,omitempty"`
	// Ranges are the range rules in force that match the caller, as
	// StatusWith was given them.
	Ranges []schema.RangeMatch `json:"ranges,omitempty"`
}

// Status returns the standing of caller key in state st at now, with
// expiries due by then taken into account. It does not change st.
func (p *Policy) Status(st *State, key string, now time.Time) Status {
	return p.StatusWith(st, key, now, nil)
}

// StatusWith is Status for a caller the range rules ranges match: Next is
// what a call would get with them.
func (p *Policy) StatusWith(st *State, key string, now time.Time, ranges []schema.RangeMatch) Status {
	at := max(unix(now), st.Last)
	v := p.view(st)
	p.expiries(&v, key, at)
	s := Status{
		Level: v.level, Kind: v.kind, Rule: v.rule,
		Whitelisted: v.whitelisted,
		Hour:        st.count(at - int64(Hour)), Day: st.count(at - int64(Day)),
	}
	if v.level > 0 {
		s.Since = tm(v.since)
		if v.until != 0 {
			s.Until = tm(v.until)
		}
	}
	if v.whitelisted && v.wlUntil != 0 {
		s.WhitelistUntil = tm(v.wlUntil)
	}
	if v.verifiedUntil > at {
		s.VerifiedUntil = tm(v.verifiedUntil)
	}
	for _, f := range st.Failures {
		if key != phone.AnonymousKey && f.At > at-int64(Day) && (!f.Abandoned || p.cfg.CountAbandoned) {
			s.FailedChallenges++
		}
	}
	number := phone.Number{Key: key}
	if key == phone.AnonymousKey {
		number.Kind = phone.KindAnonymous
	}
	if d, err := p.Decide(st, Call{ID: "status-probe", Caller: number, Ranges: ranges}, tm(at)); err == nil {
		s.Next, s.NextRule = d.Verdict, d.Rule
		for _, r := range d.Records {
			if e, ok := r.Payload.(schema.CallReceived); ok {
				s.Ranges = e.Ranges
			}
		}
	}
	return s
}

// ReplayResult is what re-deciding a caller's stream under p gave.
type ReplayResult struct {
	// State is the caller's state at the end of the replay.
	State State
	// Calls is the number of calls re-decided; Changed of them got another
	// verdict or level than the one recorded.
	Calls, Changed int
	// Changes lists the calls decided differently, in stream order.
	Changes []Change
	// Unresolved counts calls challenged only under p: the stream has no
	// outcome for them, so the replay cannot tell how they would have
	// ended and records no outcome for them.
	Unresolved int
	// Skipped counts events the policy does not fold.
	Skipped int
}

// Change is a call decided differently on replay.
type Change struct {
	CallID             string
	At                 time.Time
	Was, Now           schema.Verdict
	WasLevel, NowLevel int
	NowRule            schema.Rule
}

// Replay re-decides the stream of caller key, given as its payloads in
// stream order, under p's settings. Recorded calls are decided again with
// Decide at their recorded time; recorded challenge outcomes are applied
// to the calls p also challenges; admin commands (whitelist, manual block,
// unblock) are applied as they were given. What the rules produced — their
// blocks and expiries — is not read from the stream but produced again, so
// the result is what the stream would be had p been in force. Replay is
// pure: it reads evs and writes nothing.
func (p *Policy) Replay(key string, evs []schema.Payload) (ReplayResult, error) {
	return p.ReplayWith(key, evs, nil)
}

// ReplayWith is Replay with hypothetical range rules tried beside the ones
// each call recorded, as if they had been in force all along (Since is
// ignored; Until is not): what enforcing them would change, before they
// are. The most specific rule of each list applies, as in Decide.
func (p *Policy) ReplayWith(key string, evs []schema.Payload, try []schema.RangeMatch) (ReplayResult, error) {
	return p.ReplayTry(key, evs, Try{Ranges: try})
}

// Try is what a replay tries beside what each call recorded.
type Try struct {
	// Ranges are hypothetical range rules (see ReplayWith).
	Ranges []schema.RangeMatch
	// Overrides are hypothetical per-line settings and schedules, applied
	// after the ones a call recorded (so they win) when they are for the
	// call's line (Line empty: every line) and in force at the call's
	// time (a schedule's window is evaluated at the call's time).
	Overrides []schema.Override
}

// ReplayTry is Replay with try's rules tried as if in force all along.
func (p *Policy) ReplayTry(key string, evs []schema.Payload, try Try) (ReplayResult, error) {
	var r ReplayResult
	st := &r.State
	challenged := map[string]bool{} // calls p challenged whose outcome is still to come
	fold := func(recs []schema.Record) error {
		if err := p.applyRecords(st, recs); err != nil {
			return fmt.Errorf("policy: replay %s: %w", key, err)
		}
		return nil
	}
	for i, ev := range evs {
		switch e := schema.Value(ev).(type) {
		case schema.CallReceived:
			number := phone.Number{Key: key}
			if key == phone.AnonymousKey {
				number.Kind = phone.KindAnonymous
			}
			d, err := p.Decide(st, Call{ID: e.CallID, Caller: number, Presented: e.Presented, Callee: e.Callee, Source: e.Source, Attack: e.Attack, CRM: e.CRM,
				Wire:   Wire{SIPCallID: e.SIPCallID, CallerKind: e.CallerKind, Identity: e.Identity, IdentityFrom: e.IdentityFrom, Transport: e.Transport, Mode: e.Mode},
				Ranges: withTried(e.Ranges, try.Ranges, key), Overrides: withTriedOverrides(e.Overrides, try.Overrides, e.Callee, e.At),
				Concurrent: max(e.Concurrent-1, 0), Origin: e.Origin}, e.At)
			if err != nil {
				return r, fmt.Errorf("policy: replay %s event %d: %w", key, i, err)
			}
			r.Calls++
			if d.Verdict != e.Verdict || d.Level != e.Level {
				r.Changed++
				r.Changes = append(r.Changes, Change{CallID: e.CallID, At: d.At, Was: e.Verdict, Now: d.Verdict, WasLevel: e.Level, NowLevel: d.Level, NowRule: d.Rule})
			}
			if d.Verdict == schema.Challenge {
				challenged[e.CallID] = true
				if e.Verdict != schema.Challenge {
					r.Unresolved++
				}
			}
			if err := fold(d.Records); err != nil {
				return r, err
			}
		case schema.ChallengeOutcome:
			if !challenged[e.CallID] {
				continue // p let this call through or rejected it
			}
			delete(challenged, e.CallID)
			recs, err := p.Outcome(st, key, e.CallID, e.Outcome, e.At)
			if err != nil {
				return r, fmt.Errorf("policy: replay %s event %d: %w", key, i, err)
			}
			if err := fold(recs); err != nil {
				return r, err
			}
		case schema.BlockApplied:
			if e.Kind != schema.Manual {
				continue // the rules' own: produced again by Decide and Outcome
			}
			if err := p.replayCommand(st, key, e, e.At); err != nil {
				return r, err
			}
		case schema.BlockLifted:
			if err := p.replayCommand(st, key, e, e.At); err != nil {
				return r, err
			}
		case schema.Whitelisted:
			if err := p.replayCommand(st, key, e, e.At); err != nil {
				return r, err
			}
		case schema.Unwhitelisted:
			if err := p.replayCommand(st, key, e, e.At); err != nil {
				return r, err
			}
		case schema.BlockExpired, schema.WhitelistExpired:
			// Produced again, when due under p, by whatever comes next.
		default:
			r.Skipped++
		}
	}
	return r, nil
}

// replayCommand folds a recorded admin event after the expiries due by its
// time, as the command did when it was given.
func (p *Policy) replayCommand(st *State, key string, ev schema.Payload, at time.Time) error {
	recs := p.Expire(st, key, at)
	recs = append(recs, schema.Record{Payload: ev})
	if err := p.applyRecords(st, recs); err != nil {
		if errors.Is(err, ErrUnknownEvent) {
			return nil
		}
		return fmt.Errorf("policy: replay %s: %w", key, err)
	}
	return nil
}

// withTriedOverrides returns the recorded overrides with the tried ones
// for line in force at at appended (a new slice; recorded is not changed).
func withTriedOverrides(recorded, try []schema.Override, line string, at time.Time) []schema.Override {
	if len(try) == 0 {
		return recorded
	}
	out := append([]schema.Override(nil), recorded...)
	for _, o := range ActiveOverrides(try, at) {
		if o.Line == "" || o.Line == line {
			out = append(out, o)
		}
	}
	return out
}
