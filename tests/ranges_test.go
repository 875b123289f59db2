package tests

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// Range rules through the binary and over real SIP: a range blocked by
// the CLI rejects a caller in it, the audit says which rule, who set it
// and why; the number's own whitelist entry, and then a whitelist prefix,
// beat the range block; removed, the rules stop applying; the lists show
// the rules and the CLI refuses what is malformed or already there.
func TestRangeRulesOverSIP(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en")
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
	const caller, neighbour, outside = "+79991234567", "+79991234568", "+79991244567"

	out := cli("block", "--range", "89991230000-89991239999", "--level", "7", "--reason", "fraud reports", "--by", "alice")
	if !strings.Contains(out, "+79991230000-+79991239999 (block): [RangeBlocked]") {
		t.Fatalf("block --range printed %q", out)
	}
	got := callOnce(t, trunk, target, caller, nil)
	if !strings.HasPrefix(got, "reject 603") || !strings.Contains(got, "range-block") {
		t.Fatalf("caller in the blocked range: %q, want 603 with a Reason naming the range block", got)
	}
	if strings.Contains(got, "alice") || strings.Contains(got, "fraud reports") {
		t.Errorf("the Reason header tells the carrier who set the rule and why: %q", got)
	}
	if got := callOnce(t, trunk, target, outside, nil); got != "pass" {
		t.Fatalf("caller outside the range: %q, want pass", got)
	}
	// A replay tries a rule before it is enforced: the outside caller's
	// call would have been rejected under a block of its prefix.
	out = cli("replay", "--try-block", "8 999 124:8")
	if !strings.Contains(out, "Trying range rule: block +7999124 at level 8") || !strings.Contains(out, "pass -> reject level 8 (range-block)") ||
		!strings.Contains(out, outside) || strings.Contains(out, caller) {
		t.Fatalf("replay --try-block:\n%s", out)
	}
	if _, stderr, code := runCLI(t, env, "replay", "--try-block", "+7999124"); code != 2 || !strings.Contains(stderr, "RANGE:LEVEL") {
		t.Fatalf("replay --try-block without a level: exit %d, %q", code, stderr)
	}
	out = cli("audit", caller)
	if !strings.Contains(out, "REJECT level 7 (range-block: blocked by range +79991230000-+79991239999 at level 7, set by alice: fraud reports)") {
		t.Fatalf("the audit does not explain the range block:\n%s", out)
	}

	// The number's own whitelist entry beats the range block; its
	// neighbour stays blocked.
	cli("whitelist", "add", caller, "--reason", "VIP client")
	if got := callOnce(t, trunk, target, caller, nil); got != "pass" {
		t.Fatalf("whitelisted number in the blocked range: %q, want pass", got)
	}
	if got := callOnce(t, trunk, target, neighbour, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("neighbour in the blocked range: %q, want reject", got)
	}

	var st struct {
		NextCall struct{ Verdict, Rule string } `json:"nextCall"`
		Ranges   []struct{ Range, List, By string }
	}
	out = cli("status", neighbour)
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.NextCall.Verdict != "reject" || st.NextCall.Rule != "range-block" ||
		len(st.Ranges) != 1 || st.Ranges[0].Range != "+79991230000-+79991239999" || st.Ranges[0].By != "alice" {
		t.Fatalf("status of the neighbour: %v\n%s", err, out)
	}

	// A whitelist prefix beats the block too, for every number under it.
	out = cli("whitelist", "add", "--prefix", "8 999 123 45", "--reason", "branch office", "--until", "1h")
	if !strings.Contains(out, "+799912345 (whitelist): [RangeWhitelisted]") {
		t.Fatalf("whitelist add --prefix printed %q", out)
	}
	if got := callOnce(t, trunk, target, neighbour, nil); got != "pass" {
		t.Fatalf("neighbour under a whitelisted prefix: %q, want pass", got)
	}
	out = cli("audit", neighbour)
	if !strings.Contains(out, "PASS (range-whitelist: whitelisted by prefix +799912345, set by") {
		t.Fatalf("the audit does not explain the range whitelist:\n%s", out)
	}

	// Listed beside the numbers, with who and why.
	out = cli("ranges")
	for _, want := range []string{"block      +79991230000-+79991239999  7", "reject", "alice", "fraud reports", "whitelist  +799912345", "branch office", "2 rules"} {
		if !strings.Contains(out, want) {
			t.Fatalf("ranges lacks %q:\n%s", want, out)
		}
	}
	var page struct {
		Items []struct {
			Range, List, Effect string
			Level               int
		} `json:"items"`
		Total int `json:"total"`
	}
	out = cli("ranges", "--list", "block", "--format", "json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || page.Total != 1 || page.Items[0].Level != 7 || page.Items[0].Effect != "reject" {
		t.Fatalf("ranges --list block --format json: %v\n%s", err, out)
	}

	// Refusals, in one sentence each, nothing written.
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"block", "--range", "+79991230000-+79991239999", "--level", "5", "--reason", "again"}, "remove it first"},
		{[]string{"block", "--range", "+79991239999-+79991230000", "--level", "5", "--reason", "typo"}, "low bound first"},
		{[]string{"block", "--prefix", "+7abc", "--level", "5", "--reason", "typo"}, "not a number"},
		{[]string{"block", "--prefix", "+7999", "--reason", "typo"}, "level is required"},
		{[]string{"unblock", "--prefix", "+7999", "--reason", "not there"}, "no such range rule"},
	} {
		_, stderr, code := runCLI(t, env, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.say) {
			t.Errorf("callguard %s: exit %d, %q; want a refusal saying %q", strings.Join(tc.args, " "), code, stderr, tc.say)
		}
	}
	if _, stderr, code := runCLI(t, env, "block", "+79990000000", "--prefix", "+7999", "--level", "5", "--reason", "x"); code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("a number and --prefix: exit %d, %q", code, stderr)
	}

	// Removed, the rules stop applying at once.
	cli("whitelist", "remove", "--prefix", "+799912345", "--reason", "office closed")
	if got := callOnce(t, trunk, target, neighbour, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("neighbour after the whitelist prefix was removed: %q, want reject", got)
	}
	cli("unblock", "--range", "+79991230000-+79991239999", "--reason", "cleared by the fraud team")
	if got := callOnce(t, trunk, target, neighbour, nil); got != "pass" {
		t.Fatalf("neighbour after the range block was removed: %q, want pass", got)
	}

	// Restarted, the node loads the rules from the log before it decides.
	cli("block", "--prefix", "+7999124", "--level", "9", "--reason", "second wave")
	g.stop(t)
	g2, target2, _ := guardSIPIn(t, dirOf(env), pbx.URI(), "GUARD_LANGUAGE=en")
	defer g2.stop(t)
	if got := callOnce(t, trunk, target2, outside, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("caller under a prefix blocked before the restart: %q, want reject", got)
	}
}

// guardSIPIn is guardSIP on the data directory dir (a restart).
func guardSIPIn(t *testing.T, dir, pbxURI string, extra ...string) (*guardProcess, string, []string) {
	t.Helper()
	sipAddr := "127.0.0.1:" + strconv.Itoa(porttest.Port(t))
	env := append([]string{
		"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_LISTEN=127.0.0.1:0",
		"GUARD_SIP_LISTEN=" + sipAddr, "GUARD_TRUSTED_PEERS=127.0.0.1/32",
		"GUARD_PBX_URI=" + pbxURI,
	}, extra...)
	g := startGuard(t, env...)
	requireSIPListener(t, sipAddr)
	return g, sipAddr, []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
}

// dirOf returns the GUARD_DATA_DIR of a CLI environment.
func dirOf(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GUARD_DATA_DIR="); ok {
			return v
		}
	}
	return ""
}
