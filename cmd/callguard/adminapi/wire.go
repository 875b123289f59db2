package adminapi

import (
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/schema"
)

// The request types below are what the Client sends. The server decodes
// into its own unexported bodies (handlers.go) so that it can name the
// field of every error, which time.Time's decoder does not do.

// WhitelistRequest is the body of POST /v1/whitelist.
type WhitelistRequest struct {
	// Number in any spelling the normaliser accepts.
	Number string `json:"number"`
	// By names the admin; it may instead come in the X-Admin header.
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Until is the entry's expiry; zero for none.
	Until time.Time `json:"until,omitzero"`
	// IdempotencyKey, when set, is sent as the Idempotency-Key header: a
	// request repeated with the same key is written at most once.
	IdempotencyKey string `json:"-"`
}

// BlockRequest is the body of PUT /v1/blocks/{number}.
type BlockRequest struct {
	// Level 1–5 challenges the caller, 6–9 rejects its calls.
	Level  int    `json:"level"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Until is the block's expiry; zero for a block that lasts until it is
	// lifted.
	Until          time.Time `json:"until,omitzero"`
	IdempotencyKey string    `json:"-"`
}

// AttackRequest is the body of PUT /v1/lines/{number}/attack.
type AttackRequest struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Hold keeps the mode on until switched off by hand.
	Hold           bool   `json:"hold,omitempty"`
	IdempotencyKey string `json:"-"`
}

// RemoveRequest is the optional body of DELETE /v1/whitelist/{number} and
// DELETE /v1/blocks/{number}. Reason may instead come in the ?reason=
// query parameter, By in the X-Admin header.
type RemoveRequest struct {
	By             string `json:"by,omitempty"`
	Reason         string `json:"reason"`
	IdempotencyKey string `json:"-"`
}

// CommandResult answers a command: where its events landed.
type CommandResult struct {
	// Number is the normalised caller key the command applied to.
	Number string `json:"number"`
	// CommandID is the ID the command was written under (see the package
	// documentation on idempotency).
	CommandID string `json:"commandId"`
	// Events are the types of the events appended, in order; empty when
	// Repeated.
	Events []string `json:"events"`
	// Revision is the caller stream's revision after the command.
	Revision uint64 `json:"revision"`
	// Repeated is true when the command had been applied before under the
	// same ID: nothing new was written.
	Repeated bool `json:"repeated"`
}

// CallerView answers GET /v1/callers/{number}: the caller's standing and
// live counters at AsOf.
type CallerView struct {
	Number string `json:"number"`
	// Known is false for a number the guard has no events for; everything
	// else is then zero and the next call passes.
	Known bool `json:"known"`
	// Revision is the last revision of the caller's stream (absent when
	// not Known).
	Revision *uint64 `json:"revision,omitempty"`
	// AsOf is the time the view was computed for.
	AsOf time.Time `json:"asOf"`
	// Block in force, or null.
	Block *BlockView `json:"block"`
	// Whitelist entry in force, or null.
	Whitelist *WhitelistView `json:"whitelist"`
	// VerifiedUntil is set while a passed challenge lets the caller
	// through a soft block.
	VerifiedUntil *time.Time `json:"verifiedUntil"`
	Counters      Counters   `json:"counters"`
	// NextCall is what a call at AsOf would get.
	NextCall NextCall `json:"nextCall"`
	// Ranges are the range rules in force that cover the number on the
	// node that answered: the most specific whitelist and block rule.
	Ranges []schema.RangeMatch `json:"ranges,omitempty"`
}

// BlockView is a block in force.
type BlockView struct {
	Level int `json:"level"`
	// Effect is what the level does: challenge (1–5) or reject (6–9).
	Effect schema.Verdict `json:"effect"`
	// Kind is manual (an admin's) or auto (the rules').
	Kind schema.BlockKind `json:"kind"`
	Rule schema.Rule      `json:"rule"`
	// Since is when the block was applied, Until when it ends by itself
	// (null: until lifted).
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until"`
}

// WhitelistView is a whitelist entry in force.
type WhitelistView struct {
	// Until is when the entry ends by itself (null: until removed).
	Until *time.Time `json:"until"`
}

// Counters are the caller's live counts.
type Counters struct {
	// CallsLastHour and CallsLastDay are the calls in the sliding windows
	// ending at AsOf.
	CallsLastHour int `json:"callsLastHour"`
	CallsLastDay  int `json:"callsLastDay"`
	// FailedChallengesLastDay are the failures escalation counts.
	FailedChallengesLastDay int `json:"failedChallengesLastDay"`
}

// NextCall is the verdict a call would get.
type NextCall struct {
	Verdict schema.Verdict `json:"verdict"`
	// Rule is what would decide it (empty for an ordinary pass).
	Rule schema.Rule `json:"rule,omitempty"`
}

// callerView turns the grain's Status into the API's shape.
func callerView(st caller.Status, asOf time.Time) CallerView {
	s := st.Status
	v := CallerView{
		Number: st.Key,
		Known:  st.Exists,
		AsOf:   asOf.UTC(),
		Counters: Counters{
			CallsLastHour: s.Hour, CallsLastDay: s.Day, FailedChallengesLastDay: s.FailedChallenges,
		},
		NextCall: NextCall{Verdict: s.Next, Rule: s.NextRule},
		Ranges:   s.Ranges,
	}
	if st.Exists {
		rev := st.Revision
		v.Revision = &rev
	}
	if s.Level > 0 {
		v.Block = &BlockView{
			Level: s.Level, Effect: schema.LevelVerdict(s.Level), Kind: s.Kind, Rule: s.Rule,
			Since: s.Since, Until: timePtr(s.Until),
		}
	}
	if s.Whitelisted {
		v.Whitelist = &WhitelistView{Until: timePtr(s.WhitelistUntil)}
	}
	v.VerifiedUntil = timePtr(s.VerifiedUntil)
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
