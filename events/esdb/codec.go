package esdb

import (
	"encoding/json"
	"fmt"
	"strings"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// snapshotMarker starts the name of the stream that keeps the snapshots of
// a stream: the snapshots of "caller-+79990001122" live in
// "snapshot@caller-+79990001122" (after the store's prefix). Streams whose
// names start with it are reserved for that and never appear in the global
// log of the Store.
const snapshotMarker = "snapshot@"

// snapshotEventType is the EventStoreDB event type of a snapshot. It starts
// with '$' so that EventStoreDB's own "exclude system events" filter skips
// snapshots as well; the type of the state is in the event's metadata.
const snapshotEventType = "$snapshot"

// wireMeta is an event's EventStoreDB metadata (UserMetadata): the schema
// version of the payload and events.Metadata. Correlation and causation use
// EventStoreDB's reserved names, so that its $by_correlation_id projection
// and UI follow them.
type wireMeta struct {
	SchemaVersion int    `json:"schemaVersion"`
	Node          string `json:"node,omitempty"`
	Actor         string `json:"actor,omitempty"`
	CorrelationID string `json:"$correlationId,omitempty"`
	CausationID   string `json:"$causationId,omitempty"`
}

// readMeta is what decodeMeta accepts: wireMeta, plus the plain
// "correlationId"/"causationId" spelling of events.Metadata's JSON tags, so
// that events written by other tools in that shape read back too.
type readMeta struct {
	wireMeta
	PlainCorrelationID string `json:"correlationId"`
	PlainCausationID   string `json:"causationId"`
}

// encodeMeta renders the UserMetadata of an event.
func encodeMeta(version int, m events.Metadata) ([]byte, error) {
	b, err := json.Marshal(wireMeta{
		SchemaVersion: version,
		Node:          m.Node,
		Actor:         m.Actor,
		CorrelationID: m.CorrelationID,
		CausationID:   m.CausationID,
	})
	if err != nil {
		return nil, fmt.Errorf("encode event metadata: %w", err)
	}
	return b, nil
}

// decodeMeta reads an event's schema version and metadata. It is lenient:
// an event written by another tool, with no metadata or metadata that is not
// ours, reads as schema version 1 with whatever fields it has, so that one
// foreign event never stops a reader of the global log.
func decodeMeta(b []byte) (int, events.Metadata) {
	var rm readMeta
	if len(b) > 0 {
		_ = json.Unmarshal(b, &rm) // lenient on purpose, see above
	}
	version := rm.SchemaVersion
	if version < 1 {
		version = 1
	}
	m := events.Metadata{
		Node:          rm.Node,
		Actor:         rm.Actor,
		CorrelationID: rm.CorrelationID,
		CausationID:   rm.CausationID,
	}
	if m.CorrelationID == "" {
		m.CorrelationID = rm.PlainCorrelationID
	}
	if m.CausationID == "" {
		m.CausationID = rm.PlainCausationID
	}
	return version, m
}

// snapMeta is the UserMetadata of a snapshot event.
type snapMeta struct {
	SchemaVersion int    `json:"schemaVersion"`
	SnapshotType  string `json:"snapshotType"`
	// StreamRevision is events.Snapshot.Revision: the last event folded in.
	StreamRevision uint64 `json:"streamRevision"`
}

// toEventData turns a validated proposed event, whose ID is already set,
// into what the client sends.
func toEventData(p events.Proposed) (client.EventData, error) {
	meta, err := encodeMeta(p.Version, p.Meta)
	if err != nil {
		return client.EventData{}, err
	}
	return client.EventData{
		EventID:     p.ID,
		EventType:   p.Type,
		ContentType: client.ContentTypeJson,
		Data:        p.Data,
		Metadata:    meta,
	}, nil
}

// names maps the Store's stream names to EventStoreDB's and back.
type names struct {
	// prefix starts every EventStoreDB stream name of the store.
	prefix string
}

// stream is the EventStoreDB name of the Store's stream.
func (n names) stream(s string) string { return n.prefix + s }

// snapshots is the EventStoreDB name of the stream holding s's snapshots.
func (n names) snapshots(s string) string { return n.prefix + snapshotMarker + s }

// local returns the Store's name of an EventStoreDB stream, and false when
// the stream is not one of the store's event streams: another prefix, a
// system stream ('$'), or a snapshot stream.
func (n names) local(esdbStream string) (string, bool) {
	if !strings.HasPrefix(esdbStream, n.prefix) {
		return "", false
	}
	s := esdbStream[len(n.prefix):]
	if s == "" || s[0] == '$' || strings.HasPrefix(s, snapshotMarker) {
		return "", false
	}
	return s, true
}

// keep reports whether a record of $all belongs to the Store's global log:
// an event of one of its streams that is not a system event (type starting
// with '$': stream metadata, links, tombstones, snapshots).
func (n names) keep(rec *client.RecordedEvent) bool {
	if rec == nil || strings.HasPrefix(rec.EventType, "$") {
		return false
	}
	_, ok := n.local(rec.StreamID)
	return ok
}

// event maps a recorded event of one of the store's streams.
func (n names) event(rec *client.RecordedEvent) events.Event {
	stream, ok := n.local(rec.StreamID)
	if !ok {
		stream = rec.StreamID // not reached for kept records; keep the name rather than lose it
	}
	version, meta := decodeMeta(rec.UserMetadata)
	var data json.RawMessage
	if len(rec.Data) > 0 {
		data = json.RawMessage(rec.Data)
	}
	return events.Event{
		ID:       rec.EventID,
		Stream:   stream,
		Type:     rec.EventType,
		Version:  version,
		Revision: rec.EventNumber,
		Position: fromPosition(rec.Position),
		Recorded: rec.CreatedDate,
		Meta:     meta,
		Data:     data,
	}
}

// checkStream validates a stream name of the Store.
func checkStream(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty stream name", events.ErrInvalid)
	case s[0] == '$':
		return fmt.Errorf("%w: stream name %q: names starting with '$' are EventStoreDB system streams", events.ErrInvalid, s)
	case strings.HasPrefix(s, snapshotMarker):
		return fmt.Errorf("%w: stream name %q: names starting with %q are reserved for snapshots", events.ErrInvalid, s, snapshotMarker)
	}
	return nil
}

// toExpected maps an expected stream state to the client's.
func toExpected(e events.Expected) client.ExpectedRevision {
	switch {
	case e.IsAny():
		return client.Any{}
	case e.IsNoStream():
		return client.NoStream{}
	case e.IsStreamExists():
		return client.StreamExists{}
	}
	rev, _ := e.Revision()
	return client.Revision(rev)
}

// fromPosition maps a $all position to the Store's.
func fromPosition(p client.Position) events.Position {
	return events.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// allFrom is the client's starting point of a $all read or subscription
// from p: the start of the log for events.Start, else p itself.
func allFrom(p events.Position) client.AllPosition {
	if p == events.Start {
		return client.Start{}
	}
	return client.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// sameIDs reports whether the events recs are exactly ids, in order.
func sameIDs(recs []*client.RecordedEvent, ids []uuid.UUID) bool {
	if len(recs) != len(ids) {
		return false
	}
	for i, r := range recs {
		if r.EventID != ids[i] {
			return false
		}
	}
	return true
}

// anyID returns the first of ids that is the ID of one of recs.
func anyID(recs []*client.RecordedEvent, ids []uuid.UUID) (uuid.UUID, bool) {
	stored := make(map[uuid.UUID]struct{}, len(recs))
	for _, r := range recs {
		stored[r.EventID] = struct{}{}
	}
	for _, id := range ids {
		if _, ok := stored[id]; ok {
			return id, true
		}
	}
	return uuid.Nil, false
}

// maskURL hides the user information of a connection string, so that it
// can be logged: "esdb://admin:changeit@host:2113?tls=false" becomes
// "esdb://***@host:2113?tls=false". A string it cannot make sense of is
// reduced to its scheme.
func maskURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = "***@" + authority[at+1:]
	} else if strings.Contains(tail, "@") {
		// An '@' after the authority is odd enough not to guess about.
		if scheme == "" {
			return "***"
		}
		return scheme + "://***"
	}
	if scheme == "" {
		return authority + tail
	}
	return scheme + "://" + authority + tail
}

// password returns the password in a connection string's user information,
// if any, so that an error message that quotes it can be scrubbed.
func password(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		rest = raw
	}
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}
