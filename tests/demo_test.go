package tests

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A newcomer's first run: `callguard demo` starts a guard, a PBX and a
// carrier on loopback and calls through them. A small mix keeps it short:
// one bot redialling, two people, one of them flagged and challenged.
func TestDemoStopsTheBotAndConnectsThePeople(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo places real calls with 3 s grace windows; skipped in -short")
	}
	out, stderr, code := runCLI(t, nil, "demo", "--bots", "1", "--redials", "6", "--humans", "2", "--flagged", "1", "--seed", "3")
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	connected := regexp.MustCompile(`human calls connected\s+(\d+) of (\d+)`).FindStringSubmatch(out)
	if connected == nil || connected[1] != connected[2] {
		t.Fatalf("not every person got through:\n%s", out)
	}
	bot := regexp.MustCompile(`bot calls\s+(\d+): (\d+) rejected unanswered, (\d+) challenged and hung up inside the grace interval`).FindStringSubmatch(out)
	if bot == nil {
		t.Fatalf("no bot summary:\n%s", out)
	}
	calls, _ := strconv.Atoi(bot[1])
	rejected, _ := strconv.Atoi(bot[2])
	unbilled, _ := strconv.Atoi(bot[3])
	// Limit 3 an hour: calls 4 and 5 are challenged and fail, which
	// escalates (2 failures): call 6 is rejected.
	if calls != 6 || unbilled != 2 || rejected != 1 {
		t.Fatalf("bot: %d calls, %d challenged unbilled, %d rejected; want 6, 2, 1:\n%s", calls, unbilled, rejected, out)
	}
	if !strings.Contains(out, "connected to the PBX") {
		t.Fatalf("the flagged person was not challenged and connected:\n%s", out)
	}
}
