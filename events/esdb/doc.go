// Package esdb is the EventStoreDB backend of events.Store, on
// EventStore-Client-Go/v4 (gRPC). Use it for a shared, horizontally scaled
// deployment: every guard node appends to the same server, and
// EventStoreDB's expected revision check keeps each caller's stream linear.
// It relies on the server giving an event the same position in an append's
// answer, a stream read and $all, which current servers do (an event
// written by one append is "self-committed" at (log position, log
// position)); older EventStoreDB versions reported other positions in
// stream reads. The conformance suite, run against the server in use
// (GUARD_EVENTSTORE_URL), checks this.
//
// # Mapping
//
// A stream of the Store is the EventStoreDB stream of the same name (after
// an optional prefix, see WithStreamPrefix). An event is a JSON event
// (content type application/json) whose EventID is events.Event.ID, whose
// type is events.Event.Type and whose metadata is
//
//	{"schemaVersion":2,"node":"a","actor":"grain","$correlationId":"call-1","$causationId":"..."}
//
// (correlation and causation under EventStoreDB's reserved names, which its
// $by_correlation_id projection and UI follow). Event.Recorded is the
// server's created date, Event.Position the (commit, prepare) position in
// $all. The global log of the Store (ReadAll, Subscribe, Head) is $all
// without system streams ('$'), system events (type starting with '$'),
// snapshot streams and, with a prefix, other prefixes' streams.
//
// # Idempotence
//
// The client would draw a random event ID for an event without one, which
// makes a retry write the events twice; Append gives every event its ID
// before anything is sent. The contract's idempotence (a batch whose IDs are
// already the end of the stream returns the original result, whatever the
// expected revision) is checked by reading the end of the stream before the
// write, unless every ID was just drawn; that read is the price of an
// append here (one read and one write). EventStoreDB's own idempotence
// covers the rest of a retry's races. Where EventStoreDB differs from the
// contract:
//
//   - An ID already stored in another stream is not refused: EventStoreDB
//     keeps no index of event IDs (ErrDuplicateID is only given for IDs in
//     the same stream).
//   - For IDs of the same stream deeper than the last len(evs) events,
//     EventStoreDB's check is exact with Exact and NoStream and best effort
//     (a cache of recent IDs) with Any and StreamExists.
//
// # Connection
//
// The v4.2.0 client has one goroutine per client that owns the gRPC
// connection and serves calls over an unbuffered channel. When a node
// discovery fails (MaxDiscoverAttempts, 10 by default, after the server
// went away) that goroutine exits and the client is closed for good, and
// calls that were waiting on the channel wait forever, without a context.
// The Store therefore runs each call in a goroutine of its own, so that the
// caller's context always ends the wait; lets only one call at a time
// through a client that has not answered yet, or has just reported the
// server unavailable, so that a failed discovery strands no call; bounds the
// calls in flight (WithMaxInFlight); and replaces a client that closed
// itself with a new one, after a pause (250 ms doubling to 10 s) during
// which calls fail fast with events.ErrUnavailable. A client is closed only
// when no call is inside it (closing one with a caller waiting on its
// channel panics that caller), and a panic inside the client becomes an
// error of the call. What remains: calls already inside a client when its
// rediscovery fails stay stranded (at most WithMaxInFlight of them), and
// the client leaks the gRPC connection it rediscovers from.
//
// # Subscriptions
//
// The client's catch-up subscription starts at the end of $all unless told
// otherwise and is not restarted after a drop. Subscribe starts it after
// the given position and resubscribes after the last event seen, with a
// pause of 100 ms doubling to 5 s, skipping any event at or before it; see
// Store.Subscribe.
//
// # Snapshots
//
// The snapshots of a stream are "$snapshot" events in the stream
// "snapshot@" + stream, whose stream metadata says $maxCount 1; see
// Store.SaveSnapshot. Stream names starting with '$' or "snapshot@" are
// refused with events.ErrInvalid.
package esdb
