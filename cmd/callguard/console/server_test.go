package console

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // part of the error; "" means valid
	}{
		{"defaults", Config{}, ""},
		{"own listener", Config{Listen: "127.0.0.1:8781"}, ""},
		{"bad listen", Config{Listen: "8781"}, "not host:port"},
		{"idle too short", Config{IdleTimeout: time.Second}, "at least 1m"},
		{"max below idle", Config{IdleTimeout: time.Hour, MaxAge: 30 * time.Minute}, "shorter than"},
		{"max too long", Config{MaxAge: 30 * 24 * time.Hour}, "at most 168h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestNewRefusesMissingDeps(t *testing.T) {
	r := newRig(t, nil)
	for name, d := range map[string]Deps{
		"users":      {Callers: r.callers, Normalizer: testNormalizer(t)},
		"callers":    {Users: r.users, Normalizer: testNormalizer(t)},
		"normalizer": {Users: r.users, Callers: r.callers},
	} {
		if _, err := New(Config{}, d); err == nil {
			t.Errorf("New without %s: no error", name)
		}
	}
}

func TestUnsignedRedirectsToSignin(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	for _, path := range []string{"/console/", "/console/numbers", "/console/numbers/+79161234567", "/console/lists/whitelist", "/console/nonesuch"} {
		p := b.get(path)
		if p.status != http.StatusSeeOther || p.loc != "/console/signin" {
			t.Errorf("GET %s signed out: %d to %q, want 303 to /console/signin", path, p.status, p.loc)
		}
	}
	// A POST without a session has no page to come back to: 403.
	if p := b.post("/console/numbers/+79161234567/whitelist", url.Values{"why": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("POST signed out: %d, want 403", p.status)
	}
	if got := r.callers.sent(); len(got) != 0 {
		t.Errorf("commands sent signed out: %v", got)
	}
}

func TestSignInAndOut(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("oleg")
	p := b.get("/console/")
	if p.status != http.StatusOK {
		t.Fatalf("Today after sign-in: %d", p.status)
	}
	doc := parse(t, p.body)
	if who := byID(doc, "whoami"); who == nil || text(who) != "oleg" {
		t.Fatalf("whoami = %v, want oleg", who)
	}
	ck := sessionCookieOf(t, b)
	if ck == "" {
		t.Fatal("no session cookie")
	}
	// Sign out: the session is destroyed on the server, so the old ID
	// replayed by hand is worthless.
	res := b.post("/console/signout", url.Values{"csrf": {formCSRF(t, p.body, "signout")}})
	if res.status != http.StatusSeeOther || res.loc != "/console/signin" {
		t.Fatalf("sign out: %d to %q", res.status, res.loc)
	}
	replay := r.browser()
	replay.setSession(ck)
	if p := replay.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("old session ID after sign-out: %d, want 303 to sign-in", p.status)
	}
	logged := r.log.String()
	for what, secret := range map[string]string{"password": "oleg-secret-pw", "session ID": ck, "CSRF token": formCSRF(t, p.body, "signout")} {
		if strings.Contains(logged, secret) {
			t.Errorf("the %s is in the log", what)
		}
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		r := newRig(t, nil)
		r.srv.cfg.TLS = tls
		b := r.browser()
		p := b.get("/console/signin")
		req, _ := http.NewRequest(http.MethodPost, r.ts.URL+"/console/signin", strings.NewReader(url.Values{
			"user": {"vera"}, "password": {"vera-secret-pw"}, "csrf": {formCSRF(t, p.body, "signin")}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		var sc *http.Cookie
		for _, c := range res.Cookies() {
			if c.Name == sessionCookie {
				sc = c
			}
		}
		if sc == nil {
			t.Fatalf("tls=%v: no session cookie set", tls)
		}
		if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/console/" || sc.Secure != tls {
			t.Errorf("tls=%v: cookie %+v, want HttpOnly, SameSite=Strict, Path=/console/, Secure=%v", tls, sc, tls)
		}
		if len(sc.Value) < 43 {
			t.Errorf("session ID %d characters, want 256 bits", len(sc.Value))
		}
	}
}

func sessionCookieOf(t *testing.T, b *browser) string {
	t.Helper()
	u, _ := url.Parse(b.r.ts.URL + "/console/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setSession(id string) {
	u, _ := url.Parse(b.r.ts.URL + "/console/")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: id, Path: "/console/"}})
}

func TestSignInRefusals(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	p := b.get("/console/signin")
	tok := formCSRF(t, p.body, "signin")
	res := b.post("/console/signin", url.Values{"user": {"oleg"}, "password": {"wrong"}, "csrf": {tok}})
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, `role="alert"`) {
		t.Fatalf("wrong password: %d\n%s", res.status, res.body)
	}
	unknown := b.post("/console/signin", url.Values{"user": {"nobody"}, "password": {"wrong"}, "csrf": {formCSRF(t, res.body, "signin")}})
	if unknown.status != res.status || alertText(t, unknown.body) != alertText(t, res.body) {
		t.Errorf("unknown user answered differently from a wrong password: %d %q vs %d %q", unknown.status, alertText(t, unknown.body), res.status, alertText(t, res.body))
	}
	// No token, or another's: refused before the password is checked.
	fresh := r.browser()
	fresh.get("/console/signin")
	if p := fresh.post("/console/signin", url.Values{"user": {"oleg"}, "password": {"oleg-secret-pw"}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without its token: %d, want 403", p.status)
	}
	if p := fresh.post("/console/signin", url.Values{"user": {"oleg"}, "password": {"oleg-secret-pw"}, "csrf": {tok}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in with another browser's token: %d, want 403", p.status)
	}
	// A disabled user cannot sign in.
	r.users.set("oleg", RoleOperator, true)
	p = fresh.get("/console/signin")
	if p := fresh.post("/console/signin", url.Values{"user": {"oleg"}, "password": {"oleg-secret-pw"}, "csrf": {formCSRF(t, p.body, "signin")}}); p.status != http.StatusUnauthorized {
		t.Errorf("disabled user: %d, want 401", p.status)
	}
	logged := r.log.String()
	if !strings.Contains(logged, "sign-in failed") || !strings.Contains(logged, "user=nobody") {
		t.Errorf("failed sign-ins not logged:\n%s", logged)
	}
	if strings.Contains(logged, "password=") || strings.Contains(logged, "wrong") {
		t.Errorf("the log holds a password:\n%s", logged)
	}
}

func alertText(t *testing.T, body string) string {
	t.Helper()
	var s string
	walk(parse(t, body), func(n *html.Node) {
		if n.Type == html.ElementNode && attr(n, "role") == "alert" {
			s = text(n)
		}
	})
	return s
}

func TestSignInRateLimit(t *testing.T) {
	r := newRig(t, nil)
	try := func(name, pw string) int {
		b := r.browser() // a signed-in browser would skip the form
		p := b.get("/console/signin")
		return b.post("/console/signin", url.Values{"user": {name}, "password": {pw}, "csrf": {formCSRF(t, p.body, "signin")}}).status
	}
	for i := range limitPerName {
		if got := try("oleg", "guess"); got != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, got)
		}
	}
	// The name is locked: even the right password is not tried.
	if got := try("oleg", "oleg-secret-pw"); got != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: %d, want 429", limitPerName, got)
	}
	// Another name from the same address still may, up to the address's
	// bound.
	if got := try("anna", "anna-secret-pw"); got != http.StatusSeeOther {
		t.Fatalf("another user: %d, want 303", got)
	}
	for i := limitPerName; i < limitPerAddress; i++ {
		try("user"+string(rune('a'+i)), "guess")
	}
	if got := try("vera", "vera-secret-pw"); got != http.StatusTooManyRequests {
		t.Fatalf("after %d failures from one address: %d, want 429", limitPerAddress, got)
	}
	// The window passes.
	r.clock.Add(limitWindow)
	if got := try("oleg", "oleg-secret-pw"); got != http.StatusSeeOther {
		t.Fatalf("after the window: %d, want 303", got)
	}
}

func TestSessionExpiry(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("vera")
	// Used every 20 minutes, the session lives until its absolute end.
	for r.clock.Now().Add(20 * time.Minute).Before(time.Date(2026, 12, 3, 22, 0, 0, 0, time.UTC)) {
		r.clock.Add(20 * time.Minute)
		if p := b.get("/console/"); p.status != http.StatusOK {
			t.Fatalf("at %s: %d, want 200 (idle < 30m)", r.clock.Now(), p.status)
		}
	}
	r.clock.Add(20 * time.Minute) // 12h 20m after sign-in
	if p := b.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("after the absolute limit: %d, want 303", p.status)
	}
	b.signIn("vera")
	r.clock.Add(DefaultIdleTimeout)
	if p := b.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("after idling %s: %d, want 303", DefaultIdleTimeout, p.status)
	}
}

func TestRoleReadOnEveryRequest(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("oleg")
	tok := b.csrf()
	why := url.Values{"why": {"client"}, "csrf": {tok}}
	r.users.set("oleg", RoleViewer, false)
	if p := b.post("/console/numbers/+79161234567/whitelist", why); p.status != http.StatusForbidden {
		t.Fatalf("demoted to viewer: POST %d, want 403", p.status)
	}
	r.users.set("oleg", RoleOperator, true)
	if p := b.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("disabled: GET %d, want 303 to sign-in", p.status)
	}
	if got := r.callers.sent(); len(got) != 0 {
		t.Errorf("commands sent: %v", got)
	}
}

func TestViewerRefusals(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("vera")
	tok := b.csrf()
	for _, path := range []string{
		"/console/numbers/+79161234567/whitelist", "/console/numbers/+79161234567/unwhitelist",
		"/console/numbers/+79161234567/block", "/console/numbers/+79161234567/unblock",
		"/console/lists/whitelist/import",
	} {
		if p := b.post(path, url.Values{"csrf": {tok}, "why": {"x"}, "level": {"6"}}); p.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, p.status)
		}
	}
	if p := b.get("/console/users"); p.status != http.StatusForbidden {
		t.Errorf("viewer GET users: %d, want 403", p.status)
	}
	// Sign-out is a POST a viewer may make.
	if p := b.post("/console/signout", url.Values{"csrf": {tok}}); p.status != http.StatusSeeOther {
		t.Errorf("viewer sign-out: %d, want 303", p.status)
	}
	if got := r.callers.sent(); len(got) != 0 {
		t.Errorf("commands sent by a viewer: %v", got)
	}
}

func TestCSRF(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("oleg")
	other := r.browser()
	other.signIn("anna")
	for name, form := range map[string]url.Values{
		"missing":         {"why": {"x"}},
		"wrong":           {"why": {"x"}, "csrf": {"AAAA"}},
		"another session": {"why": {"x"}, "csrf": {other.csrf()}},
		"empty":           {"why": {"x"}, "csrf": {""}},
	} {
		if p := b.post("/console/numbers/+79161234567/whitelist", form); p.status != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", name, p.status)
		}
	}
	// In the query it does not count: tokens never travel in URLs.
	if p := b.post("/console/signout?csrf="+url.QueryEscape(b.csrf()), nil); p.status != http.StatusForbidden {
		t.Errorf("token in the query: %d, want 403", p.status)
	}
	if got := r.callers.sent(); len(got) != 0 {
		t.Errorf("commands sent: %v", got)
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("oleg")
	tok := b.csrf()
	for name, h := range map[string]map[string]string{
		"sec-fetch-site": {"Sec-Fetch-Site": "cross-site"},
		"origin":         {"Origin": "https://evil.example"},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.ts.URL+"/console/numbers/+79161234567/whitelist",
			strings.NewReader(url.Values{"why": {"x"}, "csrf": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if p := b.do(req); p.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, p.status)
		}
	}
	if got := r.callers.sent(); len(got) != 0 {
		t.Errorf("commands sent cross-origin: %v", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	check := func(what string, p page, page bool) {
		t.Helper()
		if got := p.header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s: CSP %q", what, got)
		}
		if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", what, p.header)
		}
		if page && p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, p.header.Get("Cache-Control"))
		}
	}
	check("sign-in", b.get("/console/signin"), true)
	b.signIn("vera")
	check("today", b.get("/console/"), true)
	check("404", b.get("/console/nonesuch"), true)
	check("static", b.get("/console/static/console.css"), false)
}

func TestErrorPagesInLayout(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.signIn("vera")
	for path, status := range map[string]int{"/console/nonesuch": 404, "/console/users": 403} {
		p := b.get(path)
		doc := parse(t, p.body)
		if p.status != status || byID(doc, "error") == nil || byID(doc, "whoami") == nil {
			t.Errorf("GET %s: %d, want %d in the layout\n%s", path, p.status, status, p.body)
		}
	}
	if p := b.post("/console/", url.Values{"csrf": {b.csrf()}}); p.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %d, want 405", p.status)
	}
}

func TestLanguage(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	b.lang = "ru-RU,ru;q=0.9,en;q=0.5"
	p := b.get("/console/signin")
	if got := attr(firstElement(parse(t, p.body), "html"), "lang"); got != "ru" {
		t.Fatalf("Accept-Language ru: lang=%q", got)
	}
	// The switch keeps the choice in a cookie, whatever the browser says.
	sw := b.get("/console/signin?lang=en")
	if sw.status != http.StatusSeeOther || sw.loc != "/console/signin" {
		t.Fatalf("?lang=en: %d to %q", sw.status, sw.loc)
	}
	if got := attr(firstElement(parse(t, b.get("/console/signin").body), "html"), "lang"); got != "en" {
		t.Fatalf("after the switch: lang=%q", got)
	}
	b2 := r.browser()
	b2.lang = "de-DE"
	if got := attr(firstElement(parse(t, b2.get("/console/signin").body), "html"), "lang"); got != "en" {
		t.Fatalf("Accept-Language de: lang=%q, want en", got)
	}
}

func firstElement(doc *html.Node, tag string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if found == nil && n.Type == html.ElementNode && n.Data == tag {
			found = n
		}
	})
	return found
}

func TestCatalogueComplete(t *testing.T) {
	for key, m := range catalogue {
		if m.en == "" || m.ru == "" {
			t.Errorf("%s: a language is missing", key)
		}
		if strings.Count(m.en, "%") != strings.Count(m.ru, "%") {
			t.Errorf("%s: the languages format differently", key)
		}
	}
	// Every key a template asks for is in the catalogue.
	used := regexp.MustCompile(`\.T "([a-z0-9._]+)"`)
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if _, ok := catalogue[m[1]]; !ok {
				t.Errorf("%s uses %q, which the catalogue lacks", e.Name(), m[1])
			}
		}
	}
}

// TestVendoredAssets checks the vendored files against the hashes
// assets/VENDORED.md pins, and that the binary serves them unchanged.
func TestVendoredAssets(t *testing.T) {
	f, err := os.Open("assets/VENDORED.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$")
	r := newRig(t, nil)
	b := r.browser()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		data, err := os.ReadFile("assets/" + m[1])
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m[2] {
			t.Errorf("assets/%s: sha256 %x, VENDORED.md pins %s", m[1], sum, m[2])
		}
		p := b.get("/console/static/" + m[1])
		if p.status != http.StatusOK || p.body != string(data) {
			t.Errorf("GET /console/static/%s: %d, %d bytes; want the file's %d", m[1], p.status, len(p.body), len(data))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("VENDORED.md pins %d files, want the script and the stylesheet", n)
	}
}

func TestStaticServesNoListingOrTemplates(t *testing.T) {
	r := newRig(t, nil)
	b := r.browser()
	for _, path := range []string{"/console/static/", "/console/static/VENDORED.md", "/console/static/../templates/layout.html", "/console/static/layout.html"} {
		if p := b.get(path); p.status == http.StatusOK {
			t.Errorf("GET %s: 200", path)
		}
	}
	if p := b.get("/console/static/console.js"); p.status != http.StatusOK || !strings.Contains(p.header.Get("Content-Type"), "javascript") {
		t.Errorf("console.js: %d %q", p.status, p.header.Get("Content-Type"))
	}
}
