// Package storetest is the conformance suite of events.Store. Every backend
// runs it from its own tests, the way each watermill Pub/Sub calls
// tests.TestPubSub: a guarantee is added here, never to one backend's tests,
// and Features names what a backend legitimately does differently.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) events.Store {
//			s, err := embedded.Open(t.Context(), t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { _ = s.Close() })
//			return s
//		}, storetest.Features{DensePositions: true})
//	}
//
// The doc comments of events.Store are the contract. Where they are silent
// the suite requires the following, which every caller of a Store in
// callguard may rely on:
//
//   - Append with no events, an empty stream name, or any invalid event
//     (Proposed.Validate) returns ErrInvalid and writes nothing.
//   - Two events with one ID in a single Append are refused (ErrInvalid or
//     ErrDuplicateID) and nothing is written.
//   - Repeating an append whose events are stored but are no longer the end
//     of their stream gives ErrDuplicateID (the IDs are stored elsewhere than
//     where the append would put them), as does a batch that mixes stored
//     and new IDs; neither writes anything.
//   - Every method that takes a context, called with a context that is
//     already done, returns an error for which errors.Is(err, ctx.Err()) is
//     true, and has no effect (nothing appended, no snapshot saved).
//   - ReadStream and ReadAll return exactly limit events when that many
//     exist after from: a shorter page means the end, as
//     events.ReadWholeStream assumes.
//   - Subscribe calls its handler from one goroutine at a time and never
//     again after the handler returned an error; events are delivered in
//     strictly increasing Position, all after from.
//   - A Subscribe in progress when the store is closed returns an error
//     promptly; calls after Close return ErrClosed.
//
// Each case works in streams whose names end with a random token, and reads
// the global log only after the Head it saw when it started, so that the
// suite also runs against a server that other tests share (Features.SharedLog).
// Tests wait by polling (checkFor), never by sleeping for a guessed time.
// The 100,000-event case is skipped under -short.
package storetest

import (
	"testing"

	"github.com/callguard/callguard/events"
)

// Factory returns a new store for one case. Unless Features.SharedLog is set
// the store must be empty. The factory registers the store's Close with
// t.Cleanup; that cleanup must accept a store the suite has already closed
// (Close then returns nil or ErrClosed).
type Factory func(t *testing.T) events.Store

// Features are what a backend does differently. The zero value asks for
// nothing beyond the contract.
type Features struct {
	// DensePositions says the global log numbers its events 1, 2, 3, ...
	// with no gap and Commit == Prepare, so that the events of one append
	// take consecutive positions. The embedded store does; EventStoreDB's
	// positions are byte offsets.
	DensePositions bool
	// SharedLog says the global log may hold events written by others (one
	// EventStoreDB server shared by every test). The suite then does not
	// expect a new store to be empty and looks in the global log only at
	// the streams the case created.
	SharedLog bool
}

type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

// cases is the whole suite, in the order Run runs it.
var cases = []testCase{
	{"AppendReadRoundTrip", testAppendReadRoundTrip},
	{"ExpectedRevision", testExpectedRevision},
	{"AppendIsAtomicAndContiguous", testAppendAtomic},
	{"IdempotentRetry", testIdempotentRetry},
	{"DuplicateID", testDuplicateID},
	{"ZeroIDs", testZeroIDs},
	{"InvalidInput", testInvalidInput},
	{"ConcurrentWritersOneStream", testConcurrentOneStream},
	{"ConcurrentWritersManyStreams", testConcurrentManyStreams},
	{"GlobalOrder", testGlobalOrder},
	{"ReadStreamRanges", testReadStreamRanges},
	{"ReadAllRanges", testReadAllRanges},
	{"SubscribeCatchUpToLive", testSubscribeCatchUpToLive},
	{"SubscribeSlowHandler", testSubscribeSlowHandler},
	{"SubscribeFromMiddle", testSubscribeFromMiddle},
	{"SubscribeHandlerError", testSubscribeHandlerError},
	{"SubscribeCancel", testSubscribeCancel},
	{"Snapshots", testSnapshots},
	{"CancelledContext", testCancelledContext},
	{"Close", testClose},
	{"LargeStream", testLargeStream},
}

// Run runs every case as a subtest of t, each with a store from open.
func Run(t *testing.T, open Factory, features Features) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newHarness(t, open, features))
		})
	}
}
