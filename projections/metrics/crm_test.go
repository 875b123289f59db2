package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

func TestCRMLookups(t *testing.T) {
	m := New()
	m.EnableCRM()
	m.CRMLookup(schema.CRMHit, false, 3*time.Millisecond)
	m.CRMLookup(schema.CRMHit, true, 0)
	m.CRMLookup(schema.CRMTimeout, false, 150*time.Millisecond)
	m.CRMLookup(schema.CRMSkipped, false, 0)
	m.CRMOut(true)
	text := scrape(t, m.Handler())
	for _, l := range []string{
		`callguard_crm_lookups_total{result="hit"} 2`,
		`callguard_crm_lookups_total{result="miss"} 0`,
		`callguard_crm_lookups_total{result="timeout"} 1`,
		`callguard_crm_lookups_total{result="error"} 0`,
		`callguard_crm_cache_hits_total 1`,
		`callguard_crm_request_seconds_count{result="hit"} 1`,
		`callguard_crm_request_seconds_count{result="timeout"} 1`,
		`callguard_crm_lookups_total{result="skipped"} 1`,
		`callguard_crm_out 1`,
	} {
		hasLine(t, text, l)
	}
	var nilM *Metrics
	nilM.CRMLookup(schema.CRMHit, false, 0) // no panic
	nilM.CRMOut(true)
	if text := scrape(t, m.Handler()); strings.Contains(text, `crm_request_seconds_count{result="skipped"}`) {
		t.Error("a skipped lookup has a request latency")
	}
}
