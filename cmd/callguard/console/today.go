package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// todayData is the Today page's Data. Each part is nil, or carries an
// error text, when the node lacks its source or it failed: the page
// shows what it can.
type todayData struct {
	Day       string
	Figures   *todayFigures
	FiguresEr string
	Chart     *chartData
	Live      *Live
	LiveErr   string
	Attacks   []line.Mode
	Lag       []runner.Status
	LagErr    string
}

func (todayData) charts() bool { return true }

// todayFigures sums today's report rows of every callee.
type todayFigures struct {
	CallsIn, Passed, Challenged, Rejected                   int
	ChallengesPassed, ChallengesFailed, ChallengesAbandoned int
	Offered, Unanswered, Unbilled                           int
	UnansweredShare                                         string
	Saved                                                   string
	WouldReject, WouldChallenge                             int
}

// chartData is what console.js draws: one x axis and its series.
type chartData struct {
	X      []float64     `json:"x"`
	Time   bool          `json:"time"`
	Labels []string      `json:"labels,omitempty"`
	XLabel string        `json:"xlabel,omitempty"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string    `json:"label"`
	Values []float64 `json:"values"`
	// Scale, when set, gives the series its own y scale and axis.
	Scale string `json:"scale,omitempty"`
}

// today serves GET /console/: the line at a glance.
func (s *Server) today(w http.ResponseWriter, r *http.Request, c *visit) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	var d todayData
	if s.d.Reports != nil {
		// The default range ends today in the reports' own zone; its last
		// day is today and the one before yesterday.
		s.fresh(ctx, c, reports.Name)
		rep, err := s.d.Reports.Daily(ctx, reports.Query{})
		if err != nil {
			s.d.Logger.Warn("console: today's report", "err", err)
			d.FiguresEr = err.Error()
		} else {
			d.Day = rep.To
			d.Figures, d.Chart = todayFrom(rep, c.lang)
		}
	}
	if s.d.Health != nil {
		live, err := s.d.Health.Live(ctx)
		if err != nil {
			d.LiveErr = err.Error()
		} else {
			d.Live = &live
			d.Attacks = s.attackedLines(ctx, live.Lines)
		}
	}
	if s.d.Projections != nil {
		sts, err := s.d.Projections.Status(ctx)
		if err != nil {
			d.LagErr = err.Error()
		}
		d.Lag = sts
	}
	s.render(w, r, c, http.StatusOK, "today", d)
}

// maxLines bounds the lines whose mode Today asks for: each is a grain
// request.
const maxLines = 50

// attackedLines returns the modes of the lines under attack now.
func (s *Server) attackedLines(ctx context.Context, lines []string) []line.Mode {
	if s.d.Lines == nil {
		return nil
	}
	if len(lines) > maxLines {
		lines = lines[:maxLines]
	}
	var on []line.Mode
	for _, l := range lines {
		m, err := s.d.Lines.Status(ctx, l)
		if err != nil {
			s.d.Logger.Warn("console: line status", "line", l, "err", err)
			continue
		}
		if m.On {
			on = append(on, m)
		}
	}
	slices.SortFunc(on, func(a, b line.Mode) int { return b.Since.Compare(a.Since) })
	return on
}

// todayFrom sums the last day's rows and draws today's and yesterday's
// calls per hour.
func todayFrom(rep reports.Daily, lang string) (*todayFigures, *chartData) {
	f := &todayFigures{}
	var saved float64
	hours := make([]float64, 24)
	before := make([]float64, 24)
	yesterday := ""
	for _, row := range rep.Rows {
		if row.Day != rep.To && row.Day > yesterday {
			yesterday = row.Day
		}
	}
	for _, row := range rep.Rows {
		switch row.Day {
		case rep.To:
			f.CallsIn += row.CallsIn
			f.Passed += row.Passed
			f.Challenged += row.Challenged
			f.Rejected += row.Rejected
			f.ChallengesPassed += row.ChallengesPassed
			f.ChallengesFailed += row.ChallengesFailed
			f.ChallengesAbandoned += row.ChallengesAbandoned
			f.Offered += row.Offered
			f.Unanswered += row.Unanswered
			f.Unbilled += row.Unbilled
			f.WouldReject += row.WouldReject
			f.WouldChallenge += row.WouldChallenge
			saved += row.Saved
			for h, n := range row.Hours {
				hours[h] += float64(n)
			}
		case yesterday:
			for h, n := range row.Hours {
				before[h] += float64(n)
			}
		}
	}
	f.UnansweredShare = "—"
	if f.Offered > 0 {
		f.UnansweredShare = fmt.Sprintf("%.1f%%", 100*float64(f.Unanswered)/float64(f.Offered))
	}
	f.Saved = money(saved, rep.Tariff.Currency)
	ch := &chartData{XLabel: translate(lang, "today.hour"), Series: []chartSeries{
		{Label: translate(lang, "today.chart.today"), Values: hours},
		{Label: translate(lang, "today.chart.yesterday"), Values: before},
	}}
	for h := range 24 {
		ch.X = append(ch.X, float64(h))
		ch.Labels = append(ch.Labels, fmt.Sprintf("%02d", h))
	}
	return f, ch
}

// money formats an amount with its currency, if any.
func money(v float64, currency string) string {
	if currency == "" {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2f %s", v, currency)
}
