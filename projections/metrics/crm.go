package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callguard/callguard/events/schema"
)

// The CRM lookup (actors/crm): one count per call looked up, by result,
// cached answers included; the latency of the requests actually sent.

type crmMetrics struct {
	once     sync.Once
	lookups  *prometheus.CounterVec
	cached   prometheus.Counter
	latency  *prometheus.HistogramVec
	children map[schema.CRMStatus]prometheus.Counter
	open     prometheus.Gauge
}

func (m *Metrics) crmInit() *crmMetrics {
	c := &m.crm
	c.once.Do(func() {
		c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "crm_lookups_total",
			Help: "Calls whose caller was looked up in the CRM, by result (hit: a customer; miss: no customer; timeout: no answer within GUARD_CRM_TIMEOUT; error: the CRM failed or answered garbage; skipped: not asked while the CRM is taken out after failures in a row), cached answers included.",
		}, []string{"result"})
		c.cached = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "crm_cache_hits_total",
			Help: "CRM lookups answered from the cache (also counted in crm_lookups_total).",
		})
		c.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "crm_request_seconds",
			Help:    "Time of the requests sent to the CRM, by result; bounded by GUARD_CRM_TIMEOUT.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .15, .25, .5, 1},
		}, []string{"result"})
		c.open = prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "crm_out",
			Help: "1 while the CRM is taken out of the decisions after GUARD_CRM_BREAK_AFTER failed lookups in a row (calls are decided without it, one lookup a GUARD_CRM_BREAK_FOR tries it again), else 0.",
		})
		c.children = map[schema.CRMStatus]prometheus.Counter{}
		for _, r := range []schema.CRMStatus{schema.CRMHit, schema.CRMMiss, schema.CRMTimeout, schema.CRMError, schema.CRMSkipped} {
			c.children[r] = c.lookups.WithLabelValues(string(r))
			if r != schema.CRMSkipped {
				c.latency.WithLabelValues(string(r))
			}
		}
		m.reg.MustRegister(c.lookups, c.cached, c.latency, c.open)
	})
	return c
}

// EnableCRM registers the CRM metrics (at zero) on a node that asks a CRM.
func (m *Metrics) EnableCRM() {
	if m != nil {
		m.crmInit()
	}
}

// CRMLookup counts one call's lookup; took is the request's time (zero
// for a cached answer).
func (m *Metrics) CRMLookup(result schema.CRMStatus, cached bool, took time.Duration) {
	if m == nil {
		return
	}
	c := m.crmInit()
	if ctr, ok := c.children[result]; ok {
		ctr.Inc()
	}
	if cached {
		c.cached.Inc()
		return
	}
	if result.Valid() && result != schema.CRMSkipped {
		c.latency.WithLabelValues(string(result)).Observe(took.Seconds())
	}
}

// CRMOut says whether the CRM is taken out of the decisions after failed
// lookups in a row.
func (m *Metrics) CRMOut(out bool) {
	if m == nil {
		return
	}
	v := 0.0
	if out {
		v = 1
	}
	m.crmInit().open.Set(v)
}
