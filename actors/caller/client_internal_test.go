package caller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestAdmitBoundIsBusy: with the node's Admits all in flight, the next one
// is refused at once as busy, before any cluster request.
func TestAdmitBoundIsBusy(t *testing.T) {
	c := &Client{MaxAdmits: 2} // no Cluster: a request would panic
	c.inFlight.Store(2)
	_, err := c.Admit(context.Background(), "+79990001122", Admit{CallID: "c1"})
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStore) {
		t.Fatalf("Admit with the bound reached: %v, want ErrBusy only", err)
	}
	if got := c.InFlight(); got != 2 {
		t.Fatalf("in flight after a refused Admit: %d, want 2", got)
	}
}

// TestClassify: a store failure stays a store failure; a timeout is busy
// only when a grain answered since the request was sent.
func TestClassify(t *testing.T) {
	t0 := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	timeout := fmt.Errorf("%w: +7999: future: timeout", ErrUnavailable)
	store := fmt.Errorf("%w: append: disk full", ErrStore)
	tests := []struct {
		name       string
		lastAnswer time.Time // zero: never
		err        error
		busy       bool
		want       error
	}{
		{"store failed, grains answering", t0.Add(time.Second), store, false, ErrStore},
		{"timeout, nothing ever answered", time.Time{}, timeout, false, ErrUnavailable},
		{"timeout, last answer before the request", t0.Add(-time.Millisecond), timeout, false, ErrUnavailable},
		{"timeout, a grain answered meanwhile", t0.Add(500 * time.Millisecond), timeout, true, ErrUnavailable},
		{"invalid", t0.Add(time.Second), fmt.Errorf("%w: bad number", ErrInvalid), false, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{}
			if !tt.lastAnswer.IsZero() {
				c.lastAnswer.Store(tt.lastAnswer.UnixNano())
			}
			err := c.classify(tt.err, t0)
			if got := errors.Is(err, ErrBusy); got != tt.busy {
				t.Fatalf("classify(%v) = %v: busy %v, want %v", tt.err, err, got, tt.busy)
			}
			if !tt.busy && !errors.Is(err, tt.want) {
				t.Fatalf("classify(%v) = %v, want %v", tt.err, err, tt.want)
			}
		})
	}
}
