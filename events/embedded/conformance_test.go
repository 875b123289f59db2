package embedded_test

import (
	"context"
	"errors"
	"testing"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/storetest"
)

// TestConformance runs the events.Store conformance suite against a new
// embedded store in a temporary directory for each case.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) events.Store {
		s, err := embedded.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, events.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}, storetest.Features{DensePositions: true})
}
