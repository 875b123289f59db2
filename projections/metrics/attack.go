package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The under-attack mode of the lines (actors/line): mode changes are
// counted by the node whose line grain made them (once in the cluster);
// which lines are under attack is what this node's call path applies, so
// every node shows it.

var underAttackDesc = prometheus.NewDesc(Namespace+"_line_under_attack",
	"1 while this node challenges the line's callers because the line is under attack (its mode as this node knows it), by called number.", []string{"line"}, nil)

type attackMetrics struct {
	once    sync.Once
	changes *prometheus.CounterVec
}

func (m *Metrics) attackChanges() *prometheus.CounterVec {
	m.attack.once.Do(func() {
		m.attack.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "attack_mode_changes_total",
			Help: "Under-attack mode changes of the lines whose grain lives on this node, by change (on, off) and by whom (auto: the detector; manual: an admin).",
		}, []string{"change", "by"})
		for _, c := range []string{"on", "off"} {
			for _, by := range []string{"auto", "manual"} {
				m.attack.changes.WithLabelValues(c, by)
			}
		}
		m.reg.MustRegister(m.attack.changes)
	})
	return m.attack.changes
}

func attackBy(manual bool) string {
	if manual {
		return "manual"
	}
	return "auto"
}

// AttackStarted counts a line's mode switched on.
func (m *Metrics) AttackStarted(_ string, manual bool) {
	if m == nil {
		return
	}
	m.attackChanges().WithLabelValues("on", attackBy(manual)).Inc()
}

// AttackEnded counts a line's mode switched off.
func (m *Metrics) AttackEnded(_ string, manual bool) {
	if m == nil {
		return
	}
	m.attackChanges().WithLabelValues("off", attackBy(manual)).Inc()
}

// WatchLines reports callguard_line_under_attack{line} at every scrape
// from lines, which returns the lines this node tracks (called in the
// last minutes), true for those under attack; it also registers the
// change counter, so both show from the start.
func (m *Metrics) WatchLines(lines func() map[string]bool) {
	if m == nil || lines == nil {
		return
	}
	m.attackChanges()
	m.reg.MustRegister(&lineCollector{lines: lines})
}

type lineCollector struct{ lines func() map[string]bool }

func (c *lineCollector) Describe(ch chan<- *prometheus.Desc) { ch <- underAttackDesc }

func (c *lineCollector) Collect(ch chan<- prometheus.Metric) {
	for l, on := range c.lines() {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(underAttackDesc, prometheus.GaugeValue, v, l)
	}
}
