package adminapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// Fakes of the read side, recording the queries they get.
type (
	fakeLists struct {
		mu    sync.Mutex
		black lists.Page[lists.BlacklistEntry]
		white lists.Page[lists.WhitelistEntry]
		got   []lists.Query
		err   error
	}
	fakeReports struct {
		daily reports.Daily
		top   reports.Top
		gotQ  reports.Query
		gotT  reports.TopQuery
		err   error
	}
	fakeProfiles struct {
		page profiles.Page
		got  profiles.Query
	}
	fakeProjections struct {
		sts     []runner.Status
		rebuilt [][]string
		err     error
		// fresh is what Await says (zero: current); with block, Await
		// waits for its context to end first.
		mu      sync.Mutex
		fresh   runner.Freshness
		block   bool
		awaited [][]string
	}
)

func (f *fakeLists) Blacklist(_ context.Context, q lists.Query) (lists.Page[lists.BlacklistEntry], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, q)
	return f.black, f.err
}

func (f *fakeLists) Whitelist(_ context.Context, q lists.Query) (lists.Page[lists.WhitelistEntry], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, q)
	return f.white, f.err
}

func (f *fakeLists) last() lists.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[len(f.got)-1]
}

func (f *fakeReports) Daily(_ context.Context, q reports.Query) (reports.Daily, error) {
	f.gotQ = q
	return f.daily, f.err
}

func (f *fakeReports) Top(_ context.Context, q reports.TopQuery) (reports.Top, error) {
	f.gotT = q
	return f.top, f.err
}

func (f *fakeProfiles) Search(_ context.Context, q profiles.Query) (profiles.Page, error) {
	f.got = q
	return f.page, nil
}

func (f *fakeProjections) Status(context.Context) ([]runner.Status, error) { return f.sts, nil }

func (f *fakeProjections) Await(ctx context.Context, names ...string) (runner.Freshness, error) {
	f.mu.Lock()
	f.awaited = append(f.awaited, names)
	fr, block := f.fresh, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return runner.Freshness{Status: runner.ReadLagging, Reason: "lists had not caught up with the log in time"}, nil
	}
	if fr.Status == "" {
		fr.Status = runner.ReadCurrent
	}
	return fr, nil
}

func (f *fakeProjections) Rebuild(_ context.Context, names ...string) error {
	if f.err != nil {
		return f.err
	}
	for _, n := range names {
		if n != "lists" && n != "reports" {
			return fmt.Errorf("rebuild %q: %w", n, runner.ErrUnknownProjection)
		}
	}
	f.rebuilt = append(f.rebuilt, names)
	return nil
}

func TestReadSideRoutesWithoutReadSide(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	for _, r := range []req{
		{method: "GET", path: "/v1/blacklist"},
		{method: "GET", path: "/v1/whitelist"},
		{method: "POST", path: "/v1/whitelist/import", body: "number\n+79990001122\n"},
		{method: "GET", path: "/v1/reports/daily"},
		{method: "GET", path: "/v1/reports/top"},
		{method: "GET", path: "/v1/callers"},
		{method: "GET", path: "/v1/projections"},
		{method: "POST", path: "/v1/projections/all/rebuild"},
	} {
		rec := serve(t, s, r)
		if rec.Code != http.StatusNotImplemented || codeOf(t, rec) != CodeNotImplemented {
			t.Errorf("%s without a read side: %d", r, rec.Code)
		}
	}
	// A nil pointer passed as a dependency counts as none.
	var none *importer.Importer
	s2, err := New(Config{Token: testToken}, Deps{Callers: &fakeCallers{}, Normalizer: testNormalizer(t), Import: none,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(t, s2, req{method: "POST", path: "/v1/whitelist/import", body: "number\n"}); rec.Code != http.StatusNotImplemented {
		t.Fatalf("nil importer: %d", rec.Code)
	}
}

func withReadSide(t *testing.T, f *fakeCallers) (*Server, *fakeLists, *fakeReports, *fakeProfiles, *fakeProjections) {
	t.Helper()
	s := newTestServer(t, f, nil)
	until := testNow.Add(time.Hour)
	fl := &fakeLists{
		black: lists.Page[lists.BlacklistEntry]{Items: []lists.BlacklistEntry{{Number: key, Level: 7, Effect: schema.Reject,
			Kind: schema.Manual, Rule: schema.RuleManual, Since: testNow, By: "bob", Reason: "=cmd|x"}}, Total: 1, AsOf: testNow},
		white: lists.Page[lists.WhitelistEntry]{Items: []lists.WhitelistEntry{{Number: "+79990003344", Since: testNow, Until: &until,
			By: "alice", Reason: "VIP, gold"}}, Total: 1, AsOf: testNow},
	}
	fr := &fakeReports{
		daily: reports.Daily{From: "2026-11-01", To: "2026-11-02", TimeZone: "UTC", Rows: []reports.Row{{Day: "2026-11-01", Callee: "+78005553535", CallsIn: 3}}},
		top:   reports.Top{From: "2026-11-01", To: "2026-11-02", ByCalls: []reports.TopCaller{{Rank: 1, Number: key, Calls: 9}}},
	}
	fp := &fakeProfiles{page: profiles.Page{Items: []profiles.Profile{{Number: key, Calls: 4}}}}
	fj := &fakeProjections{sts: []runner.Status{{Name: "lists", State: runner.Running}, {Name: "reports", State: runner.Running}}}
	s.d.Lists, s.d.Reports, s.d.Profiles, s.d.Projections = fl, fr, fp, fj
	s.d.Import = importer.New(f, s.d.Normalizer, s.d.Clock, s.d.Logger)
	return s, fl, fr, fp, fj
}

func TestListRoutes(t *testing.T) {
	s, fl, _, _, _ := withReadSide(t, &fakeCallers{})
	rec := serve(t, s, req{method: "GET", path: "/v1/blacklist?prefix=7999&level=7&kind=manual&rule=manual&after=%2B7999&limit=50&expired=true"})
	page := decodeJSON[lists.Page[lists.BlacklistEntry]](t, rec)
	want := lists.Query{Prefix: "+7999", Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, After: "+7999", Limit: 50, IncludeExpired: true}
	if rec.Code != 200 || fl.last() != want || len(page.Items) != 1 || page.Items[0].Number != key {
		t.Fatalf("blacklist %d %+v, query %+v", rec.Code, page, fl.last())
	}

	// CSV by Accept or by format: the export of everything the filters
	// match, paging ignored, formulas defused.
	for _, r := range []req{
		{method: "GET", path: "/v1/blacklist?limit=5&after=x&kind=manual", header: map[string]string{"Accept": "text/csv"}},
		{method: "GET", path: "/v1/blacklist?limit=5&after=x&kind=manual&format=csv"},
		{method: "GET", path: "/v1/blacklist?limit=5&after=x&kind=manual", header: map[string]string{"Accept": "application/json;q=0.5, text/csv"}},
	} {
		rec := serve(t, s, r)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != CSVMediaType || !strings.Contains(rec.Header().Get("Content-Disposition"), "blacklist.csv") {
			t.Fatalf("%s: %d %v", r, rec.Code, rec.Header())
		}
		if got := rec.Body.String(); !strings.HasPrefix(got, "number,level,effect,kind,rule,since,until,by,reason\n+79990001122,7,reject,manual,manual,2026-11-02T10:00:00Z,,bob,'=cmd|x\n") {
			t.Fatalf("%s: CSV %q", r, got)
		}
		if q := fl.last(); q.Limit != lists.Unlimited || q.After != "" || q.Kind != schema.Manual {
			t.Fatalf("%s: export query %+v", r, q)
		}
	}
	rec = serve(t, s, req{method: "GET", path: "/v1/whitelist", header: map[string]string{"Accept": "text/csv"}})
	if rec.Code != 200 || rec.Body.String() != "number,since,until,by,reason\n+79990003344,2026-11-02T10:00:00Z,2026-11-02T11:00:00Z,alice,\"VIP, gold\"\n" {
		t.Fatalf("whitelist CSV %d %q", rec.Code, rec.Body)
	}
	if page := decodeJSON[lists.Page[lists.WhitelistEntry]](t, serve(t, s, req{method: "GET", path: "/v1/whitelist"})); page.Total != 1 {
		t.Fatalf("whitelist %+v", page)
	}

	rec = serve(t, s, req{method: "GET", path: "/v1/blacklist?level=high&limit=x&expired=maybe&prefix=abc"})
	p := problemOfRecorder(t, rec)
	if rec.Code != 400 || p.Code() != CodeInvalidRequest || len(p.Errors) != 4 {
		t.Fatalf("bad parameters: %d %+v", rec.Code, p)
	}
	fl.err = fmt.Errorf("blacklist: %w: limit 5000, want 1 to 1000", lists.ErrQuery)
	if rec := serve(t, s, req{method: "GET", path: "/v1/blacklist?limit=5000"}); rec.Code != 400 || codeOf(t, rec) != CodeInvalidRequest {
		t.Fatalf("refused query: %d", rec.Code)
	}
	fl.err = fmt.Errorf("blacklist: %w", runner.ErrClosed)
	if rec := serve(t, s, req{method: "GET", path: "/v1/whitelist"}); rec.Code != 503 || codeOf(t, rec) != CodeReadSideFailed {
		t.Fatalf("closed read side: %d", rec.Code)
	}
}

func TestReportRoutes(t *testing.T) {
	s, _, fr, fp, fj := withReadSide(t, &fakeCallers{})
	rec := serve(t, s, req{method: "GET", path: "/v1/reports/daily?from=2026-11-01&to=2026-11-02&callee=88005553535"})
	d := decodeJSON[reports.Daily](t, rec)
	if fr.gotQ != (reports.Query{From: "2026-11-01", To: "2026-11-02", Callee: "+78005553535"}) || len(d.Rows) != 1 || d.Rows[0].CallsIn != 3 {
		t.Fatalf("daily: query %+v, answer %+v", fr.gotQ, d)
	}
	rec = serve(t, s, req{method: "GET", path: "/v1/reports/daily", header: map[string]string{"Accept": "text/csv"}})
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "day,callee,calls_in,") || !strings.Contains(rec.Header().Get("Content-Disposition"), "calls-2026-11-01-2026-11-02.csv") {
		t.Fatalf("daily CSV %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	fr.err = fmt.Errorf("%w: from \"2026-13-01\" is not a date YYYY-MM-DD", reports.ErrDate)
	rec = serve(t, s, req{method: "GET", path: "/v1/reports/daily?from=2026-13-01"})
	if p := problemOfRecorder(t, rec); rec.Code != 400 || p.Code() != CodeInvalidDate || !strings.Contains(p.Detail, "2026-13-01") {
		t.Fatalf("bad date: %d %+v", rec.Code, p)
	}
	fr.err = nil

	rec = serve(t, s, req{method: "GET", path: "/v1/reports/top?from=2026-11-01&limit=3"})
	if top := decodeJSON[reports.Top](t, rec); fr.gotT != (reports.TopQuery{From: "2026-11-01", Limit: 3}) || top.ByCalls[0].Calls != 9 {
		t.Fatalf("top: query %+v, answer %+v", fr.gotT, top)
	}
	if rec := serve(t, s, req{method: "GET", path: "/v1/reports/top?format=csv"}); rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "list,rank,number,") {
		t.Fatalf("top CSV %d %q", rec.Code, rec.Body)
	}

	rec = serve(t, s, req{method: "GET", path: "/v1/callers?prefix=%2B7999&limit=10"})
	if page := decodeJSON[profiles.Page](t, rec); fp.got != (profiles.Query{Prefix: "+7999", Limit: 10}) || page.Items[0].Calls != 4 {
		t.Fatalf("callers: query %+v, answer %+v", fp.got, page)
	}

	if v := decodeJSON[ProjectionsView](t, serve(t, s, req{method: "GET", path: "/v1/projections"})); len(v.Projections) != 2 {
		t.Fatalf("projections %+v", v)
	}
	rec = serve(t, s, req{method: "POST", path: "/v1/projections/reports/rebuild"})
	if v := decodeJSON[ProjectionsView](t, rec); rec.Code != 202 || fmt.Sprint(v.Rebuilding) != "[reports]" || fmt.Sprint(fj.rebuilt) != "[[reports]]" {
		t.Fatalf("rebuild: %d %+v, rebuilt %v", rec.Code, v, fj.rebuilt)
	}
	rec = serve(t, s, req{method: "POST", path: "/v1/projections/all/rebuild"})
	if v := decodeJSON[ProjectionsView](t, rec); fmt.Sprint(v.Rebuilding) != "[lists reports]" || len(fj.rebuilt[1]) != 0 {
		t.Fatalf("rebuild all: %+v, rebuilt %v", v, fj.rebuilt)
	}
	rec = serve(t, s, req{method: "POST", path: "/v1/projections/nope/rebuild"})
	if rec.Code != 404 || codeOf(t, rec) != CodeUnknownProjection {
		t.Fatalf("unknown projection: %d", rec.Code)
	}
}

func TestImportRoute(t *testing.T) {
	f := &fakeCallers{}
	s, _, _, _, _ := withReadSide(t, f)
	csvReq := func(path, body string, header map[string]string) *httptest.ResponseRecorder {
		hr := httptest.NewRequest("POST", path, strings.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+testToken)
		hr.Header.Set("Content-Type", "text/csv; charset=utf-8")
		for k, v := range header {
			hr.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, hr)
		return rec
	}
	file := "number,until,reason\n+79990001122,,VIP\nnonsense,,x\n8 999 000 33 44,2026-12-01T00:00:00Z,\n"
	rec := csvReq("/v1/whitelist/import?reason=imported", file, map[string]string{HeaderAdmin: "alice"})
	res := decodeJSON[importer.Result](t, rec)
	if rec.Code != 200 || res.Rows != 3 || res.Applied != 2 || res.Failed != 1 || res.Errors[0].Line != 3 || res.Errors[0].Field != "number" {
		t.Fatalf("import: %d %+v", rec.Code, res)
	}
	sent := f.sent()
	if len(sent) != 2 {
		t.Fatalf("grain got %+v", sent)
	}
	byKey := map[string]caller.Command{}
	for _, c := range sent {
		byKey[c.Key] = c.Cmd
	}
	c1, c2 := byKey["+79990001122"], byKey["+79990003344"]
	if c1.Verb != caller.VerbWhitelist || c1.Command.By != "alice" || c1.Command.Why != "VIP" || c1.Command.ID != "whitelist:import:"+res.File+":2" ||
		c2.Command.Why != "imported" || !c2.Command.Until.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("commands %+v", byKey)
	}
	// The same file again: written once.
	if res := decodeJSON[importer.Result](t, csvReq("/v1/whitelist/import?reason=imported", file, map[string]string{HeaderAdmin: "alice"})); res.Repeated != 2 || res.Applied != 0 {
		t.Fatalf("re-import %+v", res)
	}

	rec = csvReq("/v1/whitelist/import", "phone number\n+79990001122\n", nil)
	if p := problemOfRecorder(t, rec); rec.Code != 400 || p.Code() != CodeInvalidCSV {
		t.Fatalf("not a whitelist: %d %+v", rec.Code, p)
	}
	rec = serve(t, s, req{method: "POST", path: "/v1/whitelist/import", body: `{"number":"+79990001122"}`})
	if rec.Code != 415 || codeOf(t, rec) != CodeUnsupportedMediaType {
		t.Fatalf("JSON body: %d", rec.Code)
	}
	rec = csvReq("/v1/whitelist/import", "number\n"+strings.Repeat("+79990001122,"+strings.Repeat("x", 1000)+"\n", 1100), nil)
	if rec.Code != 413 || codeOf(t, rec) != CodeBodyTooLarge {
		t.Fatalf("huge body: %d", rec.Code)
	}
	rec = csvReq("/v1/whitelist/import?reason=a%0Ab", file, map[string]string{HeaderAdmin: "alice"})
	if rec.Code != 400 || codeOf(t, rec) != CodeInvalidRequest {
		t.Fatalf("a reason on two lines: %d", rec.Code)
	}
}

func TestWantsCSV(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                 false,
		"*/*":                              false,
		"application/json":                 false,
		"text/csv":                         true,
		"text/*":                           true,
		"text/csv;q=0.5, application/json": false,
		"application/json;q=0.1, text/csv": true,
		"text/csv;q=0, */*":                false,
		"text/html, */*;q=0.8":             false,
		"garbage;;;":                       false,
	} {
		r := httptest.NewRequest("GET", "/v1/blacklist", nil)
		r.Header.Set("Accept", accept)
		if got := wantsCSV(r); got != want {
			t.Errorf("Accept %q: CSV %v, want %v", accept, got, want)
		}
	}
}

// TestReadSideEndToEnd runs the routes over the real read side: events
// written through the real policy, projected, queried through the Client;
// a whitelist exported and imported back through the API.
func TestReadSideEndToEnd(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pol, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	write := func(key string, recs []schema.Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		props, err := schema.Proposals(recs, events.Metadata{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, schema.CallerStream(key), events.Any, props...); err != nil {
			t.Fatal(err)
		}
	}
	var st policy.State
	for i := range 6 {
		d, err := pol.Decide(&st, policy.Call{ID: fmt.Sprintf("c%d", i), Caller: phone.Number{Key: key}, Callee: "+78005553535"}, testNow.Add(time.Duration(i)*time.Minute))
		write(key, d.Records, err)
		if err == nil {
			_ = pol.ApplyAll(&st, payloads(d.Records)...)
		}
	}
	var st2 policy.State
	recs, err := pol.Whitelist(&st2, "+79990003344", policy.Command{ID: "k1", By: "alice", Why: "VIP, gold"}, testNow)
	write("+79990003344", recs, err)

	rs, err := readside.Open(ctx, readside.Config{Dir: dir, Store: store, Logger: quiet, Clock: func() time.Time { return testNow.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fakeCallers{}
	s := newTestServer(t, f, nil)
	s.d.Lists, s.d.Reports, s.d.Profiles, s.d.Projections = rs.Lists, rs.Reports, rs.Profiles, rs.Runner
	s.d.Import = importer.New(f, s.d.Normalizer, s.d.Clock, s.d.Logger)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := &Client{BaseURL: ts.URL, Token: testToken, HTTP: ts.Client()}

	black, err := c.ListBlacklist(ctx, lists.Query{Prefix: "+7999"})
	if err != nil || black.Total != 1 || black.Items[0].Number != key || black.Items[0].Rule != schema.RuleHourlyLimit {
		t.Fatalf("blacklist %+v %v", black, err)
	}
	csv, err := c.ExportWhitelist(ctx, lists.Query{})
	if err != nil || !strings.Contains(string(csv), `+79990003344,2026-11-02T10:00:00Z,,alice,"VIP, gold"`) {
		t.Fatalf("whitelist export %q %v", csv, err)
	}
	res, err := c.ImportWhitelist(ctx, csv, importer.Defaults{})
	if err != nil || res.Applied != 1 {
		t.Fatalf("import of the export %+v %v", res, err)
	}
	if sent := f.sent(); len(sent) != 1 || sent[0].Key != "+79990003344" || sent[0].Cmd.Command.By != "alice" || sent[0].Cmd.Command.Why != "VIP, gold" {
		t.Fatalf("the export imported as %+v", sent)
	}
	if _, err := c.ImportWhitelist(ctx, []byte("no,header\n"), importer.Defaults{}); !IsProblem(err, CodeInvalidCSV) {
		t.Fatalf("bad CSV through the client: %v", err)
	}
	d, err := c.Daily(ctx, reports.Query{From: "2026-11-02", To: "2026-11-02"})
	if err != nil || d.Total.CallsIn != 6 || d.Total.Passed != 5 || d.Total.Challenged != 1 {
		t.Fatalf("daily %+v %v", d.Total, err)
	}
	if _, err := c.Daily(ctx, reports.Query{From: "yesterday"}); !IsProblem(err, CodeInvalidDate) {
		t.Fatalf("bad date through the client: %v", err)
	}
	if b, err := c.DailyCSV(ctx, reports.Query{From: "2026-11-02", To: "2026-11-02"}); err != nil || !strings.Contains(string(b), "\ntotal,,6,5,1,") {
		t.Fatalf("daily CSV %q %v", b, err)
	}
	top, err := c.Top(ctx, reports.TopQuery{From: "2026-11-02", To: "2026-11-02"})
	if err != nil || top.ByCalls[0].Number != key || top.ByBlocks[0].Blocks != 1 {
		t.Fatalf("top %+v %v", top, err)
	}
	if b, err := c.TopCSV(ctx, reports.TopQuery{}); err != nil || !strings.HasPrefix(string(b), "list,rank") {
		t.Fatalf("top CSV %q %v", b, err)
	}
	if b, err := c.ExportBlacklist(ctx, lists.Query{}); err != nil || !strings.Contains(string(b), key+",3,challenge,auto,hourly-limit") {
		t.Fatalf("blacklist CSV %q %v", b, err)
	}
	if w, err := c.ListWhitelist(ctx, lists.Query{}); err != nil || w.Total != 1 {
		t.Fatalf("whitelist %+v %v", w, err)
	}
	page, err := c.Callers(ctx, profiles.Query{Prefix: "+7999", Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Items[0].Calls != 6 || page.Next != key {
		t.Fatalf("callers %+v %v", page, err)
	}
	v, err := c.Projections(ctx)
	if err != nil || len(v.Projections) != 3 || v.Projections[0].LagEvents != 0 {
		t.Fatalf("projections %+v %v", v, err)
	}
	if v, err := c.Rebuild(ctx, "all"); err != nil || len(v.Rebuilding) != 3 {
		t.Fatalf("rebuild %+v %v", v, err)
	}
	if _, err := c.Rebuild(ctx, "nope"); !IsProblem(err, CodeUnknownProjection) {
		t.Fatalf("rebuild of an unknown projection: %v", err)
	}
	if err := rs.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := c.ListBlacklist(ctx, lists.Query{}); err != nil || again.Total != 1 {
		t.Fatalf("blacklist after the rebuild %+v %v", again, err)
	}
}

func payloads(recs []schema.Record) []schema.Payload {
	out := make([]schema.Payload, len(recs))
	for i, r := range recs {
		out[i] = r.Payload
	}
	return out
}

func codeOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	p := problemOfRecorder(t, rec)
	return p.Code()
}
