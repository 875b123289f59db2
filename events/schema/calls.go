package schema

import (
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// Call streams: one per call, written by the call's actor (actors/call).
// Where a caller stream holds the facts the limits count (CallReceived,
// ChallengeOutcome), a call stream holds what happened to one call on the
// wire: who called whom from which trunk, what was decided and what the
// guard did about it, when the call was answered and ended, and whether the
// carrier bills it. Reports on service quality (unanswered share, calls
// ended unbilled, money saved) fold these streams.
//
// A call stream has one writer (the call's actor) and each type occurs at
// most once in it, so an event's ID is derived from the call and its type.
//
// # What a call writes
//
// The decision is durable before the guard acts on it, and it is the
// caller grain's one group-committed append: the caller stream's
// CallReceived. Since it carries the call as it arrived (SIP Call-ID,
// identity and its header, callee, source, transport) and what the guard
// does with the verdict (Mode, Action), nothing else must be durable
// before the guard acts, and the rest is written once, when the call ends:
//
//   - A reject carried out (Action reject): one event, CallReceived. No
//     call stream is written. The call ended refused, never answered,
//     unbilled, which is all the reports, the audit and the call's record
//     need; the final status the SIP side sends is the refusal
//     catalogue's for the verdict (sip/guard/reasons.go), and a caller who
//     cancelled during the decision is not told apart (neither is billed
//     nor offered to the PBX).
//   - A pass or a challenge (and every call in observe mode): CallReceived,
//     then at the end one append of the call stream holding what happened
//     after the decision: ChallengeStarted, CallAnswered, CodeEntered,
//     ChallengeEnded, CallBridged, as they occurred, and CallEnded. The
//     challenge's outcome is also the grain's (ChallengeOutcome), told at
//     once since the limits count it.
//   - A call the grain could not decide (the store or the grain was
//     down): no CallReceived exists, so its call stream starts with
//     CallStarted and CallDecided (StoreDown) and is appended once at the
//     end, retried until the store is back (actors/call/writer.go).
//
// Logs written before hold CallReceived without Mode and Action, and a
// call stream from CallStarted to CallEnded for every call (the reject
// too). Both shapes stay readable as they are, with no upcaster: the new
// CallReceived fields are optional additions (schema.go's rule), and the
// folds take a call's arrival and decision from CallStarted and
// CallDecided when CallReceived lacks Action (CallReceived.Recorded), so
// rebuilding the read models over an old log gives the same reports.

// CallStreamPrefix starts the name of every call stream ("call-<id>");
// EventStoreDB's by-category projection files them under "call".
const CallStreamPrefix = "call-"

// CallStream names the stream of the call whose guard call ID is id.
func CallStream(id string) string { return CallStreamPrefix + id }

// CallStreamEventID is the ID of the event of type typ in the stream of
// call id.
func CallStreamEventID(id, typ string) uuid.UUID {
	return events.DeriveID(CallStreamPrefix, id, typ)
}

// Call stream event type names.
const (
	TypeCallStarted      = "CallStarted"
	TypeCallDecided      = "CallDecided"
	TypeChallengeStarted = "ChallengeStarted"
	TypeCallAnswered     = "CallAnswered"
	TypeCodeEntered      = "CodeEntered"
	TypeChallengeEnded   = "ChallengeEnded"
	TypeCallBridged      = "CallBridged"
	TypeCallEnded        = "CallEnded"
)

// Mode is how the guard carries out verdicts.
type Mode string

const (
	// Enforce carries out every verdict.
	Enforce Mode = "enforce"
	// Observe decides and records every call but passes them all, so that
	// reports show what enforcing would have done before anyone is blocked.
	Observe Mode = "observe"
)

// Party names a side of a call.
type Party string

const (
	// PartyCaller is the carrier's side: the calling party.
	PartyCaller Party = "caller"
	// PartyPBX is the company's PBX.
	PartyPBX Party = "pbx"
	// PartyGuard is the guard itself (a reject, a failed challenge).
	PartyGuard Party = "guard"
)

// EndCause says why a call ended. The list is closed: reports group calls
// by it.
type EndCause string

const (
	// EndRejected: the verdict was reject; the call got a final error status.
	EndRejected EndCause = "rejected"
	// EndCallerCancelled: the caller gave up before the call was answered.
	EndCallerCancelled EndCause = "caller-cancelled"
	// EndCallerHangup: the caller hung up an answered call.
	EndCallerHangup EndCause = "caller-hangup"
	// EndPBXHangup: the PBX hung up an answered call.
	EndPBXHangup EndCause = "pbx-hangup"
	// EndPBXRefused: the PBX answered the INVITE with an error (busy,
	// declined, ...); Status says which.
	EndPBXRefused EndCause = "pbx-refused"
	// EndPBXNoAnswer: the PBX rang but nobody answered in time.
	EndPBXNoAnswer EndCause = "pbx-no-answer"
	// EndPBXUnreachable: the PBX did not respond at all, or could not be
	// sent to.
	EndPBXUnreachable EndCause = "pbx-unreachable"
	// EndChallengeFailed: the guard hung up because the code was wrong or
	// never typed.
	EndChallengeFailed EndCause = "challenge-failed"
	// EndMediaFailed: the guard could not play the challenge (no RTP port,
	// an SDP it cannot answer).
	EndMediaFailed EndCause = "media-failed"
	// EndStoreDown: the caller grain could not decide and the store-down
	// policy refused the call.
	EndStoreDown EndCause = "store-down"
	// EndBusy: the node was too busy to decide the call and answered 503
	// with Retry-After (never the store-down policy).
	EndBusy EndCause = "busy"
	// EndShutdown: the guard stopped while the call was up.
	EndShutdown EndCause = "shutdown"
	// EndError: anything else that ended the call (see the log).
	EndError EndCause = "error"
)

// CallStarted records a call arriving: the first event of a call stream.
type CallStarted struct {
	// CallID is the guard's ID of the call: the caller stream's
	// CallReceived carries the same ID.
	CallID string `json:"callId"`
	// SIPCallID is the Call-ID header the trunk sent.
	SIPCallID string `json:"sipCallId"`
	// Caller is the normalised caller key (E.164 or "anonymous"); CallerKind
	// says how it normalised (e164, anonymous, unparsable).
	Caller     string `json:"caller"`
	CallerKind string `json:"callerKind"`
	// Presented is the identity header value the caller was read from, and
	// IdentityFrom names that header ("pai" or "from").
	Presented    string `json:"presented,omitempty"`
	IdentityFrom string `json:"identityFrom"`
	// Callee is the dialled number (E.164 when it normalised, else as
	// presented).
	Callee string `json:"callee,omitempty"`
	// Source is the trunk address the INVITE came from ("ip:port") and
	// Transport the SIP transport (UDP, TCP).
	Source    string `json:"source"`
	Transport string `json:"transport"`
	// Mode is the guard's mode when the call arrived.
	Mode Mode      `json:"mode"`
	At   time.Time `json:"at"`
}

// CallDecided records the verdict and what the guard did with it.
type CallDecided struct {
	CallID string `json:"callId"`
	// Verdict, Level, Rule and Reason are the caller grain's decision, as
	// recorded in the caller stream. Empty when StoreDown.
	Verdict Verdict `json:"verdict,omitempty"`
	Level   int     `json:"level"`
	Rule    Rule    `json:"rule,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Action is what the guard did: the verdict when enforcing, pass in
	// observe mode, the store-down policy's choice when StoreDown.
	Action Verdict `json:"action"`
	Mode   Mode    `json:"mode"`
	// ActionReason says why Action is not what Mode makes of the verdict
	// (see CallReceived.ActionReason); empty otherwise.
	ActionReason string `json:"actionReason,omitempty"`
	// StoreDown is set when the caller grain could not record a verdict
	// (the store or the grain was unavailable); Error says why and Action
	// is the configured fail-open or fail-closed choice.
	StoreDown bool `json:"storeDown,omitempty"`
	// Busy is set when this node was too busy to get a verdict (its
	// bound on decisions in flight was reached, or the grain answered
	// too late while the store was healthy); Error says why and Action is
	// reject: the caller was told 503 with Retry-After.
	Busy  bool   `json:"busy,omitempty"`
	Error string `json:"error,omitempty"`
	// CallerRevision is the revision of the call's CallReceived in the
	// caller stream (absent when StoreDown).
	CallerRevision *uint64   `json:"callerRevision,omitempty"`
	At             time.Time `json:"at"`
}

// ChallengeStarted records the guard answering with early media (183
// Session Progress) to play the code. The code itself is not recorded: it
// is a secret while the call is up and worth nothing after, and whether
// the caller typed it is in CodeEntered.
type ChallengeStarted struct {
	CallID string `json:"callId"`
	// Digits is the length of the code.
	Digits int `json:"digits"`
	// Codec is the negotiated audio codec (PCMU, PCMA); TelephoneEvent
	// reports whether RFC 4733 events were negotiated.
	Codec          string    `json:"codec"`
	TelephoneEvent bool      `json:"telephoneEvent"`
	At             time.Time `json:"at"`
}

// CallAnswered records the caller's leg being answered (200 OK): from here
// on the carrier counts the call's duration.
type CallAnswered struct {
	CallID string `json:"callId"`
	// By is who answered: the PBX (a passed call) or the guard (a
	// challenge, answered to give the caller time to type).
	By Party     `json:"by"`
	At time.Time `json:"at"`
}

// CodeEntered records the caller's attempt at the code: as many keys as
// the code has digits. The keys are not recorded (see ChallengeStarted).
type CodeEntered struct {
	CallID  string `json:"callId"`
	Correct bool   `json:"correct"`
	// Digits is how many keys were typed.
	Digits int `json:"digits"`
	// Methods are the ways the keys arrived (rfc4733, info, inband).
	Methods []string  `json:"methods,omitempty"`
	At      time.Time `json:"at"`
}

// ChallengeEnded records how a challenge ended, as the caller grain is told.
type ChallengeEnded struct {
	CallID  string  `json:"callId"`
	Outcome Outcome `json:"outcome"`
	// Cause details the outcome: code-correct, code-wrong, no-code,
	// caller-left, media-failed.
	Cause string    `json:"cause"`
	At    time.Time `json:"at"`
}

// CallBridged records the PBX answering a call that passed its challenge:
// the guard now relays media between the caller and the PBX.
type CallBridged struct {
	CallID string    `json:"callId"`
	At     time.Time `json:"at"`
}

// CallEnded records the end of a call: the last event of a call stream.
type CallEnded struct {
	CallID string   `json:"callId"`
	Cause  EndCause `json:"cause"`
	// By is the party that ended the call.
	By Party `json:"by"`
	// Status is the final SIP status the caller got when the call was not
	// answered (603 for a reject, 486 when the PBX was busy, 487 when the
	// caller cancelled); 0 for an answered call.
	Status int `json:"status,omitempty"`
	// AnsweredAt is when the caller's leg was answered; nil when never.
	AnsweredAt *time.Time `json:"answeredAt,omitempty"`
	At         time.Time  `json:"at"`
	// DurationMs is the answered time in milliseconds (At minus
	// AnsweredAt), what the carrier measures; 0 when never answered.
	DurationMs int64 `json:"durationMs"`
	// Billed says whether the carrier bills the call: answered and longer
	// than the unbilled grace interval GraceMs.
	Billed  bool  `json:"billed"`
	GraceMs int64 `json:"graceMs"`
}

func (CallStarted) EventType() string      { return TypeCallStarted }
func (CallDecided) EventType() string      { return TypeCallDecided }
func (ChallengeStarted) EventType() string { return TypeChallengeStarted }
func (CallAnswered) EventType() string     { return TypeCallAnswered }
func (CodeEntered) EventType() string      { return TypeCodeEntered }
func (ChallengeEnded) EventType() string   { return TypeChallengeEnded }
func (CallBridged) EventType() string      { return TypeCallBridged }
func (CallEnded) EventType() string        { return TypeCallEnded }

func (CallStarted) EventVersion() int      { return 1 }
func (CallDecided) EventVersion() int      { return 1 }
func (ChallengeStarted) EventVersion() int { return 1 }
func (CallAnswered) EventVersion() int     { return 1 }
func (CodeEntered) EventVersion() int      { return 1 }
func (ChallengeEnded) EventVersion() int   { return 1 }
func (CallBridged) EventVersion() int      { return 1 }
func (CallEnded) EventVersion() int        { return 1 }

// callPayloads lists the call stream payloads for All.
func callPayloads() []Payload {
	return []Payload{
		CallStarted{}, CallDecided{}, ChallengeStarted{}, CallAnswered{},
		CodeEntered{}, ChallengeEnded{}, CallBridged{}, CallEnded{},
	}
}
