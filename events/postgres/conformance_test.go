package postgres_test

import (
	"testing"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/storetest"
)

// TestConformance runs the events.Store conformance suite, each case on a
// new database of a throwaway PostgreSQL server.
func TestConformance(t *testing.T) {
	needServer(t)
	storetest.Run(t, func(t *testing.T) events.Store {
		s, _ := open(t)
		return s
	}, storetest.Features{})
}
