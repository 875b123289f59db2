package metrics

import "github.com/prometheus/client_golang/prometheus"

// The node's own counts that its parts keep anyway (the SIP guard's
// Stats, the call actors' Counters, the pending spool, the range rules):
// read at every scrape, so that the hot path pays nothing more for them.

// SIPTotals are the SIP side's counts now, as cmd reads them from the
// guard's Stats and the calls' Counters.
type SIPTotals struct {
	// CallsInProgress is the calls on the SIP side, INVITE to end (what
	// GUARD_MAX_CALLS caps).
	CallsInProgress int
	// RTPLatched, RTPRefused and RTCPRelayed are the media counts.
	RTPLatched, RTPRefused, RTCPRelayed uint64
	// NoPrack counts calls ended for a reliable provisional response
	// never PRACKed.
	NoPrack uint64
	// LateOfferChallenged, LateOfferRefused and LateOfferPassed are the
	// calls to be challenged whose INVITE had no SDP offer, by outcome.
	LateOfferChallenged, LateOfferRefused, LateOfferPassed uint64
}

var (
	inProgressDesc = prometheus.NewDesc(Namespace+"_calls_in_progress",
		"Calls in progress on this node's SIP side, from INVITE to the end of the call: what GUARD_MAX_CALLS caps.", nil, nil)
	latchedDesc = prometheus.NewDesc(Namespace+"_rtp_latched_total",
		"RTP streams latched onto a trusted source other than their SDP address (symmetric RTP, RFC 4961; GUARD_TRUSTED_MEDIA).", nil, nil)
	rtpRefusedDesc = prometheus.NewDesc(Namespace+"_rtp_refused_packets_total",
		"RTP packets dropped because their source was neither the SDP address, the latched source, nor trusted.", nil, nil)
	rtcpDesc = prometheus.NewDesc(Namespace+"_rtcp_relayed_packets_total",
		"RTCP packets relayed between the legs of calls bridged after a challenge (same trust rule as RTP).", nil, nil)
	noPrackDesc = prometheus.NewDesc(Namespace+"_sip_no_prack_total",
		"Calls ended because the carrier never PRACKed a reliable provisional response (RFC 3262, 64*T1).", nil, nil)
	lateRefusedDesc = prometheus.NewDesc(Namespace+"_late_offer_refused_total",
		`Calls to be challenged refused with 488 because their INVITE had no SDP offer (a late offer) and the carrier no 100rel (GUARD_LATE_OFFER=reject); late_offer_total{outcome="refused"} too.`, nil, nil)
	lateDesc = prometheus.NewDesc(Namespace+"_late_offer_total",
		"Calls to be challenged whose INVITE had no SDP offer, by outcome: challenged (the guard's offer in a reliable 183, the carrier has 100rel), refused (488, GUARD_LATE_OFFER=reject) or passed (unchallenged, GUARD_LATE_OFFER=pass).", []string{"outcome"}, nil)
)

// WatchSIP reports the SIP side's counts read from totals at every scrape.
func (m *Metrics) WatchSIP(totals func() SIPTotals) {
	if m == nil || totals == nil {
		return
	}
	m.reg.MustRegister(&sipCollector{totals: totals})
}

type sipCollector struct{ totals func() SIPTotals }

func (c *sipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inProgressDesc, latchedDesc, rtpRefusedDesc, rtcpDesc, noPrackDesc, lateRefusedDesc, lateDesc} {
		ch <- d
	}
}

func (c *sipCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.totals()
	counter := func(d *prometheus.Desc, n uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	ch <- prometheus.MustNewConstMetric(inProgressDesc, prometheus.GaugeValue, float64(t.CallsInProgress))
	counter(latchedDesc, t.RTPLatched)
	counter(rtpRefusedDesc, t.RTPRefused)
	counter(rtcpDesc, t.RTCPRelayed)
	counter(noPrackDesc, t.NoPrack)
	counter(lateRefusedDesc, t.LateOfferRefused)
	counter(lateDesc, t.LateOfferChallenged, "challenged")
	counter(lateDesc, t.LateOfferRefused, "refused")
	counter(lateDesc, t.LateOfferPassed, "passed")
}

// SpoolTotals are the pending spool's counts: call streams the store
// refused (it was down), kept on disk until appended.
type SpoolTotals struct {
	// Pending is the streams waiting in the spool now.
	Pending int
	// Recorded counts the streams appended from the spool; Failed those
	// the spool could not take (a full disk).
	Recorded, Failed uint64
}

var (
	pendingDesc = prometheus.NewDesc(Namespace+"_calls_pending",
		"Call streams the store refused (it was down) kept in the pending spool until they are appended; they survive a restart.", nil, nil)
	pendingRecordedDesc = prometheus.NewDesc(Namespace+"_calls_pending_recorded_total",
		"Call streams appended from the pending spool (after a restart, or after their writer gave up retrying).", nil, nil)
	spoolFailedDesc = prometheus.NewDesc(Namespace+"_calls_spool_failures_total",
		"Call streams the pending spool could not take (a full disk): retried in memory only, lost if the node stops before the store returns.", nil, nil)
)

// WatchSpool reports the pending spool's counts at every scrape.
func (m *Metrics) WatchSpool(totals func() SpoolTotals) {
	if m == nil || totals == nil {
		return
	}
	m.reg.MustRegister(&spoolCollector{totals: totals})
}

type spoolCollector struct{ totals func() SpoolTotals }

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- pendingRecordedDesc
	ch <- spoolFailedDesc
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.totals()
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(t.Pending))
	ch <- prometheus.MustNewConstMetric(pendingRecordedDesc, prometheus.CounterValue, float64(t.Recorded))
	ch <- prometheus.MustNewConstMetric(spoolFailedDesc, prometheus.CounterValue, float64(t.Failed))
}

// WatchRanges reports callguard_range_rules, the rules in the node's
// range table (from rules), at every scrape.
func (m *Metrics) WatchRanges(rules func() int) {
	if m == nil || rules == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "range_rules",
		Help: "Range rules (whitelist or block by number prefix or range) in this node's table, expired ones not yet removed included.",
	}, func() float64 { return float64(rules()) }))
}
