package events

import "fmt"

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Expected is the state a writer expects a stream to be in when it appends.
// It is how one writer per stream is kept: a writer appends with the revision
// it folded, and a concurrent writer's append fails with a *ConflictError.
type Expected struct {
	kind expectKind
	rev  uint64
}

var (
	// Any accepts the stream in any state.
	Any = Expected{kind: expectAny}
	// NoStream expects the stream not to exist yet.
	NoStream = Expected{kind: expectNoStream}
	// StreamExists expects the stream to have at least one event.
	StreamExists = Expected{kind: expectStreamExists}
)

// Exact expects the stream's last event to be at revision rev.
func Exact(rev uint64) Expected { return Expected{kind: expectExact, rev: rev} }

// ExactOrNoStream expects the stream's last revision to be rev, or the stream
// not to exist when exists is false. Actors that folded a stream use it with
// what they folded.
func ExactOrNoStream(rev uint64, exists bool) Expected {
	if !exists {
		return NoStream
	}
	return Exact(rev)
}

// IsAny, IsNoStream, IsStreamExists report the kind of expectation.
func (e Expected) IsAny() bool          { return e.kind == expectAny }
func (e Expected) IsNoStream() bool     { return e.kind == expectNoStream }
func (e Expected) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision expected, and false when e is not Exact.
func (e Expected) Revision() (uint64, bool) { return e.rev, e.kind == expectExact }

// Check reports whether a stream whose last revision is last (exists false
// when the stream has no events) meets e.
func (e Expected) Check(last uint64, exists bool) bool {
	switch e.kind {
	case expectAny:
		return true
	case expectNoStream:
		return !exists
	case expectStreamExists:
		return exists
	default:
		return exists && last == e.rev
	}
}

func (e Expected) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	default:
		return fmt.Sprintf("revision %d", e.rev)
	}
}
