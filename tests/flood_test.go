package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// floodLine is the line the flood calls, as the guard normalises it.
const floodLine = "+78005553535"

// attackMode reads the line's under-attack mode from the guard's admin API.
func attackMode(t *testing.T, adminURL, token string) (on bool, since time.Time) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/v1/lines/"+floodLine+"/attack", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v struct {
		UnderAttack bool      `json:"underAttack"`
		Since       time.Time `json:"since"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
		t.Fatalf("GET attack: %d %s", resp.StatusCode, b)
	}
	return v.UnderAttack, v.Since
}

// adminToken reads the token the guard drew into its data directory.
func adminToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(dir + "/admin.token")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// floodCaller is call i's number: a valid-looking Russian mobile number,
// never the same twice (the campaign spoofs a fresh one per call).
func floodCaller(i int) string { return fmt.Sprintf("+7991%07d", 1000000+i) }

// Under-attack mode through the binary over real SIP: a burst of calls to
// one line from fresh numbers (callers that never type) switches the
// line's mode on; then a new caller is challenged (and the audit says
// why), a whitelisted caller passes; the mode ends by itself after
// GUARD_ATTACK_CALM without the burst; an admin switches it on and off by
// hand with the CLI.
func TestUnderAttackModeOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	// The burst below is 60 fresh numbers in 2 s, six times the threshold
	// (over 10 in a 2 s window), so that a guard slowed down by a loaded
	// machine still sees it; the calm leaves the checks made while under
	// attack ample time (they run binaries and calls that take seconds
	// under load).
	const calm = 20 * time.Second
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en",
		"GUARD_ATTACK_RATE=5", "GUARD_ATTACK_WINDOW=2s", "GUARD_ATTACK_CALM="+calm.String())
	adminURL := strings.TrimPrefix(env[1], "GUARD_ADMIN_URL=")
	token := adminToken(t, strings.TrimPrefix(env[0], "GUARD_DATA_DIR="))
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()

	const whitelisted = "+79990004455"
	if _, stderr, code := runCLI(t, env, "whitelist", "add", whitelisted, "--reason", "VIP"); code != 0 {
		t.Fatal(stderr)
	}
	if on, _ := attackMode(t, adminURL, token); on {
		t.Fatal("the line is under attack before any call")
	}
	// The burst: 30 fresh numbers a second for 2 s, callers that hang up
	// once answered (they never type; a challenged one is left after 2 s).
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := siptest.LoadRun(ctx, target, 30, 2*time.Second, siptest.LoadOptions{Callee: "88005553535", Caller: floodCaller, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The last batch of counts may still be on its way to the line.
	var on bool
	var since time.Time
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if on, since = attackMode(t, adminURL, token); on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not under attack 5 s after a burst of %d fresh numbers (%s)", res.Calls, res)
		}
	}
	if d := time.Since(start); d > calm {
		t.Fatalf("the burst took %v, longer than the calm of %v: the checks under attack below could see its end", d.Round(time.Millisecond), calm)
	}
	t.Logf("burst of %d calls at 30/s: under attack %v after the first INVITE", res.Calls, since.Sub(start).Round(time.Millisecond))
	got := callOnce(t, trunk, target, "+79990007788", nil)
	if got != "challenge" {
		t.Fatalf("a new caller while under attack: %s, want challenge", got)
	}
	if got := callOnce(t, trunk, target, whitelisted, nil); got != "pass" {
		t.Fatalf("a whitelisted caller while under attack: %s, want pass", got)
	}
	out, _, _ := runCLI(t, env, "audit", "+79990007788")
	if !strings.Contains(out, "under attack since") || !strings.Contains(out, floodLine) {
		t.Fatalf("the audit does not explain the challenge by the attack:\n%s", out)
	}
	if m := scrapeMetrics(t, g); !strings.Contains(m, `callguard_line_under_attack{line="+78005553535"} 1`) ||
		!strings.Contains(m, `callguard_attack_mode_changes_total{by="auto",change="on"} 1`) {
		t.Fatalf("metrics do not show the attack:\n%s", grepLines(m, "attack"))
	}
	if !strings.Contains(g.output(), "line under attack") {
		t.Fatalf("no warning in the log:\n%s", g.output())
	}

	// Calm: the mode ends by itself GUARD_ATTACK_CALM after the burst.
	deadline := start.Add(calm + 30*time.Second)
	for on, _ = attackMode(t, adminURL, token); on; on, _ = attackMode(t, adminURL, token) {
		if time.Now().After(deadline) {
			t.Fatalf("still under attack %v after the burst (calm %v)", time.Since(start).Round(time.Second), calm)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A node that sent nothing since learns the end within a poll (1 s).
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(scrapeMetrics(t, g), `callguard_line_under_attack{line="+78005553535"} 0`) {
		if time.Now().After(deadline) {
			t.Fatal("the node's cache still says under attack 10 s after the end")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := callOnce(t, trunk, target, "+79990008899", nil); got != "pass" {
		t.Fatalf("a new caller after the attack: %s, want pass", got)
	}

	// By hand, held: on until switched off.
	out, stderr, code := runCLI(t, env, "attack", "on", "8 800 555-35-35", "--hold", "--reason", "carrier warned of a campaign", "--by", "alice")
	if code != 0 || !strings.Contains(out, "UNDER ATTACK") || !strings.Contains(out, "alice") {
		t.Fatalf("attack on: exit %d %q %q", code, out, stderr)
	}
	deadline = time.Now().Add(10 * time.Second)
	for got = callOnce(t, trunk, target, "+79990009900", nil); got != "challenge"; got = callOnce(t, trunk, target, "+79990009900", nil) {
		if time.Now().After(deadline) {
			t.Fatalf("a new caller after attack on: %s, want challenge", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, _, code := runCLI(t, env, "attack", "on", floodLine, "--reason", "again"); code == 0 {
		t.Fatal("attack on while on: exit 0, want a refusal")
	}
	out, stderr, code = runCLI(t, env, "attack", "off", floodLine, "--reason", "campaign over", "--by", "alice")
	if code != 0 || !strings.Contains(out, "LineAttackEnded") || !strings.Contains(out, "not under attack") {
		t.Fatalf("attack off: exit %d %q %q", code, out, stderr)
	}
	out, _, code = runCLI(t, env, "attack", "status", floodLine, "--json")
	if code != 0 || !strings.Contains(out, `"underAttack":false`) {
		t.Fatalf("attack status: exit %d %q", code, out)
	}
	// The report counts the calls challenged by the attack and lists the
	// periods.
	out, stderr, code = runCLI(t, env, "report", "--format", "json")
	if code != 0 {
		t.Fatalf("report: %s", stderr)
	}
	if !strings.Contains(out, `"challengedByAttack"`) || !strings.Contains(out, `"attacks"`) {
		t.Fatalf("the report does not show the attack:\n%s", out)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFloodBench is the black-box flood of issue 13: fresh valid-looking
// mobile numbers at RATE calls/s for SECS seconds (callers that never
// type), next to HUMANS people calling at random moments who type the
// code they hear. It reports the share of flood calls left unbilled (they
// never reached the PBX), humans refused, challenged humans connected,
// and the time from the flood's first INVITE to the line's under-attack
// mode. A load run: set CALLGUARD_FLOOD=1 (go tool task bench-flood).
//
//	CALLGUARD_FLOOD=1 [CALLGUARD_FLOOD_RATE=30 CALLGUARD_FLOOD_SECS=20 CALLGUARD_FLOOD_HUMANS=20] go test -run FloodBench -v -timeout 10m ./tests/
func TestFloodBench(t *testing.T) {
	if os.Getenv("CALLGUARD_FLOOD") == "" {
		t.Skip("load run: set CALLGUARD_FLOOD=1 (go tool task bench-flood)")
	}
	envInt := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	rate, secs, humans := envInt("CALLGUARD_FLOOD_RATE", 30), envInt("CALLGUARD_FLOOD_SECS", 20), envInt("CALLGUARD_FLOOD_HUMANS", 20)
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	extra := []string{"GUARD_LANGUAGE=en", "GUARD_CALL_LOG=false", "GUARD_ATTACK_RATE=10"}
	if v := os.Getenv("CALLGUARD_FLOOD_GUARD_ENV"); v != "" {
		extra = append(extra, strings.Fields(v)...) // e.g. GUARD_ATTACK_RATE=0 for the figures without the mode
	}
	_, target, env := guardSIP(t, pbx.URI(), extra...)
	adminURL := strings.TrimPrefix(env[1], "GUARD_ADMIN_URL=")
	token := adminToken(t, strings.TrimPrefix(env[0], "GUARD_DATA_DIR="))
	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+3*time.Minute)
	defer cancel()
	var (
		onAt  time.Time
		watch sync.WaitGroup
	)
	start := time.Now()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watch.Go(func() {
		for watchCtx.Err() == nil {
			if on, since := attackMode(t, adminURL, token); on {
				onAt = since
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	// The humans: each at its own moment of the flood, a number of its
	// own; it types the code it hears, or talks when passed. One who did
	// not get through (did not make out the code) calls again once, as
	// people do.
	type attempt struct {
		challenged, connected bool
		refused               int
		err                   error
	}
	type human struct{ first, again attempt }
	call := func(number string) (r attempt) {
		c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: number, Callee: "88005553535", Quiet: true})
		if err != nil {
			r.err = err
			return r
		}
		defer c.Close()
		final, err := c.WaitFinal(ctx)
		if err != nil {
			r.err = err
			return r
		}
		if final.Status >= 300 {
			r.refused = final.Status
			return r
		}
		for _, resp := range c.Responses() {
			r.challenged = r.challenged || resp.Status == 183
		}
		if r.challenged {
			hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
			defer hcancel()
			code, err := c.HearCode(hctx, sounds.NewRecognizer(prompts), siptest.HearOptions{Digits: 2})
			if err != nil {
				r.err = fmt.Errorf("hearing the code: %w", err)
				return r
			}
			if err := c.Type(hctx, code, siptest.DTMFOptions{Method: siptest.DTMFRFC4733}); err != nil {
				r.err = err
				return r
			}
		}
		pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
		defer pcancel()
		err = siptest.Poll(pctx, 50*time.Millisecond, func() error {
			for _, pc := range pbx.Calls() {
				if strings.Contains(pc.Caller, number) {
					if _, ok := pc.Answered(); ok {
						return nil
					}
				}
			}
			return fmt.Errorf("%s not connected to the PBX", number)
		})
		r.connected = err == nil
		_ = c.Hangup(ctx)
		return r
	}
	results := make([]human, humans)
	var wg sync.WaitGroup
	for h := range humans {
		wg.Go(func() {
			time.Sleep(time.Duration(h) * time.Duration(secs) * time.Second / time.Duration(humans))
			number := fmt.Sprintf("+7992%07d", 1000000+h)
			results[h].first = call(number)
			if f := results[h].first; !f.connected && f.refused == 0 {
				time.Sleep(2 * time.Second)
				results[h].again = call(number)
			}
		})
	}
	res, err := siptest.LoadRun(ctx, target, float64(rate), time.Duration(secs)*time.Second,
		siptest.LoadOptions{Callee: "88005553535", Caller: floodCaller, Hold: 10 * time.Second, Timeout: 20 * time.Second, MaxCalls: rate*secs + 1})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	stopWatch()
	watch.Wait()

	billed := 0
	for _, pc := range pbx.Calls() {
		if strings.Contains(pc.Caller, "7991") {
			billed++ // a flood call the PBX got: passed, answered, held 10 s
		}
	}
	var challenged, connected, connectedAgain, refused, failed int
	for _, r := range results {
		for _, a := range []attempt{r.first, r.again} {
			if a.err != nil {
				failed++
				t.Logf("human: %v", a.err)
			}
			if a.refused != 0 {
				refused++
			}
		}
		if r.first.challenged {
			challenged++
			if r.first.connected {
				connected++
			}
			if r.first.connected || r.again.connected {
				connectedAgain++
			}
		}
	}
	unbilled := 100 * float64(res.Calls-billed) / float64(max(res.Calls, 1))
	onAfter := "never"
	if !onAt.IsZero() {
		onAfter = onAt.Sub(start).Round(time.Millisecond).String()
	}
	connectedPct, againPct := 100.0, 100.0
	if challenged > 0 {
		connectedPct = 100 * float64(connected) / float64(challenged)
		againPct = 100 * float64(connectedAgain) / float64(challenged)
	}
	t.Logf("FLOOD %d calls/s for %d s: %d flood calls placed, %d reached the PBX (billed), %.1f%% unbilled; under attack %s after the first INVITE",
		rate, secs, res.Calls, billed, unbilled, onAfter)
	t.Logf("FLOOD humans: %d, refused %d, attempts failed %d (could not make out the code), challenged %d, of them connected at the first call %d (%.0f%%), after one more call %d (%.0f%%)",
		humans, refused, failed, challenged, connected, connectedPct, connectedAgain, againPct)
	t.Logf("FLOOD load client: %s", res)
	if unbilled < 95 {
		t.Errorf("%.1f%% of flood calls unbilled, goal at least 95%%", unbilled)
	}
	if refused > 0 {
		t.Errorf("%d humans refused, goal none", refused)
	}
	// A person who did not make out the code calls again: the goal is
	// about people getting through. The first-call figure is logged; on
	// a starved machine the test's recognizer misses codes in late audio.
	if againPct < 95 {
		t.Errorf("%.1f%% of challenged humans connected (%.1f%% at their first call), goal at least 95%%", againPct, connectedPct)
	}
}
