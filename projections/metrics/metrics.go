// Package metrics is the guard's Prometheus instrumentation and its
// health probes: the metrics every part of a node reports into, on a
// registry of its own (never the client library's global default), served
// at /metrics, and /healthz and /readyz for load balancers and
// orchestrators.
//
// It lives with the projections because, like them, it only observes:
// nothing in it decides a call, and readiness is defined by the
// projections' lag. Nothing below cmd imports it: each part that reports
// declares the small observer interface it needs (caller.Observer,
// call.Observer, guard.Observer) and cmd hands it a *Metrics, which
// satisfies them all; the store is wrapped by InstrumentStore. A nil
// *Metrics is valid and records nothing.
//
// Metric names (all prefixed callguard_):
//
//	calls_total{verdict}                     calls by the verdict carried out: pass, challenge, reject,
//	                                         store-down, busy (observe mode carries out pass only)
//	calls_observed_total{verdict}            calls observe mode passed that enforcing would have
//	                                         challenged or rejected (verdict: challenge, reject)
//	decision_seconds{verdict}                histogram: INVITE to verdict, by the verdict carried out
//	challenges_total{outcome}                challenges ended: passed, failed, abandoned
//	calls_ended_total{billed}                calls ended on this node, billed by the carrier or not
//	                                         (true, false)
//	store_append_seconds                     histogram: Store.Append latency
//	store_append_errors_total                appends that failed
//	projection_lag_events{projection}        events behind the head of the log
//	projection_lag_seconds{projection}       age of the oldest event not applied
//	projection_failed{projection}            1 when stopped on an event
//	grains_active                            caller grains activated on this node
//	challenges_active                        challenges in progress on this node
//	sip_messages_total{direction,method,class}  SIP traffic: class is request or 1xx..6xx
//	sip_untrusted_rejected_total             requests from sources not on the trusted trunk list
//	sip_overload_total{reason}               load shed: max-calls, busy (503 + Retry-After), tcp-conns
//	transfers_total{kind,outcome}            REFERs and 3xx of passed calls: accepted, refused, completed, failed
//	line_under_attack{line}                  1 while the line is in under-attack mode (as this node knows it)
//	attack_mode_changes_total{change,by}     under-attack mode on/off, auto or manual (the line's grain's node)
//	crm_lookups_total{result}                CRM lookups (hit, miss, timeout, error), with crm_cache_hits_total
//	                                         and the histogram crm_request_seconds{result}, when a CRM is set
//	calls_in_progress                        calls on the SIP side, INVITE to end (what GUARD_MAX_CALLS caps)
//	late_offer_total{outcome}                late offers on calls to be challenged: challenged, refused, passed
//	                                         (and late_offer_refused_total, the refused ones)
//	sip_no_prack_total                       calls ended for a reliable 18x never PRACKed
//	rtp_latched_total, rtp_refused_packets_total, rtcp_relayed_packets_total   media
//	calls_pending                            call streams in the pending spool (the store was down), with
//	                                         calls_pending_recorded_total and calls_spool_failures_total
//	range_rules                              range rules in the node's table
//
// plus the Go runtime and process collectors.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/runner"
)

// Namespace prefixes every metric.
const Namespace = "callguard"

// VerdictStoreDown labels calls the grain could not decide (the store-down
// policy handled them).
const VerdictStoreDown = "store-down"

// VerdictBusy labels calls the node was too busy to decide (answered 503).
const VerdictBusy = "busy"

// latencyBuckets span a fast decision on a warm grain (half a
// millisecond) to one that waited on a slow store (seconds): doubling
// from 0.5 ms to about 8 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 15)

// Metrics holds the node's metrics. Its methods are safe for concurrent
// use, and do nothing on a nil *Metrics.
type Metrics struct {
	reg           *prometheus.Registry
	calls         *prometheus.CounterVec
	observed      *prometheus.CounterVec
	decision      *prometheus.HistogramVec
	appendLatency prometheus.Histogram
	appendErrors  prometheus.Counter
	grains        prometheus.Gauge
	challenges    prometheus.Gauge
	sipMessages   *prometheus.CounterVec
	sipCounters   sipCounters // sipMessages' children, looked up once
	untrusted     prometheus.Counter
	overload      *prometheus.CounterVec
	transfers     *prometheus.CounterVec
	attack        attackMetrics
	crm           crmMetrics
}

// New returns the metrics on a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "calls_total",
			Help: "Calls by the verdict carried out (pass, challenge, reject; in observe mode every decided call is pass; store-down when the grain could not decide, busy when the node was too busy to).",
		}, []string{"verdict"}),
		observed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "calls_observed_total",
			Help: "Calls observe mode passed that enforcing would have challenged or rejected, by that verdict (they count as pass in calls_total).",
		}, []string{"verdict"}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "decision_seconds",
			Help:    "Time from an INVITE to its verdict, durable in the store, by the verdict carried out.",
			Buckets: latencyBuckets,
		}, []string{"verdict"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "store_append_seconds",
			Help:    "Latency of event store appends (durable on return).",
			Buckets: latencyBuckets,
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "store_append_errors_total",
			Help: "Event store appends that failed (conflicts included).",
		}),
		grains: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "grains_active",
			Help: "Caller grains active on this node.",
		}),
		challenges: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "challenges_active",
			Help: "Challenges in progress on this node.",
		}),
		sipMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sip_messages_total",
			Help: "SIP messages by direction (in, out), method and class (request, or the response's 1xx to 6xx).",
		}, []string{"direction", "method", "class"}),
		untrusted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sip_untrusted_rejected_total",
			Help: "SIP requests refused because their source is not a trusted trunk.",
		}),
		overload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sip_overload_total",
			Help: "Load the SIP guard shed, by reason: max-calls (INVITE answered 503 at MAX_CALLS), busy (call answered 503, the node too busy to decide), tcp-conns (TCP connection closed at accept).",
		}, []string{"reason"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "transfers_total",
			Help: "Transfers (kind refer: the PBX's REFER) and redirects (kind redirect: the PBX's 3xx) of passed calls, by outcome: accepted (allowed, the guard places the call), refused (target not in GUARD_TRANSFER_TARGETS, rate or call state; REFER answered 403, 3xx turned into 480), completed (the target answered and the caller was moved), failed (the target did not answer).",
		}, []string{"kind", "outcome"}),
	}
	reg.MustRegister(m.calls, m.observed, m.decision, m.appendLatency, m.appendErrors, m.grains, m.challenges,
		m.sipMessages, m.untrusted, m.overload, m.transfers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every verdict shows from the start, at zero: a rate over a series
	// that appears only with its first call reads as no data.
	for _, v := range []string{string(schema.Pass), string(schema.Challenge), string(schema.Reject), VerdictStoreDown, VerdictBusy} {
		m.calls.WithLabelValues(v)
	}
	for _, v := range []schema.Verdict{schema.Challenge, schema.Reject} {
		m.observed.WithLabelValues(string(v))
	}
	for _, r := range overloadReasons {
		m.overload.WithLabelValues(r)
	}
	for _, k := range transferKinds {
		for _, o := range transferOutcomes {
			m.transfers.WithLabelValues(k, o)
		}
	}
	return m
}

// Registry returns the registry, to add collectors or gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// verdictLabel bounds the verdict label to the known values.
func verdictLabel(v string) string {
	switch v {
	case string(schema.Pass), string(schema.Challenge), string(schema.Reject), VerdictStoreDown, VerdictBusy:
		return v
	}
	return "other"
}

// ObserveDecision counts a call decided with verdict (a schema.Verdict, or
// VerdictStoreDown) and records how long the decision took.
func (m *Metrics) ObserveDecision(verdict string, d time.Duration) {
	if m == nil {
		return
	}
	v := verdictLabel(verdict)
	m.calls.WithLabelValues(v).Inc()
	m.decision.WithLabelValues(v).Observe(d.Seconds())
}

// Decided counts a call the caller grain decided with v, which the guard
// carried out as action (v when enforcing, pass in observe mode), and
// records how long the decision took (the call actor's observer). The
// call counts by its action; one observe mode passed against its verdict
// counts in calls_observed_total by that verdict too.
func (m *Metrics) Decided(v, action schema.Verdict, took time.Duration) {
	if m == nil {
		return
	}
	m.ObserveDecision(string(action), took)
	if v != action && (v == schema.Challenge || v == schema.Reject) {
		m.observed.WithLabelValues(string(v)).Inc()
	}
}

// Undecided counts a call the grain could not decide (the store-down
// policy handled it).
func (m *Metrics) Undecided(took time.Duration) { m.ObserveDecision(VerdictStoreDown, took) }

// Busy counts a call the node was too busy to decide.
func (m *Metrics) Busy(took time.Duration) { m.ObserveDecision(VerdictBusy, took) }

// ObserveAppend records an event store append that took d and failed with
// err (nil: succeeded).
func (m *Metrics) ObserveAppend(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.appendLatency.Observe(d.Seconds())
	if err != nil {
		m.appendErrors.Inc()
	}
}

// GrainActivated and GrainPassivated count caller grains in and out of
// memory on this node.
func (m *Metrics) GrainActivated() {
	if m != nil {
		m.grains.Inc()
	}
}

// GrainPassivated: see GrainActivated.
func (m *Metrics) GrainPassivated() {
	if m != nil {
		m.grains.Dec()
	}
}

// ChallengeStarted and ChallengeEnded count the challenges in progress.
func (m *Metrics) ChallengeStarted() {
	if m != nil {
		m.challenges.Inc()
	}
}

// ChallengeEnded: see ChallengeStarted.
func (m *Metrics) ChallengeEnded() {
	if m != nil {
		m.challenges.Dec()
	}
}

// Directions of SIP messages.
const (
	In  = "in"
	Out = "out"
)

// SIPRequest counts a SIP request received (In) or sent (Out).
func (m *Metrics) SIPRequest(direction, method string) {
	if m == nil {
		return
	}
	m.sipCounter(direction, method, 0).Inc()
}

// SIPResponse counts a SIP response with status to a request of method.
func (m *Metrics) SIPResponse(direction, method string, status int) {
	if m == nil {
		return
	}
	class := 7 // "other"
	if status >= 100 && status <= 699 {
		class = status / 100
	}
	m.sipCounter(direction, method, class).Inc()
}

// sipCounters caches sipMessages' children by direction, method and
// kind (0 request, 1-6 the status classes, 7 other), so that counting a
// message costs no label hashing or allocation after the first of its
// kind; a child is created on first use, as WithLabelValues does.
type sipCounters [3][len(methodNames) + 1][8]atomic.Pointer[prometheus.Counter]

// methodNames are the methods the label keeps, in sipCounters' order.
var methodNames = [...]string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",
	"INFO", "PRACK", "UPDATE", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"}

func (m *Metrics) sipCounter(direction, method string, kind int) prometheus.Counter {
	dir := 2
	switch direction {
	case In:
		dir = 0
	case Out:
		dir = 1
	}
	label := methodLabel(method)
	meth := len(methodNames)
	for i, name := range methodNames {
		if name == label {
			meth = i
			break
		}
	}
	slot := &m.sipCounters[dir][meth][kind]
	if c := slot.Load(); c != nil {
		return *c
	}
	class := "request"
	if kind > 0 {
		class = statusClass(kind * 100)
	}
	c := m.sipMessages.WithLabelValues(directionLabel(direction), label, class)
	slot.Store(&c)
	return c
}

// RequestIn counts a SIP request received (the SIP edge's observer).
func (m *Metrics) RequestIn(method string) { m.SIPRequest(In, method) }

// ResponseOut counts a SIP response sent to a request of method.
func (m *Metrics) ResponseOut(method string, status int) { m.SIPResponse(Out, method, status) }

// RejectedUntrusted counts a request refused for its untrusted source.
// The source itself is not a label: a scan from many addresses must not
// grow the metrics without bound (the SIP log names them).
func (m *Metrics) RejectedUntrusted() {
	if m != nil {
		m.untrusted.Inc()
	}
}

// Overload reasons, as the SIP guard reports them (guard.Overload*).
var overloadReasons = []string{"max-calls", "busy", "tcp-conns"}

// Overloaded counts load the SIP guard shed for reason; an unknown reason
// counts as "other", so the label stays bounded.
func (m *Metrics) Overloaded(reason string) {
	if m == nil {
		return
	}
	if !slices.Contains(overloadReasons, reason) {
		reason = "other"
	}
	m.overload.WithLabelValues(reason).Inc()
}

// Transfer kinds and outcomes, as the SIP guard reports them
// (guard.Transfer*).
var (
	transferKinds    = []string{"refer", "redirect"}
	transferOutcomes = []string{"accepted", "refused", "completed", "failed"}
)

// Transfer counts a transfer or redirect the SIP guard handled; unknown
// labels count as "other", so the series stay bounded.
func (m *Metrics) Transfer(kind, outcome string) {
	if m == nil {
		return
	}
	if !slices.Contains(transferKinds, kind) {
		kind = "other"
	}
	if !slices.Contains(transferOutcomes, outcome) {
		outcome = "other"
	}
	m.transfers.WithLabelValues(kind, outcome).Inc()
}

func directionLabel(d string) string {
	if d == In || d == Out {
		return d
	}
	return "other"
}

// methods are the SIP methods (RFC 3261 and its extensions) the label
// keeps; anything else, including garbage from a scanner, is "other".
var methods = map[string]bool{
	"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "OPTIONS": true, "REGISTER": true,
	"INFO": true, "PRACK": true, "UPDATE": true, "REFER": true, "NOTIFY": true, "SUBSCRIBE": true, "MESSAGE": true, "PUBLISH": true,
}

func methodLabel(method string) string {
	if m := strings.ToUpper(method); methods[m] {
		return m
	}
	return "other"
}

func statusClass(status int) string {
	if status < 100 || status > 699 {
		return "other"
	}
	return string(rune('0'+status/100)) + "xx"
}

// CallTotals are a node's call counts since it started, as its calls
// keep them (cmd reads call.Counters).
type CallTotals struct {
	ChallengesPassed, ChallengesFailed, ChallengesAbandoned uint64
	// Billed and Unbilled count the calls that ended, by whether the
	// carrier bills them.
	Billed, Unbilled uint64
}

// WatchCalls reports the call counts read from totals at every scrape,
// as challenges_total{outcome} and calls_ended_total{billed}: the calls
// keep the counts anyway, so a call pays nothing more for these metrics.
func (m *Metrics) WatchCalls(totals func() CallTotals) {
	if m == nil || totals == nil {
		return
	}
	m.reg.MustRegister(&callCollector{totals: totals})
}

var (
	challengesDesc = prometheus.NewDesc(Namespace+"_challenges_total",
		"Challenges ended on this node, by outcome: passed (right code, on to the PBX), failed (wrong or no code: hung up inside the grace interval), abandoned (the caller left).", []string{"outcome"}, nil)
	endedDesc = prometheus.NewDesc(Namespace+"_calls_ended_total",
		"Calls ended on this node, by whether the carrier bills them (false: never answered, or ended inside the grace interval).", []string{"billed"}, nil)
)

type callCollector struct {
	totals func() CallTotals
}

func (c *callCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- challengesDesc
	ch <- endedDesc
}

func (c *callCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.totals()
	for _, o := range []struct {
		label string
		n     uint64
	}{{string(schema.Passed), t.ChallengesPassed}, {string(schema.Failed), t.ChallengesFailed}, {string(schema.Abandoned), t.ChallengesAbandoned}} {
		ch <- prometheus.MustNewConstMetric(challengesDesc, prometheus.CounterValue, float64(o.n), o.label)
	}
	ch <- prometheus.MustNewConstMetric(endedDesc, prometheus.CounterValue, float64(t.Billed), "true")
	ch <- prometheus.MustNewConstMetric(endedDesc, prometheus.CounterValue, float64(t.Unbilled), "false")
}

// WatchProjections reports the lag and state of src's projections (the
// runner) at every scrape.
func (m *Metrics) WatchProjections(src runner.StatusSource) {
	if m == nil || src == nil {
		return
	}
	m.reg.MustRegister(&projectionCollector{src: src})
}

// projectionCollector asks the runner at scrape time: lag is a function
// of the clock, and a cached value would be as old as the last refresh.
type projectionCollector struct {
	src runner.StatusSource
}

var (
	lagEventsDesc = prometheus.NewDesc(Namespace+"_projection_lag_events",
		"Events the projection is behind the head of the log.", []string{"projection"}, nil)
	lagSecondsDesc = prometheus.NewDesc(Namespace+"_projection_lag_seconds",
		"How long the oldest event the projection has not applied has been in the store.", []string{"projection"}, nil)
	failedDesc = prometheus.NewDesc(Namespace+"_projection_failed",
		"1 when the projection stopped on an event it could not apply, or while it cannot write its database (it retries).", []string{"projection"}, nil)
	eventsDesc = prometheus.NewDesc(Namespace+"_projection_events",
		"Events the projection has consumed since the start of the log.", []string{"projection"}, nil)
)

func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEventsDesc
	ch <- lagSecondsDesc
	ch <- failedDesc
	ch <- eventsDesc
}

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sts, err := c.src.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lagEventsDesc, err)
		return
	}
	for _, st := range sts {
		failed := 0.0
		if st.State == runner.Failed || st.State == runner.Retrying {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(lagEventsDesc, prometheus.GaugeValue, float64(st.LagEvents), st.Name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, st.LagSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, failed, st.Name)
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(st.Events), st.Name)
	}
}
