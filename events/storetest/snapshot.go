package storetest

import (
	"encoding/json"
	"testing"

	"github.com/callguard/callguard/events"
)

// testSnapshots: a snapshot round-trips, a newer one replaces it, a stream
// without one loads as missing, and snapshots stay out of streams and the
// global log.
func testSnapshots(t *testing.T, h *harness) {
	stream, other := h.stream("snap"), h.stream("snap-other")
	h.append(stream, events.NoStream, h.batch(stream, 0, 6)...)
	h.append(other, events.NoStream, h.batch(other, 0, 1)...)
	appended := h.log()

	for _, s := range []string{stream, h.stream("never-written")} {
		if snap, ok, err := h.s.LoadSnapshot(h.ctx, s); err != nil || ok {
			t.Fatalf("LoadSnapshot(%s) with none saved = %+v, %v, %v; want false, nil", s, snap, ok, err)
		}
	}

	load := func(s string, want events.Snapshot) {
		t.Helper()
		got, ok, err := h.s.LoadSnapshot(h.ctx, s)
		if err != nil || !ok {
			t.Fatalf("LoadSnapshot(%s) = %v, %v; want the snapshot at revision %d", s, ok, err, want.Revision)
		}
		if got.Stream != want.Stream || got.Revision != want.Revision || got.Type != want.Type ||
			got.Version != want.Version || !sameJSON(got.Data, want.Data) {
			t.Fatalf("LoadSnapshot(%s) = {%s@%d %s v%d %s}, want {%s@%d %s v%d %s}", s,
				got.Stream, got.Revision, got.Type, got.Version, got.Data,
				want.Stream, want.Revision, want.Type, want.Version, want.Data)
		}
	}
	save := func(snap events.Snapshot) {
		t.Helper()
		if err := h.s.SaveSnapshot(h.ctx, snap); err != nil {
			t.Fatalf("SaveSnapshot(%s@%d): %v", snap.Stream, snap.Revision, err)
		}
	}

	first := events.Snapshot{Stream: stream, Revision: 3, Type: "CallerState", Version: 2,
		Data: json.RawMessage(`{"calls": 4, "level": 0, "window": ["2024-01-02T03:04:05Z"], "note": "ёж"}`)}
	save(first)
	load(stream, first)

	newer := events.Snapshot{Stream: stream, Revision: 5, Type: "CallerState", Version: 3,
		Data: json.RawMessage(`{"calls":6,"level":3}`)}
	save(newer)
	load(stream, newer)

	otherSnap := events.Snapshot{Stream: other, Revision: 0, Type: "CallerState", Version: 3, Data: json.RawMessage(`{"calls":1}`)}
	save(otherSnap)
	load(other, otherSnap)
	load(stream, newer)

	// Snapshots are not events.
	if got := h.read(stream); len(got) != 6 {
		t.Fatalf("%s has %d events after snapshots, want 6", stream, len(got))
	}
	wantIDs(t, "global log after snapshots", h.log(), ids(appended))
	h.wantHeadAt(appended[len(appended)-1].Position)
}
