package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func TestReportsPage(t *testing.T) {
	var fr *fakeReports
	r := newRig(t, func(d *Deps) { fullDeps(d); fr = d.Reports.(*fakeReports) })
	b := r.browser()
	b.signIn("vera")
	p := b.get("/console/reports?from=2026-11-27&to=2026-12-03&callee=8+800+555-35-35")
	if p.status != http.StatusOK {
		t.Fatalf("reports: %d", p.status)
	}
	if q := fr.lastQuery; q.From != "2026-11-27" || q.To != "2026-12-03" || q.Callee != "+78005553535" {
		t.Errorf("query %+v: want the callee normalised", q)
	}
	doc := parse(t, p.body)
	for _, id := range []string{"report-form", "daily", "chart-daily", "top", "report-csv"} {
		if byID(doc, id) == nil {
			t.Errorf("no #%s", id)
		}
	}
	// The chart's data: one point per day, calls in of the last day 40.
	var ch chartData
	if err := json.Unmarshal([]byte(text(byID(doc, "chart-daily-data"))), &ch); err != nil {
		t.Fatalf("chart data: %v", err)
	}
	if len(ch.X) != 2 || len(ch.Series) != 4 || ch.Series[0].Values[1] != 40 || ch.Labels[1] != "12-03" {
		t.Errorf("chart %+v", ch)
	}
	var rows int
	walk(byID(doc, "daily"), func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && n.Parent.Data == "tbody" {
			rows++
		}
	})
	if rows != 2 {
		t.Errorf("daily rows %d, want 2", rows)
	}
	csv := attr(byID(doc, "report-csv"), "href")
	cu, _ := url.Parse(csv)
	if cu.Query().Get("format") != "csv" || cu.Query().Get("from") != "2026-11-27" {
		t.Errorf("csv link %q", csv)
	}
	c := b.get(csv)
	if c.status != http.StatusOK || !strings.HasPrefix(c.header.Get("Content-Type"), "text/csv") || !strings.Contains(c.header.Get("Content-Disposition"), "calls-2026-11-27-2026-12-03.csv") {
		t.Errorf("csv: %d %v", c.status, c.header)
	}
}

func TestWhatif(t *testing.T) {
	var fr *fakeReplay
	r := newRig(t, func(d *Deps) { fullDeps(d); fr = d.Replay.(*fakeReplay) })
	viewer := r.browser()
	viewer.signIn("vera")
	p := viewer.get("/console/whatif")
	if byID(parse(t, p.body), "whatif-form") != nil {
		t.Error("a viewer sees the what-if form")
	}
	if p := viewer.get("/console/whatif?limit-hour=2"); p.status != http.StatusForbidden || fr.got() != nil {
		t.Errorf("viewer replay: %d, replayed %v", p.status, fr.got())
	}
	b := r.browser()
	b.signIn("oleg")
	doc := parse(t, b.get("/console/whatif").body)
	form := byID(doc, "whatif-form")
	if form == nil {
		t.Fatal("no what-if form")
	}
	names := map[string]bool{}
	walk(form, func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "input" || n.Data == "select") {
			names[attr(n, "name")] = true
		}
	})
	for _, n := range []string{"limit-hour", "limit-day", "limit-level", "block-for", "try-block", "try-line"} {
		if !names[n] {
			t.Errorf("the form has no %s (has %v)", n, names)
		}
	}
	p = b.get("/console/whatif?limit-hour=2&limit-day=&try-block=%2B7999123:7")
	if got := fr.got(); len(got) != 2 || got["limit-hour"] != "2" || got["try-block"] != "+7999123:7" {
		t.Errorf("replayed with %v", got)
	}
	doc = parse(t, p.body)
	res := byID(doc, "whatif-result")
	if res == nil || text(byID(doc, "calls-changed")) != "7" || !strings.Contains(text(res), "+79161234567") {
		t.Errorf("result:\n%s", p.body)
	}
	for q, want := range map[string]string{
		"limit-hour=x":             `Calls in an hour before a block: "x" is not a value of this setting.`,
		"limit-hour=-1":            "Calls in an hour before a block is -1: want 0 (off) or more.",
		"limit-hour=9&limit-day=3": "Calls in a day before a block (3) must be at least Calls in an hour before a block (9).",
	} {
		if p := b.get("/console/whatif?" + q); p.status != http.StatusBadRequest || alertText(t, p.body) != want {
			t.Errorf("%s: %d %q, want 400 %q", q, p.status, alertText(t, p.body), want)
		}
	}
	// One replay at a time.
	fr.mu.Lock()
	fr.block = make(chan struct{})
	fr.mu.Unlock()
	done := make(chan page, 1)
	go func() { done <- b.get("/console/whatif?limit-hour=3") }()
	deadline := time.Now().Add(10 * time.Second)
	for fr.got()["limit-hour"] != "3" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	other := r.browser()
	other.signIn("anna")
	if p := other.get("/console/whatif?limit-hour=4"); p.status != http.StatusServiceUnavailable {
		t.Errorf("second replay at once: %d, want 503", p.status)
	}
	close(fr.block)
	if p := <-done; p.status != http.StatusOK {
		t.Errorf("first replay: %d", p.status)
	}
}
