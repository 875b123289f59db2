package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/runner"
)

// scrape returns the exposition text of m.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func hasLine(t *testing.T, text, line string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in the scrape", line)
}

func TestMetrics(t *testing.T) {
	m := New()
	m.ObserveDecision("pass", 3*time.Millisecond)
	m.ObserveDecision("pass", 700*time.Millisecond)
	m.ObserveDecision("challenge", time.Millisecond)
	m.ObserveDecision("drop", time.Millisecond) // not a verdict: bounded as other
	m.ObserveAppend(2*time.Millisecond, nil)
	m.ObserveAppend(time.Second, errors.New("disk full"))
	m.GrainActivated()
	m.GrainActivated()
	m.GrainPassivated()
	m.ChallengeStarted()
	m.SIPRequest(In, "invite")
	m.SIPResponse(Out, "INVITE", 183)
	m.SIPResponse(Out, "INVITE", 603)
	m.SIPRequest(In, "HACK")
	m.RejectedUntrusted()
	m.Overloaded("max-calls")
	m.Overloaded("max-calls")
	m.Overloaded("busy")
	m.Overloaded("no such reason")
	m.Transfer("refer", "accepted")
	m.Transfer("refer", "completed")
	m.Transfer("redirect", "refused")
	m.Transfer("refer", "sideways")
	text := scrape(t, m.Handler())
	for _, l := range []string{
		`callguard_transfers_total{kind="refer",outcome="accepted"} 1`,
		`callguard_transfers_total{kind="refer",outcome="completed"} 1`,
		`callguard_transfers_total{kind="redirect",outcome="refused"} 1`,
		`callguard_transfers_total{kind="redirect",outcome="failed"} 0`,
		`callguard_transfers_total{kind="refer",outcome="other"} 1`,
		`callguard_sip_overload_total{reason="max-calls"} 2`,
		`callguard_sip_overload_total{reason="busy"} 1`,
		`callguard_sip_overload_total{reason="tcp-conns"} 0`,
		`callguard_sip_overload_total{reason="other"} 1`,
		`callguard_calls_total{verdict="pass"} 2`,
		`callguard_calls_total{verdict="challenge"} 1`,
		`callguard_calls_total{verdict="reject"} 0`,
		`callguard_calls_total{verdict="store-down"} 0`,
		`callguard_calls_total{verdict="busy"} 0`,
		`callguard_calls_total{verdict="other"} 1`,
		`callguard_decision_seconds_bucket{verdict="pass",le="0.004"} 1`,
		`callguard_decision_seconds_bucket{verdict="pass",le="+Inf"} 2`,
		`callguard_decision_seconds_count{verdict="pass"} 2`,
		`callguard_store_append_seconds_count 2`,
		`callguard_store_append_errors_total 1`,
		`callguard_grains_active 1`,
		`callguard_challenges_active 1`,
		`callguard_sip_messages_total{class="request",direction="in",method="INVITE"} 1`,
		`callguard_sip_messages_total{class="1xx",direction="out",method="INVITE"} 1`,
		`callguard_sip_messages_total{class="6xx",direction="out",method="INVITE"} 1`,
		`callguard_sip_messages_total{class="request",direction="in",method="other"} 1`,
		`callguard_sip_untrusted_rejected_total 1`,
	} {
		hasLine(t, text, l)
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_") {
		t.Error("no runtime or process metrics")
	}

	// A nil *Metrics records nothing and does not panic: parts built
	// without metrics call it all the same.
	var none *Metrics
	none.ObserveDecision("pass", time.Millisecond)
	none.ObserveAppend(time.Millisecond, nil)
	none.GrainActivated()
	none.ChallengeEnded()
	none.SIPResponse(In, "BYE", 200)
	none.RejectedUntrusted()
	none.Overloaded("busy")
	none.WatchProjections(nil)
}

// TestObserveModeAndCallTotals: a call observe mode passed counts as
// pass, and its verdict in calls_observed_total; never as a reject. The
// challenge outcomes and billed calls are read from the calls' counts at
// scrape.
func TestObserveModeAndCallTotals(t *testing.T) {
	m := New()
	m.Decided(schema.Reject, schema.Pass, time.Millisecond)
	m.Decided(schema.Challenge, schema.Pass, time.Millisecond)
	m.Decided(schema.Pass, schema.Pass, time.Millisecond)
	m.Decided(schema.Reject, schema.Reject, time.Millisecond)
	totals := CallTotals{ChallengesPassed: 3, ChallengesFailed: 2, ChallengesAbandoned: 1, Billed: 5, Unbilled: 7}
	m.WatchCalls(func() CallTotals { return totals })
	text := scrape(t, m.Handler())
	for _, l := range []string{
		`callguard_calls_total{verdict="pass"} 3`,
		`callguard_calls_total{verdict="reject"} 1`,
		`callguard_calls_total{verdict="challenge"} 0`,
		`callguard_calls_observed_total{verdict="reject"} 1`,
		`callguard_calls_observed_total{verdict="challenge"} 1`,
		`callguard_decision_seconds_count{verdict="pass"} 3`,
		`callguard_challenges_total{outcome="passed"} 3`,
		`callguard_challenges_total{outcome="failed"} 2`,
		`callguard_challenges_total{outcome="abandoned"} 1`,
		`callguard_calls_ended_total{billed="true"} 5`,
		`callguard_calls_ended_total{billed="false"} 7`,
	} {
		hasLine(t, text, l)
	}
	totals.Unbilled++
	hasLine(t, scrape(t, m.Handler()), `callguard_calls_ended_total{billed="false"} 8`)
	var none *Metrics
	none.Decided(schema.Reject, schema.Pass, time.Millisecond)
	none.WatchCalls(func() CallTotals { return totals })
}

func TestTwoRegistries(t *testing.T) {
	// No global registry: two nodes in one test process each have their
	// own metrics.
	a, b := New(), New()
	a.ObserveDecision("reject", time.Millisecond)
	hasLine(t, scrape(t, a.Handler()), `callguard_calls_total{verdict="reject"} 1`)
	hasLine(t, scrape(t, b.Handler()), `callguard_calls_total{verdict="reject"} 0`)
}

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), filepath.Join(t.TempDir(), "events"), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestInstrumentStore(t *testing.T) {
	m := New()
	s := InstrumentStore(openStore(t), m)
	ctx := context.Background()
	ev := events.Proposed{Type: "T", Version: 1, Data: json.RawMessage(`{}`)}
	if _, err := s.Append(ctx, "s", events.NoStream, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "s", events.NoStream, ev); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("second append: %v", err)
	}
	text := scrape(t, m.Handler())
	hasLine(t, text, `callguard_store_append_seconds_count 2`)
	hasLine(t, text, `callguard_store_append_errors_total 1`)
	if InstrumentStore(s, nil) != s {
		t.Error("without metrics the store is not returned as it is")
	}
}

// statuses is a runner.StatusSource with set answers.
type statuses struct {
	sts []runner.Status
	err error
}

func (s *statuses) Status(context.Context) ([]runner.Status, error) { return s.sts, s.err }

func TestProjectionMetricsAndReadiness(t *testing.T) {
	src := &statuses{sts: []runner.Status{
		{Name: "lists", State: runner.Running, LagEvents: 0, Events: 100},
		{Name: "reports", State: runner.Running, LagEvents: 40, LagSeconds: 1.5, Events: 60},
	}}
	m := New()
	m.WatchProjections(src)
	text := scrape(t, m.Handler())
	hasLine(t, text, `callguard_projection_lag_events{projection="reports"} 40`)
	hasLine(t, text, `callguard_projection_lag_seconds{projection="reports"} 1.5`)
	hasLine(t, text, `callguard_projection_failed{projection="lists"} 0`)
	hasLine(t, text, `callguard_projection_events{projection="lists"} 100`)

	store := openStore(t)
	h := &Health{Store: store, Projections: src, MaxLagEvents: 50, MaxLagSeconds: 5}
	mux := Mux(m, h)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Fatalf("healthz %d %q", rec.Code, rec.Body)
	}
	if rec := get("/metrics"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "callguard_calls_total") {
		t.Fatalf("metrics %d", rec.Code)
	}
	ready := func(wantCode int, wantReason string) {
		t.Helper()
		rec := get("/readyz")
		var rd Readiness
		if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
			t.Fatalf("readyz body %q: %v", rec.Body, err)
		}
		if rec.Code != wantCode || rd.Ready != (wantCode == 200) || !strings.Contains(rec.Body.String(), wantReason) {
			t.Fatalf("readyz %d %s, want %d with %q", rec.Code, rec.Body, wantCode, wantReason)
		}
	}
	ready(200, `"store":{"ready":true`)

	src.sts[1].LagEvents = 51
	ready(503, "51 events behind, limit 50")
	src.sts[1].LagEvents, src.sts[1].LagSeconds = 3, 6
	ready(503, "6.0 s behind, limit 5 s")
	src.sts[1].LagSeconds = 0
	src.sts[1].State, src.sts[1].Failure = runner.Failed, &runner.Failure{At: "42", Error: "bad payload"}
	ready(503, "failed at 42: bad payload")
	hasLine(t, scrape(t, m.Handler()), `callguard_projection_failed{projection="reports"} 1`)
	src.sts[1].State, src.sts[1].Failure = runner.Retrying, &runner.Failure{At: "43", Error: "no space left on device", Retrying: true, Attempts: 3}
	ready(503, "cannot write its database (3 attempts, retrying): no space left on device")
	hasLine(t, scrape(t, m.Handler()), `callguard_projection_failed{projection="reports"} 1`)
	src.sts[1].State, src.sts[1].Failure = runner.Running, nil
	ready(200, `"ready":true`)

	// A store that cannot say where its head is: not ready.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	ready(503, "store closed")
}

// TestReadinessProbes covers the probes beside the store: cluster
// membership and the listeners being open. absent is what the answer must
// not name.
func TestReadinessProbes(t *testing.T) {
	store := openStore(t)
	for _, tc := range []struct {
		name       string
		membership func() error
		serving    func() bool
		wantReady  bool
		want       string
		absent     string
	}{
		{"no membership check", nil, nil, true, `"store":{"ready":true`, "membership"},
		{"membership sound", func() error { return nil }, nil, true, `"membership":{"ready":true}`, ""},
		{"etcd away", func() error { return errors.New("etcd unreachable: context deadline exceeded") }, nil, false,
			`"membership":{"ready":false,"error":"etcd unreachable: context deadline exceeded"}`, ""},
		{"no serving check", nil, nil, true, `"store":{"ready":true`, "starting"},
		{"listeners open", nil, func() bool { return true }, true, `"store":{"ready":true`, "starting"},
		{"starting", nil, func() bool { return false }, false, `"starting":"listeners not all open yet"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Health{Store: store, Membership: tc.membership, Serving: tc.serving}
			rec := httptest.NewRecorder()
			h.Readyz().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if (rec.Code == 200) != tc.wantReady || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("readyz %d %s, want ready=%v with %s", rec.Code, rec.Body, tc.wantReady, tc.want)
			}
			if tc.absent != "" && strings.Contains(rec.Body.String(), tc.absent) {
				t.Fatalf("readyz names %q, which it was not given or is past: %s", tc.absent, rec.Body)
			}
		})
	}
}
