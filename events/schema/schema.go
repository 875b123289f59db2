// Package schema holds the payloads of callguard's domain events: what is
// written into a caller's stream, field by field, and the registry that
// decodes them.
//
// Payloads are JSON with camelCase fields, small enough to read in
// EventStoreDB's UI and to keep millions of calls on disk: optional fields
// are omitted when empty, times are RFC 3339 in UTC. Each type has a schema
// version; a change that is not a pure addition of an optional field bumps
// the version and registers an upcaster in NewRegistry, so old events stay
// readable without being rewritten.
//
// Event IDs are derived (events.DeriveID) from what caused the event — the
// call, the admin command, the block that expired — so that a retried append
// proposes the same IDs and the store drops the duplicate.
package schema

import (
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// CallerStreamPrefix starts the name of every caller stream. EventStoreDB's
// by-category projection groups streams by the text before the first dash,
// so "caller-+78005553535" falls in category "caller".
const CallerStreamPrefix = "caller-"

// CallerStream names the stream of the caller whose normalised key is key
// (E.164 or phone.AnonymousKey).
func CallerStream(key string) string { return CallerStreamPrefix + key }

// CallerKey returns the caller key of a caller stream, and false when
// stream is not one.
func CallerKey(stream string) (string, bool) {
	if len(stream) <= len(CallerStreamPrefix) || stream[:len(CallerStreamPrefix)] != CallerStreamPrefix {
		return "", false
	}
	return stream[len(CallerStreamPrefix):], true
}

// Payload is implemented by every event payload of this package.
type Payload interface {
	// EventType is the type name stored in the envelope.
	EventType() string
	// EventVersion is the current schema version of the payload.
	EventVersion() int
}

// Record is an event the domain wants appended: its deterministic ID and its
// payload. The policy returns Records; the caller grain turns them into
// events.Proposed with Proposed, appends them, and only then folds them.
type Record struct {
	ID      uuid.UUID
	Payload Payload
}

// Proposed marshals the record for Store.Append.
func (r Record) Proposed(meta events.Metadata) (events.Proposed, error) {
	p, err := events.NewProposed(r.ID, r.Payload.EventType(), r.Payload.EventVersion(), meta, r.Payload)
	if err != nil {
		return events.Proposed{}, fmt.Errorf("schema: %w", err)
	}
	return p, nil
}

// Proposals marshals records in order.
func Proposals(recs []Record, meta events.Metadata) ([]events.Proposed, error) {
	out := make([]events.Proposed, 0, len(recs))
	for _, r := range recs {
		p, err := r.Proposed(meta)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Roles name what an event is to its cause, so that one call or command
// that causes several events gives each a distinct ID.
const (
	RoleReceived   = "received"
	RoleBlock      = "block"
	RoleOutcome    = "outcome"
	RoleEscalation = "escalation"
	RoleCommand    = "command"
	RoleExpiry     = "expiry"
)

// CallEventID is the ID of the event playing role for call callID in the
// stream of caller key. Call-IDs are unique per trunk, not per planet, so
// the caller key is part of the derivation.
func CallEventID(key, callID, role string) uuid.UUID {
	return events.DeriveID(CallerStreamPrefix, key, "call", callID, role)
}

// CommandEventID is the ID of the event an admin command commandID caused in
// the stream of caller key. The admin API chooses commandID (an
// Idempotency-Key header, or a fresh UUID), so a retried request writes once.
func CommandEventID(key, commandID string) uuid.UUID {
	return events.DeriveID(CallerStreamPrefix, key, "command", commandID, RoleCommand)
}

// ExpiryEventID is the ID of the event recording that the block or
// whitelist entry of type typ which began at since ran out at until. The
// same entry expires once whoever notices it (a call, a timer, a replay).
func ExpiryEventID(key, typ string, since, until time.Time) uuid.UUID {
	return events.DeriveID(CallerStreamPrefix, key, RoleExpiry, typ,
		strconv.FormatInt(since.UnixNano(), 10), strconv.FormatInt(until.UnixNano(), 10))
}

// NewRegistry returns a registry of every payload of this package at its
// current version, with the upcasters of older versions.
func NewRegistry() *events.Registry {
	r := events.NewRegistry()
	for _, p := range All() {
		r.Register(p.EventType(), p.EventVersion(), p)
	}
	// Upcasters go here when a version changes, for example:
	//   r.Upcast(TypeCallReceived, 1, upcastCallReceivedV1)
	return r
}

// All returns a zero value of every payload type, for registries and tests.
func All() []Payload {
	return append([]Payload{
		CallReceived{}, ChallengeOutcome{},
		BlockApplied{}, BlockLifted{}, BlockExpired{},
		Whitelisted{}, Unwhitelisted{}, WhitelistExpired{},
	}, append(append(append(append(callPayloads(), rangePayloads()...), linePayloads()...), settingsPayloads()...), append(originPayloads(), userPayloads()...)...)...)
}

// Value returns p as a value: the registry decodes payloads to pointers,
// the policy returns values, and folds switch on the value types. A nil
// pointer gives nil; a value or a foreign type is returned as is. A type
// switch rather than reflection, as folds call it once per event; the test
// holds it to All, so a new payload type cannot be forgotten.
func Value(p Payload) Payload {
	switch e := p.(type) {
	case *CallReceived:
		if e == nil {
			return nil
		}
		return *e
	case *ChallengeOutcome:
		if e == nil {
			return nil
		}
		return *e
	case *BlockApplied:
		if e == nil {
			return nil
		}
		return *e
	case *BlockLifted:
		if e == nil {
			return nil
		}
		return *e
	case *BlockExpired:
		if e == nil {
			return nil
		}
		return *e
	case *Whitelisted:
		if e == nil {
			return nil
		}
		return *e
	case *Unwhitelisted:
		if e == nil {
			return nil
		}
		return *e
	case *WhitelistExpired:
		if e == nil {
			return nil
		}
		return *e
	case *CallStarted:
		if e == nil {
			return nil
		}
		return *e
	case *CallDecided:
		if e == nil {
			return nil
		}
		return *e
	case *ChallengeStarted:
		if e == nil {
			return nil
		}
		return *e
	case *CallAnswered:
		if e == nil {
			return nil
		}
		return *e
	case *CodeEntered:
		if e == nil {
			return nil
		}
		return *e
	case *ChallengeEnded:
		if e == nil {
			return nil
		}
		return *e
	case *CallBridged:
		if e == nil {
			return nil
		}
		return *e
	case *CallEnded:
		if e == nil {
			return nil
		}
		return *e
	case *RangeWhitelisted:
		if e == nil {
			return nil
		}
		return *e
	case *RangeBlocked:
		if e == nil {
			return nil
		}
		return *e
	case *RangeRemoved:
		if e == nil {
			return nil
		}
		return *e
	case *LineAttackStarted:
		if e == nil {
			return nil
		}
		return *e
	case *LineAttackEnded:
		if e == nil {
			return nil
		}
		return *e
	case *LineSettingsSet:
		if e == nil {
			return nil
		}
		return *e
	case *LineSettingsCleared:
		if e == nil {
			return nil
		}
		return *e
	case *ScheduleAdded:
		if e == nil {
			return nil
		}
		return *e
	case *ScheduleRemoved:
		if e == nil {
			return nil
		}
		return *e
	case *OriginRuleSet:
		if e == nil {
			return nil
		}
		return *e
	case *OriginRuleRemoved:
		if e == nil {
			return nil
		}
		return *e
	case *UserCreated:
		if e == nil {
			return nil
		}
		return *e
	case *UserRoleChanged:
		if e == nil {
			return nil
		}
		return *e
	case *UserPasswordChanged:
		if e == nil {
			return nil
		}
		return *e
	case *UserDisabled:
		if e == nil {
			return nil
		}
		return *e
	case *UserEnabled:
		if e == nil {
			return nil
		}
		return *e
	}
	return p
}

// UTC returns t without its monotonic clock reading and in UTC: neither
// survives JSON, and a payload should compare equal to itself read back.
func UTC(t time.Time) time.Time { return t.Round(0).UTC() }
