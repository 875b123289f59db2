package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// The log keeps the envelope in a compact binary form rather than JSON: a
// full replay decodes every record, and JSON would cost several times more.
// Only the payload stays JSON, byte for byte as the domain wrote it.
//
// Event record (value of bucket "log", key = 8-byte big-endian sequence):
//
//	byte     format (recordV1)
//	16 bytes ID
//	8 bytes  revision, big-endian
//	8 bytes  recorded, Unix nanoseconds, big-endian (zeroTime for the zero time)
//	uvarint  schema version
//	uvarint+bytes stream, type, node, actor, correlation ID, causation ID
//	rest     JSON payload
//
// Revision and recorded have fixed offsets so that Append can encode a
// record on the caller's goroutine and the writer only fills them in: the
// single writer does less, and it never reads the caller's payload.
//
// Snapshot record (value of bucket "snapshots", key = stream):
//
//	byte     format (snapshotV1)
//	uvarint  revision
//	varint   recorded
//	uvarint  schema version
//	uvarint+bytes type
//	rest     JSON state
const (
	recordV1   byte = 1
	snapshotV1 byte = 1
)

// zeroTime stands for time.Time{}, whose UnixNano does not fit in an int64.
const zeroTime = math.MinInt64

var errCorrupt = errors.New("corrupt record")

func putTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, timeNanos(t)) }

func toTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

const (
	offRev      = 17
	offRecorded = 25
	offVersion  = 33
)

func timeNanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

// eventSize bounds the encoded size of an event record, so that it can be
// written into a buffer without growing.
func eventSize(stream string, p *events.Proposed) int {
	const varints = binary.MaxVarintLen64 + 6*binary.MaxVarintLen32
	return offVersion + varints + len(stream) + len(p.Type) + len(p.Meta.Node) +
		len(p.Meta.Actor) + len(p.Meta.CorrelationID) + len(p.Meta.CausationID) + len(p.Data)
}

// appendEvent appends the record of p in stream with revision and recorded
// left zero; setPlace fills them in.
func appendEvent(b []byte, stream string, p *events.Proposed) []byte {
	b = append(b, recordV1)
	b = append(b, p.ID[:]...)
	b = append(b, make([]byte, offVersion-offRev)...)
	b = binary.AppendUvarint(b, uint64(p.Version))
	b = putString(b, stream)
	b = putString(b, p.Type)
	b = putString(b, p.Meta.Node)
	b = putString(b, p.Meta.Actor)
	b = putString(b, p.Meta.CorrelationID)
	b = putString(b, p.Meta.CausationID)
	return append(b, p.Data...)
}

// setPlace stores the revision and commit time of the record rec.
func setPlace(rec []byte, rev uint64, recorded int64) {
	binary.BigEndian.PutUint64(rec[offRev:], rev)
	binary.BigEndian.PutUint64(rec[offRecorded:], uint64(recorded))
}

// reader walks a record. The first error sticks, so a caller checks once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a length-prefixed field; it aliases the record.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// header is the part of a record needed to check where an event is stored,
// decoded without allocating.
type header struct {
	id     uuid.UUID
	rev    uint64
	stream []byte
}

func decodeHeader(v []byte) (header, error) {
	var h header
	if len(v) < offVersion || v[0] != recordV1 {
		return h, errCorrupt
	}
	copy(h.id[:], v[1:offRev])
	h.rev = binary.BigEndian.Uint64(v[offRev:])
	r := reader{b: v[offVersion:]}
	r.uvarint()
	h.stream = r.bytes()
	return h, r.err
}

// decoder turns records into Events. Records live in bbolt's memory map and
// are valid only inside their transaction, so everything is copied out: the
// payloads into shared arena chunks (fewer allocations than one per event)
// and the repetitive strings (stream, type, node, actor) through an intern
// table.
type decoder struct {
	arena  []byte
	intern map[string]string
}

const (
	// arenaChunk bounds an arena chunk. Chunks start small and double up
	// to it: most reads are a grain's short stream or a subscriber's page
	// of a few new events, and a 64 KiB chunk for each of those was most
	// of the bytes the guard allocated under load; a long read (a rebuild)
	// reaches full chunks after a few events.
	arenaChunk = 64 << 10
	firstChunk = 512
	maxIntern  = 4096
)

// newDecoder returns a decoder; its intern table is made on first use, and
// small: a short read interns a handful of names.
func newDecoder() *decoder { return &decoder{} }

// copyBytes copies b into the arena. The result's capacity is its length, so
// appending to one event's payload cannot overwrite the next one's.
func (d *decoder) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > arenaChunk/4 {
		return append([]byte(nil), b...)
	}
	if len(b) > cap(d.arena)-len(d.arena) {
		d.arena = make([]byte, 0, min(arenaChunk, max(2*cap(d.arena), 2*len(b), firstChunk)))
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

func (d *decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := d.intern[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if d.intern == nil {
		d.intern = make(map[string]string, 8)
	}
	if len(d.intern) >= maxIntern {
		clear(d.intern) // bound memory when names do not repeat
	}
	d.intern[s] = s
	return s
}

// event decodes the record v stored at sequence seq.
func (d *decoder) event(seq uint64, v []byte) (events.Event, error) {
	var ev events.Event
	if len(v) < offVersion || v[0] != recordV1 {
		return ev, fmt.Errorf("event at %d: %w", seq, errCorrupt)
	}
	copy(ev.ID[:], v[1:offRev])
	ev.Revision = binary.BigEndian.Uint64(v[offRev:])
	ev.Recorded = toTime(int64(binary.BigEndian.Uint64(v[offRecorded:])))
	r := reader{b: v[offVersion:]}
	ev.Version = int(r.uvarint())
	ev.Stream = d.str(r.bytes())
	ev.Type = d.str(r.bytes())
	ev.Meta.Node = d.str(r.bytes())
	ev.Meta.Actor = d.str(r.bytes())
	if b := r.bytes(); len(b) > 0 {
		ev.Meta.CorrelationID = string(b)
	}
	if b := r.bytes(); len(b) > 0 {
		ev.Meta.CausationID = string(b)
	}
	if r.err != nil {
		return ev, fmt.Errorf("event at %d: %w", seq, r.err)
	}
	ev.Data = d.copyBytes(r.b)
	ev.Position = events.Position{Commit: seq, Prepare: seq}
	return ev, nil
}

func appendSnapshot(b []byte, snap *events.Snapshot) []byte {
	b = append(b, snapshotV1)
	b = binary.AppendUvarint(b, snap.Revision)
	b = putTime(b, snap.Recorded)
	b = binary.AppendUvarint(b, uint64(snap.Version))
	b = putString(b, snap.Type)
	return append(b, snap.Data...)
}

func decodeSnapshot(stream string, v []byte) (events.Snapshot, error) {
	snap := events.Snapshot{Stream: stream}
	if len(v) < 1 || v[0] != snapshotV1 {
		return snap, fmt.Errorf("snapshot of %s: %w", stream, errCorrupt)
	}
	r := reader{b: v[1:]}
	snap.Revision = r.uvarint()
	snap.Recorded = toTime(r.varint())
	snap.Version = int(r.uvarint())
	snap.Type = string(r.bytes())
	if r.err != nil {
		return snap, fmt.Errorf("snapshot of %s: %w", stream, r.err)
	}
	if len(r.b) > 0 {
		snap.Data = append([]byte(nil), r.b...)
	}
	return snap, nil
}

// Keys.

func seqKey(b []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(b, seq) }

// streamPrefix is the "idx" key prefix of stream. The length prefix keeps
// streams apart even when a name contains any byte or is a prefix of another.
func streamPrefix(b []byte, stream string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(stream)))
	return append(b, stream...)
}

func revKey(b []byte, stream string, rev uint64) []byte {
	return binary.BigEndian.AppendUint64(streamPrefix(b, stream), rev)
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
