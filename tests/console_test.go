package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/callguard/callguard/events/porttest"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The operator console in a real browser (headless Chromium), through
// the built binary: users made with the admin token, calls
// made by SIPp, and then the pages a person uses, checked by the element
// ids of the console's contract (README, "The operator console").

const (
	consoleSuspect = "+79161234567" // blocked by the hourly limit, then whitelisted in the console
	consoleOther   = "+79160000002" // passes; the forged cross-site POST aims at it
	consoleThird   = "+79160000003"
	operatorName   = "olga"
	operatorPass   = "correct horse battery staple"
	viewerName     = "vera"
	viewerPass     = "call centre shift two"
	adminName      = "anna"
	adminPass      = "the admin's own long phrase"
)

// consoleGuard is a guard with its console, three users and a few calls
// behind it.
type consoleGuard struct {
	g     *guardProcess
	base  string // http://host:port of the admin listener, where the console is
	token string
	env   []string
}

// startConsoleGuard starts a guard whose hourly limit is 2 at a rejecting
// level, makes calls with SIPp: consoleSuspect calls three times (two
// pass, the third crosses the limit and is rejected and blocked by the
// rule), consoleOther and consoleThird once each (pass); and creates an
// admin, an operator and a viewer with the admin token (POST /v1/users).
func startConsoleGuard(t *testing.T) *consoleGuard {
	t.Helper()
	chromiumPath(t)
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pbxPort := porttest.Port(t)
	g, sipAddr, env := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort),
		"GUARD_LIMIT_HOUR=2", "GUARD_LIMIT_LEVEL=7", "GUARD_ESCALATION_LEVEL=8", "GUARD_TARIFF_PER_MINUTE=10")
	cg := &consoleGuard{g: g, base: "http://" + adminAddr(t, g), token: adminTokenOf(t, env), env: env}

	const passes = 4
	pbx := startSIPp(ctx, t, "sipp uas_pbx", "uas_pbx.xml",
		"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(passes), "-timeout", "90s", "-timeout_error")
	waitBound(ctx, t, pbx, pbxPort)
	inf := writeInjection(t, "pass.csv", consoleSuspect, consoleOther, consoleSuspect, consoleThird)
	uac := startSIPp(ctx, t, "sipp uac_pass", "uac_pass.xml", sipAddr,
		"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
		"-d", "200", "-m", strconv.Itoa(passes), "-l", "1", "-r", "5", "-timeout", "60s", "-timeout_error")
	expectAllSuccessful(t, uac, passes)
	expectAllSuccessful(t, pbx, passes)
	rej := startSIPp(ctx, t, "sipp uac_reject", "uac_reject.xml", sipAddr,
		"-inf", writeInjection(t, "reject.csv", consoleSuspect), "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
		"-m", "1", "-timeout", "60s", "-timeout_error")
	expectAllSuccessful(t, rej, 1)
	if t.Failed() {
		t.Fatalf("the calls did not go as scripted; guard log:\n%s", g.output())
	}
	if st := cg.caller(t, consoleSuspect); st.Block == nil || st.Block.Rule != "hourly-limit" || st.Block.Level != 7 {
		t.Fatalf("%s after three calls: block %+v, want the hourly limit's at level 7", consoleSuspect, st.Block)
	}
	for _, u := range []struct{ name, role, pass string }{{adminName, "admin", adminPass}, {operatorName, "operator", operatorPass}, {viewerName, "viewer", viewerPass}} {
		body, _ := json.Marshal(map[string]string{"name": u.name, "role": u.role, "password": u.pass, "by": "setup", "why": "browser test"})
		if st, answer := cg.api(t, "POST", "/v1/users", string(body)); st != http.StatusCreated && st != http.StatusOK {
			t.Fatalf("POST /v1/users %s: %d %s", u.name, st, answer)
		} else if strings.Contains(answer, u.pass) {
			t.Errorf("POST /v1/users %s answered the password: %s", u.name, answer)
		}
	}
	return cg
}

// callerState is the part of GET /v1/callers/{number} the tests read.
type callerState struct {
	Block *struct {
		Level int    `json:"level"`
		Rule  string `json:"rule"`
		Kind  string `json:"kind"`
	} `json:"block"`
	Whitelist *struct{} `json:"whitelist"`
}

// api sends a request to the admin API with the bearer token.
func (cg *consoleGuard) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, cg.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cg.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// caller reads a caller's standing from the admin API (the bearer token,
// not the console), so the console's effects are checked independently.
func (cg *consoleGuard) caller(t *testing.T, number string) callerState {
	t.Helper()
	st, body := cg.api(t, "GET", "/v1/callers/"+url.PathEscape(number), "")
	var c callerState
	if st != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("GET /v1/callers/%s: %d %s", number, st, body)
	}
	return c
}

// signIn signs a browser in through the sign-in form and checks it lands
// on the Today page as that user.
func signIn(t *testing.T, b *browser, name, password string) {
	t.Helper()
	b.open("sign-in", "/console/signin")
	b.fill("signin", "user", name)
	b.fill("signin", "password", password)
	b.submit("signin", "today after sign-in")
	if p := b.path(); p != "/console/" {
		t.Fatalf("after signing in as %s the browser is at %s, want /console/", name, p)
	}
	b.waitID("today")
	if who := b.text("#whoami"); !strings.Contains(who, name) {
		t.Fatalf("signed in as %s, the header says %q", name, who)
	}
}

// everyFormHasCSRF checks the contract's rule on the page shown.
func everyFormHasCSRF(t *testing.T, b *browser, page string) {
	t.Helper()
	if n := b.count(`form[method=post]:not(:has(input[type=hidden][name=csrf]))`); n != 0 {
		t.Errorf("%s: %d POST forms without a hidden csrf field", page, n)
	}
}

// An operator's day in the console: a wrong password refused, the Today
// page with its figures and hourly chart, a number found from a loose
// spelling, its timeline (the calls, the rule's block), whitelisted with
// a reason (flash, whitelist page, the timeline naming the operator), a
// CSV import with bad rows and its per-line report, the day's report with
// its chart and CSV, Russian and back, a forged cross-site POST refused
// (from another site and from another origin on the same host), and sign
// out. The console's own CSS and JS must never trip the CSP: any console
// error or exception on any page fails the test.
func TestConsoleOperatorInABrowser(t *testing.T) {
	cg := startConsoleGuard(t)
	evil := newForgery(t, cg.base+"/console/numbers/"+url.PathEscape(consoleOther)+"/block")
	// evil.example is another site: Chromium resolves it to the forger's
	// loopback server.
	b := newBrowser(t, cg.base, chromedp.Flag("host-resolver-rules", "MAP evil.example 127.0.0.1"))

	// Unsigned: every page sends to the sign-in page.
	b.open("unsigned today", "/console/")
	if p := b.path(); p != "/console/signin" {
		t.Fatalf("unsigned GET /console/ ends at %s, want /console/signin", p)
	}
	b.waitID("signin")
	everyFormHasCSRF(t, b, "sign-in")

	// A wrong password: refused, still on the sign-in page, nobody signed in.
	b.fill("signin", "user", operatorName)
	b.fill("signin", "password", operatorPass+"x")
	b.submit("signin", "sign-in refused")
	if p := b.path(); !strings.HasPrefix(p, "/console/signin") || b.has("#whoami") || !b.has(".flash.error") {
		t.Fatalf("a wrong password: at %s, whoami shown %v, error flash %v; want the sign-in page with an error", p, b.has("#whoami"), b.has(".flash.error"))
	}
	signIn(t, b, operatorName, operatorPass)
	// The session cookie as the browser keeps it; no script can read it.
	cookies := run(b, "read cookies", func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	})
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "callguard_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/console/" || session.Secure {
		t.Errorf("session cookie %+v: want callguard_session, HttpOnly, SameSite=Strict, Path=/console/, not Secure over plain HTTP", session)
	}
	if js := eval[string](b, "document.cookie", `document.cookie`); strings.Contains(js, "callguard_session") {
		t.Errorf("a script reads the session cookie: %q", js)
	}

	// Today: figures and the hourly chart drawn by uPlot.
	b.waitID("today-figures")
	figures := b.text("#today-figures")
	if b.count("#today-figures dd") < 5 {
		t.Errorf("today's figures: %d values, want calls by verdict, unanswered, challenges, unbilled, saved:\n%s", b.count("#today-figures dd"), figures)
	}
	values := eval[[]string](b, "today's values", `[...document.querySelectorAll("#today-figures dd")].map(d => d.textContent.trim())`)
	for _, want := range []string{"5", "4", "1"} { // calls in, passed, rejected
		if !slices.Contains(values, want) {
			t.Errorf("today's figures have no value %q (calls in, passed, rejected): %q\n%s", want, values, figures)
		}
	}
	b.do("hourly chart drawn", chromedp.WaitReady(chromedp.CSS("#chart-hourly canvas")))
	for _, id := range []string{"lang-ru", "lang-en", "signout"} {
		if !b.has("#" + id) {
			t.Errorf("the header lacks #%s", id)
		}
	}
	everyFormHasCSRF(t, b, "today")

	// Numbers: a loose spelling finds the caller.
	b.open("numbers", "/console/numbers")
	b.waitID("search")
	b.fill("search", "q", "8 (916) 123-45-67")
	b.submit("search", "search result")
	if !b.has("main#caller") {
		link := fmt.Sprintf(`#results a[href$="%s"], #results a[href$="%s"]`, consoleSuspect, url.PathEscape(consoleSuspect))
		if !b.has(link) {
			t.Fatalf("searching 8 (916) 123-45-67: neither the caller page nor a result linking to %s (at %s)", consoleSuspect, b.path())
		}
		b.click(link, "caller")
	}
	b.waitID("caller")
	if p := b.path(); !strings.Contains(p, "/console/numbers/") || !(strings.HasSuffix(p, consoleSuspect) || strings.HasSuffix(p, url.PathEscape(consoleSuspect))) {
		t.Errorf("caller page at %s, want /console/numbers/%s", p, consoleSuspect)
	}
	if st := b.text("#caller-status"); !strings.Contains(strings.ToLower(st), "7") {
		t.Errorf("caller status does not show the level-7 block:\n%s", st)
	}
	// The timeline: three calls and the rule's block.
	if n := b.count("#timeline li.call"); n != 3 {
		t.Errorf("timeline: %d calls, want 3", n)
	}
	if block := b.text("#timeline li.block"); !strings.Contains(strings.ToLower(block), "hour") {
		t.Errorf("timeline's block does not name the hourly limit: %q", block)
	}
	everyFormHasCSRF(t, b, "caller")

	// Whitelist it with a reason: a flash, the API sees it, the timeline
	// names the operator.
	const why = "bank client, confirmed by phone"
	b.fill("whitelist-form", "why", why)
	b.submit("whitelist-form", "caller whitelisted")
	b.waitID("caller")
	if !b.has(`p.flash[role=status]`) {
		t.Errorf("no flash after whitelisting (at %s)", b.path())
	}
	if st := cg.caller(t, consoleSuspect); st.Whitelist == nil {
		t.Errorf("the API does not see %s whitelisted after the console's form", consoleSuspect)
	}
	cmds := b.text("#timeline")
	if b.count("#timeline li.command") == 0 || !strings.Contains(cmds, operatorName) || !strings.Contains(cmds, why) {
		t.Errorf("timeline lacks the whitelisting by %s with %q:\n%s", operatorName, why, cmds)
	}

	// The whitelist page lists it, with a CSV export.
	b.open("whitelist", "/console/lists/whitelist")
	b.waitID("whitelist")
	// The list is a projection of the log: the page waits for it to catch
	// up with the command just given (GUARD_ADMIN_READ_WAIT), so it is
	// there at once.
	if !strings.Contains(b.text("#list"), consoleSuspect) {
		t.Errorf("whitelist page lacks %s right after whitelisting it:\n%s", consoleSuspect, b.text("#list"))
	}
	if href := b.attr("#export-csv", "href"); !strings.Contains(href, "/console/") {
		t.Errorf("whitelist CSV export link %q", href)
	}
	everyFormHasCSRF(t, b, "whitelist")

	// Import a CSV with one good row and two bad ones.
	csvFile := filepath.Join(t.TempDir(), "clients.csv")
	if err := os.WriteFile(csvFile, []byte("number,until,reason\n+79990001111,,vip\nnot-a-number,,x\n+79990002222,soon,vip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.upload("import-form", "file", csvFile)
	b.submit("import-form", "import report")
	b.waitID("import-report")
	if n := b.count("#import-report tbody tr"); n != 2 {
		t.Errorf("import report: %d rows, want one per bad line (2):\n%s", n, b.text("#import-report"))
	}
	report := b.text("#import-report")
	if !strings.Contains(report, "3") || !strings.Contains(report, "4") || !strings.Contains(report, "soon") {
		t.Errorf("import report does not name lines 3 and 4 and what is wrong:\n%s", report)
	}
	if st := cg.caller(t, "+79990001111"); st.Whitelist == nil {
		t.Error("the import's good row was not applied")
	}
	// The list under the report already has the imported row.
	if !strings.Contains(b.text("#list"), "+79990001111") {
		t.Errorf("the whitelist under the import report lacks the imported row:\n%s", b.text("#list"))
	}

	// The blacklist page: the rule's block was lifted by nothing, but the
	// whitelist wins; the page still opens with its filters.
	b.open("blacklist", "/console/lists/blacklist")
	b.waitID("blacklist")
	b.waitID("list-filter")

	// The report for the day: table, chart, CSV.
	b.open("reports", "/console/reports")
	b.waitID("reports")
	b.waitID("daily")
	b.do("daily chart drawn", chromedp.WaitReady(chromedp.CSS("#chart-daily canvas")))
	if n := b.count("#daily tbody tr"); n < 1 {
		t.Errorf("report's daily table has no rows:\n%s", b.text("#daily"))
	}
	csvHref := b.attr("#report-csv", "href")
	csvText := eval[string](b, "fetch the report CSV", fmt.Sprintf(`fetch(%s).then(r => r.ok ? r.text() : "HTTP " + r.status)`, strconv.Quote(csvHref)))
	if lines := strings.Split(strings.TrimSpace(csvText), "\n"); len(lines) < 2 || !strings.Contains(lines[0], ",") {
		t.Errorf("report CSV %s: %q", csvHref, csvText)
	}

	// What-if with a lower hourly limit.
	b.open("what-if", "/console/whatif?limit-hour=1")
	b.waitID("whatif")
	b.waitID("whatif-form")
	// Under a limit of 1 the suspect's second call would have been refused.
	if res := b.text("#whatif-result"); !strings.Contains(res, "1") {
		t.Errorf("what-if with limit-hour=1 finds no call decided differently:\n%s", res)
	}

	// Russian and back.
	b.click("#lang-ru", "what-if in Russian")
	if lang := b.attr("html", "lang"); lang != "ru" || !hasCyrillic(b.text("nav")) {
		t.Errorf("after #lang-ru: lang=%q, nav %q", lang, b.text("nav"))
	}
	// The what-if's verdicts and fields are words of the catalogue too.
	b.open("what-if in Russian", "/console/whatif?limit-hour=1")
	b.waitID("whatif-numbers")
	if res := b.text("#whatif-numbers"); !hasCyrillic(res) || englishIn(res, "pass", "reject", "challenge", "whitelist", "level") != "" {
		t.Errorf("what-if result in Russian has English (%q):\n%s", englishIn(res, "pass", "reject", "challenge", "whitelist", "level"), res)
	}
	b.open("today in Russian", "/console/")
	if lang := b.attr("html", "lang"); lang != "ru" {
		t.Errorf("the language did not stick: lang=%q on the next page", lang)
	}
	// uPlot names an unlabelled series "Value" (or "Time"); the chart's
	// labels, and the projections' states, come from the catalogue.
	b.do("hourly chart drawn in Russian", chromedp.WaitReady(chromedp.CSS("#chart-hourly .u-legend")))
	if legend := b.text("#chart-hourly .u-legend"); !hasCyrillic(legend) || englishIn(legend, "Value", "Time") != "" {
		t.Errorf("the Russian chart's legend has English: %q", legend)
	}
	if proj := b.text("#projections"); !hasCyrillic(proj) || englishIn(proj, "running", "failed", "stopped", "retrying") != "" {
		t.Errorf("the Russian projections table has English: %q", proj)
	}
	b.click("#lang-en", "today in English")
	if lang := b.attr("html", "lang"); lang != "en" || hasCyrillic(b.text("nav")) {
		t.Errorf("after #lang-en: lang=%q, nav %q", lang, b.text("nav"))
	}

	// Forged cross-site POSTs, in the signed-in browser: from another site
	// (SameSite=Strict keeps the cookie home) and from another origin on
	// the same host (the cookie goes; the origin check and the CSRF token
	// refuse it).
	for _, from := range []string{evil.crossSite, evil.sameSite} {
		b.do("open the forger's page "+from, chromedp.Navigate(from))
		b.waitURL("the forged form is sent", func(u string) bool { return !strings.HasPrefix(u, from) })
		b.takeProblems() // the refusal's status is logged by the browser; it is expected
		b.mark("forged POST from " + strings.TrimSuffix(strings.TrimPrefix(from, "http://"), "/"))
		if from == evil.crossSite && b.has("#whoami") {
			t.Errorf("the forged cross-site POST carried the session cookie: SameSite=Strict should keep it home")
		}
		if st := cg.caller(t, consoleOther); st.Block != nil {
			t.Fatalf("a forged POST from %s blocked %s: %+v", from, consoleOther, *st.Block)
		}
	}
	if evil.served() < 2 {
		t.Fatalf("the forger's page was served %d times, want 2", evil.served())
	}
	// The same block from the console's own form works: the forged ones
	// were refused for their origin, not for their content.
	b.open("other caller", "/console/numbers/"+url.PathEscape(consoleOther))
	b.waitID("block-form")
	b.fill("block-form", "level", "7")
	b.fill("block-form", "why", "fraud confirmed by the bank")
	b.submit("block-form", "other caller blocked")
	if st := cg.caller(t, consoleOther); st.Block == nil || st.Block.Level != 7 {
		t.Errorf("the console's own block form did not block %s: %+v", consoleOther, st.Block)
	}

	weighPages(t, b, []string{"/console/", "/console/numbers", "/console/numbers/" + url.PathEscape(consoleSuspect),
		"/console/lists/blacklist", "/console/lists/whitelist", "/console/reports", "/console/whatif"})

	// Sign out: the session is gone, pages ask to sign in again.
	b.open("today", "/console/")
	b.submit("signout", "signed out")
	b.open("after sign-out", "/console/lists/whitelist")
	if p := b.path(); p != "/console/signin" {
		t.Errorf("after sign-out GET a page ends at %s, want /console/signin", p)
	}
	if t.Failed() {
		t.Logf("guard log:\n%s", cg.g.output())
	}
}

// A viewer reads every page but sees no action forms, and a POST made
// with the viewer's own session and CSRF token is refused; disabled by an
// admin, the viewer is out at the next page; an admin sees the users
// page.
func TestConsoleViewerAndAdminInABrowser(t *testing.T) {
	cg := startConsoleGuard(t)
	b := newBrowser(t, cg.base)
	signIn(t, b, viewerName, viewerPass)
	b.open("caller as viewer", "/console/numbers/"+url.PathEscape(consoleSuspect))
	b.waitID("caller")
	b.waitID("timeline")
	for _, form := range []string{"whitelist-form", "unwhitelist-form", "block-form", "unblock-form"} {
		if b.has("#" + form) {
			t.Errorf("a viewer sees #%s", form)
		}
	}
	if b.has(`a[href="/console/users"]`) {
		t.Error("a viewer's nav links to Users")
	}
	b.open("whitelist as viewer", "/console/lists/whitelist")
	b.waitID("whitelist")
	if b.has("#import-form") {
		t.Error("a viewer sees the import form")
	}
	// The viewer's own session and token, a same-origin POST: 403.
	status := eval[int](b, "POST as viewer", fmt.Sprintf(`fetch(%s, {method: "POST", body: new URLSearchParams({
		csrf: document.querySelector("#signout input[name=csrf]").value, level: "7", why: "viewer tries"})}).then(r => r.status)`,
		strconv.Quote("/console/numbers/"+url.PathEscape(consoleOther)+"/block")))
	b.takeProblems() // the browser logs the 403
	if status != http.StatusForbidden {
		t.Errorf("a viewer's POST to block: %d, want 403", status)
	}
	if st := cg.caller(t, consoleOther); st.Block != nil {
		t.Errorf("a viewer blocked %s: %+v", consoleOther, *st.Block)
	}
	if status := b.open2xx("/console/users"); status != http.StatusForbidden && status != http.StatusNotFound {
		t.Errorf("a viewer's GET /console/users: %d, want 403 or 404", status)
	}
	// Disabled by an admin through the API, the viewer is out at the next
	// page, whatever the session's age.
	if st, body := cg.api(t, "POST", "/v1/users/"+viewerName+"/disable", `{"by":"setup","why":"left the team"}`); st != http.StatusOK {
		t.Fatalf("disable %s: %d %s", viewerName, st, body)
	}
	b.open("after being disabled", "/console/lists/whitelist")
	if p := b.path(); p != "/console/signin" {
		t.Errorf("a disabled user's next page is %s, want /console/signin", p)
	}

	// The admin sees the users.
	a := newBrowser(t, cg.base)
	signIn(t, a, adminName, adminPass)
	a.open("users", "/console/users")
	a.waitID("users")
	list := a.text("#user-list")
	for _, name := range []string{adminName, operatorName, viewerName} {
		if !strings.Contains(list, name) {
			t.Errorf("users page lacks %s:\n%s", name, list)
		}
	}
	a.waitID("user-form")
	everyFormHasCSRF(t, a, "users")
	if t.Failed() {
		t.Logf("guard log:\n%s", cg.g.output())
	}
}

// weighPages opens each page with the browser's cache off and logs what
// it weighs in full: the HTML and every stylesheet and script it loads.
func weighPages(t *testing.T, b *browser, paths []string) {
	t.Helper()
	b.do("cache off", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))
	defer b.do("cache on", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: false})
		return err
	}))
	for _, p := range paths {
		b.open("weight of "+p, p)
	}
}

// open2xx fetches a path from inside the page (same origin, the session's
// cookie) and returns the status.
func (b *browser) open2xx(path string) int {
	b.t.Helper()
	return eval[int](b, "GET "+path, fmt.Sprintf(`fetch(%s, {redirect: "manual"}).then(r => r.status)`, strconv.Quote(path)))
}

// waitURL waits until the tab's URL satisfies ok and its document has
// loaded. It polls from Go: a poll inside the page dies with the page.
func (b *browser) waitURL(what string, ok func(string) bool) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		var state string
		if err == nil && ok(loc) {
			state, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
		}
		cancel()
		if err == nil && state == "complete" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: still at %s after %v (%v)", what, loc, stepTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasCyrillic(s string) bool {
	for _, r := range s {
		if r >= 'А' && r <= 'я' {
			return true
		}
	}
	return false
}

// forgery serves a page that auto-submits a form to target, on its own
// port: reached as http://evil.example:PORT/ it is another site, as
// http://127.0.0.1:PORT/ another origin of the same site.
type forgery struct {
	srv                 *httptest.Server
	crossSite, sameSite string
	hits                chan struct{}
}

func newForgery(t *testing.T, target string) *forgery {
	t.Helper()
	f := &forgery{hits: make(chan struct{}, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits <- struct{}{}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body><p>You won a prize!</p>
<form id="f" method="post" action="%s"><input type="hidden" name="level" value="7"><input type="hidden" name="why" value="forged"><input type="hidden" name="csrf" value="guessed"></form>
<script>document.getElementById("f").submit()</script></body></html>`, target)
	}))
	t.Cleanup(f.srv.Close)
	_, port, err := net.SplitHostPort(f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f.crossSite = "http://evil.example:" + port + "/"
	f.sameSite = "http://127.0.0.1:" + port + "/"
	return f
}

func (f *forgery) served() int { return len(f.hits) }

// GUARD_CONSOLE_LISTEN gives the console a listener of its own, where /
// leads to it; the admin API's listener then serves no console.
func TestConsoleOnItsOwnListener(t *testing.T) {
	port := porttest.Port(t)
	g := startGuard(t, "GUARD_DATA_DIR="+t.TempDir(), "GUARD_CONSOLE_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	own := "http://127.0.0.1:" + strconv.Itoa(port)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (int, string, string) {
		t.Helper()
		res, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Location"), string(body)
	}
	if st, loc, _ := get(own + "/"); st != http.StatusSeeOther || loc != "/console/" {
		t.Errorf("GET / on the console's listener: %d to %q, want 303 to /console/", st, loc)
	}
	if st, _, body := get(own + "/console/signin"); st != http.StatusOK || !strings.Contains(body, `id="signin"`) {
		t.Errorf("GET /console/signin on the console's listener: %d\n%s", st, body)
	}
	if st, _, _ := get("http://" + adminAddr(t, g) + "/console/signin"); st != http.StatusNotFound {
		t.Errorf("GET /console/signin on the admin listener with a console of its own: %d, want 404", st)
	}
}

// englishIn returns the first of words found in text as a whole word, or
// "".
func englishIn(text string, words ...string) string {
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && r != '-' }) {
		for _, w := range words {
			if strings.EqualFold(f, w) {
				return w
			}
		}
	}
	return ""
}
