package line

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
)

// Messages between a node and a line grain cross the cluster's remoting
// as anypb.Any holding JSON: a line gets at most a few batches a second
// from each node, so the encoding costs nothing worth a wire format.
const typeURLPrefix = "callguard.line/"

// Counts is one node's batch: the new callers it saw to the line since
// its previous batch. New may be 0: the node asks for the mode.
type Counts struct {
	Node string `json:"node,omitempty"`
	New  int    `json:"new"`
}

// Command switches a line's under-attack mode by hand.
type Command struct {
	// On switches the mode on (Hold: until an admin switches it off),
	// else off.
	On   bool   `json:"on"`
	Hold bool   `json:"hold,omitempty"`
	By   string `json:"by"`
	Why  string `json:"why"`
	// ID makes the command idempotent: the same ID is applied once.
	ID string `json:"id,omitempty"`
}

// GetStatus asks for the line's mode and rate now.
type GetStatus struct{}

// Mode is a line's under-attack mode: the grain's answer to every message.
type Mode struct {
	Line string `json:"line"`
	On   bool   `json:"on"`
	// Since is when the period began; Manual and Hold how (see Command);
	// By and Why who switched it and why ("policy" and the rate for the
	// detector).
	Since  time.Time `json:"since,omitzero"`
	Manual bool      `json:"manual,omitempty"`
	Hold   bool      `json:"hold,omitempty"`
	By     string    `json:"by,omitempty"`
	Why    string    `json:"why,omitempty"`
	// Rate is the new callers a second the grain measures now, Threshold
	// the configured rate, Peak the highest rate of the period.
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	Peak      float64 `json:"peak,omitempty"`
	// Revision is the line stream's last revision (Exists false: none).
	Revision uint64 `json:"revision"`
	Exists   bool   `json:"exists"`
	// Events are the types a command appended; Repeated says the same
	// command had been applied before.
	Events   []string `json:"events,omitempty"`
	Repeated bool     `json:"repeated,omitempty"`
}

// failure is how a grain reports an error.
type failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Errors of a line request; test them with errors.Is.
var (
	// ErrInvalid: malformed request (no by or why, not a line number).
	ErrInvalid = errors.New("invalid request")
	// ErrState: the command does not fit the mode (on when on, off when off).
	ErrState = errors.New("command does not apply to the line's mode")
	// ErrStore: the event store failed; nothing changed.
	ErrStore = errors.New("event store failed")
	// ErrUnavailable: the grain could not be reached in time.
	ErrUnavailable = errors.New("line grain unavailable")
	// ErrFenced: the activation may be stale (Deps.Fence tripped); it
	// wrote nothing and stopped.
	ErrFenced = errors.New("line grain fenced")
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

func pack(msg any) (*anypb.Any, error) {
	var name string
	switch msg.(type) {
	case Counts, *Counts:
		name = "Counts"
	case Command, *Command:
		name = "Command"
	case GetStatus, *GetStatus:
		name = "GetStatus"
	case Mode, *Mode:
		name = "Mode"
	case failure, *failure:
		name = "Failure"
	default:
		return nil, fmt.Errorf("line: no wire name for %T", msg)
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("line: marshal %s: %w", name, err)
	}
	return &anypb.Any{TypeUrl: typeURLPrefix + name, Value: b}, nil
}

func unpack(a *anypb.Any) (any, error) {
	var msg any
	switch a.GetTypeUrl() {
	case typeURLPrefix + "Counts":
		msg = &Counts{}
	case typeURLPrefix + "Command":
		msg = &Command{}
	case typeURLPrefix + "GetStatus":
		msg = &GetStatus{}
	case typeURLPrefix + "Mode":
		msg = &Mode{}
	case typeURLPrefix + "Failure":
		msg = &failure{}
	default:
		return nil, fmt.Errorf("line: unknown message type %q", a.GetTypeUrl())
	}
	if err := json.Unmarshal(a.GetValue(), msg); err != nil {
		return nil, fmt.Errorf("line: unmarshal %s: %w", a.GetTypeUrl(), err)
	}
	return msg, nil
}
