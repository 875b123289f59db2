package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/callguard/callguard/sip/siptest"
)

// Country and number-type rules through the binary and over real SIP: a
// caller with a foreign number is challenged by a country rule set with
// the CLI, and the audit explains it by the rule, who set it and why; a
// premium-rate number is rejected by a number-type rule; unknown regions
// and types are refused with a 400 naming the field; removed, the rule
// stops applying.
func TestOriginRulesOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{NoInBandDetection: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	_, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en")
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
	const baku, london, premium, moscow = "+994501234567", "+447400123456", "+449061234567", "+79161234567"

	if got := callOnce(t, trunk, target, baku, nil); got != "pass" {
		t.Fatalf("caller from Azerbaijan without rules: %q, want pass", got)
	}
	out := cli("country", "block", "az", "--level", "3", "--reason", "fraud wave", "--by", "alice")
	if !strings.Contains(out, "country AZ: [OriginRuleSet]") {
		t.Fatalf("country block printed %q", out)
	}
	cli("numtype", "block", "premium-rate", "--level", "7", "--reason", "premium numbers never call a bank")
	if got := callOnce(t, trunk, target, baku, nil); got != "challenge" {
		t.Fatalf("caller from Azerbaijan under a country rule at level 3: %q, want challenge", got)
	}
	if got := callOnce(t, trunk, target, premium, nil); !strings.HasPrefix(got, "reject 603") || !strings.Contains(got, "number-type") {
		t.Fatalf("premium-rate caller: %q, want 603 by the number-type rule", got)
	}
	if got := callOnce(t, trunk, target, london, nil); got != "pass" {
		t.Fatalf("UK mobile caller: %q, want pass (no rule on GB or mobile)", got)
	}
	if got := callOnce(t, trunk, target, moscow, nil); got != "pass" {
		t.Fatalf("Russian caller: %q, want pass", got)
	}
	out = cli("audit", baku)
	if !strings.Contains(out, "CHALLENGE level 3 (calls from country AZ at level 3, set by alice: fraud wave)") {
		t.Fatalf("the audit does not explain the country rule:\n%s", out)
	}
	out = cli("audit", baku, "--json")
	var audit struct {
		Entries []struct {
			Call *struct {
				Rule   string
				Origin *struct {
					Country, Type string
					Rules         []struct{ Kind, Value, By, Why string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &audit); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	found := false
	for _, e := range audit.Entries {
		if c := e.Call; c != nil && c.Rule == "country" && c.Origin != nil && c.Origin.Country == "AZ" && c.Origin.Type == "mobile" &&
			len(c.Origin.Rules) == 1 && c.Origin.Rules[0].By == "alice" && c.Origin.Rules[0].Why == "fraud wave" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the audit's JSON does not record the country, type and rule of the challenged call:\n%s", out)
	}
	out = cli("country", "list")
	if !strings.Contains(out, "AZ level 3") || !strings.Contains(out, "by alice: fraud wave") {
		t.Fatalf("country list:\n%s", out)
	}

	// Unknown regions and types: a clear 400 naming the field.
	for _, args := range [][]string{
		{"country", "block", "XX", "--level", "3", "--reason", "x"},
		{"numtype", "block", "premium", "--level", "3", "--reason", "x"},
	} {
		_, stderr, code := runCLI(t, env, args...)
		t.Logf("callguard %s: %s", strings.Join(args, " "), stderr)
		if code == 0 || !strings.Contains(stderr, "value") || !strings.Contains(stderr, args[2]) {
			t.Fatalf("callguard %s: exit %d, %q; want a refusal naming the value", strings.Join(args, " "), code, stderr)
		}
	}

	cli("country", "remove", "AZ", "--reason", "wave over")
	if got := callOnce(t, trunk, target, "+994501234568", nil); got != "pass" {
		t.Fatalf("caller from Azerbaijan after the rule's removal: %q, want pass", got)
	}
}
