package events

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict is the sentinel of *ConflictError: the stream was not in
	// the expected state.
	ErrConflict = errors.New("wrong expected revision")
	// ErrDuplicateID means an event ID is already among the stream's
	// recent events, somewhere other than where this append would put it,
	// so the append is neither new nor an idempotent retry.
	ErrDuplicateID = errors.New("event ID already used")
	// ErrInvalid means the arguments of a call are malformed.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrUnavailable means the backend could not be reached; the call may
	// succeed if retried.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLocked means another process holds the data directory.
	ErrLocked = errors.New("data directory locked by another process")
)

// NoRevision is ConflictError.Actual when the stream does not exist.
const NoRevision int64 = -1

// ConflictError is returned by Append when the stream is not in the expected
// state. errors.Is(err, ErrConflict) is true for it.
type ConflictError struct {
	Stream   string
	Expected Expected
	// Actual is the stream's last revision, or NoRevision.
	Actual int64
}

func (e *ConflictError) Error() string {
	actual := "no stream"
	if e.Actual != NoRevision {
		actual = fmt.Sprintf("revision %d", e.Actual)
	}
	return fmt.Sprintf("append %s: %v: expected %v, stream is at %s", e.Stream, ErrConflict, e.Expected, actual)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }
