package reports

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/runner"
)

// Query limits.
const (
	// MaxDays bounds a report's date range.
	MaxDays = 366
	// DefaultDays is the range when a query names no start: the last week.
	DefaultDays = 7
	// DefaultTop and MaxTop bound the top lists.
	DefaultTop = 10
	MaxTop     = 100
)

// Billing rules for Config.Billing.
const (
	// BillPerMinute bills every started minute (the default).
	BillPerMinute = "minute"
	// BillPerSecond bills the exact length.
	BillPerSecond = "second"
)

var (
	// ErrDate means a date of a query is not YYYY-MM-DD, the range is
	// reversed or longer than MaxDays.
	ErrDate = errors.New("invalid report date")
	// ErrQuery means another part of a query is refused (a limit).
	ErrQuery = errors.New("invalid report query")
	// ErrConfig is the sentinel of Config.Validate.
	ErrConfig = errors.New("invalid report config")
)

// Config are the settings of the reports. Only Location shapes the read
// model; the rest apply when a report is read.
type Config struct {
	// Location is the time zone of days and hours (nil: UTC).
	Location *time.Location
	// TariffPerMinute is what the line's owner pays the carrier per
	// minute of a call to the toll-free number, in Currency.
	TariffPerMinute float64
	// Currency labels the money figures ("RUB").
	Currency string
	// AssumedMinutes is how long a blocked call is assumed to have lasted
	// when a row has no connected calls to average (see the package
	// documentation).
	AssumedMinutes float64
	// Billing is BillPerMinute ("" too) or BillPerSecond.
	Billing string
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.TariffPerMinute < 0 || math.IsNaN(c.TariffPerMinute) || math.IsInf(c.TariffPerMinute, 0):
		return fmt.Errorf("%w: tariff per minute %v, want 0 or more", ErrConfig, c.TariffPerMinute)
	case c.AssumedMinutes < 0 || math.IsNaN(c.AssumedMinutes) || math.IsInf(c.AssumedMinutes, 0):
		return fmt.Errorf("%w: assumed minutes %v, want 0 or more", ErrConfig, c.AssumedMinutes)
	case c.Billing != "" && c.Billing != BillPerMinute && c.Billing != BillPerSecond:
		return fmt.Errorf("%w: billing %q, want minute or second", ErrConfig, c.Billing)
	}
	return nil
}

// Reports answers report queries. It is safe for concurrent use.
type Reports struct {
	db    runner.Viewer
	cfg   Config
	clock func() time.Time
}

// New returns the queries over db (the runner), with cfg's time zone
// (the projection's) and tariff; clock (nil: time.Now) says what today is.
func New(db runner.Viewer, cfg Config, clock func() time.Time) (*Reports, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Billing == "" {
		cfg.Billing = BillPerMinute
	}
	if clock == nil {
		clock = time.Now
	}
	return &Reports{db: db, cfg: cfg, clock: clock}, nil
}

// Config returns the settings the reports apply.
func (r *Reports) Config() Config { return r.cfg }

// Query selects a daily report. Empty dates default to the last
// DefaultDays days ending today.
type Query struct {
	// From and To are the first and last day, YYYY-MM-DD, inclusive.
	From, To string
	// Callee keeps one called number; empty keeps all.
	Callee string
}

// Tariff is how money figures were computed.
type Tariff struct {
	PerMinute      float64 `json:"perMinute"`
	Currency       string  `json:"currency,omitempty"`
	Billing        string  `json:"billing"`
	AssumedMinutes float64 `json:"assumedMinutes"`
}

// Daily is a report per day and callee.
type Daily struct {
	From     string `json:"from"`
	To       string `json:"to"`
	TimeZone string `json:"timeZone"`
	// Callee is the callee the report was limited to, if any.
	Callee string `json:"callee,omitempty"`
	Tariff Tariff `json:"tariff"`
	// Rows are per day and callee, by day then callee. A day without
	// calls has one row of zeros (for the queried callee, or none).
	Rows []Row `json:"rows"`
	// Total sums the rows; its Day and Callee are empty.
	Total Row `json:"total"`
	// Attacks are the periods the lines (the queried callee, or all) were
	// under attack that overlap the range, by line then start.
	Attacks []Attack `json:"attacks"`
}

// Row is one day's figures for one callee (see Counters for what each
// counts, and the package documentation for the money estimate and
// observe mode).
type Row struct {
	Day     string `json:"day,omitempty"`
	Callee  string `json:"callee"`
	CallsIn int    `json:"callsIn"`
	// Passed, Challenged and Rejected are what the guard did: in observe
	// mode every call is passed.
	Passed     int `json:"passed"`
	Challenged int `json:"challenged"`
	// ChallengedByAttack are the challenged calls whose line was under
	// attack and whose caller would otherwise have passed.
	ChallengedByAttack  int `json:"challengedByAttack"`
	ChallengesPassed    int `json:"challengesPassed"`
	ChallengesFailed    int `json:"challengesFailed"`
	ChallengesAbandoned int `json:"challengesAbandoned"`
	Rejected            int `json:"rejected"`
	// WouldChallenge and WouldReject count the calls observe mode passed
	// that enforcing would have challenged or rejected (they are in
	// Passed, never in the money saved).
	WouldChallenge   int `json:"wouldChallenge"`
	WouldReject      int `json:"wouldReject"`
	StoreDown        int `json:"storeDown"`
	Busy             int `json:"busy"`
	Tracked          int `json:"tracked"`
	Unbilled         int `json:"unbilled"`
	AnsweredUnbilled int `json:"answeredUnbilled"`
	Offered          int `json:"offered"`
	Connected        int `json:"connected"`
	Unanswered       int `json:"unanswered"`
	// UnansweredShare is Unanswered / Offered; null with nothing offered.
	UnansweredShare *float64 `json:"unansweredShare"`
	BilledCalls     int      `json:"billedCalls"`
	BilledMinutes   float64  `json:"billedMinutes"`
	// MinutesPerCall is the average billed length of a connected call, or
	// the assumed one (MinutesAssumed).
	MinutesPerCall float64 `json:"minutesPerCall"`
	MinutesAssumed bool    `json:"minutesAssumed,omitempty"`
	SavedMinutes   float64 `json:"savedMinutes"`
	Saved          float64 `json:"saved"`
	// What enforcing would change, from the calls observe mode passed:
	// WouldSaveMinutes are the billed minutes of the would-be rejected
	// calls (enforcing would not have let them be billed), WouldSave their
	// cost; WouldChallengeMinutes the billed minutes of the would-be
	// challenged calls, saved too had their callers failed the challenge.
	// Measured on the calls as they happened, not estimated.
	WouldSaveMinutes      float64 `json:"wouldSaveMinutes"`
	WouldSave             float64 `json:"wouldSave"`
	WouldChallengeMinutes float64 `json:"wouldChallengeMinutes"`
	// Hours counts the calls in by hour of day (0 is midnight to 1 am).
	Hours [24]int `json:"hours"`
}

// row computes a Row from raw counters.
func (r *Reports) row(day, callee string, c Counters) Row {
	out := Row{
		Day: day, Callee: callee, CallsIn: c.CallsIn, Passed: c.Passed, Challenged: c.Challenged, ChallengedByAttack: c.ChallengedByAttack,
		ChallengesPassed: c.ChallengesPassed, ChallengesFailed: c.ChallengesFailed, ChallengesAbandoned: c.ChallengesAbandoned,
		Rejected: c.Rejected, WouldChallenge: c.WouldChallenge, WouldReject: c.WouldReject, StoreDown: c.StoreDown, Busy: c.Busy, Tracked: c.Tracked, Unbilled: c.Unbilled,
		AnsweredUnbilled: c.AnsweredUnbilled, Offered: c.Offered, Connected: c.Connected, Unanswered: c.Unanswered,
		BilledCalls: c.BilledCalls, Hours: c.Hours,
	}
	if c.Offered > 0 {
		share := round(float64(c.Unanswered)/float64(c.Offered), 4)
		out.UnansweredShare = &share
	}
	perSecond := r.cfg.Billing == BillPerSecond
	minutes := func(ms, started int64) float64 {
		if perSecond {
			return float64(ms) / float64(time.Minute/time.Millisecond)
		}
		return float64(started)
	}
	out.BilledMinutes = round(minutes(c.BilledMs, c.BilledMinutes), 2)
	if c.ConnectedBilled > 0 {
		out.MinutesPerCall = minutes(c.ConnectedMs, c.ConnectedMinutes) / float64(c.ConnectedBilled)
	} else {
		out.MinutesPerCall, out.MinutesAssumed = r.cfg.AssumedMinutes, true
	}
	saved := float64(c.Rejected+c.ChallengesFailed)*out.MinutesPerCall - minutes(c.BlockedBilledMs, c.BlockedBilledMinutes)
	out.SavedMinutes = round(max(0, saved), 2)
	out.Saved = round(out.SavedMinutes*r.cfg.TariffPerMinute, 2)
	out.MinutesPerCall = round(out.MinutesPerCall, 2)
	out.WouldSaveMinutes = round(minutes(c.WouldRejectBilledMs, c.WouldRejectBilledMinutes), 2)
	out.WouldSave = round(out.WouldSaveMinutes*r.cfg.TariffPerMinute, 2)
	out.WouldChallengeMinutes = round(minutes(c.WouldChallengeBilledMs, c.WouldChallengeBilledMinutes), 2)
	return out
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// dates resolves a query's range.
func (r *Reports) dates(from, to string) (time.Time, time.Time, error) {
	parse := func(name, s string) (time.Time, error) {
		t, err := time.ParseInLocation(rm.DayLayout, s, r.cfg.Location)
		if err != nil {
			return t, fmt.Errorf("%w: %s %q is not a date YYYY-MM-DD", ErrDate, name, clip(s))
		}
		return t, nil
	}
	var (
		f, t time.Time
		err  error
	)
	if to == "" {
		now := r.clock().In(r.cfg.Location)
		t = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, r.cfg.Location)
	} else if t, err = parse("to", to); err != nil {
		return f, t, err
	}
	if from == "" {
		f = t.AddDate(0, 0, -(DefaultDays - 1))
	} else if f, err = parse("from", from); err != nil {
		return f, t, err
	}
	switch days := daysBetween(f, t) + 1; {
	case days < 1:
		return f, t, fmt.Errorf("%w: from %s is after to %s", ErrDate, f.Format(rm.DayLayout), t.Format(rm.DayLayout))
	case days > MaxDays:
		return f, t, fmt.Errorf("%w: %d days from %s to %s; at most %d", ErrDate, days, f.Format(rm.DayLayout), t.Format(rm.DayLayout), MaxDays)
	}
	return f, t, nil
}

// daysBetween counts calendar days, immune to DST changes.
func daysBetween(f, t time.Time) int {
	fu := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, time.UTC)
	tu := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return int(tu.Sub(fu) / (24 * time.Hour))
}

// Daily returns the report per day and callee over q's range.
func (r *Reports) Daily(ctx context.Context, q Query) (Daily, error) {
	f, t, err := r.dates(q.From, q.To)
	if err != nil {
		return Daily{}, err
	}
	d := Daily{
		From: f.Format(rm.DayLayout), To: t.Format(rm.DayLayout), TimeZone: r.cfg.Location.String(), Callee: q.Callee,
		Tariff: Tariff{PerMinute: r.cfg.TariffPerMinute, Currency: r.cfg.Currency, Billing: r.cfg.Billing, AssumedMinutes: r.cfg.AssumedMinutes},
		Rows:   []Row{}, Attacks: []Attack{},
	}
	var total Counters
	seen := map[string]bool{}
	err = r.db.View(Name, func(root *bolt.Bucket) error {
		if d.Attacks, err = r.attacks(ctx, root, q.Callee, f, t.AddDate(0, 0, 1)); err != nil {
			return err
		}
		b := rm.Sub(root, bucketDays)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		end := d.To + "|\xff"
		for k, v := c.Seek([]byte(d.From)); k != nil && string(k) <= end; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			day, callee, _ := strings.Cut(string(k), "|")
			if q.Callee != "" && callee != q.Callee {
				continue
			}
			cs, err := decode(v, decodeCounters)
			if err != nil {
				return fmt.Errorf("day %s: %w", k, err)
			}
			total.Add(cs)
			seen[day] = true
			d.Rows = append(d.Rows, r.row(day, callee, cs))
		}
		return nil
	})
	if err != nil {
		return Daily{}, fmt.Errorf("daily report: %w", err)
	}
	for day := f; !day.After(t); day = day.AddDate(0, 0, 1) {
		if s := day.Format(rm.DayLayout); !seen[s] {
			d.Rows = append(d.Rows, r.row(s, q.Callee, Counters{}))
		}
	}
	slices.SortStableFunc(d.Rows, func(a, b Row) int { return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Callee, b.Callee)) })
	d.Total = r.row("", q.Callee, total)
	return d, nil
}

// TopQuery selects the top callers over a range.
type TopQuery struct {
	From, To string
	// Limit is the length of each list: 0 for DefaultTop, up to MaxTop.
	Limit int
}

// Top lists the callers that called and were blocked most.
type Top struct {
	From     string `json:"from"`
	To       string `json:"to"`
	TimeZone string `json:"timeZone"`
	// ByCalls ranks callers by calls in; ByBlocks by blocks applied, then
	// by calls blocked (challenged or rejected), then by calls observe
	// mode passed that a block would have caught. A caller with none of
	// them is not in ByBlocks.
	ByCalls  []TopCaller `json:"byCalls"`
	ByBlocks []TopCaller `json:"byBlocks"`
}

// TopCaller is one caller's figures over the range.
type TopCaller struct {
	Rank             int    `json:"rank"`
	Number           string `json:"number"`
	Calls            int    `json:"calls"`
	Passed           int    `json:"passed"`
	Challenged       int    `json:"challenged"`
	Rejected         int    `json:"rejected"`
	ChallengesFailed int    `json:"challengesFailed"`
	// Blocked is Challenged + Rejected: the calls a block caught.
	Blocked int `json:"blocked"`
	// WouldBlock counts the calls observe mode passed that a block would
	// have caught (challenged or rejected when enforcing).
	WouldBlock int `json:"wouldBlock"`
	// Blocks counts blocks applied to the number in the range.
	Blocks int `json:"blocks"`
}

// Top returns the top callers over q's range. Top lists are over every
// callee: a caller flooding one line of the company is a nuisance to all.
func (r *Reports) Top(ctx context.Context, q TopQuery) (Top, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultTop
	case q.Limit < 1 || q.Limit > MaxTop:
		return Top{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrQuery, q.Limit, MaxTop)
	}
	f, t, err := r.dates(q.From, q.To)
	if err != nil {
		return Top{}, err
	}
	top := Top{From: f.Format(rm.DayLayout), To: t.Format(rm.DayLayout), TimeZone: r.cfg.Location.String()}
	sums := map[string]*CallerCounters{}
	err = r.db.View(Name, func(root *bolt.Bucket) error {
		b := rm.Sub(root, bucketCallers)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		end := top.To + "|\xff"
		n := 0
		for k, v := c.Seek([]byte(top.From)); k != nil && string(k) <= end; k, v = c.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			_, number, _ := strings.Cut(string(k), "|")
			cc, err := decode(v, decodeCallerCounters)
			if err != nil {
				return fmt.Errorf("caller %s: %w", k, err)
			}
			s, ok := sums[number]
			if !ok {
				s = &CallerCounters{}
				sums[number] = s
			}
			s.Add(cc)
		}
		return nil
	})
	if err != nil {
		return Top{}, fmt.Errorf("top callers: %w", err)
	}
	all := make([]TopCaller, 0, len(sums))
	for n, s := range sums {
		all = append(all, TopCaller{
			Number: n, Calls: s.Calls, Passed: s.Passed, Challenged: s.Challenged, Rejected: s.Rejected,
			ChallengesFailed: s.Failed, Blocked: s.Challenged + s.Rejected, WouldBlock: s.Observed, Blocks: s.Blocks,
		})
	}
	byCalls := slices.Clone(all)
	slices.SortFunc(byCalls, func(a, b TopCaller) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(b.Blocked, a.Blocked), strings.Compare(a.Number, b.Number))
	})
	top.ByCalls = ranked(byCalls, q.Limit)
	byBlocks := slices.DeleteFunc(all, func(c TopCaller) bool { return c.Blocks == 0 && c.Blocked == 0 && c.WouldBlock == 0 })
	slices.SortFunc(byBlocks, func(a, b TopCaller) int {
		return cmp.Or(cmp.Compare(b.Blocks, a.Blocks), cmp.Compare(b.Blocked, a.Blocked), cmp.Compare(b.WouldBlock, a.WouldBlock),
			cmp.Compare(b.Calls, a.Calls), strings.Compare(a.Number, b.Number))
	})
	top.ByBlocks = ranked(byBlocks, q.Limit)
	return top, nil
}

func ranked(cs []TopCaller, limit int) []TopCaller {
	if len(cs) > limit {
		cs = cs[:limit]
	}
	out := make([]TopCaller, len(cs))
	for i, c := range cs {
		c.Rank = i + 1
		out[i] = c
	}
	return out
}

// clip bounds query text echoed into errors.
func clip(s string) string {
	if len(s) <= 32 {
		return s
	}
	return strings.ToValidUTF8(s[:32], "") + "…"
}
