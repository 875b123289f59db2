package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/audit"
	"github.com/callguard/callguard/actors/policy/replay"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// Small fakes of the read side, with enough in them that every part of
// every page renders.

type fakeReports struct{ lastQuery reports.Query }

func (f *fakeReports) Daily(_ context.Context, q reports.Query) (reports.Daily, error) {
	f.lastQuery = q
	share := 0.25
	today := reports.Row{Day: "2026-12-03", Callee: "+78005553535", CallsIn: 40, Passed: 30, Challenged: 6, Rejected: 4,
		ChallengesPassed: 3, ChallengesFailed: 2, ChallengesAbandoned: 1, Offered: 32, Unanswered: 8, UnansweredShare: &share,
		Unbilled: 9, Saved: 123.5}
	today.Hours[9], today.Hours[10] = 15, 25
	yesterday := reports.Row{Day: "2026-12-02", Callee: "+78005553535", CallsIn: 7}
	yesterday.Hours[14] = 7
	return reports.Daily{From: "2026-11-27", To: "2026-12-03", TimeZone: "Europe/Moscow", Tariff: reports.Tariff{Currency: "RUB"},
		Rows: []reports.Row{yesterday, today}, Total: reports.Row{CallsIn: 47}}, nil
}

func (f *fakeReports) Top(context.Context, reports.TopQuery) (reports.Top, error) {
	return reports.Top{From: "2026-11-27", To: "2026-12-03", ByCalls: []reports.TopCaller{{Rank: 1, Number: "+79161234567", Calls: 12}}}, nil
}

type fakeHealth struct{}

func (fakeHealth) Live(context.Context) (Live, error) {
	return Live{ActiveCalls: 7, Challenges: 2, StoreOK: true, Lines: []string{"+78005553535", "+78005550000"}}, nil
}

type fakeLines struct{}

func (fakeLines) Command(context.Context, string, line.Command) (line.Mode, error) {
	return line.Mode{}, nil
}

func (fakeLines) Status(_ context.Context, n string) (line.Mode, error) {
	return line.Mode{Line: n, On: n == "+78005553535", Since: time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC), Rate: 3.5, Threshold: 2}, nil
}

type fakeProjections struct{}

func (fakeProjections) Status(context.Context) ([]runner.Status, error) {
	return []runner.Status{{Name: "lists", State: runner.Running, LagEvents: 3, LagSeconds: 0.5}, {Name: "reports", State: runner.Running}}, nil
}

func (fakeProjections) Rebuild(context.Context, ...string) error { return nil }

func (fakeProjections) Await(context.Context, ...string) (runner.Freshness, error) {
	return runner.Freshness{Status: runner.ReadCurrent}, nil
}

type fakeProfiles struct{ lastQuery profiles.Query }

func (f *fakeProfiles) Search(_ context.Context, q profiles.Query) (profiles.Page, error) {
	f.lastQuery = q
	last := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	return profiles.Page{Items: []profiles.Profile{
		{Number: q.Prefix + "1234", Calls: 5, CallsToday: 1, LastCall: &last, LastVerdict: schema.Pass},
		{Number: q.Prefix + "9999", Calls: 50, Blocks: 1, LastVerdict: schema.Reject},
	}, Next: q.Prefix + "9999"}, nil
}

// fakeHistory answers a timeline with one entry of each kind.
type fakeHistory struct{}

func (fakeHistory) History(_ context.Context, key string) (any, error) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	return audit.Timeline{Key: key, Entries: []audit.Entry{
		{At: at, Kind: audit.KindCall, Call: &audit.Call{CallID: "c1", Callee: "+78005553535", Hour: 1, Day: 1, Verdict: schema.Pass}},
		{At: at.Add(time.Minute), Kind: audit.KindCall, Call: &audit.Call{CallID: "c2", Hour: 6, Day: 6, Verdict: schema.Challenge, Level: 3, Rule: "limit-hour"}},
		{At: at.Add(time.Minute), Kind: audit.KindBlock, Block: &audit.Block{Level: 3, Kind: schema.Auto, Rule: "limit-hour", Limit: 5, Count: 6,
			Counted: []audit.Counted{{CallID: "c1", At: at}, {CallID: "c2", At: at.Add(time.Minute)}}, Unnamed: 4, By: "policy", Why: "6 calls in an hour"}},
		{At: at.Add(2 * time.Minute), Kind: audit.KindChallenge, Challenge: &audit.Challenge{CallID: "c2", Outcome: schema.Failed}},
		{At: at.Add(3 * time.Minute), Kind: audit.KindUnblock, Unblock: &audit.Unblock{Level: 3, Kind: schema.Auto, By: "oleg", Why: "client called the bank"}},
		{At: at.Add(4 * time.Minute), Kind: audit.KindWhitelist, Whitelist: &audit.Whitelist{By: "oleg", Why: "VIP client"}},
		{At: at.Add(5 * time.Minute), Kind: audit.KindUnwhitelist, Whitelist: &audit.Whitelist{By: "anna", Why: "left the bank"}},
	}, Summary: audit.Summary{Calls: 2, Pass: 1, Challenge: 1, Failed: 1, AutoBlocks: 1}}, nil
}

// fullDeps fills every optional dependency with a fake.
func fullDeps(d *Deps) {
	d.Reports = &fakeReports{}
	d.Health = fakeHealth{}
	d.Lines = fakeLines{}
	d.Projections = fakeProjections{}
	d.Profiles = &fakeProfiles{}
	d.History = fakeHistory{}
	d.Lists = &fakeLists{}
	d.Import = &fakeImporter{}
	d.Replay = &fakeReplay{}
	d.UserAdmin = &fakeUserAdmin{u: d.Users.(*fakeUsers)}
	d.Policy = policy.Config{LimitHour: 5, LimitDay: 20, BlockFor: 24 * time.Hour}
}

type fakeLists struct {
	mu   sync.Mutex
	last lists.Query
}

func (f *fakeLists) query() lists.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeLists) Blacklist(_ context.Context, q lists.Query) (lists.Page[lists.BlacklistEntry], error) {
	f.mu.Lock()
	f.last = q
	f.mu.Unlock()
	if q.Level > 9 {
		return lists.Page[lists.BlacklistEntry]{}, fmt.Errorf("%w: level %d", lists.ErrQuery, q.Level)
	}
	p := lists.Page[lists.BlacklistEntry]{Total: 2, Items: []lists.BlacklistEntry{
		{Number: "+79161234567", Level: 6, Effect: schema.Reject, Kind: schema.Manual, Rule: schema.RuleManual, Since: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), By: "oleg", Reason: "fraud"},
	}}
	if q.Limit != lists.Unlimited {
		p.Next = "+79161234567"
	} else {
		p.Items = append(p.Items, lists.BlacklistEntry{Number: "+79161239999", Level: 2, Effect: schema.Challenge, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, By: "policy", Reason: "limit"})
	}
	return p, nil
}

func (f *fakeLists) Whitelist(_ context.Context, q lists.Query) (lists.Page[lists.WhitelistEntry], error) {
	f.mu.Lock()
	f.last = q
	f.mu.Unlock()
	return lists.Page[lists.WhitelistEntry]{Total: 1, Items: []lists.WhitelistEntry{
		{Number: "+79169998877", Since: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), By: "anna", Reason: "VIP"},
	}}, nil
}

// fakeImporter reads "number" rows: a row that does not start with + is
// refused, like a malformed number.
type fakeImporter struct {
	mu  sync.Mutex
	def importer.Defaults
}

func (f *fakeImporter) ImportWhitelist(_ context.Context, r io.Reader, def importer.Defaults) (importer.Result, error) {
	f.mu.Lock()
	f.def = def
	f.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return importer.Result{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "number" {
		return importer.Result{}, &importer.FileError{Code: importer.FileNoNumber, Header: lines[0]}
	}
	res := importer.Result{File: "abc", Errors: []importer.RowError{}}
	seen := map[string]int{}
	for i, l := range lines[1:] {
		line := i + 2
		res.Rows++
		switch first, dup := seen[l]; {
		case !strings.HasPrefix(l, "+"):
			res.Errors = append(res.Errors, importer.RowError{Line: line, Number: l, Field: "number", Code: importer.RowNumber, Error: "not a phone number"})
		case dup:
			res.Errors = append(res.Errors, importer.RowError{Line: line, Number: l, Field: "number", Code: importer.RowDuplicate, DuplicateOf: first, Error: "already on a line"})
		default:
			seen[l] = line
			res.Applied++
		}
	}
	res.Failed = len(res.Errors)
	return res, nil
}

// fakeReplay records the settings and answers a report with one number.
type fakeReplay struct {
	mu       sync.Mutex
	settings map[string]string
	block    chan struct{} // when set, Replay waits on it
}

func (f *fakeReplay) Replay(ctx context.Context, settings map[string]string) (any, error) {
	f.mu.Lock()
	f.settings = settings
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The settings' errors as cmd's replay gives them.
	pc := policy.DefaultConfig()
	for name, field := range map[string]*int{"limit-hour": &pc.LimitHour, "limit-day": &pc.LimitDay} {
		if v, ok := settings[name]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", adminapi.ErrSettings, &adminapi.SettingValueError{Setting: name, Value: v, Err: err})
			}
			*field = n
		}
	}
	if err := pc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", adminapi.ErrSettings, err)
	}
	return replay.Report{Callers: 10, Calls: 100, CallsChanged: 7, CallersChanged: 2, NumbersChanged: 1,
		Transitions: []replay.Transition{{From: schema.Pass, To: schema.Challenge, Calls: 7}},
		Numbers: []replay.Number{{Key: "+79161234567", Now: policy.Status{Next: schema.Pass}, WouldBe: policy.Status{Level: 3, Next: schema.Challenge, Rule: schema.RuleHourlyLimit},
			Differs: []string{"level"}, Calls: 12, CallsChanged: 7}}}, nil
}

func (f *fakeReplay) got() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings
}

// fakeUserAdmin manages the fakeUsers book.
type fakeUserAdmin struct {
	u   *fakeUsers
	mu  sync.Mutex
	log []string
}

func (f *fakeUserAdmin) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
}

func (f *fakeUserAdmin) List(context.Context) ([]UserInfo, error) {
	f.u.mu.Lock()
	defer f.u.mu.Unlock()
	var out []UserInfo
	for _, a := range f.u.accounts {
		out = append(out, UserInfo{Name: a.Name, Role: a.Role, Disabled: f.u.disabled[a.Name]})
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeUserAdmin) Create(_ context.Context, name, role, password, by string) error {
	if len(password) < 12 {
		return errors.New("the password is shorter than 12 characters")
	}
	f.u.set(name, role, false)
	f.u.mu.Lock()
	f.u.pass[name] = password
	f.u.mu.Unlock()
	f.record("create " + name + " " + role + " by " + by)
	return nil
}

func (f *fakeUserAdmin) SetRole(_ context.Context, name, role, by string) error {
	f.u.set(name, role, false)
	f.record("role " + name + " " + role + " by " + by)
	return nil
}

func (f *fakeUserAdmin) SetPassword(_ context.Context, name, password, by string) error {
	f.record("password " + name + " by " + by)
	return nil
}

func (f *fakeUserAdmin) Disable(_ context.Context, name, by string) error {
	a, _ := f.u.Account(context.Background(), name)
	f.u.set(name, a.Role, true)
	f.record("disable " + name + " by " + by)
	return nil
}

func (f *fakeUserAdmin) Enable(_ context.Context, name, by string) error {
	f.record("enable " + name + " by " + by)
	return nil
}
