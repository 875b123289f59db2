package tests

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// adminAddr finds the admin API's address in the guard's log.
func adminAddr(t *testing.T, g *guardProcess) string {
	t.Helper()
	re := regexp.MustCompile(`msg="admin API listening".* addr=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(g.output()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the guard did not log its admin address:\n%s", g.output())
	return ""
}

// An admin whitelists and blocks numbers with the CLI against a running
// guard, reads a caller's standing and history, and asks what a lower
// limit would change; then, with the guard stopped, audits the store
// directly. Every command goes over real HTTP to real grains.
func TestAdminCommandsFromTheCLI(t *testing.T) {
	dir := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+dir, "GUARD_ADMIN_LISTEN=127.0.0.1:0")
	env := []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}

	out, stderr, code := runCLI(t, env, "whitelist", "add", "8 999 000-11-22", "--reason", "VIP client", "--by", "alice")
	if code != 0 || !strings.Contains(out, "+79990001122: Whitelisted") {
		t.Fatalf("whitelist add: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, env, "block", "+79990003344", "--level", "7", "--reason", "fraud reports", "--by", "bob", "--idempotency-key", "k1")
	if code != 0 || !strings.Contains(out, "BlockApplied") {
		t.Fatalf("block: exit %d, %q %q", code, out, stderr)
	}
	out, _, code = runCLI(t, env, "block", "+79990003344", "--level", "7", "--reason", "fraud reports", "--by", "bob", "--idempotency-key", "k1")
	if code != 0 || !strings.Contains(out, "repeated") {
		t.Fatalf("repeated block: exit %d, %q", code, out)
	}
	_, stderr, code = runCLI(t, env, "block", "+79990003344", "--level", "12", "--reason", "x")
	if code != 1 || !strings.Contains(stderr, "level is 12") || strings.Contains(stderr, "400") {
		t.Fatalf("level 12: exit %d, stderr %q: want a refusal naming the level", code, stderr)
	}
	_, stderr, code = runCLI(t, env, "unblock", "+79990009999", "--reason", "x")
	if code != 1 || !strings.Contains(stderr, "not blocked") {
		t.Fatalf("unblock of an unblocked number: exit %d, stderr %q", code, stderr)
	}
	out, _, code = runCLI(t, env, "status", "89990003344")
	var st struct {
		Block struct {
			Level  int    `json:"level"`
			Effect string `json:"effect"`
		} `json:"block"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Block.Level != 7 || st.Block.Effect != "reject" {
		t.Fatalf("status: exit %d, %s", code, out)
	}
	out, _, code = runCLI(t, env, "audit", "+79990003344")
	if code != 0 || !strings.Contains(out, "level 7 manual by bob: fraud reports") {
		t.Fatalf("audit through the running guard: exit %d\n%s", code, out)
	}
	out, stderr, code = runCLI(t, env, "replay", "--limit-hour", "2")
	if code != 0 || !strings.Contains(out, "limit-hour=2") {
		t.Fatalf("replay through the running guard: exit %d\n%s\n%s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, env, "replay", "--limit-hour", "lots")
	if code != 2 || !strings.Contains(stderr, "limit-hour") {
		t.Fatalf("replay with a bad setting: exit %d, %q", code, stderr)
	}

	g.stop(t)
	out, _, code = runCLI(t, []string{"GUARD_DATA_DIR=" + dir}, "audit", "--json", "+79990001122")
	var tl struct {
		Entries []struct {
			Kind string `json:"kind"`
		} `json:"entries"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil || len(tl.Entries) != 1 || tl.Entries[0].Kind != "whitelist" {
		t.Fatalf("audit of the stopped guard's store: exit %d\n%s", code, out)
	}
}

func TestAdminAPIBeyondLoopbackNeedsAToken(t *testing.T) {
	g, err := runGuard(t, "GUARD_DATA_DIR="+t.TempDir(), "GUARD_ADMIN_LISTEN=0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	err = <-g.done
	g.done <- err
	if err == nil || !strings.Contains(g.output(), "without a token") {
		t.Fatalf("guard listening beyond loopback without a token: exit %v\n%s", err, g.output())
	}
}
