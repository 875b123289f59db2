package metrics

import (
	"context"
	"time"

	"github.com/callguard/callguard/events"
)

// InstrumentStore returns store with every Append timed into m's
// store_append_seconds (and failures counted), so that no backend needs
// to know about metrics. With a nil m it returns store itself.
func InstrumentStore(store events.Store, m *Metrics) events.Store {
	if m == nil {
		return store
	}
	return &instrumented{Store: store, m: m}
}

type instrumented struct {
	events.Store
	m *Metrics
}

func (s *instrumented) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	start := time.Now() // latency for the metric only, not a decision
	res, err := s.Store.Append(ctx, stream, expected, evs...)
	s.m.ObserveAppend(time.Since(start), err)
	return res, err
}
