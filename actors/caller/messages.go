package caller

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Messages between a node and a caller grain cross the cluster's gRPC
// remoting, which carries protobuf messages. Rather than generate protobuf
// code for a handful of small structs, each message travels as an
// anypb.Any whose type URL names it: Admit and Verdict, which go with
// every call, in protobuf's wire format encoded by hand (wire.go), the
// rest as JSON, readable in a packet capture.
const typeURLPrefix = "callguard.caller/"

// Admit asks the grain to decide a call.
type Admit struct {
	CallID string `json:"callId"`
	// Kind is how the caller identity normalised (E.164, anonymous, ...);
	// the grain's identity is the normalised key itself.
	Kind      phone.Kind `json:"kind"`
	Presented string     `json:"presented,omitempty"`
	Callee    string     `json:"callee,omitempty"`
	Source    string     `json:"source,omitempty"`
	// The call as it arrived and the guard's mode, recorded in the call's
	// CallReceived (see schema.CallReceived): for a reject it is the
	// call's whole record.
	SIPCallID    string      `json:"sipCallId,omitempty"`
	Identity     string      `json:"identity,omitempty"`
	IdentityFrom string      `json:"identityFrom,omitempty"`
	Transport    string      `json:"transport,omitempty"`
	Mode         schema.Mode `json:"mode,omitempty"`
	// ChallengeFallback, when set, says why a challenge cannot be carried
	// out on this call (a late offer without 100rel, GUARD_LATE_OFFER=pass):
	// a challenge is then passed and recorded so.
	ChallengeFallback string `json:"challengeFallback,omitempty"`
	// Attack is the called line's under-attack mode in the node's cache
	// when the call arrived (nil: not under attack); the policy applies
	// it and records it in CallReceived.
	Attack *schema.LineAttack `json:"attack,omitempty"`
	// CRM is the CRM's answer about the caller, asked by the call path
	// before Admit (nil: not asked); the policy decides with it and
	// records it in CallReceived.
	CRM *schema.CRMAnswer `json:"crm,omitempty"`
}

// Verdict is the grain's answer to Admit. It is sent only after the events
// that record it are durable.
type Verdict struct {
	CallID  string         `json:"callId"`
	Verdict schema.Verdict `json:"verdict"`
	Level   int            `json:"level"`
	Rule    schema.Rule    `json:"rule,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Hour    int            `json:"hour"`
	Day     int            `json:"day"`
	At      time.Time      `json:"at"`
	// Revision is the stream revision of the call's CallReceived event.
	Revision uint64 `json:"revision"`
	// Repeated is true when the call had been decided before (a retried
	// request): the verdict is the recorded one.
	Repeated bool `json:"repeated,omitempty"`
	// New says the caller counts towards the line's attack detection:
	// not whitelisted, not verified, no call in the last day
	// (policy.Decision.New). False on a repeated verdict.
	New bool `json:"new,omitempty"`
}

// Outcome tells the grain how a challenge ended.
type Outcome struct {
	CallID  string         `json:"callId"`
	Outcome schema.Outcome `json:"outcome"`
}

// Ended tells the grain that a call it decided is over: it no longer
// counts towards the caller's concurrent calls. The grain answers
// Applied with no events.
type Ended struct {
	CallID string `json:"callId"`
}

// Command is an admin command for one caller.
type Command struct {
	// Verb is one of whitelist, unwhitelist, block, unblock.
	Verb    string         `json:"verb"`
	Command policy.Command `json:"command"`
}

// Command verbs.
const (
	VerbWhitelist   = "whitelist"
	VerbUnwhitelist = "unwhitelist"
	VerbBlock       = "block"
	VerbUnblock     = "unblock"
)

// Applied answers Outcome and Command: where the events landed.
type Applied struct {
	// Events are the types of the events appended, in order.
	Events   []string `json:"events"`
	Revision uint64   `json:"revision"`
	// Repeated is true when the same command or outcome had been applied
	// before: nothing new was written.
	Repeated bool `json:"repeated,omitempty"`
}

// GetStatus asks for the caller's standing now.
type GetStatus struct{}

// Status answers GetStatus.
type Status struct {
	Key    string        `json:"key"`
	Exists bool          `json:"exists"`
	Status policy.Status `json:"status"`
	// Revision is the last revision folded (meaningful when Exists).
	Revision uint64 `json:"revision"`
}

// failure is how a grain reports an error to the requesting node.
type failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Errors a grain request can return; test them with errors.Is.
var (
	// ErrInvalid: the request is malformed (bad number, level out of
	// range, missing reason). Nothing was written.
	ErrInvalid = errors.New("invalid request")
	// ErrState: the command does not fit the caller's state (unwhitelist a
	// caller who is not whitelisted, block a whitelisted caller).
	ErrState = errors.New("command does not apply to the caller's state")
	// ErrStore: the event store failed; the verdict was not recorded.
	ErrStore = errors.New("event store failed")
	// ErrUnavailable: the grain could not be reached in time.
	ErrUnavailable = errors.New("caller grain unavailable")
	// ErrFenced: the activation that got the request may be stale (its
	// node may have lost its membership: Deps.Fence tripped); it wrote
	// nothing and stopped. Client retries such a request through the
	// cluster until its deadline, then returns ErrUnavailable.
	ErrFenced = errors.New("caller grain fenced")
)

var failureCodes = map[string]error{
	"invalid": ErrInvalid, "state": ErrState, "store": ErrStore, "unavailable": ErrUnavailable, "fenced": ErrFenced,
}

func failureOf(err error) failure {
	code := "store"
	for c, sentinel := range failureCodes {
		if errors.Is(err, sentinel) {
			code = c
		}
	}
	return failure{Code: code, Message: err.Error()}
}

func (f failure) err() error {
	sentinel, ok := failureCodes[f.Code]
	if !ok {
		sentinel = ErrStore
	}
	return fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(f.Message, sentinel.Error()+": "))
}

func typeName(msg any) (string, error) {
	switch msg.(type) {
	case Admit, *Admit:
		return "Admit", nil
	case Verdict, *Verdict:
		return "Verdict", nil
	case Outcome, *Outcome:
		return "Outcome", nil
	case Command, *Command:
		return "Command", nil
	case Ended, *Ended:
		return "Ended", nil
	case Applied, *Applied:
		return "Applied", nil
	case GetStatus, *GetStatus:
		return "GetStatus", nil
	case Status, *Status:
		return "Status", nil
	case failure, *failure:
		return "Failure", nil
	}
	return "", fmt.Errorf("caller: no wire name for %T", msg)
}

// pack wraps a message for the wire: Admit and Verdict in protobuf's wire
// format (wire.go), the others as JSON.
func pack(msg any) (*anypb.Any, error) {
	name, err := typeName(msg)
	if err != nil {
		return nil, err
	}
	var b []byte
	switch m := msg.(type) {
	case Admit:
		b = m.appendWire(nil)
	case *Admit:
		b = m.appendWire(nil)
	case Verdict:
		b = m.appendWire(nil)
	case *Verdict:
		b = m.appendWire(nil)
	default:
		if b, err = json.Marshal(msg); err != nil {
			return nil, fmt.Errorf("caller: marshal %s: %w", name, err)
		}
	}
	return &anypb.Any{TypeUrl: typeURLPrefix + name, Value: b}, nil
}

// isJSON tells a JSON value from a protobuf one: a JSON object starts
// with '{' (0x7b), which as a protobuf tag would be field 15 with wire
// type 3, a group start that neither message has.
func isJSON(b []byte) bool { return len(b) > 0 && b[0] == '{' }

// unpack decodes a message packed by pack.
func unpack(a *anypb.Any) (any, error) {
	var msg any
	switch a.GetTypeUrl() {
	case typeURLPrefix + "Admit":
		msg = &Admit{}
	case typeURLPrefix + "Verdict":
		msg = &Verdict{}
	case typeURLPrefix + "Outcome":
		msg = &Outcome{}
	case typeURLPrefix + "Command":
		msg = &Command{}
	case typeURLPrefix + "Ended":
		msg = &Ended{}
	case typeURLPrefix + "Applied":
		msg = &Applied{}
	case typeURLPrefix + "GetStatus":
		msg = &GetStatus{}
	case typeURLPrefix + "Status":
		msg = &Status{}
	case typeURLPrefix + "Failure":
		msg = &failure{}
	default:
		return nil, fmt.Errorf("caller: unknown message type %q", a.GetTypeUrl())
	}
	b := a.GetValue()
	var err error
	if w, ok := msg.(interface{ readWire([]byte) error }); ok && !isJSON(b) {
		err = w.readWire(b)
	} else {
		// JSON: the other messages, or Admit/Verdict from a node before
		// the wire format.
		err = json.Unmarshal(b, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("caller: unmarshal %s: %w", a.GetTypeUrl(), err)
	}
	return msg, nil
}
