package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// Per-line settings and schedules through the binary and over real SIP:
// a called line's own hour limit challenges the call that breaks it while
// another line keeps the global limit; a schedule whose window covers now
// (in GUARD_TIMEZONE) lowers the limit for every line; the audit names
// the line's settings or the schedule that set the limit, with who and
// why; the lists show them and the CLI refuses what is malformed.
func TestLineSettingsAndSchedulesOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	const zone = "Europe/Moscow"
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	_, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en", "GUARD_TIMEZONE="+zone, "GUARD_LIMIT_HOUR=5", "GUARD_LIMIT_DAY=20")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	cli := func(args ...string) string {
		t.Helper()
		out, stderr, code := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("callguard %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		return out
	}
	// callTo calls line from caller and says what happened.
	callTo := func(line, caller string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: caller, Callee: line, Quiet: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		final, err := c.WaitFinal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kind := "pass"
		if final.Status >= 300 {
			kind = "reject"
		}
		for _, r := range c.Responses() {
			if r.Status == 183 {
				kind = "challenge"
			}
		}
		_ = c.Hangup(ctx)
		return kind
	}
	const card, other = "88005553535", "88001000000"

	out := cli("line", "set", card, "--limit-hour", "1", "--reason", "card line: few repeat callers", "--by", "alice")
	if !strings.Contains(out, "line +78005553535: [LineSettingsSet]") {
		t.Fatalf("line set printed %q", out)
	}
	const a = "+79990001111"
	if got := callTo(card, a); got != "pass" {
		t.Fatalf("first call to the card line: %s, want pass", got)
	}
	if got := callTo(card, a); got != "challenge" {
		t.Fatalf("second call to the card line in an hour: %s, want challenge (its hour limit is 1)", got)
	}
	const b = "+79990002222"
	for i := range 3 {
		if got := callTo(other, b); got != "pass" {
			t.Fatalf("call %d to another line: %s, want pass (global hour limit 5)", i+1, got)
		}
	}
	// A replay tries settings for the other line before they are set: b's
	// third call would have been challenged under an hour limit of 2.
	out = cli("replay", "--try-line", other+":limit-hour=2")
	if !strings.Contains(out, "Trying settings of line +78001000000: limit-hour=2") || !strings.Contains(out, "pass -> challenge level 3 (hourly-limit)") ||
		!strings.Contains(out, b) {
		t.Fatalf("replay --try-line:\n%s", out)
	}
	if _, stderr, code := runCLI(t, env, "replay", "--try-line", other+":limit-hour"); code != 2 || !strings.Contains(stderr, "SETTING=VALUE") {
		t.Fatalf("replay --try-line without a value: exit %d, %q", code, stderr)
	}
	out = cli("audit", a)
	if !strings.Contains(out, "2 calls in the last hour, limit 1, set by settings of line +78005553535, by alice: card line: few repeat callers") {
		t.Fatalf("the audit does not explain the line's limit:\n%s", out)
	}
	out = cli("line", "list")
	if !strings.Contains(out, "line +78005553535: limit-hour=1") || !strings.Contains(out, "alice") {
		t.Fatalf("line list:\n%s", out)
	}

	// The line's own under-attack threshold (globally off here,
	// GUARD_ATTACK_RATE=0): the line grain applies it.
	cli("line", "set", other, "--attack-rate", "30", "--reason", "ad campaign", "--by", "alice")
	if out = cli("attack", "status", other, "--json"); !strings.Contains(out, `"threshold":30`) {
		t.Fatalf("attack status after line set --attack-rate 30:\n%s", out)
	}
	if out = cli("line", "list"); !strings.Contains(out, "line +78001000000: attack-rate=30") {
		t.Fatalf("line list:\n%s", out)
	}
	if _, stderr, code := runCLI(t, env, "line", "set", other, "--attack-rate", "-1", "--reason", "x"); code == 0 || !strings.Contains(stderr, "attack-rate") {
		t.Fatalf("line set --attack-rate -1: exit %d, %q", code, stderr)
	}
	cli("line", "clear", other, "--reason", "campaign over")

	// A schedule whose window covers now, for every line: the hour limit
	// is 2 there. The line's own settings are cleared first (a schedule
	// applies after them, so it would win anyway; this shows it alone).
	cli("line", "clear", card, "--reason", "campaign over")
	now := time.Now().In(loc)
	from, to := now.Add(-time.Hour).Format("15:04"), now.Add(2*time.Hour).Format("15:04")
	out = cli("schedule", "add", "night", "--from", from, "--to", to, "--limit-hour", "2", "--reason", "bots call at night", "--by", "bob")
	if !strings.Contains(out, "schedule night: [ScheduleAdded]") {
		t.Fatalf("schedule add printed %q", out)
	}
	const c = "+79990003333"
	for i, want := range []string{"pass", "pass", "challenge"} {
		if got := callTo(other, c); got != want {
			t.Fatalf("call %d under the schedule: %s, want %s", i+1, got, want)
		}
	}
	out = cli("audit", c)
	explain := "3 calls in the last hour, limit 2, set by schedule 'night' (" + from + "–" + to + " every day " + zone + "), by bob: bots call at night"
	if !strings.Contains(out, explain) {
		t.Fatalf("the audit does not explain the schedule; want %q in:\n%s", explain, out)
	}
	out = cli("schedules")
	if !strings.Contains(out, "schedule night: "+from+"–"+to+" every day "+zone+", every line: limit-hour=2 [IN FORCE]") {
		t.Fatalf("schedules:\n%s", out)
	}
	var v struct {
		Schedules []struct {
			Name   string `json:"name"`
			Active bool   `json:"active"`
		} `json:"schedules"`
	}
	if err := json.Unmarshal([]byte(cli("schedules", "--json")), &v); err != nil || len(v.Schedules) != 1 || !v.Schedules[0].Active {
		t.Fatalf("schedules --json: %v %+v", err, v)
	}

	// Refusals, in one sentence each, nothing written.
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"line", "set", card, "--limit-day", "1", "--reason", "typo"}, "must be at least"},
		{[]string{"line", "set", card, "--reason", "nothing"}, "none given"},
		{[]string{"line", "set", card, "--limit-level", "12", "--reason", "typo"}, "want 1 to 9"},
		{[]string{"line", "clear", card, "--reason", "again"}, "has no settings of its own"},
		{[]string{"schedule", "add", "night", "--from", "01:00", "--to", "02:00", "--limit-hour", "1", "--reason", "again"}, "remove it first"},
		{[]string{"schedule", "add", "x", "--from", "1am", "--to", "02:00", "--limit-hour", "1", "--reason", "typo"}, "want HH:MM"},
		{[]string{"schedule", "add", "x", "--from", "01:00", "--to", "02:00", "--days", "weekend", "--limit-hour", "1", "--reason", "typo"}, "mon..sun"},
		{[]string{"schedule", "remove", "nope", "--reason", "typo"}, "no schedule nope"},
	} {
		_, stderr, code := runCLI(t, env, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.say) {
			t.Errorf("callguard %s: exit %d, %q; want a refusal saying %q", strings.Join(tc.args, " "), code, stderr, tc.say)
		}
	}

	// Removed, the global limit holds again.
	cli("schedule", "remove", "night", "--reason", "morning")
	const d = "+79990004444"
	for i := range 3 {
		if got := callTo(other, d); got != "pass" {
			t.Fatalf("call %d after the schedule was removed: %s, want pass", i+1, got)
		}
	}
}
