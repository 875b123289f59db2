package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the callguard binary, built once per test run.
var binary = sync.OnceValues(func() (string, error) { return buildBinary(raceEnabled) })

// clusterBinary is the binary for guards that form a cluster of several,
// built without the race detector: protoactor-go's member list and block
// list read and write their fields unsynchronised when members come and
// go (races inside the library, reported at every topology change), so a
// -race guard in a multi-member cluster fails on the library's races,
// not ours. One guard alone runs the race-detecting binary.
var clusterBinary = sync.OnceValues(func() (string, error) { return buildBinary(false) })

func buildBinary(race bool) (string, error) {
	dir, err := os.MkdirTemp("", "callguard-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "callguard")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/callguard")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// guardProcess is a running `callguard serve`.
type guardProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	lines  chan string
	done   chan error
}

// startGuard runs `callguard serve` with the given GUARD_* variables and
// waits for it to say it is serving.
func startGuard(t *testing.T, env ...string) *guardProcess {
	t.Helper()
	g, err := runGuard(t, env...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitFor("callguard serving", 20*time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, g.output())
	}
	return g
}

func runGuard(t *testing.T, env ...string) (*guardProcess, error) {
	t.Helper()
	return runGuardBinary(t, binary, env...)
}

// startClusterGuard is startGuard for a guard in a cluster of several (see
// clusterBinary).
func startClusterGuard(t *testing.T, env ...string) *guardProcess {
	t.Helper()
	g, err := runGuardBinary(t, clusterBinary, env...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitFor("callguard serving", 20*time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, g.output())
	}
	return g
}

func runGuardBinary(t *testing.T, build func() (string, error), env ...string) (*guardProcess, error) {
	t.Helper()
	bin, err := build()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	// Every listener on a free port unless the test says otherwise (the
	// last value of a variable wins), so guards never collide. The lines'
	// under-attack detection is off unless the test turns it on: load
	// tests send many fresh numbers to one line on purpose.
	cmd.Env = append(append(os.Environ(), "GUARD_SIP_LISTEN=127.0.0.1:0", "GUARD_METRICS_LISTEN=127.0.0.1:0", "GUARD_ADMIN_LISTEN=127.0.0.1:0", "GUARD_ATTACK_RATE=0"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &guardProcess{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			g.mu.Lock()
			g.stderr.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
			select {
			case g.lines <- sc.Text():
			default:
			}
		}
		g.done <- cmd.Wait()
	}()
	t.Cleanup(func() { g.stop(t) })
	return g, nil
}

func (g *guardProcess) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

func (g *guardProcess) waitFor(text string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case line := <-g.lines:
			if strings.Contains(line, text) {
				return nil
			}
		case err := <-g.done:
			g.done <- err
			return fmt.Errorf("callguard exited (%v) before logging %q", err, text)
		case <-deadline:
			return fmt.Errorf("callguard did not log %q within %v", text, timeout)
		}
	}
}

// stop sends SIGINT and waits for a clean exit.
func (g *guardProcess) stop(t *testing.T) {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-g.done:
		g.done <- err
		if _, ok := err.(*exec.ExitError); ok {
			t.Errorf("callguard exited with %v on SIGINT\n%s", err, g.output())
		}
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		t.Errorf("callguard did not stop within 15s of SIGINT\n%s", g.output())
	}
}

// runCLI runs one callguard command and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errOut)
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}
