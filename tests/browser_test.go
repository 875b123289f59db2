package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser kit: a headless Chromium driven over the DevTools protocol
// (chromedp), for the console's tests. Each test gets a browser of its own
// (a fresh profile, so no cookie leaks between tests), steps with their
// own timeouts, a full-page screenshot in the test's artefact directory
// when it fails (kept with `go test -artifacts`), and the weight of every
// page it opens (bytes of HTML, CSS and JS) in the log.
// CALLGUARD_SCREENSHOTS=1 screenshots every page, not only a failure.

// stepTimeout bounds one browser step (a navigation, a query, a submit).
// Generous: a -race guard on a loaded 2-core machine is slow.
const stepTimeout = 30 * time.Second

// chromiumPath returns the path of Chromium, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests take seconds; skipped in -short mode")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not on PATH: install it with `apt-get install -y chromium` (.ci/run does)")
	return ""
}

// pageWeight is what the network carried for one page: response bodies
// by kind (decoded) and every byte on the wire (compressed, with headers).
type pageWeight struct {
	html, css, js, other, wire int64
	requests                   int
}

func (w pageWeight) String() string {
	return fmt.Sprintf("html %d B, css %d B, js %d B, other %d B (%d requests, %d B on the wire with headers)",
		w.html, w.css, w.js, w.other, w.requests, w.wire)
}

// dataURL marks a resource of a data: URL (such as the icon Chromium
// draws in a date field): it crosses no network and weighs nothing.
const dataURL network.ResourceType = "data-url"

// browser is one headless Chromium with one tab, bound to a test.
type browser struct {
	t    *testing.T
	base string // scheme://host:port every path is relative to
	ctx  context.Context

	mu      sync.Mutex
	types   map[network.RequestID]network.ResourceType
	body    map[network.RequestID]int64
	weight  pageWeight // since the last page mark
	weights []string   // "name: weight" of every page marked
	// problems are what the page's console said went wrong since the last
	// mark: uncaught exceptions, Content-Security-Policy violations and
	// other errors (failed requests are the test's business, not these).
	problems []string
}

// newBrowser starts a headless Chromium for the test; paths given to its
// helpers are relative to base. extraFlags are Chromium flags (name,
// value pairs of chromedp.Flag).
func newBrowser(t *testing.T, base string, extraFlags ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	bin := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	// Chromium refuses to run as root with its sandbox; CI runs as root.
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	opts = append(opts, extraFlags...)
	// The browser lives as long as the test, with an upper bound so a hung
	// Chromium cannot hold the run forever.
	life, cancelLife := context.WithTimeout(context.Background(), 10*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &browser{t: t, base: strings.TrimSuffix(base, "/"), ctx: ctx, types: map[network.RequestID]network.ResourceType{}, body: map[network.RequestID]int64{}}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelLife()
	})
	// The first action starts the browser and binds it to ctx (no step
	// timeout here, or the browser would die with the step).
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium (%s): %v", bin, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("chromium (%s) did not start within 60s", bin)
	}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatal(err)
	}
	// Registered after the browser's own cleanup, so it runs first: the
	// page is still there to be photographed.
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("failed")
		}
	})
	return b
}

// onEvent adds the network's bytes to the current page's weight. It runs
// in chromedp's read loop: quick, and no commands.
func (b *browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
			b.problems = append(b.problems, fmt.Sprintf("%s error: %s", e.Entry.Source, e.Entry.Text))
		}
	case *network.EventResponseReceived:
		b.types[e.RequestID] = e.Type
		if strings.HasPrefix(e.Response.URL, "data:") {
			b.types[e.RequestID] = dataURL // the browser's own, not sent by the server
		}
	case *network.EventDataReceived:
		b.body[e.RequestID] += int64(e.DataLength)
	case *network.EventLoadingFinished:
		body := b.body[e.RequestID]
		switch b.types[e.RequestID] {
		case dataURL:
			delete(b.types, e.RequestID)
			delete(b.body, e.RequestID)
			return
		case network.ResourceTypeDocument:
			b.weight.html += body
		case network.ResourceTypeStylesheet:
			b.weight.css += body
		case network.ResourceTypeScript:
			b.weight.js += body
		default:
			b.weight.other += body
		}
		b.weight.wire += int64(e.EncodedDataLength)
		b.weight.requests++
		delete(b.types, e.RequestID)
		delete(b.body, e.RequestID)
	}
}

// step returns a context for one step of the test.
func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepTimeout)
}

// do runs actions as one step and fails the test with what if they fail.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
}

// run is do for an action with a value.
func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	return v
}

// url makes a path absolute; a full URL is kept.
func (b *browser) url(path string) string {
	if strings.Contains(path, "://") {
		return path
	}
	return b.base + path
}

// open navigates to path and waits for the page's load event; name is
// the page's name in the weights and screenshots.
func (b *browser) open(name, path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.url(path)))
	b.mark(name)
}

// mark ends a page: logs its weight, fails the test for what went wrong
// in the page's console and, with CALLGUARD_SCREENSHOTS=1, photographs
// it.
func (b *browser) mark(name string) {
	b.t.Helper()
	for _, p := range b.takeProblems() {
		b.t.Errorf("page %s: %s", name, p)
	}
	b.mu.Lock()
	w := b.weight
	b.weight = pageWeight{}
	b.weights = append(b.weights, name+": "+w.String())
	b.mu.Unlock()
	b.t.Logf("page %s (%s): %s", name, b.location(), w)
	if os.Getenv("CALLGUARD_SCREENSHOTS") == "1" {
		b.screenshot(name)
	}
}

// takeProblems returns and forgets what the page's console reported.
// Console messages arrive by themselves, so it waits a moment for late
// ones (a script that fails after the load event).
func (b *browser) takeProblems() []string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	// A round trip through the page: the events sent before its answer
	// have been seen when it returns (Listen is called in order).
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[int](`1`))
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// location is the tab's URL, or what kept it from being read.
func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown location: " + err.Error()
	}
	return loc
}

// path is the tab's URL path with its query, relative to base.
func (b *browser) path() string {
	return strings.TrimPrefix(b.location(), b.base)
}

// screenshot writes a full-page PNG of the tab to the test's artefact
// directory and says where.
func (b *browser) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	// Numbered in the test's directory, which the test's other browsers
	// share.
	dir := b.t.ArtifactDir()
	b.mu.Lock()
	defer b.mu.Unlock()
	taken, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	file := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", len(taken)+1, safeName(name)))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot %s: %s", name, file)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

// waitID waits until the element with id is in the page.
func (b *browser) waitID(id string) {
	b.t.Helper()
	b.do("wait for #"+id, chromedp.WaitReady(chromedp.ID(id)))
}

// has reports whether a CSS selector matches anything now (no waiting).
func (b *browser) has(sel string) bool {
	b.t.Helper()
	return run(b, "query "+sel, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%s) !== null`, strconv.Quote(sel))))
}

// count is how many elements a CSS selector matches now.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return run(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, strconv.Quote(sel))))
}

// text is the text content of the first element a CSS selector matches,
// waiting for it to be there.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return run(b, "text of "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

// attr is an attribute of the first element a CSS selector matches.
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	r := run(b, "attribute "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name))
	return r.Value
}

// fill sets a form field by its name.
func (b *browser) fill(form, field, value string) {
	b.t.Helper()
	b.do(fmt.Sprintf("fill %s in #%s", field, form), chromedp.SetValue(chromedp.CSS(fieldOf(form, field)), value))
}

func fieldOf(form, field string) string {
	return fmt.Sprintf(`#%s [name=%s]`, form, strconv.Quote(field))
}

// submit clicks the form's submit button, as a person does, waits for
// the page that answers, and marks it with name.
func (b *browser) submit(form, name string) {
	b.t.Helper()
	b.click(fmt.Sprintf(`#%s button:not([type=button]):not([type=reset]), #%s input[type=submit]`, form, form), name)
}

// click clicks the first element a CSS selector matches (a link, a
// button), waits for the page that answers, and marks it with name.
func (b *browser) click(sel, name string) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
	if err != nil {
		b.t.Fatalf("click %s: %v (at %s)", sel, err, b.location())
	}
	b.mark(name)
}

// upload puts a local file in a form's file field.
func (b *browser) upload(form, field, file string) {
	b.t.Helper()
	b.do("upload into "+field, chromedp.SetUploadFiles(chromedp.CSS(fieldOf(form, field)), []string{file}))
}

// eval evaluates JavaScript in the page (an expression; a promise is
// awaited).
func eval[T any](b *browser, what, js string) T {
	b.t.Helper()
	return run(b, what, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// The kit itself against a small page: a form is filled and submitted,
// the answer read, the weight counted (the page's HTML, its stylesheet
// and its script by their exact sizes) and a screenshot written.
func TestBrowserKit(t *testing.T) {
	const css, js = "body { font: 14px sans-serif }\n", "document.getElementById('out').dataset.js = 'ran';\n"
	var form string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/s.css":
			w.Header().Set("Content-Type", "text/css")
			fmt.Fprint(w, css)
		case "/s.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, js)
		case "/csp":
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
			fmt.Fprint(w, `<!doctype html><html><body><p>inline</p><script>document.title = "ran"</script></body></html>`)
		case "/":
			if r.Method == http.MethodPost {
				form = r.PostFormValue("q")
				http.Redirect(w, r, "/?got="+r.PostFormValue("q"), http.StatusSeeOther)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html><head><link rel="stylesheet" href="/s.css"></head><body><main id="m">
<p id="out">%s</p><form id="f" method="post"><input name="q"><button>Go</button></form><script src="/s.js"></script></main></body></html>`, r.URL.Query().Get("got"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	b := newBrowser(t, srv.URL)
	b.open("kit", "/")
	b.mu.Lock()
	first := b.weights[0]
	b.mu.Unlock()
	if want := fmt.Sprintf("css %d B, js %d B", len(css), len(js)); !strings.Contains(first, want) || strings.Contains(first, "html 0 B") {
		t.Errorf("weight %q, want %s and some HTML", first, want)
	}
	b.fill("f", "q", "8 (916) 123-45-67")
	b.submit("f", "kit answered")
	if got := b.text("#out"); got != "8 (916) 123-45-67" || form != got {
		t.Errorf("after submit the page says %q, the server got %q", got, form)
	}
	if got := b.attr("#out", "data-js"); got != "ran" {
		t.Errorf("the page's script did not run: data-js=%q", got)
	}
	if b.has("#nothing") || !b.has("main#m") || b.count("form") != 1 {
		t.Error("has/count do not see the page as it is")
	}
	b.screenshot("kit")
	// A page that breaks its own CSP is caught.
	b.do("open /csp", chromedp.Navigate(b.url("/csp")))
	if p := b.takeProblems(); len(p) != 1 || !strings.Contains(p[0], "Content Security Policy") {
		t.Errorf("inline script refused by the CSP: problems %q, want one naming the Content Security Policy", p)
	}
	shots, _ := filepath.Glob(filepath.Join(t.ArtifactDir(), "*.png"))
	if len(shots) == 0 {
		t.Fatal("no screenshot written")
	}
	if png, err := os.ReadFile(shots[0]); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("screenshot is not a PNG: %v", err)
	}
}
