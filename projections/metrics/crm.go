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
}

func (m *Metrics) crmInit() *crmMetrics {
	c := &m.crm
	c.once.Do(func() {
		c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "crm_lookups_total",
			Help: "Calls whose caller was looked up in the CRM, by result (hit: a customer; miss: no customer; timeout: no answer within GUARD_CRM_TIMEOUT; error: the CRM failed or answered garbage), cached answers included.",
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
		c.children = map[schema.CRMStatus]prometheus.Counter{}
		for _, r := range []schema.CRMStatus{schema.CRMHit, schema.CRMMiss, schema.CRMTimeout, schema.CRMError} {
			c.children[r] = c.lookups.WithLabelValues(string(r))
			c.latency.WithLabelValues(string(r))
		}
		m.reg.MustRegister(c.lookups, c.cached, c.latency)
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
	if result.Valid() {
		c.latency.WithLabelValues(string(result)).Observe(took.Seconds())
	}
}
