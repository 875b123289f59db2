package embedded

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

func TestEventCodecRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC)
	tests := []struct {
		name     string
		stream   string
		rev      uint64
		recorded time.Time
		p        events.Proposed
	}{
		{
			name: "minimal", stream: "s", rev: 0, recorded: at,
			p: events.Proposed{ID: uuid.New(), Type: "T", Version: 1},
		},
		{
			name: "full metadata", stream: "caller-+79161234567", rev: 41, recorded: at,
			p: events.Proposed{
				ID: uuid.New(), Type: "CallReceived", Version: 3,
				Meta: events.Metadata{Node: "node-1", Actor: "admin:alice", CorrelationID: "call-1", CausationID: "cmd-7"},
				Data: []byte(`{"caller":"+79161234567","callee":"88001234567"}`),
			},
		},
		{
			name: "unicode and binary-looking names", stream: "абонент\x00\xff", rev: 1 << 40, recorded: at,
			p: events.Proposed{ID: uuid.New(), Type: "Заблокирован", Version: 1, Data: []byte(`"строка"`)},
		},
		{
			name: "zero time", stream: "s", rev: 7, recorded: time.Time{},
			p: events.Proposed{ID: uuid.New(), Type: "T", Version: 1, Data: []byte(`{}`)},
		},
		{
			name: "before 1970", stream: "s", rev: 7, recorded: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC),
			p: events.Proposed{ID: uuid.New(), Type: "T", Version: 1, Data: []byte(`[]`)},
		},
		{
			name: "max revision, large payload", stream: strings.Repeat("x", 300), rev: ^uint64(0), recorded: at,
			p: events.Proposed{ID: uuid.New(), Type: "Big", Version: 1 << 20, Data: []byte(`"` + strings.Repeat("a", 100_000) + `"`)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := appendEvent(nil, tc.stream, &tc.p)
			setPlace(rec, tc.rev, timeNanos(tc.recorded))
			if len(rec) > eventSize(tc.stream, &tc.p) {
				t.Fatalf("record is %d bytes, eventSize bound is %d", len(rec), eventSize(tc.stream, &tc.p))
			}
			got, err := newDecoder().event(99, rec)
			if err != nil {
				t.Fatal(err)
			}
			want := events.Event{
				ID: tc.p.ID, Stream: tc.stream, Type: tc.p.Type, Version: tc.p.Version,
				Revision: tc.rev, Position: events.Position{Commit: 99, Prepare: 99},
				Recorded: tc.recorded, Meta: tc.p.Meta, Data: tc.p.Data,
			}
			if !got.Recorded.Equal(want.Recorded) {
				t.Errorf("Recorded = %v, want %v", got.Recorded, want.Recorded)
			}
			got.Recorded, want.Recorded = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
			h, err := decodeHeader(rec)
			if err != nil {
				t.Fatal(err)
			}
			if h.id != tc.p.ID || h.rev != tc.rev || string(h.stream) != tc.stream {
				t.Errorf("header = %v %d %q", h.id, h.rev, h.stream)
			}
		})
	}
}

func TestDecodedPayloadsDoNotOverlap(t *testing.T) {
	d := newDecoder()
	p := events.Proposed{ID: uuid.New(), Type: "T", Version: 1, Data: []byte(`[1]`)}
	a, err := d.event(1, appendEvent(nil, "s", &p))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.event(2, appendEvent(nil, "s", &p))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(a.Data, 'x') // must reallocate, not write into b's payload
	if string(b.Data) != `[1]` {
		t.Fatalf("appending to one payload changed the next: %q", b.Data)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	p := events.Proposed{ID: uuid.New(), Type: "Type", Version: 1, Meta: events.Metadata{Node: "n"}, Data: []byte(`{}`)}
	rec := appendEvent(nil, "stream", &p)
	tests := []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{9}, rec[1:]...)},
		{"truncated id", rec[:10]},
		{"truncated header", rec[:20]},
		{"truncated version", rec[:offVersion]},
		{"length past end", append(append([]byte(nil), rec[:offVersion]...), 1, 0xff, 0x01)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newDecoder().event(1, tc.rec); !errors.Is(err, errCorrupt) {
				t.Errorf("event: err = %v, want errCorrupt", err)
			}
			if _, err := decodeHeader(tc.rec); !errors.Is(err, errCorrupt) {
				t.Errorf("header: err = %v, want errCorrupt", err)
			}
		})
	}
}

func TestSnapshotCodecRoundTrip(t *testing.T) {
	tests := []events.Snapshot{
		{Stream: "s", Revision: 0, Type: "CallerState", Version: 1, Recorded: time.Unix(1700000000, 5).UTC()},
		{Stream: "caller-1", Revision: 1 << 50, Type: "CallerState", Version: 12, Data: []byte(`{"level":3}`), Recorded: time.Unix(1, 0).UTC()},
		{Stream: "z", Revision: 3, Type: "T", Version: 1, Data: []byte(`null`)},
	}
	for _, want := range tests {
		t.Run(want.Stream, func(t *testing.T) {
			got, err := decodeSnapshot(want.Stream, appendSnapshot(nil, &want))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Recorded.Equal(want.Recorded) || got.Stream != want.Stream || got.Revision != want.Revision ||
				got.Type != want.Type || got.Version != want.Version || !bytes.Equal(got.Data, want.Data) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	if _, err := decodeSnapshot("s", []byte{snapshotV1, 0x80}); !errors.Is(err, errCorrupt) {
		t.Errorf("corrupt snapshot: err = %v", err)
	}
}

func TestRevKeysKeepStreamsApart(t *testing.T) {
	// "a" at some revision must never share a prefix scan or a key with a
	// stream whose name starts with "a" followed by bytes of a revision.
	a := revKey(nil, "a", 0x0000000000000102)
	b := revKey(nil, "a\x00\x00\x00\x00\x00\x00\x01\x02", 0)
	if bytes.HasPrefix(b, streamPrefix(nil, "a")) || bytes.Equal(a, b) {
		t.Fatalf("keys collide: %x %x", a, b)
	}
}
