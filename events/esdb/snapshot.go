package esdb

import (
	"context"
	"encoding/json"
	"fmt"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// SaveSnapshot implements events.Store. A stream's snapshots are events of
// type "$snapshot" in a stream of their own ("snapshot@" + stream, after
// the prefix), whose metadata says $maxCount 1, so that EventStoreDB keeps
// only the latest for reads and scavenges the rest. The metadata is written
// with the first snapshot and again whenever the snapshot stream reaches a
// power-of-two revision, which repairs a first write that failed halfway.
// Snapshot streams are not part of the global log.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, err)
	}
	if err := checkStream(snap.Stream); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if snap.Type == "" || snap.Version < 1 {
		return fmt.Errorf("save snapshot of %s: %w: type %q version %d", snap.Stream, events.ErrInvalid, snap.Type, snap.Version)
	}
	meta, err := json.Marshal(snapMeta{SchemaVersion: snap.Version, SnapshotType: snap.Type, StreamRevision: snap.Revision})
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, err)
	}
	contentType := client.ContentTypeBinary
	if len(snap.Data) > 0 && json.Valid(snap.Data) {
		contentType = client.ContentTypeJson
	}
	ev := client.EventData{
		EventID:     uuid.New(), // never let the client draw one
		EventType:   snapshotEventType,
		ContentType: contentType,
		Data:        snap.Data,
		Metadata:    meta,
	}
	name := s.names.snapshots(snap.Stream)
	err = s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		wr, err := cl.AppendToStream(ctx, name, client.AppendToStreamOptions{ExpectedRevision: client.Any{}}, ev)
		if err != nil {
			return err
		}
		if rev := wr.NextExpectedVersion; rev&(rev-1) == 0 { // 0, 1, 2, 4, 8, ...
			var md client.StreamMetadata
			md.SetMaxCount(1)
			if _, err := cl.SetStreamMetadata(ctx, name, client.AppendToStreamOptions{ExpectedRevision: client.Any{}}, md); err != nil {
				// The snapshot is saved; older ones only linger.
				s.log.Warn("could not limit a snapshot stream to its latest snapshot", "stream", name, "err", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", snap.Stream, err)
	}
	return nil
}

// LoadSnapshot implements events.Store: the last event of the snapshot
// stream.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return events.Snapshot{}, false, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	if err := checkStream(stream); err != nil {
		return events.Snapshot{}, false, fmt.Errorf("load snapshot: %w", err)
	}
	name := s.names.snapshots(stream)
	var (
		snap  events.Snapshot
		found bool
	)
	err := s.run(ctx, func(ctx context.Context, cl *client.Client) error {
		t, ok, err := tail(ctx, cl, name, 1)
		if err != nil || !ok {
			return err
		}
		snap, err = decodeSnapshot(stream, t[0])
		found = err == nil
		return err
	})
	if err != nil {
		return events.Snapshot{}, false, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	return snap, found, nil
}

// decodeSnapshot maps the event of a snapshot stream back.
func decodeSnapshot(stream string, rec *client.RecordedEvent) (events.Snapshot, error) {
	if rec.EventType != snapshotEventType {
		return events.Snapshot{}, fmt.Errorf("%s@%d is a %q event, not a snapshot", rec.StreamID, rec.EventNumber, rec.EventType)
	}
	var m snapMeta
	if err := json.Unmarshal(rec.UserMetadata, &m); err != nil {
		return events.Snapshot{}, fmt.Errorf("%s@%d: snapshot metadata: %w", rec.StreamID, rec.EventNumber, err)
	}
	if m.SnapshotType == "" || m.SchemaVersion < 1 {
		return events.Snapshot{}, fmt.Errorf("%s@%d: snapshot metadata names type %q version %d", rec.StreamID, rec.EventNumber, m.SnapshotType, m.SchemaVersion)
	}
	var data json.RawMessage
	if len(rec.Data) > 0 {
		data = json.RawMessage(rec.Data)
	}
	return events.Snapshot{
		Stream:   stream,
		Revision: m.StreamRevision,
		Type:     m.SnapshotType,
		Version:  m.SchemaVersion,
		Data:     data,
		Recorded: rec.CreatedDate,
	}, nil
}
