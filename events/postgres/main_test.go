package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/postgres"
	"github.com/callguard/callguard/events/postgres/pgtest"
)

// server is the PostgreSQL server the package's tests share, each test in
// a database of its own; nil when the binaries are missing.
var (
	server    *pgtest.Server
	serverErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	server, serverErr = pgtest.StartServer(ctx, dir)
	cancel()
	if errors.Is(serverErr, pgtest.ErrNoBinaries) {
		server = nil
	} else if serverErr != nil {
		fmt.Fprintln(os.Stderr, serverErr)
		return 1
	} else {
		defer server.Stop()
	}
	return m.Run()
}

// needServer skips t when there is no PostgreSQL to test against.
func needServer(t testing.TB) *pgtest.Server {
	t.Helper()
	if server == nil {
		t.Skipf("skipping PostgreSQL store test: %v", serverErr)
	}
	return server
}

// open opens a Store on a new database of the shared server.
func open(t testing.TB, opts ...postgres.Option) (*postgres.Store, string) {
	t.Helper()
	url := needServer(t).NewDatabaseT(t)
	return openURL(t, url, opts...), url
}

func openURL(t testing.TB, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, events.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
