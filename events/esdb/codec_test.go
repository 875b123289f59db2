package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/callguard/callguard/events"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		version int
		meta    events.Metadata
	}{
		{1, events.Metadata{}},
		{2, events.Metadata{Node: "node-a", Actor: "grain", CorrelationID: "call-1", CausationID: "invite-1"}},
		{7, events.Metadata{Actor: "admin:алиса", CausationID: `"quoted" \ <tag> & done`}},
	} {
		b, err := encodeMeta(tt.version, tt.meta)
		if err != nil {
			t.Fatalf("encodeMeta(%d, %+v): %v", tt.version, tt.meta, err)
		}
		if !json.Valid(b) {
			t.Fatalf("encodeMeta(%d, %+v) = %s, not JSON", tt.version, tt.meta, b)
		}
		v, m := decodeMeta(b)
		if v != tt.version || m != tt.meta {
			t.Fatalf("decodeMeta(%s) = %d, %+v; want %d, %+v", b, v, m, tt.version, tt.meta)
		}
	}
}

// The metadata is readable in EventStoreDB's UI and its correlation and
// causation are where EventStoreDB's projections look for them.
func TestMetaWireShape(t *testing.T) {
	b, err := encodeMeta(2, events.Metadata{Node: "n", Actor: "a", CorrelationID: "c", CausationID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"schemaVersion":2,"node":"n","actor":"a","$correlationId":"c","$causationId":"x"}`
	if string(b) != want {
		t.Fatalf("encodeMeta = %s, want %s", b, want)
	}
	b, _ = encodeMeta(1, events.Metadata{})
	if string(b) != `{"schemaVersion":1}` {
		t.Fatalf("encodeMeta of empty metadata = %s", b)
	}
}

func TestDecodeMetaIsLenient(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		version int
		meta    events.Metadata
	}{
		{"no metadata", ``, 1, events.Metadata{}},
		{"not JSON", `hello`, 1, events.Metadata{}},
		{"a JSON array", `[1,2]`, 1, events.Metadata{}},
		{"no schema version", `{"node":"n"}`, 1, events.Metadata{Node: "n"}},
		{"schema version 0", `{"schemaVersion":0}`, 1, events.Metadata{}},
		{"plain correlation keys", `{"schemaVersion":3,"correlationId":"c","causationId":"x"}`, 3, events.Metadata{CorrelationID: "c", CausationID: "x"}},
		{"reserved keys win", `{"$correlationId":"r","correlationId":"p"}`, 1, events.Metadata{CorrelationID: "r"}},
		{"unknown fields", `{"schemaVersion":2,"$tenant":"x","actor":"grain"}`, 2, events.Metadata{Actor: "grain"}},
	} {
		v, m := decodeMeta([]byte(tt.in))
		if v != tt.version || m != tt.meta {
			t.Errorf("%s: decodeMeta(%q) = %d, %+v; want %d, %+v", tt.name, tt.in, v, m, tt.version, tt.meta)
		}
	}
}

func TestToEventData(t *testing.T) {
	id := uuid.New()
	p := events.Proposed{ID: id, Type: "CallReceived", Version: 2, Meta: events.Metadata{Node: "n"}, Data: json.RawMessage(`{"a":1}`)}
	d, err := toEventData(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != id || d.EventType != "CallReceived" || d.ContentType != client.ContentTypeJson || string(d.Data) != `{"a":1}` {
		t.Fatalf("toEventData = %+v", d)
	}
	if v, m := decodeMeta(d.Metadata); v != 2 || m != p.Meta {
		t.Fatalf("metadata %s decodes to %d, %+v", d.Metadata, v, m)
	}
}

func TestRecordToEvent(t *testing.T) {
	n := names{prefix: "t1."}
	id := uuid.New()
	created := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	meta, _ := encodeMeta(3, events.Metadata{Actor: "grain", CorrelationID: "call-9"})
	rec := &client.RecordedEvent{
		EventID:      id,
		EventType:    "BlockApplied",
		ContentType:  "application/json",
		StreamID:     "t1.caller-+7999",
		EventNumber:  41,
		Position:     client.Position{Commit: 1234, Prepare: 1200},
		CreatedDate:  created,
		Data:         []byte(`{"level":6}`),
		UserMetadata: meta,
	}
	if !n.keep(rec) {
		t.Fatal("keep = false for an event of the store's stream")
	}
	got := n.event(rec)
	want := events.Event{
		ID: id, Stream: "caller-+7999", Type: "BlockApplied", Version: 3, Revision: 41,
		Position: events.Position{Commit: 1234, Prepare: 1200}, Recorded: created,
		Meta: events.Metadata{Actor: "grain", CorrelationID: "call-9"}, Data: json.RawMessage(`{"level":6}`),
	}
	if got.ID != want.ID || got.Stream != want.Stream || got.Type != want.Type || got.Version != want.Version ||
		got.Revision != want.Revision || got.Position != want.Position || !got.Recorded.Equal(want.Recorded) ||
		got.Meta != want.Meta || string(got.Data) != string(want.Data) {
		t.Fatalf("event = %+v\nwant    %+v", got, want)
	}
	rec.Data = []byte{}
	if got := n.event(rec); got.Data != nil {
		t.Fatalf("empty data reads as %q, want nil", got.Data)
	}
}

func TestNamesAndFilter(t *testing.T) {
	for _, tt := range []struct {
		prefix, stream, typ string
		keep                bool
		local               string
	}{
		{"", "caller-+7999", "CallReceived", true, "caller-+7999"},
		{"", "$stats-127.0.0.1:2113", "$statsCollected", false, ""},
		{"", "$$caller-+7999", "$metadata", false, ""},
		{"", "$ce-caller", "$>", false, ""},
		{"", "caller-+7999", "$streamDeleted", false, ""},
		{"", "snapshot@caller-+7999", "$snapshot", false, ""},
		{"", "snapshot@caller-+7999", "CallerState", false, ""}, // by name too
		{"", "snapshots-are-fine", "X", true, "snapshots-are-fine"},
		{"t1.", "t1.caller-1", "X", true, "caller-1"},
		{"t1.", "t2.caller-1", "X", false, ""},
		{"t1.", "caller-1", "X", false, ""},
		{"t1.", "t1.snapshot@caller-1", "$snapshot", false, ""},
		{"t1.", "t1.", "X", false, ""},
	} {
		n := names{prefix: tt.prefix}
		rec := &client.RecordedEvent{StreamID: tt.stream, EventType: tt.typ}
		if got := n.keep(rec); got != tt.keep {
			t.Errorf("prefix %q: keep(%s, %s) = %v, want %v", tt.prefix, tt.stream, tt.typ, got, tt.keep)
		}
		if tt.keep {
			if l, ok := n.local(tt.stream); !ok || l != tt.local {
				t.Errorf("prefix %q: local(%s) = %q, %v; want %q", tt.prefix, tt.stream, l, ok, tt.local)
			}
			if n.stream(tt.local) != tt.stream {
				t.Errorf("prefix %q: stream(%s) = %s, want %s", tt.prefix, tt.local, n.stream(tt.local), tt.stream)
			}
		}
	}
	n := names{prefix: "p-"}
	if got := n.snapshots("caller-1"); got != "p-snapshot@caller-1" {
		t.Fatalf("snapshots = %s", got)
	}
	if n.keep(nil) {
		t.Fatal("keep(nil) = true")
	}
}

func TestCheckStream(t *testing.T) {
	for _, s := range []string{"", "$all", "$$caller", "snapshot@caller-1"} {
		if err := checkStream(s); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("checkStream(%q) = %v, want ErrInvalid", s, err)
		}
	}
	for _, s := range []string{"caller-+79990001122", "a", "snapshot-1", "x$"} {
		if err := checkStream(s); err != nil {
			t.Errorf("checkStream(%q) = %v, want nil", s, err)
		}
	}
}

func TestToExpected(t *testing.T) {
	for _, tt := range []struct {
		in   events.Expected
		want client.ExpectedRevision
	}{
		{events.Any, client.Any{}},
		{events.NoStream, client.NoStream{}},
		{events.StreamExists, client.StreamExists{}},
		{events.Exact(0), client.Revision(0)},
		{events.Exact(41), client.Revision(41)},
		{events.ExactOrNoStream(5, false), client.NoStream{}},
		{events.ExactOrNoStream(5, true), client.Revision(5)},
	} {
		if got := toExpected(tt.in); got != tt.want {
			t.Errorf("toExpected(%v) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestPositions(t *testing.T) {
	if _, ok := allFrom(events.Start).(client.Start); !ok {
		t.Fatalf("allFrom(Start) = %#v, want client.Start", allFrom(events.Start))
	}
	p := events.Position{Commit: 10, Prepare: 9}
	if got := allFrom(p); got != (client.Position{Commit: 10, Prepare: 9}) {
		t.Fatalf("allFrom(%v) = %#v", p, got)
	}
	if got := fromPosition(client.Position{Commit: 10, Prepare: 9}); got != p {
		t.Fatalf("fromPosition = %v", got)
	}
}

func TestAfter(t *testing.T) {
	pos := func(n uint64) events.Position { return events.Position{Commit: n, Prepare: n} }
	a := after{pos: events.Start}
	if !a.next(events.Start) {
		t.Fatal("from Start, an event at the zero position is not accepted")
	}
	if a.next(events.Start) {
		t.Fatal("the zero position is accepted twice")
	}
	for _, tt := range []struct {
		p    uint64
		want bool
	}{{5, true}, {5, false}, {3, false}, {6, true}, {100, true}, {99, false}} {
		if got := a.next(pos(tt.p)); got != tt.want {
			t.Fatalf("next(%d) = %v, want %v", tt.p, got, tt.want)
		}
	}
	b := after{pos: pos(7)}
	if b.next(pos(7)) || b.next(pos(2)) || !b.next(pos(8)) {
		t.Fatal("from 7: want 7 and 2 refused, 8 accepted")
	}
}

func TestMaskURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"esdb://localhost:2113?tls=false", "esdb://localhost:2113?tls=false"},
		{"esdb://admin:changeit@localhost:2113?tls=false", "esdb://***@localhost:2113?tls=false"},
		{"esdb://admin@localhost:2113", "esdb://***@localhost:2113"},
		{"esdb+discover://u:p%40ss@cluster.example:2113/?nodePreference=leader", "esdb+discover://***@cluster.example:2113/?nodePreference=leader"},
		{"esdb://u:p@h1:2113,h2:2113,h3:2113?tls=false", "esdb://***@h1:2113,h2:2113,h3:2113?tls=false"},
		{"esdb://u:p@ss@host:2113", "esdb://***@host:2113"},
		{"u:secret@host:2113", "***@host:2113"},
		{"esdb://host:2113/x@y", "esdb://***"},
		{"", ""},
	} {
		got := maskURL(tt.in)
		if got != tt.want {
			t.Errorf("maskURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "changeit") || strings.Contains(got, "secret") {
			t.Errorf("maskURL(%q) = %q keeps the password", tt.in, got)
		}
	}
	if pw := password("esdb://admin:changeit@localhost:2113"); pw != "changeit" {
		t.Fatalf("password = %q", pw)
	}
	if pw := password("esdb://localhost:2113"); pw != "" {
		t.Fatalf("password = %q, want none", pw)
	}
}

func TestOpenRefusesBadInputWithoutLeakingCredentials(t *testing.T) {
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		url  string
		opts []Option
	}{
		{"bad scheme", "http://admin:s3cr3t-pw@localhost:2113", nil},
		{"bad port", "esdb://admin:s3cr3t-pw@localhost:notaport?tls=false", nil},
		{"control character", "esdb://admin:s3cr3t-pw@local\x7fhost:2113", nil},
		{"path", "esdb://admin:s3cr3t-pw@localhost:2113/path", nil},
		{"nil logger", "esdb://localhost:2113", []Option{WithLogger(nil)}},
		{"system prefix", "esdb://localhost:2113", []Option{WithStreamPrefix("$t")}},
		{"no room", "esdb://localhost:2113", []Option{WithMaxInFlight(0)}},
	} {
		s, err := Open(ctx, tt.url, tt.opts...)
		if err == nil {
			_ = s.Close()
			t.Fatalf("%s: Open succeeded", tt.name)
		}
		if !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: Open = %v, want ErrInvalid", tt.name, err)
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("%s: Open error %q shows the password", tt.name, err)
		}
	}
}

func TestActualFromMessage(t *testing.T) {
	for _, tt := range []struct {
		msg    string
		actual int64
		ok     bool
	}{
		{"[ErrorCodeWrongExpectedVersion] ...: wrong expected version: expecting '3' but got '2'", 2, true},
		{"wrong expected version: expecting 'no_stream' but got '0'", 0, true},
		{"wrong expected version: expecting '0' but got 'no_stream'", events.NoRevision, true},
		{"wrong expected version: expecting '0' but got 'x'", 0, false},
		{"something else", 0, false},
	} {
		actual, ok := actualFromMessage(errors.New(tt.msg))
		if actual != tt.actual || ok != tt.ok {
			t.Errorf("actualFromMessage(%q) = %d, %v; want %d, %v", tt.msg, actual, ok, tt.actual, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want errKind
	}{
		{"nil", nil, kindOther},
		{"plain", errors.New("boom"), kindOther},
		{"canceled", context.Canceled, kindCanceled},
		{"deadline, wrapped", fmt.Errorf("x: %w", context.DeadlineExceeded), kindCanceled},
		{"gRPC unavailable", status.Error(codes.Unavailable, "connection refused"), kindUnavailable},
		{"gRPC unavailable, wrapped", fmt.Errorf("could not construct: %w", status.Error(codes.Unavailable, "x")), kindUnavailable},
		{"gRPC deadline", status.Error(codes.DeadlineExceeded, "x"), kindUnavailable},
		{"gRPC permission", status.Error(codes.PermissionDenied, "x"), kindPermission},
		{"gRPC unauthenticated", status.Error(codes.Unauthenticated, "x"), kindPermission},
		{"gRPC canceled", status.Error(codes.Canceled, "x"), kindCanceled},
		{"gRPC internal", status.Error(codes.Internal, "x"), kindOther},
		// The client's own errors have unexported codes; FromError gives
		// the unknown code, which says nothing more.
		{"client unknown", func() error { e, _ := client.FromError(errors.New("x")); return e }(), kindOther},
	} {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("%s: classify(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
	if err := wrapClientErr(status.Error(codes.Unavailable, "x")); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("wrapClientErr(unavailable) = %v, want ErrUnavailable", err)
	}
	if err := wrapClientErr(status.Error(codes.PermissionDenied, "x")); !errors.Is(err, ErrPermission) || !permanent(err) {
		t.Fatalf("wrapClientErr(permission) = %v, want ErrPermission, permanent", err)
	}
	if permanent(fmt.Errorf("%w: x", events.ErrUnavailable)) {
		t.Fatal("unavailable is permanent")
	}
	if !permanent(fmt.Errorf("x: %w", events.ErrClosed)) {
		t.Fatal("closed is not permanent")
	}
}

func TestClientLoggerSpreadsArguments(t *testing.T) {
	var buf strings.Builder
	l := clientLogger(newTestLogger(&buf))
	l(client.LogWarn, "Unknown setting: %s", []any{"foo"}) // how applyLogger calls it
	l(client.LogError, "subscription has dropped. Reason: %v", errors.New("gone"))
	out := buf.String()
	if !strings.Contains(out, "Unknown setting: foo") || !strings.Contains(out, "Reason: gone") || strings.Contains(out, "MISSING") {
		t.Fatalf("client log lines = %q", out)
	}
}
