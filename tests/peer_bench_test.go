package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSIPBenchmarkSideBySide runs the SIPp benchmark, tests/sipp/peer.sh:
// callguard (built from this tree) and, when kamailio is installed, the
// Kamailio peer, through the same scenarios, fixed rates and the
// maximum-sustained search. It takes minutes and both cores, so it runs only
// with CALLGUARD_BENCH_SIP=1; the script's settings (RATES, DURATION,
// SEARCH_DURATION, SEARCH_BUDGET, SUTS, ...) pass through the environment:
//
//	CALLGUARD_BENCH_SIP=1 DURATION=5 go test -run SIPBenchmarkSideBySide -v -timeout 20m ./tests/
//
// It checks that the run completed and that the table has a figure for every
// measurement of every system; the figures themselves are logged, not judged.
func TestSIPBenchmarkSideBySide(t *testing.T) {
	if os.Getenv("CALLGUARD_BENCH_SIP") != "1" {
		t.Skip("set CALLGUARD_BENCH_SIP=1 to run the SIPp benchmark beside Kamailio (tests/sipp/peer.sh: minutes, two cores)")
	}
	for _, tool := range []string{"sipp", "gcc", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: the benchmark needs sipp (apt-get install -y sip-tester), gcc, curl and bash", tool)
		}
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-10*time.Second))
		defer cancel()
	}
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("sipp", "peer.sh"), "all")
	cmd.Env = append(os.Environ(), "OUT="+out)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // the script stops what it started
	cmd.WaitDelay = 15 * time.Second
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	err := cmd.Run()
	t.Log("\n" + logs.String())
	if err != nil {
		t.Fatalf("tests/sipp/peer.sh: %v", err)
	}
	table, err := os.ReadFile(filepath.Join(out, "table.md"))
	if err != nil {
		t.Fatalf("the run wrote no table: %v", err)
	}
	rows := 0
	for _, line := range strings.Split(string(table), "\n") {
		if !strings.HasPrefix(line, "| reject") && !strings.HasPrefix(line, "| pass") {
			continue
		}
		rows++
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		for i, c := range cells[1:] {
			if c == "–" {
				t.Errorf("column %d has no figure in row %q", i+1, line)
			}
		}
	}
	if rows == 0 {
		t.Fatalf("no measurement rows in the table:\n%s", table)
	}
}
