package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/callguard/callguard/actors/caller"
)

func TestSearchWholeNumberRedirects(t *testing.T) {
	r := newRig(t, fullDeps)
	b := r.browser()
	b.signIn("vera")
	for _, q := range []string{"+79161234567", "8 916 123-45-67", "8(916)1234567", "79161234567"} {
		p := b.get("/console/numbers?q=" + url.QueryEscape(q))
		if p.status != http.StatusSeeOther || p.loc != "/console/numbers/+79161234567" {
			t.Errorf("q=%q: %d to %q, want the caller page", q, p.status, p.loc)
		}
	}
	if p := b.get("/console/numbers?q=anonymous"); p.loc != "/console/numbers/anonymous" {
		t.Errorf("q=anonymous: to %q", p.loc)
	}
}

func TestSearchPrefix(t *testing.T) {
	var prof *fakeProfiles
	r := newRig(t, func(d *Deps) { fullDeps(d); prof = d.Profiles.(*fakeProfiles) })
	b := r.browser()
	b.signIn("vera")
	for q, want := range map[string]string{"8916": "+7916", "+7 916": "+7916", "916123": "+7916123"} {
		p := b.get("/console/numbers?q=" + url.QueryEscape(q))
		if p.status != http.StatusOK {
			t.Fatalf("q=%q: %d", q, p.status)
		}
		if prof.lastQuery.Prefix != want {
			t.Errorf("q=%q searched prefix %q, want %q", q, prof.lastQuery.Prefix, want)
		}
		doc := parse(t, p.body)
		tbl := byID(doc, "results")
		if tbl == nil || !strings.Contains(render(tbl), `href="/console/numbers/`+want+`1234"`) {
			t.Errorf("q=%q: results do not link the callers:\n%s", q, p.body)
		}
		var next string
		walk(doc, func(n *html.Node) {
			if attr(n, "rel") == "next" {
				next = attr(n, "href")
			}
		})
		if !strings.Contains(next, "after="+url.QueryEscape(want+"9999")) {
			t.Errorf("q=%q: next page link %q", q, next)
		}
	}
	if p := b.get("/console/numbers?q=abc"); p.status != http.StatusBadRequest || alertText(t, p.body) == "" {
		t.Errorf("q=abc: %d, want 400 with an alert", p.status)
	}
}

func TestCallerPage(t *testing.T) {
	r := newRig(t, fullDeps)
	b := r.browser()
	b.signIn("vera")
	if p := b.get("/console/numbers/89161234567"); p.status != http.StatusSeeOther || p.loc != "/console/numbers/+79161234567" {
		t.Errorf("non-canonical path: %d to %q", p.status, p.loc)
	}
	if p := b.get("/console/numbers/not-a-number"); p.status != http.StatusNotFound {
		t.Errorf("bad number: %d, want 404", p.status)
	}
	p := b.get("/console/numbers/+79161234567")
	doc := parse(t, p.body)
	tl := byID(doc, "timeline")
	if tl == nil {
		t.Fatalf("no timeline:\n%s", p.body)
	}
	classes := map[string]int{}
	walk(tl, func(n *html.Node) {
		if n.Data == "li" && n.Parent == tl {
			classes[attr(n, "class")]++
		}
	})
	want := map[string]int{"call": 2, "block": 1, "challenge": 1, "command": 3}
	if fmt.Sprint(classes) != fmt.Sprint(want) {
		t.Errorf("timeline classes %v, want %v", classes, want)
	}
	body := text(tl)
	for _, s := range []string{"limit-hour", "6 calls over a limit of 5", "c1", "6 in the hour, 6 in the day", "by oleg: VIP client", "by anna: left the bank"} {
		if !strings.Contains(body, s) {
			t.Errorf("timeline lacks %q:\n%s", s, body)
		}
	}
	if byID(doc, "caller-status") == nil {
		t.Error("no caller-status")
	}
	// A viewer sees no action forms.
	for _, id := range []string{"whitelist-form", "unwhitelist-form", "block-form", "unblock-form"} {
		if byID(doc, id) != nil {
			t.Errorf("viewer sees #%s", id)
		}
	}
	ob := r.browser()
	ob.signIn("oleg")
	doc = parse(t, ob.get("/console/numbers/+79161234567").body)
	for _, id := range []string{"whitelist-form", "unwhitelist-form", "block-form", "unblock-form"} {
		if byID(doc, id) == nil {
			t.Errorf("operator does not see #%s", id)
		}
	}
}

func TestCallerForms(t *testing.T) {
	r := newRig(t, fullDeps)
	b := r.browser()
	b.signIn("oleg")
	tok := formCSRF(t, b.get("/console/numbers/+79161234567").body, "whitelist-form")
	post := func(verb string, form url.Values) page {
		t.Helper()
		form.Set("csrf", tok)
		p := b.post("/console/numbers/+79161234567/"+verb, form)
		if p.status != http.StatusSeeOther || p.loc != "/console/numbers/+79161234567" {
			t.Fatalf("%s: %d to %q, want 303 back", verb, p.status, p.loc)
		}
		return b.get(p.loc)
	}
	p := post("whitelist", url.Values{"why": {"  VIP client  "}, "until": {"2026-12-31T18:00"}})
	if got := statusText(t, p.body); got != "+79161234567 is whitelisted." {
		t.Errorf("flash %q", got)
	}
	sent := r.callers.sent()
	if len(sent) != 1 {
		t.Fatalf("sent %v", sent)
	}
	c := sent[0]
	if c.Key != "+79161234567" || c.Cmd.Verb != caller.VerbWhitelist || c.Cmd.Command.By != "oleg" || c.Cmd.Command.Why != "VIP client" ||
		!c.Cmd.Command.Until.Equal(time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)) || !strings.HasPrefix(c.Cmd.Command.ID, "whitelist:") {
		t.Errorf("whitelist sent %+v", c)
	}
	// The flash is shown once.
	if got := statusText(t, b.get("/console/numbers/+79161234567").body); got != "" {
		t.Errorf("flash shown twice: %q", got)
	}
	post("block", url.Values{"why": {"fraud"}, "level": {"7"}})
	post("unblock", url.Values{"why": {"mistake"}})
	post("unwhitelist", url.Values{"why": {"left"}})
	sent = r.callers.sent()
	if len(sent) != 4 || sent[1].Cmd.Verb != caller.VerbBlock || sent[1].Cmd.Command.Level != 7 || sent[1].Cmd.Command.By != "oleg" ||
		sent[2].Cmd.Verb != caller.VerbUnblock || sent[3].Cmd.Verb != caller.VerbUnwhitelist || sent[3].Cmd.Command.Why != "left" {
		t.Fatalf("sent %+v", sent)
	}
	if sent[1].Cmd.Command.ID == sent[2].Cmd.Command.ID {
		t.Error("two commands share an ID")
	}
	// Refused before the grain: nothing sent, an error flash.
	for _, form := range []url.Values{{"why": {""}}, {"why": {"x"}, "level": {"12"}}, {"why": {"x"}, "until": {"tomorrow"}}, {"why": {"x"}, "until": {"2020-01-01"}}} {
		p := post("block", form)
		if alertText(t, p.body) == "" {
			t.Errorf("block %v: no error flash", form)
		}
	}
	if n := len(r.callers.sent()); n != 4 {
		t.Errorf("refused forms sent commands: %d", n)
	}
	// The grain refuses: its reason in an error flash.
	r.callers.err = fmt.Errorf("unwhitelist: %w", caller.ErrState)
	if p := post("unwhitelist", url.Values{"why": {"x"}}); !strings.Contains(alertText(t, p.body), "standing") {
		t.Errorf("state error flash %q", alertText(t, p.body))
	}
	if p := b.post("/console/numbers/+79161234567/delete", url.Values{"csrf": {tok}, "why": {"x"}}); p.status != http.StatusNotFound {
		t.Errorf("unknown verb: %d, want 404", p.status)
	}
	if !strings.Contains(r.log.String(), "console command") || !strings.Contains(r.log.String(), "by=oleg") {
		t.Errorf("commands not logged with the user:\n%s", r.log.String())
	}
}

func statusText(t *testing.T, body string) string {
	t.Helper()
	var s string
	walk(parse(t, body), func(n *html.Node) {
		if attr(n, "role") == "status" {
			s = text(n)
		}
	})
	return s
}
