package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/projections/runner"
)

// Defaults of Health.
const (
	// DefaultMaxLagSeconds: a projection whose oldest unapplied event has
	// waited longer than this is not ready. Live projections apply within
	// milliseconds; seconds mean a rebuild or an overload.
	DefaultMaxLagSeconds = 10
	// DefaultProbeTimeout bounds one readiness check.
	DefaultProbeTimeout = 2 * time.Second
)

// Health answers the probes. The zero values of its optional fields are
// their defaults; it is safe for concurrent use once built.
type Health struct {
	// Store is the event store; ready needs its head to be readable.
	Store events.Store
	// Projections, when set, must each be running and within the lag
	// limits to be ready.
	Projections runner.StatusSource
	// MaxLagEvents bounds the events a projection may be behind (0: no
	// bound on events); MaxLagSeconds bounds how long its oldest
	// unapplied event may have waited (0: DefaultMaxLagSeconds).
	MaxLagEvents  uint64
	MaxLagSeconds float64
	// Timeout bounds a readiness check (0: DefaultProbeTimeout).
	Timeout time.Duration
	// Membership, when set, says why the node's cluster membership is
	// not sound (nil when it is): etcd unreachable, registration lost.
	Membership func() error
	// Serving, when set, says whether every listener (SIP, admin API,
	// console) is open: a node is not ready before it can take what a
	// balancer would send it.
	Serving func() bool
}

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready       bool              `json:"ready"`
	Store       StoreReadiness    `json:"store"`
	Projections []ProjectionReady `json:"projections"`
	// Membership is there when Health.Membership is set.
	Membership *MembershipReadiness `json:"membership,omitempty"`
	// Starting is there while Health.Serving says the listeners are not
	// all open yet.
	Starting string `json:"starting,omitempty"`
}

// MembershipReadiness says whether the node's cluster membership is sound.
type MembershipReadiness struct {
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// StoreReadiness says whether the store answered.
type StoreReadiness struct {
	Ready bool   `json:"ready"`
	Head  string `json:"head,omitempty"`
	Error string `json:"error,omitempty"`
}

// ProjectionReady is one projection's part of the answer.
type ProjectionReady struct {
	Name       string       `json:"name"`
	Ready      bool         `json:"ready"`
	State      runner.State `json:"state"`
	LagEvents  uint64       `json:"lagEvents"`
	LagSeconds float64      `json:"lagSeconds"`
	// Reason says why it is not ready.
	Reason string `json:"reason,omitempty"`
}

// Check measures readiness now.
func (h *Health) Check(ctx context.Context) Readiness {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	maxSeconds := h.MaxLagSeconds
	if maxSeconds <= 0 {
		maxSeconds = DefaultMaxLagSeconds
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := Readiness{Ready: true, Projections: []ProjectionReady{}}
	if h.Serving != nil && !h.Serving() {
		r.Ready, r.Starting = false, "listeners not all open yet"
	}
	if h.Membership != nil {
		// Apart from the store: a node cut off from etcd still decides
		// calls with the members it last knew, and says so here.
		r.Membership = &MembershipReadiness{Ready: true}
		if err := h.Membership(); err != nil {
			r.Ready, r.Membership.Ready, r.Membership.Error = false, false, err.Error()
		}
	}
	if h.Store == nil {
		r.Ready, r.Store.Error = false, "no event store"
	} else if head, err := h.Store.Head(ctx); err != nil {
		r.Ready, r.Store.Error = false, err.Error()
	} else {
		r.Store.Ready, r.Store.Head = true, head.String()
	}
	if h.Projections == nil || !r.Store.Ready {
		return r
	}
	sts, err := h.Projections.Status(ctx)
	if err != nil {
		r.Ready = false
		r.Projections = append(r.Projections, ProjectionReady{Name: "*", Reason: err.Error()})
		return r
	}
	for _, st := range sts {
		p := ProjectionReady{Name: st.Name, State: st.State, LagEvents: st.LagEvents, LagSeconds: st.LagSeconds, Ready: true}
		switch {
		case st.State == runner.Failed:
			p.Reason = fmt.Sprintf("failed at %s: %s", st.Failure.At, st.Failure.Error)
		case st.State == runner.Retrying:
			p.Reason = fmt.Sprintf("cannot write its database (%d attempts, retrying): %s", st.Failure.Attempts, st.Failure.Error)
		case st.State != runner.Running:
			p.Reason = "not running"
		case h.MaxLagEvents > 0 && st.LagEvents > h.MaxLagEvents:
			p.Reason = fmt.Sprintf("%d events behind, limit %d", st.LagEvents, h.MaxLagEvents)
		case st.LagSeconds > maxSeconds:
			p.Reason = fmt.Sprintf("%.1f s behind, limit %g s", st.LagSeconds, maxSeconds)
		}
		if p.Reason != "" {
			p.Ready, r.Ready = false, false
		}
		r.Projections = append(r.Projections, p)
	}
	return r
}

// Healthz is liveness: the process serves HTTP. It checks nothing else,
// so an orchestrator does not restart a node whose store is down (a
// restart would not bring the store back).
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
}

// Readyz answers 200 with the Readiness as JSON when ready, 503 when not:
// a load balancer sends no calls to a node whose store is unreachable,
// and an admin reading lists from a node whose projections lag gets
// another node's.
func (h *Health) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd := h.Check(r.Context())
		b, err := json.Marshal(rd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(append(b, '\n'))
	})
}

// Mux serves /metrics, /healthz and /readyz, without authentication:
// probes and scrapers carry no token. Serve it on its own listener
// (loopback or the cluster's network), not on the admin API's.
func Mux(m *Metrics, h *Health) *http.ServeMux {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.Handle("GET /healthz", Healthz())
	if h != nil {
		mux.Handle("GET /readyz", h.Readyz())
	}
	return mux
}
