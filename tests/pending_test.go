package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

// A call passed under the store-down policy whose record was still in
// the node's pending spool when the node stopped is recorded, once, when
// the node starts again; the spool is then empty. The spool entry is what
// a node leaves when it stops before the store returns (the writer's side
// of that is actors/call's TestStoreDownCallIsRecordedOnceAfterARestart).
func TestPendingCallIsRecordedWhenTheNodeStartsAgain(t *testing.T) {
	dir := t.TempDir()
	const id = "e2e-pending-1"
	at := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	meta := events.Metadata{Node: "gone", Actor: "call", CorrelationID: id}
	var evs []events.Proposed
	for _, p := range []schema.Payload{
		schema.CallStarted{CallID: id, Caller: "+79990001122", CallerKind: "number", Callee: "88001234567", Mode: schema.Enforce, At: at},
		schema.CallDecided{CallID: id, StoreDown: true, Error: "store unavailable", Action: schema.Pass, Mode: schema.Enforce, At: at},
		schema.CallEnded{CallID: id, Cause: schema.EndCallerHangup, By: schema.PartyCaller, Status: 487, At: at.Add(5 * time.Second)},
	} {
		prop, err := schema.Record{ID: schema.CallStreamEventID(id, p.EventType()), Payload: p}.Proposed(meta)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, prop)
	}
	path := filepath.Join(dir, spool.FileName)
	sp, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Put(spool.Batch{Stream: schema.CallStream(id), Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	// Started twice: the second start must find nothing left to record.
	for run := range 2 {
		g := startGuard(t, "GUARD_DATA_DIR="+dir, "GUARD_NODE_NAME=e2e")
		if run == 0 {
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(g.output(), "recorded pending calls after restart") {
				if time.Now().After(deadline) {
					t.Fatalf("the guard did not say it recorded the pending call:\n%s", g.output())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(g.output(), "recorded=1") {
				t.Errorf("the guard did not count one recorded call:\n%s", g.output())
			}
		}
		g.stop(t)
		if run == 1 && strings.Contains(g.output(), "recorded pending calls") {
			t.Errorf("second start recorded pending calls again:\n%s", g.output())
		}
	}

	st, err := embedded.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := events.ReadWholeStream(context.Background(), st, schema.CallStream(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range got {
		types = append(types, e.Type)
	}
	if want := "[CallStarted CallDecided CallEnded]"; fmt.Sprint(types) != want {
		t.Errorf("%s holds %v, want %s once", schema.CallStream(id), types, want)
	}
	sp, err = spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Len() != 0 {
		t.Errorf("the spool still holds %d entries after the guard recorded them", sp.Len())
	}
}
