package esdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/esdb"
	"github.com/callguard/callguard/events/storetest"
)

// TestConformance runs the Store conformance suite against the EventStoreDB
// server of GUARD_EVENTSTORE_URL, for example
//
//	GUARD_EVENTSTORE_URL='esdb://localhost:2113?tls=false' go test ./events/esdb/
//
// Every stream of the run starts with a random prefix, so the run shares
// the server with anything else: the store sees only its own streams, and
// the suite looks in the global log only after the Head it started from.
func TestConformance(t *testing.T) {
	url := os.Getenv("GUARD_EVENTSTORE_URL")
	if url == "" {
		t.Skip("GUARD_EVENTSTORE_URL not set: skipping EventStoreDB conformance (see README: Running against EventStoreDB)")
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	prefix := "conformance-" + hex.EncodeToString(b) + "."
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	t.Logf("streams of this run start with %q", prefix)

	storetest.Run(t, func(t *testing.T) events.Store {
		skipUnsupported(t)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, url, esdb.WithStreamPrefix(prefix), esdb.WithLogger(logger))
		if err != nil {
			t.Fatalf("open EventStoreDB: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}, storetest.Features{SharedLog: true})
}
