package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/projections/reports"
)

// reportsData is the Reports page's Data.
type reportsData struct {
	From, To, Callee string
	Daily            *reports.Daily
	Days             []dayRow
	Top              *reports.Top
	Calls, Saved     *chartData
	CSV              string
	Err              string
	Unavailable      bool
}

func (reportsData) charts() bool { return true }

// dayRow is one day of the daily table, every callee summed unless the
// report is of one.
type dayRow struct {
	Day                                   string
	CallsIn, Passed, Challenged, Rejected int
	Offered, Unanswered                   int
	Share                                 string
	Saved                                 float64
}

// reports serves GET /console/reports?from&to&callee: the daily table
// and charts and the top callers; format=csv downloads the daily report
// as the API gives it.
func (s *Server) reports(w http.ResponseWriter, r *http.Request, c *visit) {
	q := r.URL.Query()
	d := reportsData{From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")), Callee: strings.TrimSpace(q.Get("callee"))}
	if s.d.Reports == nil {
		d.Unavailable = true
		s.render(w, r, c, http.StatusOK, "reports", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	s.fresh(ctx, c, reports.Name)
	daily, err := s.d.Reports.Daily(ctx, reports.Query{From: d.From, To: d.To, Callee: s.calleeKey(d.Callee)})
	if err == nil && q.Get("format") == "csv" {
		var b bytes.Buffer
		if err = daily.WriteCSV(&b); err == nil {
			h := w.Header()
			h.Set("Content-Type", adminapi.CSVMediaType)
			h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("calls-%s-%s.csv", daily.From, daily.To)))
			h.Set("Cache-Control", "no-store")
			_, _ = w.Write(b.Bytes()) // a write error means the browser left
			return
		}
	}
	var top reports.Top
	if err == nil {
		top, err = s.d.Reports.Top(ctx, reports.TopQuery{From: daily.From, To: daily.To})
	}
	switch {
	case errors.Is(err, reports.ErrDate), errors.Is(err, reports.ErrQuery):
		d.Err = err.Error()
		s.render(w, r, c, http.StatusBadRequest, "reports", d)
		return
	case err != nil:
		s.d.Logger.Warn("console: reports", "err", err)
		d.Err = translate(c.lang, "common.failed", "reports")
		s.render(w, r, c, http.StatusServiceUnavailable, "reports", d)
		return
	}
	d.Daily, d.Top = &daily, &top
	d.From, d.To = daily.From, daily.To
	d.Days = dailyRows(daily)
	d.Calls, d.Saved = dailyCharts(d.Days, c.lang, daily.Tariff.Currency)
	cq := url.Values{"from": {daily.From}, "to": {daily.To}, "format": {"csv"}}
	if d.Callee != "" {
		cq.Set("callee", d.Callee)
	}
	d.CSV = "/console/reports?" + cq.Encode()
	s.render(w, r, c, http.StatusOK, "reports", d)
}

// calleeKey reads the callee filter as the API does: a number in any
// spelling, or as the trunk presented it.
func (s *Server) calleeKey(raw string) string {
	if raw == "" {
		return ""
	}
	if n := s.d.Normalizer.Normalize(raw); n.Kind == phone.KindE164 {
		return n.Key
	}
	return raw
}

// dailyRows sums the report's rows per day.
func dailyRows(d reports.Daily) []dayRow {
	var out []dayRow
	for _, row := range d.Rows {
		if len(out) == 0 || out[len(out)-1].Day != row.Day {
			out = append(out, dayRow{Day: row.Day})
		}
		o := &out[len(out)-1]
		o.CallsIn += row.CallsIn
		o.Passed += row.Passed
		o.Challenged += row.Challenged
		o.Rejected += row.Rejected
		o.Offered += row.Offered
		o.Unanswered += row.Unanswered
		o.Saved += row.Saved
	}
	for i := range out {
		out[i].Share = "—"
		if out[i].Offered > 0 {
			out[i].Share = fmt.Sprintf("%.1f%%", 100*float64(out[i].Unanswered)/float64(out[i].Offered))
		}
	}
	return out
}

// dailyCharts draws the calls by what the guard did, and the money saved
// with the unanswered share, per day.
func dailyCharts(days []dayRow, lang, currency string) (*chartData, *chartData) {
	calls := &chartData{XLabel: translate(lang, "reports.day"), Series: []chartSeries{
		{Label: translate(lang, "today.callsin")}, {Label: translate(lang, "today.passed")},
		{Label: translate(lang, "today.challenged")}, {Label: translate(lang, "today.rejected")},
	}}
	savedLabel := translate(lang, "today.saved")
	if currency != "" {
		savedLabel += ", " + currency
	}
	saved := &chartData{XLabel: translate(lang, "reports.day"), Series: []chartSeries{{Label: savedLabel}, {Label: translate(lang, "reports.share"), Scale: "%"}}}
	for i, d := range days {
		label := d.Day
		if len(label) == len("2006-01-02") {
			label = label[5:]
		}
		for _, ch := range []*chartData{calls, saved} {
			ch.X = append(ch.X, float64(i))
			ch.Labels = append(ch.Labels, label)
		}
		calls.Series[0].Values = append(calls.Series[0].Values, float64(d.CallsIn))
		calls.Series[1].Values = append(calls.Series[1].Values, float64(d.Passed))
		calls.Series[2].Values = append(calls.Series[2].Values, float64(d.Challenged))
		calls.Series[3].Values = append(calls.Series[3].Values, float64(d.Rejected))
		share := 0.0
		if d.Offered > 0 {
			share = 100 * float64(d.Unanswered) / float64(d.Offered)
		}
		saved.Series[0].Values = append(saved.Series[0].Values, d.Saved)
		saved.Series[1].Values = append(saved.Series[1].Values, share)
	}
	return calls, saved
}
