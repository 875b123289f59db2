package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/callguard/callguard/events/postgres/pgtest"
)

// TestGuardOnPostgreSQL runs `callguard serve` on a throwaway PostgreSQL
// server: an admin blocks a number through the guard; with the guard
// stopped, a CLI process reads the block straight from PostgreSQL; and a
// second guard with an empty data directory folds the caller from the
// shared store and rebuilds its blacklist projection from the global log.
func TestGuardOnPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.URL()

	dir := t.TempDir()
	g := startGuard(t, "GUARD_POSTGRES_URL="+url, "GUARD_DATA_DIR="+dir)
	if !strings.Contains(g.output(), "event store: PostgreSQL") {
		t.Fatalf("guard did not say it uses PostgreSQL:\n%s", g.output())
	}
	// The CLI finds the guard's admin token in its data directory.
	env := []string{"GUARD_POSTGRES_URL=" + url, "GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
	out, stderr, code := runCLI(t, env, "block", "+79990003344", "--level", "7", "--reason", "fraud reports", "--by", "bob")
	if code != 0 || !strings.Contains(out, "BlockApplied") {
		t.Fatalf("block: exit %d, %q %q", code, out, stderr)
	}
	g.stop(t)

	out, stderr, code = runCLI(t, []string{"GUARD_POSTGRES_URL=" + url, "GUARD_DATA_DIR=" + t.TempDir()}, "audit", "+79990003344")
	if code != 0 || !strings.Contains(out, "level 7 manual by bob: fraud reports") {
		t.Fatalf("audit straight from PostgreSQL: exit %d\n%s\n%s", code, out, stderr)
	}

	dir2 := t.TempDir()
	g2 := startGuard(t, "GUARD_POSTGRES_URL="+url, "GUARD_DATA_DIR="+dir2)
	defer g2.stop(t)
	env2 := []string{"GUARD_DATA_DIR=" + dir2, "GUARD_ADMIN_URL=http://" + adminAddr(t, g2)}
	out, _, code = runCLI(t, env2, "status", "89990003344")
	var st struct {
		Block struct {
			Level int `json:"level"`
		} `json:"block"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Block.Level != 7 {
		t.Fatalf("status on the second guard: exit %d, %s", code, out)
	}
	out, stderr, code = runCLI(t, env2, "blacklist")
	if code != 0 || !strings.Contains(out, "+79990003344") {
		t.Fatalf("blacklist on the second guard: exit %d\n%s\n%s", code, out, stderr)
	}
}
