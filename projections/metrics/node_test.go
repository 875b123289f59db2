package metrics

import "testing"

// TestNodeTotals: the SIP side's, the spool's and the range table's
// counts are read at each scrape, under the names the dashboard and the
// alerts use.
func TestNodeTotals(t *testing.T) {
	m := New()
	sip := SIPTotals{CallsInProgress: 3, RTPLatched: 1, RTPRefused: 40, RTCPRelayed: 7, NoPrack: 2,
		LateOfferChallenged: 5, LateOfferRefused: 6, LateOfferPassed: 8}
	spool := SpoolTotals{Pending: 4, Recorded: 9, Failed: 1}
	rules := 12
	m.WatchSIP(func() SIPTotals { return sip })
	m.WatchSpool(func() SpoolTotals { return spool })
	m.WatchRanges(func() int { return rules })
	text := scrape(t, m.Handler())
	for _, l := range []string{
		`callguard_calls_in_progress 3`,
		`callguard_rtp_latched_total 1`,
		`callguard_rtp_refused_packets_total 40`,
		`callguard_rtcp_relayed_packets_total 7`,
		`callguard_sip_no_prack_total 2`,
		`callguard_late_offer_refused_total 6`,
		`callguard_late_offer_total{outcome="challenged"} 5`,
		`callguard_late_offer_total{outcome="refused"} 6`,
		`callguard_late_offer_total{outcome="passed"} 8`,
		`callguard_calls_pending 4`,
		`callguard_calls_pending_recorded_total 9`,
		`callguard_calls_spool_failures_total 1`,
		`callguard_range_rules 12`,
	} {
		hasLine(t, text, l)
	}
	// Read at scrape, not at registration.
	sip.CallsInProgress, spool.Pending, rules = 0, 0, 1
	text = scrape(t, m.Handler())
	hasLine(t, text, `callguard_calls_in_progress 0`)
	hasLine(t, text, `callguard_calls_pending 0`)
	hasLine(t, text, `callguard_range_rules 1`)

	var none *Metrics
	none.WatchSIP(func() SIPTotals { return sip })
	none.WatchSpool(nil)
	none.WatchRanges(nil)
}
