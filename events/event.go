package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is a recorded event: the envelope the store keeps and the JSON
// payload the domain wrote.
type Event struct {
	// ID is unique across the store. Appending an event whose ID is already
	// stored at the same place is a no-op (see Store.Append).
	ID uuid.UUID
	// Stream is the name of the stream the event belongs to.
	Stream string
	// Type names the payload, for example "CallReceived".
	Type string
	// Version is the payload's schema version (1 for the first).
	Version int
	// Revision is the event's 0-based index in its stream.
	Revision uint64
	// Position is the event's place in the global log; later appends have
	// greater positions.
	Position Position
	// Recorded is when the store committed the event.
	Recorded time.Time
	// Meta says who and what caused the event.
	Meta Metadata
	// Data is the JSON payload.
	Data json.RawMessage
}

// Metadata says where an event came from, so that an audit can name who
// caused each change and follow a chain of causes across streams.
type Metadata struct {
	// Node is the guard node that wrote the event.
	Node string `json:"node,omitempty"`
	// Actor is the actor or admin who caused the event: "grain", "call",
	// "admin:alice", "system".
	Actor string `json:"actor,omitempty"`
	// CorrelationID ties together every event of one piece of work, such as
	// one call.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the ID of the event or command that caused this one.
	CausationID string `json:"causationId,omitempty"`
}

// Proposed is an event offered to Store.Append.
type Proposed struct {
	// ID makes the append idempotent. Derive it from what caused the event
	// (see DeriveID) so that a retry reuses it; a zero ID is replaced by a
	// random one, which makes the append not idempotent.
	ID      uuid.UUID
	Type    string
	Version int
	Meta    Metadata
	Data    json.RawMessage
}

// NewProposed marshals payload to JSON and wraps it as a Proposed event.
func NewProposed(id uuid.UUID, typ string, version int, meta Metadata, payload any) (Proposed, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return Proposed{}, fmt.Errorf("marshal %s v%d: %w", typ, version, err)
	}
	return Proposed{ID: id, Type: typ, Version: version, Meta: meta, Data: data}, nil
}

// Validate reports what is wrong with a proposed event, if anything.
func (p Proposed) Validate() error {
	if p.Type == "" {
		return fmt.Errorf("%w: event type is empty", ErrInvalid)
	}
	if p.Version < 1 {
		return fmt.Errorf("%w: event %s has schema version %d, want 1 or more", ErrInvalid, p.Type, p.Version)
	}
	if len(p.Data) > 0 && !json.Valid(p.Data) {
		return fmt.Errorf("%w: event %s payload is not valid JSON", ErrInvalid, p.Type)
	}
	return nil
}

// Position is a place in the global log. The zero Position is before the
// first event. EventStoreDB positions are a (commit, prepare) pair; the
// embedded store uses its sequence number for both.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event of the global log.
var Start = Position{}

// Less reports whether p comes before q in the global log.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// String renders p as "commit/prepare", or just the number when both agree.
func (p Position) String() string {
	if p.Commit == p.Prepare {
		return fmt.Sprintf("%d", p.Commit)
	}
	return fmt.Sprintf("%d/%d", p.Commit, p.Prepare)
}

// Snapshot is a stream's folded state at a revision, saved so that an actor
// does not replay the whole stream on activation.
type Snapshot struct {
	Stream string
	// Revision is the revision of the last event folded into Data.
	Revision uint64
	// Type and Version name the state's schema, so that a snapshot of an
	// older shape can be ignored and rebuilt from events.
	Type     string
	Version  int
	Data     json.RawMessage
	Recorded time.Time
}
