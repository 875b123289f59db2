package schema

import "time"

// Event type names, as stored in the envelope and shown by EventStoreDB.
const (
	TypeCallReceived     = "CallReceived"
	TypeChallengeOutcome = "ChallengeOutcome"
	TypeBlockApplied     = "BlockApplied"
	TypeBlockLifted      = "BlockLifted"
	TypeBlockExpired     = "BlockExpired"
	TypeWhitelisted      = "Whitelisted"
	TypeUnwhitelisted    = "Unwhitelisted"
	TypeWhitelistExpired = "WhitelistExpired"
)

// Verdict is what the guard does with a call.
type Verdict string

const (
	// Pass forwards the call to the PBX.
	Pass Verdict = "pass"
	// Challenge plays a code in early media and lets the call through only
	// if the caller types it.
	Challenge Verdict = "challenge"
	// Reject refuses the call without answering it.
	Reject Verdict = "reject"
)

// Valid reports whether v is one of the three verdicts.
func (v Verdict) Valid() bool { return v == Pass || v == Challenge || v == Reject }

// Outcome is how a challenge ended.
type Outcome string

const (
	// Passed: the caller typed the code; the call went on to the PBX.
	Passed Outcome = "passed"
	// Failed: a wrong code, or no code before the timer ran out.
	Failed Outcome = "failed"
	// Abandoned: the caller hung up before the challenge ended.
	Abandoned Outcome = "abandoned"
)

// Valid reports whether o is one of the three outcomes.
func (o Outcome) Valid() bool { return o == Passed || o == Failed || o == Abandoned }

// BlockKind says who set a block, which decides how it ends.
type BlockKind string

const (
	// Auto blocks are set by the policy's rules and expire a configured
	// time after the last offending call.
	Auto BlockKind = "auto"
	// Manual blocks are set by an admin and last until lifted or until
	// their optional expiry.
	Manual BlockKind = "manual"
)

// Rule names what decided a verdict or set a block.
type Rule string

const (
	// RuleHourlyLimit: more than the hourly limit of calls in the last hour.
	RuleHourlyLimit Rule = "hourly-limit"
	// RuleDailyLimit: more than the daily limit of calls in the last day.
	RuleDailyLimit Rule = "daily-limit"
	// RuleEscalation: too many failed challenges in the last day.
	RuleEscalation Rule = "escalation"
	// RuleManual: an admin's block.
	RuleManual Rule = "manual"
	// RuleWhitelist: the caller is whitelisted (verdicts only).
	RuleWhitelist Rule = "whitelist"
	// RuleVerified: the caller passed a challenge recently (verdicts only).
	RuleVerified Rule = "verified"
	// RuleAnonymous: the anonymous policy decided (verdicts only).
	RuleAnonymous Rule = "anonymous"
)

// CallReceived records one call and the verdict given to it, with the
// counts the verdict was based on. It is the fact the limits count: on
// replay the fold rebuilds the sliding windows from these events alone.
type CallReceived struct {
	// CallID identifies the call (the SIP Call-ID the trunk sent, or the
	// guard's own ID for it).
	CallID string `json:"callId"`
	// Caller is the normalised caller key (E.164 or "anonymous").
	Caller string `json:"caller"`
	// Presented is what the trunk presented when it did not normalise to a
	// number, kept for the audit ("why is this call anonymous?"). Omitted
	// for ordinary numbers, whose presentation the key already says.
	Presented string `json:"presented,omitempty"`
	// Callee is the dialled number (one toll-free line may have several).
	Callee string `json:"callee,omitempty"`
	// Source is the trunk the call came from.
	Source string `json:"source,omitempty"`
	// At is when the guard decided, from the injected clock.
	At time.Time `json:"at"`
	// Hour and Day are this caller's calls in the last hour and the last
	// day at that moment, this call included.
	Hour int `json:"hour"`
	Day  int `json:"day"`
	// Verdict, Level, Rule and Reason are the decision. Level is the block
	// level in force (0 none, 1–5 soft, 6–9 hard); Rule is what decided
	// (empty for an ordinary pass).
	Verdict Verdict `json:"verdict"`
	Level   int     `json:"level"`
	Rule    Rule    `json:"rule,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// BlockUntil is set when this call broke a limit while an automatic
	// block was already in force: the block now lasts until then. Keeping
	// the new expiry in the event (not recomputing it from settings on
	// fold) means the stream alone says when the block ends.
	BlockUntil *time.Time `json:"blockUntil,omitempty"`

	// The call on the wire, recorded since the call's own stream stopped
	// repeating it (see calls.go, "What a call writes"). All are absent in
	// events written before: their call streams' CallStarted and
	// CallDecided said it, and a fold tells the two shapes apart by Action.
	//
	// SIPCallID is the INVITE's Call-ID header; CallerKind how the caller
	// normalised (e164, anonymous, unparsable); Identity the header value
	// the caller was read from and IdentityFrom that header ("pai",
	// "from"); Transport the SIP transport (UDP, TCP).
	SIPCallID    string `json:"sipCallId,omitempty"`
	CallerKind   string `json:"callerKind,omitempty"`
	Identity     string `json:"identity,omitempty"`
	IdentityFrom string `json:"identityFrom,omitempty"`
	Transport    string `json:"transport,omitempty"`
	// Mode is the guard's mode and Action what the guard does with the
	// verdict (ActionFor). When Action is reject the call's record is this
	// event alone: no call stream follows, and the call counts as ended
	// unanswered and unbilled (Complete).
	Mode   Mode    `json:"mode,omitempty"`
	Action Verdict `json:"action,omitempty"`
	// ActionReason says why Action is not what Mode makes of the verdict:
	// a challenge the guard could not carry out on this call and passed
	// instead (ActionWith). Empty otherwise, and in events written before.
	ActionReason string `json:"actionReason,omitempty"`

	// Ranges are the range rules that matched the caller when the call
	// was decided: the most specific whitelist rule and the most specific
	// block rule in force (see RangeMatch). Absent when none matched, and
	// in events written before range rules existed.
	Ranges []RangeMatch `json:"ranges,omitempty"`

	// Attack is the called line's under-attack mode when the call was
	// decided (nil: the line was not under attack, or the log predates
	// the mode).
	Attack *LineAttack `json:"attack,omitempty"`

	// Overrides are the per-line settings and schedules in force for the
	// call's line at its time, in the order they applied (see Override).
	// Absent when none was, and in events written before they existed.
	Overrides []Override `json:"overrides,omitempty"`
	// Concurrent is the caller's calls up at once when the call was
	// decided, this one included, as the caller's grain counted them;
	// recorded when above 1 (absent: no other call was up, or the log
	// predates the count).
	Concurrent int `json:"concurrent,omitempty"`

	// Origin is the caller number's country and type and the origin
	// rules that matched it (see Origin); nil when no origin rule was in
	// force, and in events written before origin rules existed.
	Origin *Origin `json:"origin,omitempty"`
	// CRM is the CRM's answer the decision used (crm.go); nil when no
	// lookup was made (no CRM configured, or a log written before).
	CRM *CRMAnswer `json:"crm,omitempty"`
}

// ActionFor is what a guard in mode does with verdict v: observe mode
// passes every call, enforce carries the verdict out.
func ActionFor(mode Mode, v Verdict) Verdict {
	if mode == Observe {
		return Pass
	}
	return v
}

// ActionWith is ActionFor for a call on which a challenge cannot be
// carried out (fallback says why; empty when it can): a challenge the
// mode would carry out is passed instead, and the reason returned, to be
// recorded as ActionReason. A passed fallback is no verification: the
// caller never typed a code.
func ActionWith(mode Mode, v Verdict, fallback string) (Verdict, string) {
	a := ActionFor(mode, v)
	if a == Challenge && fallback != "" {
		return Pass, fallback
	}
	return a, ""
}

// Recorded reports whether e is of the current shape: the call's arrival
// and decision are in it, and its call stream (when it has one) holds
// only what happened after.
func (e CallReceived) Recorded() bool { return e.Action != "" }

// Complete reports whether e is the whole record of its call: a reject
// carried out. Such a call has no call stream; it ended unanswered and
// unbilled (CallEnded cause rejected, by the guard) once refused.
func (e CallReceived) Complete() bool { return e.Action == Reject }

// ChallengeOutcome records how the challenge of a call ended.
type ChallengeOutcome struct {
	CallID  string    `json:"callId"`
	Outcome Outcome   `json:"outcome"`
	At      time.Time `json:"at"`
	// VerifiedUntil is set on a pass that verifies the caller: until then a
	// soft block lets the caller through without a new challenge.
	VerifiedUntil *time.Time `json:"verifiedUntil,omitempty"`
}

// BlockApplied records a block being set (or replaced).
type BlockApplied struct {
	Level int       `json:"level"`
	Kind  BlockKind `json:"kind"`
	Rule  Rule      `json:"rule"`
	At    time.Time `json:"at"`
	// Until is when the block ends by itself; nil for a manual block that
	// lasts until lifted.
	Until *time.Time `json:"until,omitempty"`
	// Limit and Count are the rule's threshold and the count that broke
	// it (calls for the limits, failed challenges for escalation).
	Limit int `json:"limit,omitempty"`
	Count int `json:"count,omitempty"`
	// Calls are the IDs of the calls that counted, oldest first (the
	// newest ones only when the window held more than the policy keeps;
	// Count is always the full count).
	Calls []string `json:"calls,omitempty"`
	// CallID is the call whose decision or challenge outcome set the block.
	CallID string `json:"callId,omitempty"`
	// CommandID, By and Why are the admin command of a manual block. By is
	// "policy" for automatic blocks.
	CommandID string `json:"commandId,omitempty"`
	By        string `json:"by"`
	Why       string `json:"why"`
}

// BlockLifted records an admin lifting a block. It also gives the caller a
// fresh start: calls and failed challenges before it no longer count
// towards the rules, or the next call would block the number again.
type BlockLifted struct {
	Level     int       `json:"level"`
	Kind      BlockKind `json:"kind"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
}

// BlockExpired records a block running out at its expiry. At is the expiry
// itself, not when the guard noticed.
type BlockExpired struct {
	Level int       `json:"level"`
	Kind  BlockKind `json:"kind"`
	Rule  Rule      `json:"rule"`
	// Since is when the block was applied (part of its identity).
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// Whitelisted records an admin whitelisting the caller: always passed,
// never blocked automatically (calls are still counted, for reports).
type Whitelisted struct {
	At time.Time `json:"at"`
	// Until is when the entry ends by itself; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// Unwhitelisted records an admin removing the caller from the whitelist.
type Unwhitelisted struct {
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
}

// WhitelistExpired records a whitelist entry running out. At is the expiry.
type WhitelistExpired struct {
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

func (CallReceived) EventType() string     { return TypeCallReceived }
func (ChallengeOutcome) EventType() string { return TypeChallengeOutcome }
func (BlockApplied) EventType() string     { return TypeBlockApplied }
func (BlockLifted) EventType() string      { return TypeBlockLifted }
func (BlockExpired) EventType() string     { return TypeBlockExpired }
func (Whitelisted) EventType() string      { return TypeWhitelisted }
func (Unwhitelisted) EventType() string    { return TypeUnwhitelisted }
func (WhitelistExpired) EventType() string { return TypeWhitelistExpired }

func (CallReceived) EventVersion() int     { return 1 }
func (ChallengeOutcome) EventVersion() int { return 1 }
func (BlockApplied) EventVersion() int     { return 1 }
func (BlockLifted) EventVersion() int      { return 1 }
func (BlockExpired) EventVersion() int     { return 1 }
func (Whitelisted) EventVersion() int      { return 1 }
func (Unwhitelisted) EventVersion() int    { return 1 }
func (WhitelistExpired) EventVersion() int { return 1 }
