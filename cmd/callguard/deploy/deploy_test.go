package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/metrics"
	"github.com/callguard/callguard/projections/runner"
)

// The files under test, beside this one.
const (
	dashboardFile = "grafana-dashboard.json"
	rulesFile     = "prometheus-rules.yml"
	rulesTestFile = "prometheus-rules.test.yml"
	unitFile      = "callguard.service"
	envFile       = "env.example"
	metricsSrc    = "../../../projections/metrics"
	readme        = "../../../README.md"
)

// statuses is a runner.StatusSource with one projection, so that the
// projection metrics show.
type statuses struct{}

func (statuses) Status(context.Context) ([]runner.Status, error) {
	return []runner.Status{{Name: "lists", State: runner.Running, LagSeconds: 1}}, nil
}

// exported returns the metric families a guard exports, by name, from the
// registry of projections/metrics with every metric touched (a vector
// shows only once one of its children exists), and checks that no metric
// the package defines is missing from it, so that a metric added there
// and not touched here fails this test rather than passing unseen.
func exported(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	m := metrics.New()
	for _, v := range []schema.Verdict{schema.Pass, schema.Challenge, schema.Reject} {
		m.Decided(v, schema.Pass, time.Millisecond)
	}
	m.Undecided(time.Second)
	m.Busy(time.Millisecond)
	m.ObserveAppend(time.Millisecond, nil)
	m.GrainActivated()
	m.ChallengeStarted()
	m.RequestIn("INVITE")
	m.ResponseOut("INVITE", 603)
	m.RejectedUntrusted()
	m.Overloaded("busy")
	m.Transfer("refer", "refused")
	m.AttackStarted("+78005553535", false)
	m.WatchLines(func() map[string]bool { return map[string]bool{"+78005553535": true} })
	m.EnableCRM()
	m.CRMLookup(schema.CRMHit, false, time.Millisecond)
	m.WatchCalls(func() metrics.CallTotals { return metrics.CallTotals{} })
	m.WatchProjections(statuses{})
	m.WatchSIP(func() metrics.SIPTotals { return metrics.SIPTotals{} })
	m.WatchSpool(func() metrics.SpoolTotals { return metrics.SpoolTotals{} })
	m.WatchRanges(func() int { return 0 })
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]dto.MetricType{}
	for _, f := range fams {
		names[f.GetName()] = f.GetType()
	}
	for _, name := range definedMetrics(t) {
		if _, ok := names[name]; !ok {
			t.Errorf("projections/metrics defines %s but the registry gathered here lacks it: touch it in exported()", name)
		}
	}
	return names
}

// definedMetrics are the callguard_ names the source of projections/metrics
// defines: Name: "x" beside Namespace, and Namespace+"_x" descriptors.
func definedMetrics(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(metricsSrc, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no source in %s: %v", metricsSrc, err)
	}
	named := regexp.MustCompile(`Namespace: Namespace, Name: "(\w+)"`)
	desc := regexp.MustCompile(`Namespace\+"_(\w+)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []*regexp.Regexp{named, desc} {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				out = append(out, metrics.Namespace+"_"+m[1])
			}
		}
	}
	if len(out) < 20 {
		t.Fatalf("found only %d metric definitions in %s: has their form changed?", len(out), metricsSrc)
	}
	return out
}

// PromQL, as much of it as naming metrics takes: what is not a metric
// name is removed first (strings, label matchers, ranges, grouping
// clauses, Grafana variables, numbers), then every identifier left that
// is not a function call or a keyword is a metric name.
var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promOffset   = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
	grafanaVars  = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promNumbers  = regexp.MustCompile(`(^|[^\w:.])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names expr reads.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	s = grafanaVars.ReplaceAllString(s, " ")
	for prev := ""; prev != s; {
		prev = s
		s = promMatchers.ReplaceAllString(s, " ")
		s = promRanges.ReplaceAllString(s, " ")
	}
	s = promGrouping.ReplaceAllString(s, " ")
	s = promOffset.ReplaceAllString(s, " ")
	s = promNumbers.ReplaceAllString(s, "$1 ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if strings.HasPrefix(strings.TrimSpace(s[loc[1]:]), "(") || promKeywords[strings.ToLower(name)] {
			continue // a function, an aggregation or a keyword
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (verdict) (rate(callguard_calls_total{instance=~"$instance"}[$__rate_interval]))`, []string{"callguard_calls_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(callguard_decision_seconds_bucket{verdict!="busy"}[5m]))) > 1`, []string{"callguard_decision_seconds_bucket"}},
		{`up{job="callguard"} == 0`, []string{"up"}},
		{`absent(up{job="callguard"})`, []string{"up"}},
		{`a:rate10m > 3 * (a:rate10m offset 1h or vector(0)) and b > 1e-3`, []string{"a:rate10m", "a:rate10m", "b"}},
		{`sum(x{l="by (a) or y"}) / on (instance) group_left (line) y_total`, []string{"x", "y_total"}},
		{`label_values(callguard_calls_total, instance)`, []string{"callguard_calls_total", "instance"}},
		{`max_over_time(rate(z[5m])[1h:1m])`, []string{"z"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// checkExpr fails when expr reads no metric, or one that is neither
// exported by the guard nor in also.
func checkExpr(t *testing.T, where, expr string, names map[string]dto.MetricType, also ...string) []string {
	t.Helper()
	got := metricNames(expr)
	if len(got) == 0 {
		t.Errorf("%s: %q reads no metric", where, expr)
	}
	for _, n := range got {
		if _, ok := names[n]; ok || slices.Contains(also, n) {
			continue
		}
		base, ok := "", false
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, found := strings.CutSuffix(n, suf); found {
				base, ok = b, true
			}
		}
		if typ, exp := names[base]; ok && exp && (typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_SUMMARY) {
			continue
		}
		t.Errorf("%s: %q reads %s, which the guard does not export", where, expr, n)
	}
	return got
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

type dashboard struct {
	Inputs []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// TestDashboardReadsOnlyExportedMetrics: the dashboard parses as a Grafana
// dashboard model, every query of every panel (and of its variables) reads
// only metrics the guard exports, through the ${DS_PROMETHEUS} input, and
// the topics the ops team asked for each have a panel.
func TestDashboardReadsOnlyExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want a current model (36+) with a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v: want one Prometheus data source input DS_PROMETHEUS", d.Inputs)
	}
	read := map[string]bool{}
	ids := map[int]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: data source %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q: a query's data source %+v, want uid ${DS_PROMETHEUS}", p.Title, tg.Datasource)
				}
				for _, n := range checkExpr(t, "panel "+p.Title, tg.Expr, names) {
					read[n] = true
				}
			}
		}
	}
	walk(d.Panels)
	if len(ids) < 10 {
		t.Errorf("%d panels: the dashboard lost most of them", len(ids))
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		checkExpr(t, "variable "+v.Name, v.Definition, names, "instance")
	}
	for _, want := range []string{
		"callguard_calls_total", "callguard_decision_seconds_bucket", "callguard_store_append_seconds_bucket",
		"callguard_store_append_errors_total", "callguard_projection_lag_seconds", "callguard_calls_in_progress",
		"callguard_challenges_active", "callguard_sip_messages_total", "callguard_sip_untrusted_rejected_total",
		"callguard_sip_overload_total", "callguard_late_offer_total", "callguard_transfers_total",
		"callguard_line_under_attack", "callguard_crm_lookups_total",
	} {
		if !read[want] {
			t.Errorf("no panel reads %s", want)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestRulesReadOnlyExportedMetrics: every rule reads only metrics the
// guard exports (or the file's own recording rules, or Prometheus's up),
// every alert has a severity, a summary, a description and a runbook that
// points at a README section that exists, and the alerts the ops team
// asked for are there.
func TestRulesReadOnlyExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	also := []string{"up"}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				also = append(also, r.Record)
			}
		}
	}
	anchors := readmeAnchors(t)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			checkExpr(t, "rule "+name, r.Expr, names, also...)
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", name, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s", name, a)
				}
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#"); !anchors[anchor] {
				t.Errorf("alert %s: runbook %q points at no README section", name, r.Annotations["runbook_url"])
			}
		}
	}
	for _, want := range []string{"CallguardDown", "CallguardAbsent", "CallguardStoreErrors", "CallguardProjectionLag",
		"CallguardDecisionSlow", "CallguardRefusalsRising", "CallguardUnderAttack"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

// readmeAnchors are the GitHub anchors of the README's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// TestPromtool: Prometheus's own checker accepts the rules, and its unit
// tests of them pass (a guard down fires after its minute, a flood fires
// and a steady day does not, ...). CI installs promtool (Debian's
// prometheus package).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): the rules are not checked by Prometheus")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// unitDirectives reads a systemd unit's Key=Value lines (comments and
// sections dropped); a key set more than once keeps every value.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Errorf("%s: %q is not Key=Value", unitFile, l)
			continue
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestSystemdUnit: the unit has the sandbox the README promises, runs the
// guard as its own user on its state directory, gives the guard's
// graceful stop time to finish, and, where systemd is installed,
// systemd-analyze verify accepts it.
func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t)
	want := map[string]string{
		"ExecStart": "/usr/local/bin/callguard serve", "EnvironmentFile": "/etc/callguard/env",
		"User": "callguard", "DynamicUser": "no", "StateDirectory": "callguard",
		"Environment": "GUARD_DATA_DIR=/var/lib/callguard", "Restart": "on-failure",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
		"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallFilter": "@system-service",
		"SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
	}
	for k, v := range want {
		if got, ok := d[k]; !ok || !slices.Contains(got, v) {
			t.Errorf("%s=%q, want %s=%s", k, got, k, v)
		}
	}
	if len(d["LimitNOFILE"]) == 0 {
		t.Error("no LimitNOFILE")
	}
	// The guard hangs up its calls (3 s at most) and waits for their
	// records (5 s at most) before it closes the cluster, store and
	// projections: the unit must not SIGKILL it before.
	stop, err := time.ParseDuration(strings.Join(d["TimeoutStopSec"], ""))
	if err != nil || stop < 15*time.Second {
		t.Errorf("TimeoutStopSec=%q: want 15s or more, above the guard's graceful stop", d["TimeoutStopSec"])
	}
	// Type=notify only when the binary tells systemd it is ready.
	if typ := strings.Join(d["Type"], ""); typ == "notify" && !sourceMentions(t, "..", "NOTIFY_SOCKET") {
		t.Error("Type=notify, but cmd/callguard never writes to NOTIFY_SOCKET: systemd would time the start out")
	} else if typ != "notify" && typ != "simple" && typ != "exec" {
		t.Errorf("Type=%q", typ)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit is not verified by systemd")
	}
	// verify wants ExecStart's binary to exist: this test's own stands in.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/callguard", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// sourceMentions reports whether a non-test Go file under dir holds s.
func sourceMentions(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || found {
			return err
		}
		b, err := os.ReadFile(p)
		found = err == nil && strings.Contains(string(b), s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEnvExample: every variable the sample sets (or shows commented out)
// is one the guard reads, as the README's generated configuration table
// lists them, and it leaves GUARD_DATA_DIR to the unit.
func TestEnvExample(t *testing.T) {
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	assign := regexp.MustCompile(`(?m)^#?(GUARD_\w+)=`)
	vars := assign.FindAllStringSubmatch(string(b), -1)
	if len(vars) < 10 {
		t.Fatalf("%s sets only %d variables", envFile, len(vars))
	}
	for _, v := range vars {
		if !strings.Contains(string(doc), "| `"+v[1]+"` |") {
			t.Errorf("%s sets %s, which is not a callguard setting (not in the README's table)", envFile, v[1])
		}
		if v[1] == "GUARD_DATA_DIR" {
			t.Errorf("%s sets GUARD_DATA_DIR: the unit's StateDirectory is the only writable place", envFile)
		}
	}
}
