// Package events holds the event model of callguard and the Store interface
// that every backend implements.
//
// Everything callguard knows is an event in a stream: one stream per caller
// number, one per call, one per admin command batch. State is what the events
// fold into. A Store appends events to a stream with an expected revision
// (optimistic concurrency, one writer per stream), reads a stream, reads the
// global log in commit order, and keeps the latest snapshot of a stream.
//
// Payloads are JSON so that a person can read them in EventStoreDB's UI; the
// envelope around them (ID, type, schema version, revisions, metadata) is
// kept by the store. Schema evolution happens at decode time: a Registry
// upcasts an older version of a payload to the current one before it is
// unmarshalled, so stored events are never rewritten.
package events
