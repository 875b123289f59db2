// Package call is the call actor: one short-lived protoactor-go actor per
// call, spawned on the node's local actor system when an INVITE is
// accepted for processing and stopped when the call ends.
//
// The actor is the call's brain; the SIP side (package sip/guard) is its
// hands. The actor
//
//   - asks the caller's grain for the verdict (caller.Admit) and acts on it
//     only once the grain returned, that is once the verdict is durable;
//   - carries the verdict out through Effects: Reject, Pass, Challenge,
//     then Bridge or Hangup;
//   - draws the challenge code and judges the caller's attempt;
//   - owns the challenge timer: the caller has the carrier's unbilled grace
//     interval minus one second, counted from the 200 OK, to type the code,
//     and the guard hangs up at that deadline, before the carrier starts
//     billing;
//   - tells the grain how the challenge ended (caller.Outcome);
//   - records what happened after the decision in the call's own stream
//     ("call-<id>", see events/schema/calls.go), once, when the call ends.
//
// The SIP side reports facts as messages (Answered, EarlyMedia, Digit,
// PBXAnswered, Ended). Effects never block the actor: they start SIP and
// RTP work on the session's own goroutines and report back by message.
//
// Rules and shell: the call's rules (one attempt, the deadline, what is
// billed, observe mode, the store-down policy, a caller who leaves before
// the verdict, when the grain hears an outcome) are a pure state machine
// in machine.go: a fact and the time it is handled go in, the events to
// record and the orders to carry out come out, with no clock, goroutine or
// I/O. The scripts in testdata/*.txt walk it through each rule. The actor
// (actor.go) is the shell: it feeds the machine the messages it receives,
// stamped with the injected clock, draws the code from the injected random
// source, and executes the machine's outputs: the stream writer, the
// grain requests, the timer (Deps.AfterFunc), the Effects. The counters
// and the observer follow the events and orders the machine returns.
//
// Ownership: the machine and every field of the actor are touched only
// from Receive, one message at a time, so a late digit and the deadline
// cannot both win. The grain request and the outcome report run on
// goroutines of their own and reach the actor as messages; their retries
// pause with Deps.Sleep and give up by Deps.Clock. The caller stream's
// CallReceived, written by the grain, is the durable record a verdict
// waits for, and for a reject the call's whole record. The call stream of
// any other call is held in memory and written when the call ends, in one
// append, by a streamWriter goroutine that retries while the store is
// down, so a call is never slowed by its audit trail and no fact is lost
// to a short outage (events/schema/calls.go, "What a call writes"). An
// append the store refused is also kept in the node's pending spool
// (package spool) until it is written, so that a restart before the store
// returns loses nothing: Spawner.RecordPending appends what the spool
// holds.
package call
