package tests

import (
	"os"
	"strings"
	"testing"
)

// TestMain shortens the race runtime's pause at exit in the binaries the
// tests run. Built with -race when the tests are, each such process sleeps
// GORACE's atexit_sleep_ms (1 s by default) before it exits, so that
// goroutines still running may report a race; hundreds of CLI commands
// and guard stops made that a third of this package's time. 50 ms keeps
// the pause's point. A GORACE that sets it already is left alone.
func TestMain(m *testing.M) {
	if gorace := os.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
		if err := os.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms=50")); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
