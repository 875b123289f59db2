package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// scrapeMetrics returns the guard's /metrics text.
func scrapeMetrics(t *testing.T, g *guardProcess) string {
	t.Helper()
	m := regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`).FindStringSubmatch(g.output())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", g.output())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// reportTotal polls the daily report through the running guard's admin
// API until done says its total is complete, and returns the total.
func reportTotal(t *testing.T, env []string, done func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, stderr, code := runCLI(t, env, "report", "--format", "json")
		if code != 0 {
			t.Fatalf("report: exit %d: %s", code, stderr)
		}
		var d struct {
			Total map[string]any `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("report JSON: %v\n%s", err, out)
		}
		total := map[string]float64{}
		for k, v := range d.Total {
			if f, ok := v.(float64); ok {
				total[k] = f
			}
		}
		if done(total) {
			return total
		}
		if time.Now().After(deadline) {
			t.Fatalf("report total never complete: %v", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A week of observing in miniature, through the binary: every call goes
// to the PBX, and the audit, the report (through the admin API), the
// metrics and the call log say what enforcing would have done as such,
// apart from what happened, with no saving for calls that went through.
// Then the guard enforces on the same data: a block earned while
// observing applies.
func TestObserveModeSaysWhatWouldHappen(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	dir := t.TempDir()
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_DATA_DIR="+dir, "GUARD_MODE=observe",
		"GUARD_LIMIT_HOUR=2", "GUARD_LIMIT_LEVEL=7", "GUARD_ESCALATION_LEVEL=8", "GUARD_GRACE=2s", "GUARD_TARIFF_PER_MINUTE=10",
		// A loaded machine must not turn a decision into store-down.
		"GUARD_DECIDE_TIMEOUT=10s")
	env = append(env, "GUARD_DATA_DIR="+dir) // the CLI finds the admin token there
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	const dialler, blocked = "+79990008001", "+79990008002"
	if _, stderr, code := runCLI(t, env, "block", blocked, "--level", "9", "--reason", "fraud"); code != 0 {
		t.Fatal(stderr)
	}
	// The dialler: two calls pass, the third breaks the hourly limit and
	// sets a hard block (level 7), the fourth meets it: enforcing would
	// reject both. The blocked number's call would be rejected too; it
	// talks past the grace interval, so it is billed.
	for i := range 4 {
		if got := callOnce(t, trunk, target, dialler, nil); got != "pass" {
			t.Fatalf("dialler's call %d in observe mode: %s, want pass", i+1, got)
		}
	}
	if got := callOnce(t, trunk, target, blocked, func(*siptest.Call) { time.Sleep(2200 * time.Millisecond) }); got != "pass" {
		t.Fatalf("blocked caller in observe mode: %s, want pass", got)
	}

	// The report, as the admin API serves it.
	total := reportTotal(t, env, func(r map[string]float64) bool { return r["callsIn"] == 5 && r["tracked"] == 5 })
	for k, want := range map[string]float64{
		"passed": 5, "challenged": 0, "rejected": 0, "wouldReject": 3, "wouldChallenge": 0,
		"offered": 5, "connected": 5, "savedMinutes": 0, "saved": 0, "wouldSaveMinutes": 1, "wouldSave": 10,
	} {
		if total[k] != want {
			t.Errorf("report total %s = %v, want %v (total %v)", k, total[k], want, total)
		}
	}
	out, _, code := runCLI(t, env, "report")
	if code != 0 || !strings.Contains(out, "Observe mode passed 3 calls that enforcing would have rejected (3) or challenged (0)") ||
		!strings.Contains(out, "the 3 would-be rejected calls were billed 1 minutes (10.00 RUB), which enforcing would have saved") {
		t.Errorf("report text:\n%s", out)
	}

	// The audit: what happened first, what enforcing would have done next.
	out, stderr, code := runCLI(t, env, "audit", dialler)
	if code != 0 {
		t.Fatalf("audit: %s", stderr)
	}
	if n := strings.Count(out, "PASS (observe mode), enforcing would REJECT level 7"); n != 2 {
		t.Errorf("audit: %d calls say observe mode passed a reject, want 2:\n%s", n, out)
	}
	if regexp.MustCompile(`day=\d+\s+REJECT`).MatchString(out) {
		t.Errorf("audit says a call was rejected:\n%s", out)
	}
	for _, want := range []string{"calls       4: pass 4, challenge 0, reject 0", "observed    2 passed in observe mode", "set in observe mode"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}

	// The caller profiles.
	out, stderr, code = runCLI(t, env, "callers", "--prefix", "+79990008")
	if code != 0 || strings.Count(out, "reject (observe mode: pass)") != 2 {
		t.Errorf("callers (exit %d, %s):\n%s", code, stderr, out)
	}

	// The metrics: no call counted as rejected.
	body := scrapeMetrics(t, g)
	for _, want := range []string{`callguard_calls_total{verdict="pass"} 5`, `callguard_calls_total{verdict="reject"} 0`,
		`callguard_calls_observed_total{verdict="reject"} 3`, `callguard_calls_ended_total{billed="true"} 1`,
		`callguard_calls_ended_total{billed="false"} 4`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The call log: a line per call, the verdict beside the action.
	logged := regexp.MustCompile(`msg=call .*caller=\+79990008002 .*verdict=reject blockLevel=9 rule=manual action=pass mode=observe .*billed=true`)
	if !logged.MatchString(g.output()) {
		t.Errorf("no call log line for the observed reject:\n%s", g.output())
	}
	g.stop(t)

	// Enforcing on the same data: the dialler's block, earned while
	// observing, applies.
	g2, target2, env2 := guardSIP(t, pbx.URI(), "GUARD_DATA_DIR="+dir, "GUARD_MODE=enforce",
		"GUARD_LIMIT_HOUR=2", "GUARD_LIMIT_LEVEL=7", "GUARD_ESCALATION_LEVEL=8", "GUARD_GRACE=2s", "GUARD_TARIFF_PER_MINUTE=10",
		// A loaded machine must not turn a decision into store-down.
		"GUARD_DECIDE_TIMEOUT=10s")
	env2 = append(env2, "GUARD_DATA_DIR="+dir)
	if got := callOnce(t, trunk, target2, dialler, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("dialler's call once enforcing: %s, want reject 603", got)
	}
	total = reportTotal(t, env2, func(r map[string]float64) bool { return r["callsIn"] == 6 && r["tracked"] == 6 })
	if total["rejected"] != 1 || total["wouldReject"] != 3 || total["passed"] != 5 {
		t.Errorf("report after enforcing: %v", total)
	}
	if body := scrapeMetrics(t, g2); !strings.Contains(body, `callguard_calls_total{verdict="reject"} 1`+"\n") {
		t.Errorf("/metrics after enforcing lacks the reject")
	}
}

// The call log through the binary: a line per call at info (a PBX
// answering 486 included), a flood of rejects held to the configured
// rate with the rest counted in a line of their own, nothing secret, and
// GUARD_CALL_LOG=false turning it off.
func TestCallLog(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{Behave: func(*siptest.PBXCall) siptest.Behaviour { return siptest.Reject(486) }})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	const token = "call-log-test-token-0123456789"
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_CALL_LOG_REFUSED_PER_SECOND=2", "GUARD_ADMIN_TOKEN="+token)
	env = append(env, "GUARD_ADMIN_TOKEN="+token)
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	const busy, blocked = "+79990009001", "+79990009002"
	if got := callOnce(t, trunk, target, busy, nil); !strings.HasPrefix(got, "reject 486") {
		t.Fatalf("call to a busy PBX: %s, want 486", got)
	}
	if _, stderr, code := runCLI(t, env, "block", blocked, "--level", "9", "--reason", "flood"); code != 0 {
		t.Fatal(stderr)
	}
	const flood = 15
	for i := range flood {
		if got := callOnce(t, trunk, target, blocked, nil); !strings.HasPrefix(got, "reject 603") {
			t.Fatalf("flood call %d: %s", i+1, got)
		}
	}
	g.stop(t) // the suppressed count is reported at the latest when the guard stops
	out := g.output()
	busyLine := regexp.MustCompile(`level=INFO msg=call .*call=\S+ sipCallId=\S+ caller=\+79990009001 callee=\S+ verdict=pass blockLevel=0 action=pass end=pbx-refused by=pbx status=486 decideMs=\S+ callMs=\S+ billed=false`)
	if !busyLine.MatchString(out) {
		t.Errorf("no call log line for the call the PBX answered 486:\n%s", out)
	}
	lines := strings.Count(out, "caller=+79990009002 ")
	suppressed := 0
	for _, m := range regexp.MustCompile(`msg="call log: refused calls not logged \(rate limit\)".* suppressed=(\d+)`).FindAllStringSubmatch(out, -1) {
		var n int
		fmt.Sscan(m[1], &n)
		suppressed += n
	}
	if lines+suppressed != flood || lines >= flood || suppressed == 0 {
		t.Errorf("%d rejected calls: %d logged, %d counted as suppressed; want them all, most suppressed:\n%s", flood, lines, suppressed, out)
	}
	if strings.Contains(out, token) {
		t.Errorf("the log holds the admin token")
	}

	// Off.
	pbx2, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx2.Close()
	g2, target2, _ := guardSIP(t, pbx2.URI(), "GUARD_CALL_LOG=false")
	if got := callOnce(t, trunk, target2, busy, nil); got != "pass" {
		t.Fatalf("call: %s", got)
	}
	g2.stop(t)
	if strings.Contains(g2.output(), "msg=call ") {
		t.Errorf("GUARD_CALL_LOG=false still logs calls:\n%s", g2.output())
	}
}
