package tests

import (
	"context"
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

// A scripted run of calls through the real guard, then the report, the
// blacklist and the metrics, as a manager and ops read them: every figure
// is known from the script.
func TestReportOfAScriptedRun(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_LIMIT_HOUR=2", "GUARD_GRACE=2s", "GUARD_TARIFF_PER_MINUTE=10")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	const regular, blocked, whitelisted = "+79990007001", "+79990007002", "+79990007003"
	if _, stderr, code := runCLI(t, env, "block", blocked, "--level", "9", "--reason", "fraud"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runCLI(t, env, "whitelist", "add", whitelisted, "--reason", "VIP"); code != 0 {
		t.Fatal(stderr)
	}
	// regular: pass, pass, then challenged and silent (failed, BYE inside
	// the grace interval); blocked: two rejects; whitelisted: one pass.
	// Every call ends unbilled: the passed ones hang up at once, inside
	// the grace interval, and the rejected ones are never answered.
	script := []struct{ caller, want string }{
		{regular, "pass"}, {regular, "pass"}, {regular, "challenge"},
		{blocked, "reject"}, {blocked, "reject"}, {whitelisted, "pass"},
	}
	for i, s := range script {
		got := callOnce(t, trunk, target, s.caller, func(c *siptest.Call) {
			if s.want != "challenge" {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.WaitBye(ctx); err != nil {
				t.Fatalf("challenged call: no BYE from the guard: %v", err)
			}
		})
		if s.want == "pass" && got == "pass" {
			continue
		}
		if !strings.HasPrefix(got, s.want) {
			t.Fatalf("call %d from %s: %s, want %s", i+1, s.caller, got, s.want)
		}
	}

	var total struct {
		CallsIn, Passed, Challenged, ChallengesFailed, Rejected, Unbilled, Connected int
		Saved                                                                        float64
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, stderr, code := runCLI(t, env, "report", "--format", "json")
		if code != 0 {
			t.Fatalf("report: exit %d: %s", code, stderr)
		}
		var d struct {
			Total json.RawMessage `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(d.Total, &total); err != nil {
			t.Fatal(err)
		}
		if total.CallsIn == 6 && total.ChallengesFailed == 1 && total.Connected == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report total %+v, want 6 calls in, 1 failed challenge, 3 connected", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := fmt.Sprintf("%+v", struct{ CallsIn, Passed, Challenged, ChallengesFailed, Rejected, Unbilled, Connected int }{6, 3, 1, 1, 2, 6, 3})
	got := fmt.Sprintf("%+v", struct{ CallsIn, Passed, Challenged, ChallengesFailed, Rejected, Unbilled, Connected int }{
		total.CallsIn, total.Passed, total.Challenged, total.ChallengesFailed, total.Rejected, total.Unbilled, total.Connected})
	if got != want {
		t.Fatalf("report total %s, want %s", got, want)
	}
	if total.Saved <= 0 {
		t.Fatalf("money saved %v: the rejected and failed calls cost nothing", total.Saved)
	}
	out, _, code := runCLI(t, env, "blacklist", "--format", "csv")
	if code != 0 || !strings.Contains(out, blocked) || strings.Contains(out, whitelisted) {
		t.Fatalf("blacklist:\n%s", out)
	}
	// The metrics a Prometheus scrape sees.
	re := regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`)
	m := re.FindStringSubmatch(g.output())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", g.output())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`callguard_calls_total{verdict="reject"} 2`, `callguard_calls_total{verdict="challenge"} 1`, "callguard_decision_seconds_bucket", "callguard_sip_messages_total", "callguard_grains_active", "callguard_calls_in_progress 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if resp, err := http.Get("http://" + m[1] + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz: %v %v", resp, err)
	}
}
