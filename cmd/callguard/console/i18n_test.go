package console

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/runner"
	"golang.org/x/net/html"
)

// sameInBoth are the catalogue texts that read the same in Russian:
// names and abbreviations.
var sameInBoth = map[string]bool{}

// Every text has both languages, and the Russian differs from the English
// unless it is a name: a key copied without translating shows English on
// a Russian page.
func TestCatalogueIsTranslated(t *testing.T) {
	for key, m := range catalogue {
		switch {
		case strings.TrimSpace(m.en) == "" || strings.TrimSpace(m.ru) == "":
			t.Errorf("%s: en %q, ru %q: a language is missing", key, m.en, m.ru)
		case m.en == m.ru && !sameInBoth[key]:
			t.Errorf("%s: the Russian is the English %q", key, m.en)
		case strings.Count(m.en, "%") != strings.Count(m.ru, "%"):
			t.Errorf("%s: en %q and ru %q take different arguments", key, m.en, m.ru)
		}
	}
}

// englishWords must not appear on a Russian page: the words of the domain
// and the states the console shows, and uPlot's own legend defaults.
var englishWords = []string{
	"running", "failed", "stopped", "retrying", "lagging",
	"pass", "passed", "reject", "challenge", "abandoned", "whitelist", "whitelisted", "blocked",
	"hourly-limit", "daily-limit", "escalation", "manual", "by hand", "by the rules",
	"Now", "Would be", "Value", "Time", "true", "false", "yes", "no", "level", "until", "since",
	"Times are", "Calls", "Today", "Sign out", "Download",
}

// englishRE matches any of englishWords as a whole word: a setting's
// name such as count-abandoned is a name, not the word.
var englishRE = regexp.MustCompile(`(?i)(?:^|[^\p{L}\-])(` + func() string {
	q := make([]string, len(englishWords))
	for i, w := range englishWords {
		q[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(q, "|")
}() + `)(?:$|[^\p{L}\-])`)

// visibleText is what a reader sees of a page: its text (not the chart
// data), the labels of its charts, and the attributes a browser shows.
func visibleText(t *testing.T, body string) string {
	t.Helper()
	var b strings.Builder
	doc := parse(t, body)
	walk(doc, func(n *html.Node) {
		switch {
		case n.Type == html.TextNode && n.Parent != nil && n.Parent.Data != "script":
			b.WriteString(n.Data + "\n")
		case n.Type == html.ElementNode && n.Data == "script" && attr(n, "type") == "application/json" && n.FirstChild != nil:
			var ch chartData
			if err := json.Unmarshal([]byte(n.FirstChild.Data), &ch); err != nil {
				t.Errorf("chart data: %v", err)
				return
			}
			if ch.XLabel == "" {
				t.Errorf("chart %s without an x label: uPlot would name it Value", attr(n, "id"))
			}
			b.WriteString(ch.XLabel + "\n")
			for _, s := range ch.Series {
				if s.Label == "" {
					t.Errorf("chart %s has a series without a label: uPlot would name it Value", attr(n, "id"))
				}
				b.WriteString(s.Label + "\n")
			}
		case n.Type == html.ElementNode:
			for _, a := range []string{"placeholder", "aria-label", "value"} {
				if v := attr(n, a); v != "" && (a != "value" || attr(n, "type") == "submit") {
					b.WriteString(v + "\n")
				}
			}
		}
	})
	return b.String()
}

// Every page, in Russian, with every part full (and the lagging note, an
// import report, a what-if result, a failed projection): no English word
// of the console's own.
func TestRussianPagesHaveNoEnglish(t *testing.T) {
	read := &laggingRead{stuck: true}
	r := newRigConfig(t, Config{ReadWait: 20 * time.Millisecond}, func(d *Deps) {
		fullDeps(d)
		d.Projections = stateProjections{read}
	})
	r.users.set("anna", RoleAdmin, false)
	b := r.browser()
	b.lang = "ru"
	bodies := map[string]string{"signin": b.get("/console/signin").body}
	b.signIn("anna")
	for _, path := range []string{
		"/console/", "/console/numbers", "/console/numbers?q=%2B7916", "/console/numbers/+79161234567",
		"/console/lists/blacklist", "/console/lists/whitelist", "/console/reports", "/console/whatif",
		"/console/whatif?limit-hour=1", "/console/whatif?limit-hour=x", "/console/whatif?limit-hour=9&limit-day=3",
		"/console/users", "/console/nonesuch",
	} {
		bodies[path] = b.get(path).body
	}
	// The import report, and a file that is not a whitelist.
	for name, file := range map[string]string{
		"import":          "number\n+79990001111\nbad\n+79990001111\n",
		"import, no file": "phone\n+79990001111\n",
	} {
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		_ = mw.WriteField("csrf", b.csrf())
		fw, err := mw.CreateFormFile("file", "clients.csv")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write([]byte(file))
		_ = mw.Close()
		req, err := http.NewRequest(http.MethodPost, r.ts.URL+"/console/lists/whitelist/import", &form)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Origin", r.ts.URL)
		bodies[name] = b.do(req).body
	}
	for path, want := range map[string]string{
		"/console/whatif?limit-hour=x":             `Звонков за час до блокировки: "x" — недопустимое значение.`,
		"/console/whatif?limit-hour=9&limit-day=3": "Звонков за сутки до блокировки (3): должно быть не меньше, чем Звонков за час до блокировки (9).",
	} {
		if !strings.Contains(visibleText(t, bodies[path]), want) {
			t.Errorf("%s does not say %q", path, want)
		}
	}
	for _, want := range []string{"Не номер телефона", "Тот же номер, что в строке 2"} {
		if !strings.Contains(bodies["import"], want) {
			t.Errorf("the Russian import report has no %q", want)
		}
	}
	if !strings.Contains(bodies["import, no file"], "нет столбца number") {
		t.Error("the Russian import of a file without a number column does not say so")
	}

	for what, body := range bodies {
		if !strings.Contains(body, `lang="ru"`) {
			t.Errorf("%s: not in Russian", what)
		}
		for _, line := range strings.Split(visibleText(t, body), "\n") {
			if m := englishRE.FindStringSubmatch(line); m != nil && !fakeData(line) {
				t.Errorf("%s: English %q in %q", what, m[1], strings.TrimSpace(line))
			}
		}
	}
}

// fakeData says a line is the fakes' own data (names, reasons typed by
// people), which no catalogue translates, or names the CSV's columns.
func fakeData(line string) bool {
	for _, s := range []string{"столбцом number", "number, until, by, reason", "client called the bank", "left the bank", "VIP client", "6 calls in an hour", "fraud", "limit-hour"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// stateProjections shows a projection in every state on Today.
type stateProjections struct{ *laggingRead }

func (stateProjections) Status(context.Context) ([]runner.Status, error) {
	return []runner.Status{
		{Name: "lists", State: runner.Running, LagSeconds: 3},
		{Name: "reports", State: runner.Retrying},
		{Name: "profiles", State: runner.Stopped},
		{Name: "attack", State: runner.Failed},
	}, nil
}

// A text that sends the reader to the CLI names a command the README's
// examples run (callguard audit, not a command that does not exist).
func TestCatalogueNamesRealCommands(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmdRE := regexp.MustCompile(`callguard ([a-z]+)`)
	for key, m := range catalogue {
		if key == "app.name" {
			continue // "callguard console" is the page's name
		}
		for _, text := range []string{m.en, m.ru} {
			for _, c := range cmdRE.FindAllStringSubmatch(text, -1) {
				if !regexp.MustCompile(`(?m)^callguard ` + c[1] + `\b`).Match(readme) {
					t.Errorf("%s: %q names callguard %s, which the README never runs", key, text, c[1])
				}
			}
		}
	}
}

// TestEverySettingHasALabel: the what-if form labels each setting from
// the catalogue by its name, so a policy setting added later without a
// label would show its key; this keeps the two in step.
func TestEverySettingHasALabel(t *testing.T) {
	for _, st := range append(policySettings(policy.Config{}), whatifTries...) {
		if _, ok := catalogue["setting."+st.Name]; !ok {
			t.Errorf("what-if setting %s has no catalogue entry setting.%s", st.Name, st.Name)
		}
	}
}

// TestVerdictChoicesAreThePolicys: the what-if form offers as a choice
// exactly the verdicts the policy accepts for that setting.
func TestVerdictChoicesAreThePolicys(t *testing.T) {
	accepts := func(name string, v schema.Verdict) bool {
		c := policy.DefaultConfig()
		switch name {
		case "anonymous":
			c.Anonymous = v
		case "concurrent-verdict":
			c.MaxConcurrent, c.ConcurrentVerdict = 1, v
		default:
			t.Fatalf("no check for the choices of %s", name)
		}
		return c.Validate() == nil
	}
	for name, choices := range verdictChoices {
		for _, v := range []schema.Verdict{schema.Pass, schema.Challenge, schema.Reject} {
			if offered := slices.Contains(choices, string(v)); offered != accepts(name, v) {
				t.Errorf("%s: %s offered %v, but the policy accepts it: %v", name, v, offered, !offered)
			}
		}
	}
}
