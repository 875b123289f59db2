package console

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
)

func TestListFiltersPagingAndCSV(t *testing.T) {
	var fl *fakeLists
	r := newRig(t, func(d *Deps) { fullDeps(d); fl = d.Lists.(*fakeLists) })
	b := r.browser()
	b.signIn("vera")
	p := b.get("/console/lists/blacklist?prefix=8+916&level=6&kind=manual&rule=manual&expired=true")
	if p.status != http.StatusOK {
		t.Fatalf("blacklist: %d", p.status)
	}
	q := fl.query()
	if q.Prefix != "+7916" || q.Level != 6 || q.Kind != schema.Manual || q.Rule != schema.RuleManual || !q.IncludeExpired || q.Limit != listLimit {
		t.Errorf("query %+v", q)
	}
	doc := parse(t, p.body)
	if byID(doc, "list") == nil || byID(doc, "list-filter") == nil {
		t.Fatal("no list or filter")
	}
	var next, csv string
	walk(doc, func(n *html.Node) {
		if attr(n, "rel") == "next" {
			next = attr(n, "href")
		}
	})
	if e := byID(doc, "export-csv"); e != nil {
		csv = attr(e, "href")
	}
	nu, _ := url.Parse(next)
	if nu.Query().Get("after") != "+79161234567" || nu.Query().Get("level") != "6" || nu.Query().Get("prefix") != "8 916" {
		t.Errorf("next link %q", next)
	}
	b.get(next)
	if fl.query().After != "+79161234567" {
		t.Errorf("next page asked after %q", fl.query().After)
	}
	cu, _ := url.Parse(csv)
	if cu.Query().Get("format") != "csv" || cu.Query().Get("rule") != "manual" || cu.Query().Has("after") {
		t.Errorf("CSV link %q", csv)
	}
	c := b.get(csv)
	if c.status != http.StatusOK || !strings.HasPrefix(c.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(c.header.Get("Content-Disposition"), "blacklist.csv") {
		t.Fatalf("CSV: %d %v", c.status, c.header)
	}
	if fl.query().Limit != lists.Unlimited || fl.query().Rule != schema.RuleManual {
		t.Errorf("CSV query %+v: want every entry the filter matches", fl.query())
	}
	if !strings.Contains(c.body, "+79161239999") || strings.Count(c.body, "\n") != 3 {
		t.Errorf("CSV body:\n%s", c.body)
	}
	if p := b.get("/console/lists/blacklist?level=12"); p.status != http.StatusBadRequest || alertText(t, p.body) == "" {
		t.Errorf("bad level: %d", p.status)
	}
	for q, want := range map[string]string{
		"prefix=abc": `"abc" is not the start of a phone number: use digits, optionally after a +.`,
		"level=six":  `Level "six" is not a number.`,
	} {
		if p := b.get("/console/lists/blacklist?" + q); p.status != http.StatusBadRequest || alertText(t, p.body) != want {
			t.Errorf("%s: %d %q, want 400 %q", q, p.status, alertText(t, p.body), want)
		}
	}
	if p := b.get("/console/lists/greylist"); p.status != http.StatusNotFound {
		t.Errorf("greylist: %d", p.status)
	}
	// The whitelist ignores the blacklist's filters.
	b.get("/console/lists/whitelist?level=6&kind=auto")
	if q := fl.query(); q.Level != 0 || q.Kind != "" {
		t.Errorf("whitelist query %+v", q)
	}
	if byID(parse(t, b.get("/console/lists/whitelist").body), "import-form") != nil {
		t.Error("a viewer sees the import form")
	}
}

// postFile posts a multipart form as the import form does.
func (b *browser) postFile(path, csrf, name, content string, fields map[string]string) page {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", csrf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		b.t.Fatal(err)
	}
	_, _ = fw.Write([]byte(content))
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, b.r.ts.URL+path, &body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.r.ts.URL)
	return b.do(req)
}

func TestWhitelistImport(t *testing.T) {
	var fi *fakeImporter
	r := newRig(t, func(d *Deps) { fullDeps(d); fi = d.Import.(*fakeImporter) })
	b := r.browser()
	b.signIn("oleg")
	page0 := b.get("/console/lists/whitelist")
	tok := formCSRF(t, page0.body, "import-form")
	if f := byID(parse(t, page0.body), "import-form"); attr(f, "enctype") != "multipart/form-data" {
		t.Errorf("import form enctype %q", attr(f, "enctype"))
	}
	p := b.postFile("/console/lists/whitelist/import", tok, "clients.csv", "number\n+79160000001\nnot-a-number\n+79160000002\n12ab\n+79160000001\n", map[string]string{"why": "bank clients"})
	if p.status != http.StatusOK {
		t.Fatalf("import: %d\n%s", p.status, p.body)
	}
	if fi.def.By != "oleg" || fi.def.Reason != "bank clients" {
		t.Errorf("import defaults %+v, want by oleg", fi.def)
	}
	doc := parse(t, p.body)
	checkPage(t, "import report", p.body, "en", "whitelist")
	rep := byID(doc, "import-report")
	if rep == nil {
		t.Fatalf("no import report:\n%s", p.body)
	}
	var rows []string
	walk(rep, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && n.Parent.Data == "tbody" {
			var cells []string
			for td := n.FirstChild; td != nil; td = td.NextSibling {
				if td.Type == html.ElementNode {
					cells = append(cells, text(td))
				}
			}
			rows = append(rows, strings.Join(cells, " "))
		}
	})
	wantRows := []string{
		"3 not-a-number number Not a phone number: write it in E.164 (+79990001122) or as a national number of region RU.",
		"5 12ab number Not a phone number: write it in E.164 (+79990001122) or as a national number of region RU.",
		"6 +79160000001 number The same number as line 2.",
	}
	if strings.Join(rows, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("report rows\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(wantRows, "\n"))
	}
	if got := text(byID(doc, "import-applied")); got != "2" {
		t.Errorf("applied %q, want 2", got)
	}
	// A file that is not a whitelist: the reason, nothing applied.
	p = b.postFile("/console/lists/whitelist/import", tok, "x.csv", "phone\n+7916\n", nil)
	if got := alertText(t, p.body); got != `The header "phone" has no number column (want number, until, by, reason).` {
		t.Errorf("bad file: %q", alertText(t, p.body))
	}
	// No token: refused.
	if p := b.postFile("/console/lists/whitelist/import", "", "x.csv", "number\n", nil); p.status != http.StatusForbidden {
		t.Errorf("import without a token: %d", p.status)
	}
	// Too large.
	if p := b.postFile("/console/lists/whitelist/import", tok, "big.csv", "number\n"+strings.Repeat("+79160000001\n", maxUploadBytes/12+10), nil); p.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized import: %d, want 413", p.status)
	}
}
