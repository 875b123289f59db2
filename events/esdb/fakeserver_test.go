package esdb_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeServer is an in-process stand-in for an EventStoreDB node: the
// Streams gRPC service (append, read a stream, read and subscribe to $all)
// as this package understands EventStoreDB to behave. It lets the adapter
// and the real v4 client run end to end without a server; what it cannot
// prove is that EventStoreDB behaves as modelled here, which only the
// conformance run against a real server (GUARD_EVENTSTORE_URL) shows.
//
// What it models: positions are byte offsets with commit == prepare, as
// for self-committed events; appends are checked like EventStoreDB's
// CheckCommit (expected revision, idempotent repeats, "corrupted
// idempotency" answered as wrong expected version); a read backwards from a
// revision returns the revisions from-count+1..from that exist; $maxCount
// in a metadata stream hides older events from stream reads (not from
// $all); reading $all forwards from a position includes it; a subscription
// from a position repeats it; system events ($ce- links, metadata) appear
// in $all.
type fakeServer struct {
	api.UnimplementedStreamsServer

	// dropEvery makes a subscription fail with Unavailable after it sent
	// that many events (0: never), to exercise resubscription.
	dropEvery int
	// idempotentNoPosition leaves the position out of the answer to an
	// idempotent append, as some EventStoreDB versions do.
	idempotentNoPosition bool

	mu      sync.Mutex
	log     []*fakeRecord
	streams map[string][]*fakeRecord
	next    uint64        // the log position of the next record
	changed chan struct{} // closed and replaced at each append
	subs    int
}

type fakeRecord struct {
	stream      string
	number      uint64
	id          uuid.UUID
	typ         string
	contentType string
	data, meta  []byte
	created     time.Time
	pos         uint64
}

// startFakeServer serves a fake node on a local port and returns its
// connection string.
func startFakeServer(t testing.TB, f *fakeServer) string {
	t.Helper()
	f.init()
	addr, _ := f.serve(t, "127.0.0.1:0")
	return fmt.Sprintf("esdb://%s?tls=false", addr)
}

func (f *fakeServer) init() {
	f.streams = map[string][]*fakeRecord{}
	f.next = 4096
	f.changed = make(chan struct{})
	// What a fresh node holds before anyone writes.
	f.mu.Lock()
	f.commitLocked("$settings", []*fakeRecord{{typ: "$settings", id: uuid.New(), data: []byte(`{}`)}})
	f.commitLocked("$stats-127.0.0.1:2113", []*fakeRecord{{typ: "$statsCollected", id: uuid.New(), data: []byte(`{}`)}})
	f.mu.Unlock()
}

// serve serves f on addr until the returned stop or the test's end; a
// stopped node can be served again on the same address, with its data.
func (f *fakeServer) serve(t testing.TB, addr string) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterStreamsServer(gs, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), gs.Stop
}

// commitLocked appends recs to stream, with the $ce- link a projection
// would add for a user stream.
func (f *fakeServer) commitLocked(stream string, recs []*fakeRecord) {
	now := time.Now()
	for _, r := range recs {
		r.stream = stream
		r.number = uint64(len(f.streams[stream]))
		r.created = now
		r.pos = f.next
		if r.contentType == "" {
			r.contentType = "application/json"
		}
		f.next += uint64(64 + len(r.data) + len(r.meta))
		f.streams[stream] = append(f.streams[stream], r)
		f.log = append(f.log, r)
	}
	if !strings.HasPrefix(stream, "$") {
		category, _, _ := strings.Cut(stream, "-")
		link := "$ce-" + category
		for _, r := range recs {
			l := &fakeRecord{stream: link, number: uint64(len(f.streams[link])), id: uuid.New(), typ: "$>",
				contentType: "application/octet-stream", data: fmt.Appendf(nil, "%d@%s", r.number, stream), created: now, pos: f.next}
			f.next += 64
			f.streams[link] = append(f.streams[link], l)
			f.log = append(f.log, l)
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

func uuidOf(u *shared.UUID) (uuid.UUID, error) {
	if s := u.GetStructured(); s != nil {
		return client.ParseUUIDFromInt64(s.MostSignificantBits, s.LeastSignificantBits)
	}
	return uuid.Parse(u.GetString_())
}

func (f *fakeServer) Append(srv api.Streams_AppendServer) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "options first")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	var recs []*fakeRecord
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := req.GetProposedMessage()
		id, err := uuidOf(p.GetId())
		if err != nil || id == uuid.Nil {
			return status.Error(codes.InvalidArgument, "event without an ID")
		}
		recs = append(recs, &fakeRecord{id: id, typ: p.GetMetadata()["type"], contentType: p.GetMetadata()["content-type"],
			data: p.GetData(), meta: p.GetCustomMetadata()})
	}
	if len(recs) == 0 {
		return status.Error(codes.Unimplemented, "the fake does not write empty appends")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	stored := f.streams[stream]
	cur := int64(len(stored)) - 1
	ids := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		ids[i] = r.id
	}

	var expected int64
	exact := false
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		expected = -2
	case *api.AppendReq_Options_StreamExists:
		expected = -4
		if cur < 0 {
			return srv.SendAndClose(wrongExpected(cur, opts))
		}
	case *api.AppendReq_Options_NoStream:
		expected, exact = -1, true
	case *api.AppendReq_Options_Revision:
		expected, exact = int64(o.Revision), true
	default:
		return status.Error(codes.InvalidArgument, "no expected revision")
	}

	if exact {
		switch {
		case expected > cur:
			return srv.SendAndClose(wrongExpected(cur, opts))
		case expected < cur:
			// Compare the events after the expected revision.
			from := expected + 1
			n := 0
			for n < len(ids) && from+int64(n) <= cur && stored[from+int64(n)].id == ids[n] {
				n++
			}
			if n == len(ids) {
				return srv.SendAndClose(f.idempotent(stored[from], stored[from+int64(n)-1]))
			}
			return srv.SendAndClose(wrongExpected(cur, opts)) // none, or part: corrupted idempotency
		}
	} else {
		// Any and StreamExists: EventStoreDB looks the first ID up in
		// its cache of committed events (modelled as never missing).
		for i, r := range stored {
			if r.id != ids[0] {
				continue
			}
			n := 0
			for n < len(ids) && i+n < len(stored) && stored[i+n].id == ids[n] {
				n++
			}
			if n == len(ids) {
				return srv.SendAndClose(f.idempotent(stored[i], stored[i+n-1]))
			}
			return srv.SendAndClose(wrongExpected(cur, opts))
		}
	}

	f.commitLocked(stream, recs)
	last := recs[len(recs)-1]
	return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.number},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: last.pos, PreparePosition: last.pos}},
	}}})
}

func (f *fakeServer) idempotent(first, last *fakeRecord) *api.AppendResp {
	s := &api.AppendResp_Success{CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.number}}
	if f.idempotentNoPosition {
		s.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		s.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: last.pos, PreparePosition: last.pos}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: s}}
}

func wrongExpected(cur int64, opts *api.AppendReq_Options) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if cur < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(cur)}
	}
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	case *api.AppendReq_Options_NoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_Revision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: o.Revision}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

func (f *fakeServer) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	switch {
	case o.GetSubscription() != nil:
		if o.GetAll() == nil {
			return status.Error(codes.Unimplemented, "the fake subscribes to $all only")
		}
		return f.subscribe(o, srv)
	case o.GetStream() != nil:
		return f.readStream(o, srv)
	default:
		return f.readAll(o, srv)
	}
}

func sendEvent(srv api.Streams_ReadServer, r *fakeRecord) error {
	most, least := client.UUIDAsInt64(r.id)
	return srv.Send(&api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id: &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
				MostSignificantBits: most, LeastSignificantBits: least}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.number,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.typ,
				"content-type": r.contentType,
				"created":      strconv.FormatInt(r.created.UnixNano()/100, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}})
}

// visibleLocked is what a read of stream sees: all of it, or its last
// $maxCount events.
func (f *fakeServer) visibleLocked(stream string) []*fakeRecord {
	recs := f.streams[stream]
	meta := f.streams["$$"+stream]
	if len(meta) == 0 {
		return recs
	}
	var m struct {
		MaxCount *int `json:"$maxCount"`
	}
	if json.Unmarshal(meta[len(meta)-1].data, &m) == nil && m.MaxCount != nil && len(recs) > *m.MaxCount {
		return recs[len(recs)-*m.MaxCount:]
	}
	return recs
}

func (f *fakeServer) readStream(o *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	so := o.GetStream()
	stream := string(so.GetStreamIdentifier().GetStreamName())
	count := o.GetCount()
	f.mu.Lock()
	all := f.streams[stream]
	vis := f.visibleLocked(stream)
	var out []*fakeRecord
	if len(all) > 0 {
		last := uint64(len(all) - 1)
		if o.GetReadDirection() == api.ReadReq_Options_Forwards {
			from := uint64(0)
			switch r := so.GetRevisionOption().(type) {
			case *api.ReadReq_Options_StreamOptions_Revision:
				from = r.Revision
			case *api.ReadReq_Options_StreamOptions_End:
				from = last + 1
			}
			for _, r := range vis {
				if r.number >= from && uint64(len(out)) < count {
					out = append(out, r)
				}
			}
		} else {
			from := last
			if r, ok := so.GetRevisionOption().(*api.ReadReq_Options_StreamOptions_Revision); ok {
				from = r.Revision
			}
			// The revisions from-count+1..from that exist.
			low := uint64(0)
			if from+1 > count {
				low = from + 1 - count
			}
			for i := len(vis) - 1; i >= 0; i-- {
				if n := vis[i].number; n >= low && n <= from {
					out = append(out, vis[i])
				}
			}
		}
	}
	f.mu.Unlock()
	if len(all) == 0 {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)}}}})
	}
	for _, r := range out {
		if err := sendEvent(srv, r); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeServer) readAll(o *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	ao := o.GetAll()
	count := o.GetCount()
	f.mu.Lock()
	log := f.log
	f.mu.Unlock()
	var out []*fakeRecord
	if o.GetReadDirection() == api.ReadReq_Options_Forwards {
		from := uint64(0)
		switch p := ao.GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Position:
			from = p.Position.CommitPosition
		case *api.ReadReq_Options_AllOptions_End:
			from = ^uint64(0)
		}
		for _, r := range log {
			if r.pos >= from && uint64(len(out)) < count {
				out = append(out, r)
			}
		}
	} else {
		before := ^uint64(0)
		if p, ok := ao.GetAllOption().(*api.ReadReq_Options_AllOptions_Position); ok {
			before = p.Position.CommitPosition
		}
		for i := len(log) - 1; i >= 0 && uint64(len(out)) < count; i-- {
			if log[i].pos < before {
				out = append(out, log[i])
			}
		}
	}
	for _, r := range out {
		if err := sendEvent(srv, r); err != nil {
			return err
		}
	}
	return nil
}

// matcher is a subscription's server-side filter.
func matcher(o *api.ReadReq_Options) (func(*fakeRecord) bool, error) {
	fo := o.GetFilter()
	if fo == nil {
		return func(*fakeRecord) bool { return true }, nil
	}
	expr, field := fo.GetStreamIdentifier(), func(r *fakeRecord) string { return r.stream }
	if fo.GetEventType() != nil {
		expr, field = fo.GetEventType(), func(r *fakeRecord) string { return r.typ }
	}
	if re := expr.GetRegex(); re != "" {
		rx, err := regexp.Compile(re)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return func(r *fakeRecord) bool { return rx.MatchString(field(r)) }, nil
	}
	prefixes := expr.GetPrefix()
	return func(r *fakeRecord) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(field(r), p) {
				return true
			}
		}
		return false
	}, nil
}

func (f *fakeServer) subscribe(o *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	match, err := matcher(o)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.subs++
	id := f.subs
	next := 0
	switch p := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		next = len(f.log)
	case *api.ReadReq_Options_AllOptions_Position:
		for next < len(f.log) && f.log[next].pos < p.Position.CommitPosition {
			next++ // from the position itself: the client must skip it
		}
	}
	f.mu.Unlock()
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: strconv.Itoa(id)}}}); err != nil {
		return err
	}
	sent, scanned, caughtUp := 0, 0, false
	for {
		f.mu.Lock()
		batch := f.log[next:]
		wake := f.changed
		f.mu.Unlock()
		for _, r := range batch {
			next++
			scanned++
			if match(r) {
				if f.dropEvery > 0 && sent == f.dropEvery {
					return status.Error(codes.Unavailable, "fake subscription drop")
				}
				if err := sendEvent(srv, r); err != nil {
					return err
				}
				sent++
			} else if scanned%32 == 0 {
				if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
					CommitPosition: r.pos, PreparePosition: r.pos}}}); err != nil {
					return err
				}
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-wake:
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}
