package call

import (
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Setup is what the SIP side knows about a call when its actor starts.
type Setup struct {
	// ID is the guard's call ID: the call stream is schema.CallStream(ID)
	// and the caller grain records the call under it.
	ID string
	// SIPCallID is the Call-ID header of the INVITE.
	SIPCallID string
	// Caller is the normalised caller; Presented the header value it was
	// read from and IdentityFrom that header ("pai" or "from").
	Caller       phone.Number
	Presented    string
	IdentityFrom string
	// Callee is the dialled number.
	Callee string
	// Source is the trunk's "ip:port"; Transport the SIP transport.
	Source    string
	Transport string
	// Received is when the INVITE arrived (from the injected clock).
	Received time.Time
	// ChallengeFallback, when set, says why a challenge cannot be carried
	// out on this call: a verdict of challenge is then carried out as
	// pass, and recorded with this reason (schema.ActionWith).
	ChallengeFallback string
}

// Effects is how the actor acts on the call. Implementations must not
// block: each method starts the work and returns, and the outcome comes
// back as a message (Answered, EarlyMedia, PBXAnswered, Ended). Every
// method may be called after the call ended on the SIP side, and must
// then do nothing.
type Effects interface {
	// Reject ends the call with a final error response.
	Reject(r Rejection)
	// Pass connects the caller to the PBX (the B2BUA pass path).
	Pass()
	// Challenge answers with early media, announces code, then answers
	// the call (200 OK) and reports the keys the caller types as Digit.
	Challenge(code string)
	// Bridge connects a caller who typed the right code to the PBX.
	Bridge()
	// Hangup ends the call on the guard's initiative: BYE to an answered
	// caller, a final error response to one not yet answered.
	Hangup(h Hangup)
}

// Rejection says why a call is rejected, for the SIP status and the Reason
// header.
type Rejection struct {
	// StoreDown is set when no verdict could be had and the store-down
	// policy rejects; Error says why.
	StoreDown bool
	Error     string
	// Busy is set when the node was too busy to decide (caller.ErrBusy):
	// an overload answer (503 with Retry-After), not the store-down
	// policy; Error says why.
	Busy bool
	// Rule, Level and Reason are the verdict's.
	Rule   schema.Rule
	Level  int
	Reason string
}

// Hangup says why the guard ends a call.
type Hangup struct {
	Cause schema.EndCause
	// Detail is a short text for the Reason header and the log ("wrong
	// code", "no code").
	Detail string
}

// Messages the SIP side sends to a call actor.
type (
	// EarlyMedia reports the 183 Session Progress of a challenge sent:
	// the announcement is playing.
	EarlyMedia struct {
		At             time.Time
		Codec          string
		TelephoneEvent bool
	}

	// Answered reports the caller's leg answered (200 OK sent).
	Answered struct {
		At time.Time
		By schema.Party
	}

	// Digit reports one key the caller typed. Method is how it arrived:
	// rfc4733, info or inband.
	Digit struct {
		Key    rune
		Method string
		At     time.Time
	}

	// PBXAnswered reports the PBX answering a bridged call.
	PBXAnswered struct {
		At time.Time
	}

	// Ended reports that the call is over on the SIP side: every leg is
	// down or has its final response. It is the last message the SIP side
	// sends.
	Ended struct {
		At    time.Time
		By    schema.Party
		Cause schema.EndCause
		// Status is the final status the caller got, when not answered.
		Status int
		// Detail is free text for the log.
		Detail string
	}
)

// DTMF methods, as Digit.Method and CodeEntered.Methods say them.
const (
	MethodRFC4733 = "rfc4733"
	MethodInfo    = "info"
	MethodInband  = "inband"
)
