package console

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/phone"
)

// fakeUsers is a small user book: name -> password and role.
type fakeUsers struct {
	mu       sync.Mutex
	accounts map[string]Account
	pass     map[string]string
	disabled map[string]bool
}

func newFakeUsers() *fakeUsers {
	u := &fakeUsers{accounts: map[string]Account{}, pass: map[string]string{}, disabled: map[string]bool{}}
	for _, a := range []Account{{"vera", RoleViewer}, {"oleg", RoleOperator}, {"anna", RoleAdmin}} {
		u.accounts[a.Name] = a
		u.pass[a.Name] = a.Name + "-secret-pw"
	}
	return u
}

func (u *fakeUsers) Authenticate(_ context.Context, name, password string) (Account, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.accounts[name]
	if !ok || u.disabled[name] || u.pass[name] != password {
		return Account{}, fmt.Errorf("sign in %s: %w", name, ErrBadCredentials)
	}
	return a, nil
}

func (u *fakeUsers) Account(_ context.Context, name string) (Account, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.accounts[name]
	return a, ok && !u.disabled[name]
}

func (u *fakeUsers) set(name, role string, disabled bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.accounts[name] = Account{name, role}
	u.disabled[name] = disabled
}

// fakeCallers records commands and answers a fixed status.
type fakeCallers struct {
	mu       sync.Mutex
	commands []fakeCommand
	status   caller.Status
	err      error
}

type fakeCommand struct {
	Key string
	Cmd caller.Command
}

func (f *fakeCallers) Command(_ context.Context, key string, cmd caller.Command) (caller.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return caller.Applied{}, f.err
	}
	f.commands = append(f.commands, fakeCommand{key, cmd})
	return caller.Applied{Events: []string{"Event"}, Revision: uint64(len(f.commands))}, nil
}

func (f *fakeCallers) Status(_ context.Context, key string) (caller.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Key = key
	return st, f.err
}

func (f *fakeCallers) sent() []fakeCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCommand(nil), f.commands...)
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects the log, safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rig is a console on an httptest server with its fakes.
type rig struct {
	t       *testing.T
	srv     *Server
	ts      *httptest.Server
	users   *fakeUsers
	callers *fakeCallers
	clock   *clock
	log     *logBuffer
}

func testNormalizer(t *testing.T) *phone.Normalizer {
	t.Helper()
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newRig builds a console; tweak may fill in more Deps.
func newRig(t *testing.T, tweak func(*Deps)) *rig {
	t.Helper()
	return newRigConfig(t, Config{}, tweak)
}

// newRigConfig is newRig with a configuration.
func newRigConfig(t *testing.T, cfg Config, tweak func(*Deps)) *rig {
	t.Helper()
	r := &rig{t: t, users: newFakeUsers(), callers: &fakeCallers{}, clock: &clock{now: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}, log: &logBuffer{}}
	d := Deps{
		Users: r.users, Callers: r.callers, Normalizer: testNormalizer(t), Clock: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&d)
	}
	srv, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	mux := http.NewServeMux()
	mux.Handle(Prefix, srv.Handler())
	r.ts = httptest.NewServer(mux)
	t.Cleanup(r.ts.Close)
	return r
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	r    *rig
	c    *http.Client
	lang string
}

func (r *rig) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return &browser{t: r.t, r: r, lang: "en", c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// page is an answer, its body read.
type page struct {
	status int
	header http.Header
	body   string
	loc    string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	if req.Header.Get("Accept-Language") == "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: res.StatusCode, header: res.Header, body: string(body), loc: res.Header.Get("Location")}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.r.ts.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as a same-origin browser would.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.r.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.r.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// signIn signs in as name with its password and checks the redirect.
func (b *browser) signIn(name string) {
	b.t.Helper()
	p := b.get("/console/signin")
	if p.status != http.StatusOK {
		b.t.Fatalf("GET signin: %d", p.status)
	}
	res := b.post("/console/signin", url.Values{"user": {name}, "password": {name + "-secret-pw"}, "csrf": {formCSRF(b.t, p.body, "signin")}})
	if res.status != http.StatusSeeOther || res.loc != Prefix {
		b.t.Fatalf("sign in as %s: %d to %q\n%s", name, res.status, res.loc, res.body)
	}
}

// csrf reads the session's token from a page's sign-out form.
func (b *browser) csrf() string {
	b.t.Helper()
	return formCSRF(b.t, b.get("/console/").body, "signout")
}

// formCSRF returns the csrf input of the form with id.
func formCSRF(t *testing.T, body, id string) string {
	t.Helper()
	doc := parse(t, body)
	f := byID(doc, id)
	if f == nil {
		t.Fatalf("no form #%s in\n%s", id, body)
	}
	var tok string
	walk(f, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == "csrf" {
			tok = attr(n, "value")
		}
	})
	if tok == "" {
		t.Fatalf("form #%s has no csrf input", id)
	}
	return tok
}

func parse(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if found == nil && n.Type == html.ElementNode && attr(n, "id") == id {
			found = n
		}
	})
	return found
}

// text returns the text inside n.
func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}
