// Package profiles keeps a profile of every caller for search: calls in
// total and today, the last call and its verdict, challenge outcomes,
// blocks, and where the number stands now (block, whitelist entry,
// verification), searchable by number prefix.
//
// Fold is the pure core (a Record and one event of the caller's stream
// in, the new Record out); Projection stores the Records in the runner's
// database; Profiles answers queries, judging "today" and expiries by its
// clock in the configured time zone.
package profiles

import (
	"time"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/lists"
)

// Record is what the projection stores per caller: the facts, not what
// they mean at some moment (that is View, computed at query time).
type Record struct {
	// FirstSeen is the time of the caller's first event (a call or a
	// command).
	FirstSeen time.Time `json:"firstSeen"`
	// FirstCall and LastCall are the times of the first and latest call;
	// zero before any.
	FirstCall time.Time `json:"firstCall,omitzero"`
	LastCall  time.Time `json:"lastCall,omitzero"`
	// LastVerdict, LastCallee and LastCallID describe the latest call.
	LastVerdict schema.Verdict `json:"lastVerdict,omitempty"`
	LastCallee  string         `json:"lastCallee,omitempty"`
	LastCallID  string         `json:"lastCallId,omitempty"`
	// Calls counts every call; Day is the day of the latest call in the
	// projection's time zone and DayCalls the calls on that day.
	Calls    int    `json:"calls"`
	Day      string `json:"day,omitempty"`
	DayCalls int    `json:"dayCalls,omitempty"`
	// LastAction is what the guard did with the latest call, when that
	// differs from its verdict (observe mode passed it).
	LastAction schema.Verdict `json:"lastAction,omitempty"`
	// What the guard did with the calls (the verdict carried out; in
	// observe mode every call is passed), and Observed the calls observe
	// mode passed that enforcing would have challenged or rejected. A call
	// recorded before the action was counts by its verdict.
	Passed     int `json:"passed,omitempty"`
	Challenged int `json:"challenged,omitempty"`
	Rejected   int `json:"rejected,omitempty"`
	Observed   int `json:"observed,omitempty"`
	// Challenge outcomes.
	ChallengesPassed    int `json:"challengesPassed,omitempty"`
	ChallengesFailed    int `json:"challengesFailed,omitempty"`
	ChallengesAbandoned int `json:"challengesAbandoned,omitempty"`
	// Blocks counts the blocks applied to the number, by the rules or by
	// an admin.
	Blocks int `json:"blocks,omitempty"`
	// Standing is the block and whitelist entry as recorded.
	Standing lists.Standing `json:"standing"`
	// VerifiedUntil is the expiry of the latest passed challenge's
	// verification; zero for none.
	VerifiedUntil time.Time `json:"verifiedUntil,omitzero"`
}

// Fold returns r after event p of the caller's stream, with days taken in
// loc. Payloads it does not fold leave r as it is; reports whether r
// changed.
func Fold(r Record, p schema.Payload, loc *time.Location) (Record, bool) {
	at, ok := eventTime(p)
	if !ok {
		return r, false
	}
	if r.FirstSeen.IsZero() {
		r.FirstSeen = at
	}
	switch e := schema.Value(p).(type) {
	case schema.CallReceived:
		if r.FirstCall.IsZero() {
			r.FirstCall = e.At
		}
		r.LastCall, r.LastVerdict, r.LastCallee, r.LastCallID = e.At, e.Verdict, e.Callee, e.CallID
		r.Calls++
		if day := rm.Day(e.At, loc); day == r.Day {
			r.DayCalls++
		} else {
			r.Day, r.DayCalls = day, 1
		}
		acted := e.Action
		if acted == "" {
			acted = e.Verdict
		}
		r.LastAction = ""
		if acted != e.Verdict {
			r.LastAction = acted
			if e.Verdict == schema.Challenge || e.Verdict == schema.Reject {
				r.Observed++
			}
		}
		switch acted {
		case schema.Pass:
			r.Passed++
		case schema.Challenge:
			r.Challenged++
		case schema.Reject:
			r.Rejected++
		}
	case schema.ChallengeOutcome:
		switch e.Outcome {
		case schema.Passed:
			r.ChallengesPassed++
			if e.VerifiedUntil != nil {
				r.VerifiedUntil = *e.VerifiedUntil
			}
		case schema.Failed:
			r.ChallengesFailed++
		case schema.Abandoned:
			r.ChallengesAbandoned++
		}
	case schema.BlockApplied:
		r.Blocks++
	}
	r.Standing = lists.Fold(r.Standing, p)
	return r, true
}

// Folds reports whether Fold folds events of type typ.
func Folds(typ string) bool {
	switch typ {
	case schema.TypeCallReceived, schema.TypeChallengeOutcome,
		schema.TypeBlockApplied, schema.TypeBlockLifted, schema.TypeBlockExpired,
		schema.TypeWhitelisted, schema.TypeUnwhitelisted, schema.TypeWhitelistExpired:
		return true
	}
	return false
}

func eventTime(p schema.Payload) (time.Time, bool) {
	switch e := schema.Value(p).(type) {
	case schema.CallReceived:
		return e.At, true
	case schema.ChallengeOutcome:
		return e.At, true
	case schema.BlockApplied:
		return e.At, true
	case schema.BlockLifted:
		return e.At, true
	case schema.BlockExpired:
		return e.At, true
	case schema.Whitelisted:
		return e.At, true
	case schema.Unwhitelisted:
		return e.At, true
	case schema.WhitelistExpired:
		return e.At, true
	}
	return time.Time{}, false
}
