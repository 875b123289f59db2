package events

import "github.com/google/uuid"

// idNamespace is the UUIDv5 namespace of callguard's derived event IDs.
var idNamespace = uuid.MustParse("6f1c2a1e-6b0e-4d8e-9c55-2f4a1c0d7e31")

// DeriveID returns a deterministic event ID from what caused the event (a
// call ID and the event's role in it, a command ID, ...), so that retrying
// the same work proposes the same IDs and Store.Append stays idempotent.
// EventStoreDB's client draws a random ID when none is given; we never let it.
func DeriveID(parts ...string) uuid.UUID {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0) // separator: ("ab","c") and ("a","bc") differ
	}
	return uuid.NewSHA1(idNamespace, b)
}
