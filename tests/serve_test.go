package tests

import (
	"strings"
	"testing"
)

func TestServeStartsAndStopsOnTheEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+dir, "GUARD_NODE_NAME=e2e")
	g.stop(t)
	if !strings.Contains(g.output(), "event store: embedded") {
		t.Fatalf("the guard did not say which store it used:\n%s", g.output())
	}
}

// A second guard on the same data directory must refuse to start, saying
// why, rather than corrupt or fork the log.
func TestSecondGuardOnOneDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	startGuard(t, "GUARD_DATA_DIR="+dir)
	g2, err := runGuard(t, "GUARD_DATA_DIR="+dir)
	if err != nil {
		t.Fatal(err)
	}
	err = <-g2.done
	g2.done <- err
	if err == nil {
		t.Fatalf("second guard started on a locked directory:\n%s", g2.output())
	}
	if out := g2.output(); !strings.Contains(out, "locked") || !strings.Contains(out, dir) {
		t.Fatalf("second guard's error does not say the directory %s is locked:\n%s", dir, out)
	}
}

func TestBadConfigurationIsExplained(t *testing.T) {
	_, stderr, code := runCLI(t, []string{"GUARD_LIMIT_HOUR=lots"}, "serve")
	if code != 1 || !strings.Contains(stderr, "GUARD_LIMIT_HOUR") {
		t.Fatalf("exit %d, stderr %q: want exit 1 naming GUARD_LIMIT_HOUR", code, stderr)
	}
}
