package tests

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A newcomer's first run: `callguard demo` starts a guard, a PBX and a
// carrier on loopback and calls through them. A small mix keeps it short:
// one bot redialling, two people, one of them flagged and challenged.
// The summary accounts for every call, and the closing hint works: the
// demo's store is kept and the audit it suggests explains the bot's block.
func TestDemoStopsTheBotAndConnectsThePeople(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo places real calls with 3 s grace windows; skipped in -short")
	}
	r := runIn(t, t.TempDir(), nil, "demo", "--bots", "1", "--redials", "6", "--humans", "2", "--flagged", "1", "--seed", "3")
	hint := regexp.MustCompile(`(?m)^  GUARD_DATA_DIR=(\S+) callguard audit (\S+)$`).FindStringSubmatch(r.stdout)
	if hint != nil {
		t.Cleanup(func() { os.RemoveAll(hint[1]) })
	}
	if r.code != 0 {
		t.Fatalf("demo: %v", r)
	}
	out := r.stdout
	connected := regexp.MustCompile(`human calls connected\s+(\d+) of (\d+)`).FindStringSubmatch(out)
	if connected == nil || connected[1] != connected[2] {
		t.Fatalf("not every person got through:\n%s", out)
	}
	// Every call is in one class of its line, and the classes add up.
	classes := func(line string) (total int, by map[string]int) {
		m := regexp.MustCompile(`(?m)^` + line + `\s+(\d+): (.*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %q line:\n%s", line, out)
		}
		total, _ = strconv.Atoi(m[1])
		by = map[string]int{}
		sum := 0
		for _, part := range strings.Split(m[2], ", ") {
			n, class, ok := strings.Cut(part, " ")
			count, err := strconv.Atoi(n)
			if !ok || err != nil {
				t.Fatalf("%s: %q is not COUNT CLASS", line, part)
			}
			by[class] = count
			sum += count
		}
		if sum != total {
			t.Fatalf("%s: the classes add up to %d of %d calls:\n%s", line, sum, total, out)
		}
		return total, by
	}
	calls, bot := classes("bot calls")
	// Limit 3 an hour: calls 1-3 pass (under the limit), 4 and 5 are
	// challenged and fail, which escalates (2 failures): call 6 is
	// rejected.
	passed, unbilled, rejected := bot["passed to the PBX (under the hourly limit)"], bot["challenged and hung up inside the grace interval (unbilled)"], bot["rejected unanswered"]
	if calls != 6 || passed != 3 || unbilled != 2 || rejected != 1 {
		t.Fatalf("bot: %d calls: %d passed, %d challenged unbilled, %d rejected; want 6: 3, 2, 1:\n%s", calls, passed, unbilled, rejected, out)
	}
	if n, _ := classes("people's calls"); n < 2 {
		t.Fatalf("people made %d calls, want at least 2:\n%s", n, out)
	}
	if !strings.Contains(out, "connected to the PBX") {
		t.Fatalf("the flagged person was not challenged and connected:\n%s", out)
	}

	// The closing hint, run as printed, from another directory.
	if hint == nil {
		t.Fatalf("no audit hint:\n%s", out)
	}
	if hint[2] != "+79000001000" {
		t.Fatalf("the hint audits %s, want the bot +79000001000", hint[2])
	}
	a := runIn(t, t.TempDir(), []string{"GUARD_DATA_DIR=" + hint[1]}, "audit", hint[2])
	if a.code != 0 || !strings.Contains(a.stdout, "escalation: 2 failed challenges") || !strings.Contains(a.stdout, "REJECT") {
		t.Fatalf("the demo's hint does not explain the bot's block: %v", a)
	}
}
