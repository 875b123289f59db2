package spool_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/events"
)

func batch(stream string, n int) spool.Batch {
	b := spool.Batch{Stream: stream}
	for i := range n {
		b.Events = append(b.Events, events.Proposed{
			ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(stream+string(rune('a'+i)))), Type: "CallEnded", Version: 1,
			Meta: events.Metadata{Node: "n1", Actor: "call", CorrelationID: stream},
			Data: json.RawMessage(`{"callId":"` + stream + `"}`),
		})
	}
	return b
}

func open(t *testing.T, path string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSpoolKeepsBatchesAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), spool.FileName)
	s := open(t, path)
	a, b, c := batch("call-a", 2), batch("call-b", 1), batch("call-c", 3)
	b.Revision, b.Exists = 4, true
	for _, x := range []spool.Batch{a, b, c, a} { // a twice: replaced, not added
		if err := s.Put(x); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len %d after putting 3 streams, want 3", s.Len())
	}
	if err := s.Delete("call-c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("call-none"); err != nil {
		t.Errorf("deleting a stream with no entry: %v", err)
	}
	if s.Len() != 2 {
		t.Errorf("Len %d after a delete, want 2", s.Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if s.Len() != 2 {
		t.Errorf("Len %d after reopening, want 2", s.Len())
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []spool.Batch{a, b}; !reflect.DeepEqual(got, want) {
		t.Errorf("List after reopening:\n got %+v\nwant %+v", got, want)
	}
	if got[1].Expected() != events.Exact(4) || got[0].Expected() != events.NoStream {
		t.Errorf("expected states %v, %v; want no stream, exact 4", got[0].Expected(), got[1].Expected())
	}
}

func TestSpoolRefusesWhatItCannotKeep(t *testing.T) {
	path := filepath.Join(t.TempDir(), spool.FileName)
	s := open(t, path)
	if err := s.Put(spool.Batch{}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Put without a stream: %v, want ErrInvalid", err)
	}
	if _, err := spool.Open(path); !errors.Is(err, events.ErrLocked) {
		t.Errorf("second Open of a held spool: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch("call-x", 1)); err == nil {
		t.Error("Put after Close succeeded")
	}
}

// BenchmarkPutDelete is a call stream's round trip through the spool while
// the store is down: put at the first failure, delete once written, from
// many writers at once (their transactions and fsyncs are shared).
func BenchmarkPutDelete(b *testing.B) {
	s, err := spool.Open(filepath.Join(b.TempDir(), spool.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq atomic.Int64
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			x := batch("call-"+strconv.FormatInt(seq.Add(1), 10), 3)
			if err := s.Put(x); err != nil {
				b.Error(err)
				return
			}
			if err := s.Delete(x.Stream); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
