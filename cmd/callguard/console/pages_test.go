package console

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// consolePages are the GET pages every role-appropriate check walks, with
// the <main> id each must have.
var consolePages = []struct{ path, main string }{
	{"/console/", "today"},
	{"/console/numbers", "numbers"},
	{"/console/numbers?q=%2B7916", "numbers"},
	{"/console/numbers/+79161234567", "caller"},
	{"/console/lists/blacklist", "blacklist"},
	{"/console/lists/blacklist?level=6&kind=manual&rule=manual&prefix=8916&expired=true", "blacklist"},
	{"/console/lists/whitelist", "whitelist"},
	{"/console/reports", "reports"},
	{"/console/reports?from=2026-11-27&to=2026-12-03&callee=88005553535", "reports"},
	{"/console/whatif", "whatif"},
}

// checkPage asserts what every page owes the contract: its language, its
// main, no inline script or style (the CSP would block them), a csrf
// input in every post form, and no untranslated catalogue key.
func checkPage(t *testing.T, what, body, lang, main string) {
	t.Helper()
	doc := parse(t, body)
	if got := attr(firstElement(doc, "html"), "lang"); got != lang {
		t.Errorf("%s: <html lang=%q>, want %q", what, got, lang)
	}
	// A page without an icon link makes the browser ask for
	// /favicon.ico, which the admin API answers 404.
	icon := false
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "link" && attr(n, "rel") == "icon" && strings.HasPrefix(attr(n, "href"), "data:") {
			icon = true
		}
	})
	if !icon {
		t.Errorf("%s: no <link rel=icon href=data:...>: the browser will ask for /favicon.ico", what)
	}
	if m := firstElement(doc, "main"); m == nil || attr(m, "id") != main {
		t.Errorf("%s: no <main id=%q>", what, main)
	}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script":
			if typ := attr(n, "type"); attr(n, "src") == "" && typ != "application/json" {
				t.Errorf("%s: inline script", what)
			}
		case "style":
			t.Errorf("%s: a <style> element", what)
		case "form":
			if strings.EqualFold(attr(n, "method"), "post") && !strings.Contains(render(n), `name="csrf"`) {
				t.Errorf("%s: form #%s posts without a csrf input", what, attr(n, "id"))
			}
		}
		for _, a := range n.Attr {
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("%s: <%s %s=...>: inline style or handler", what, n.Data, a.Key)
			}
			if (a.Key == "href" || a.Key == "src" || a.Key == "action") && strings.HasPrefix(strings.ToLower(a.Val), "javascript:") {
				t.Errorf("%s: javascript: URL", what)
			}
		}
	})
	for key := range catalogue {
		if strings.Contains(text(doc), key) && strings.Contains(key, ".") && !strings.Contains(key, " ") {
			t.Errorf("%s: shows the catalogue key %q", what, key)
		}
	}
}

func render(n *html.Node) string {
	var b strings.Builder
	_ = html.Render(&b, n)
	return b.String()
}

func TestEveryPageBothLanguages(t *testing.T) {
	for name, tweak := range map[string]func(*Deps){"bare": nil, "full": fullDeps} {
		t.Run(name, func(t *testing.T) { everyPage(t, newRig(t, tweak)) })
	}
}

func everyPage(t *testing.T, r *rig) {
	for _, lang := range []string{"en", "ru"} {
		for _, user := range []string{"vera", "oleg", "anna"} {
			b := r.browser()
			b.lang = lang
			p := b.get("/console/signin")
			checkPage(t, lang+" sign-in", p.body, lang, "signin-page")
			b.signIn(user)
			pages := consolePages
			if user == "anna" {
				pages = append(pages, struct{ path, main string }{"/console/users", "users"})
			}
			for _, pg := range pages {
				p := b.get(pg.path)
				if p.status != http.StatusOK {
					t.Errorf("%s %s GET %s: %d", lang, user, pg.path, p.status)
					continue
				}
				checkPage(t, lang+" "+user+" "+pg.path, p.body, lang, pg.main)
			}
			p = b.get("/console/nonesuch")
			checkPage(t, lang+" 404", p.body, lang, "error")
		}
	}
}

// TestPageWeights logs what each page weighs as rendered (HTML) and the
// static files it loads (CSS and JS), and keeps each page's HTML in the
// test's artefact directory (go test -artifacts). It fails when a page
// grows past a budget that keeps the console light on a slow link.
func TestPageWeights(t *testing.T) {
	r := newRig(t, fullDeps)
	b := r.browser()
	b.signIn("oleg")
	dir := t.ArtifactDir()
	statics := map[string]int{}
	for _, f := range []string{"console.css", "console.js", "uPlot.min.css", "uPlot.iife.min.js"} {
		statics["/console/static/"+f] = len(b.get("/console/static/" + f).body)
	}
	for _, pg := range consolePages {
		p := b.get(pg.path)
		doc := parse(t, p.body)
		css, js := 0, 0
		walk(doc, func(n *html.Node) {
			if n.Type != html.ElementNode {
				return
			}
			switch {
			case n.Data == "link" && attr(n, "rel") == "stylesheet":
				css += statics[attr(n, "href")]
			case n.Data == "script" && attr(n, "src") != "":
				js += statics[attr(n, "src")]
			}
		})
		t.Logf("%-32s html %6d B  css %6d B  js %6d B", pg.path, len(p.body), css, js)
		if len(p.body) > 64<<10 {
			t.Errorf("%s: %d bytes of HTML, over the 64 KiB budget", pg.path, len(p.body))
		}
		name := strings.NewReplacer("/", "_", "?", "_", "%", "_", "+", "_").Replace(pg.path) + ".html"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(p.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
