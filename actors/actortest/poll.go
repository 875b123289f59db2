package actortest

import (
	"testing"
	"time"
)

// PollInterval is how often Eventually checks.
const PollInterval = 10 * time.Millisecond

// Eventually calls check until it returns nil, and fails tb with check's
// last error if timeout passes first: tests wait for what they expect
// instead of sleeping.
func Eventually(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not so after %v: %v", timeout, err)
			return
		}
		time.Sleep(PollInterval)
	}
}
