package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callguard/callguard/events/postgres/pgtest"
)

// TestServerKeepsCommittedRowsAcrossRestartAndKill starts a server, commits
// a row, and checks that it is still there after a clean restart and after
// a SIGKILL of every server process (crash recovery from the WAL).
func TestServerKeepsCommittedRowsAcrossRestartAndKill(t *testing.T) {
	s := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	url := s.NewDatabaseT(t)

	query := func(sql string, args ...any) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	exec(ctx, t, url, "CREATE TABLE t (n int)", "INSERT INTO t VALUES (7)")
	if got := query("SELECT current_setting('fsync')::bool::int"); got != 1 {
		t.Errorf("fsync = %d, want on by default", got)
	}

	steps := []struct {
		name string
		do   func() error
	}{
		{"restart", func() error { return s.Restart(ctx) }},
		{"kill and start", func() error {
			if err := s.Kill(); err != nil {
				return err
			}
			if s.Running() {
				t.Fatal("Running after Kill")
			}
			return s.Start(ctx)
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := query("SELECT n FROM t"); got != 7 {
			t.Fatalf("after %s: n = %d, want 7", st.name, got)
		}
	}

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connected to a stopped server")
	}
}

// TestFsyncOff checks the load-test option: fsync off, synchronous_commit on.
func TestFsyncOff(t *testing.T) {
	s := pgtest.Start(t, pgtest.WithFsync(false))
	conn, err := pgx.Connect(t.Context(), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var fsync, sync string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &sync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || sync != "on" {
		t.Fatalf("fsync=%s synchronous_commit=%s, want off and on", fsync, sync)
	}
}

func exec(ctx context.Context, t *testing.T, url string, sqls ...string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}
