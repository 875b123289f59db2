package readside

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/simtest"
	"github.com/callguard/callguard/events/schema"
)

const (
	crashDirEnv  = "READSIDE_CRASH_CHILD_DIR"
	crashIterEnv = "READSIDE_CRASH_CHILD_ITER"
)

// crashNow is the clock of the crash test's queries: after every call.
var crashNow = start.Add(30 * 24 * time.Hour)

// TestCrashChild is the process TestKillWhileProjecting kills: it
// projects the store in its directory in small batches (many commits to
// be caught in the middle of) while appending new calls.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKillWhileProjecting")
	}
	iter, _ := strconv.Atoi(os.Getenv(crashIterEnv))
	ctx := context.Background()
	store := openStore(t, filepath.Join(dir, "events"))
	rs := openReadSide(t, dir, store, func() time.Time { return crashNow }, 37+iter)
	if err := rs.Start(ctx); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("READY")
	// New calls from callers of this run only (the simulation's policy
	// state starts empty), landing while the projections catch up.
	sim := simtest.New(t, store, policy.DefaultConfig())
	rng := rand.New(rand.NewPCG(uint64(iter), 99))
	for n := 0; ; n++ {
		sim.Place(simtest.Call{
			Caller: fmt.Sprintf("+7988%02d%05d", iter, rng.IntN(40)), Callee: simtest.Callees[n%2],
			At: start.Add(time.Duration(iter)*time.Hour + time.Duration(n)*time.Second), Outcome: schema.Failed,
			PBX: simtest.PBX(rng.IntN(4)), Talk: time.Duration(rng.IntN(300)) * time.Second,
		})
	}
}

// TestKillWhileProjecting kills a process that is projecting (and
// appending) with SIGKILL at random moments, several times over, then
// lets the projections catch up and compares them with projections built
// from scratch over the same log: byte for byte in the databases and
// field by field in every query. Checkpoint after apply, in one
// transaction, means nothing is lost and nothing counted twice.
func TestKillWhileProjecting(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	ctx := context.Background()
	dir := t.TempDir()
	store := openStore(t, filepath.Join(dir, "events"))
	sim := simtest.New(t, store, policy.DefaultConfig())
	sim.Buffer = 5000
	calls := 6000
	kills := 6
	if testing.Short() {
		calls, kills = 2000, 3
	}
	sim.Mixed(rand.New(rand.NewPCG(3, 4)), 300, calls, start, 4)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	midway := 0
	for i := range kills {
		crashChild(t, dir, i)
		if progress := checkpoints(t, dir); progress != "" {
			midway++
			t.Logf("kill %d: %s", i+1, progress)
		}
	}
	if midway == 0 {
		t.Fatal("no kill caught a projection between the start and the head of the log")
	}

	store = openStore(t, filepath.Join(dir, "events"))
	clock := func() time.Time { return crashNow }
	resumed := openReadSide(t, dir, store, clock, 0)
	if err := resumed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := resumed.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	clean := openReadSide(t, filepath.Join(dir, "clean"), store, clock, 0)
	if err := clean.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := clean.Runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	got, want := readModels(t, resumed), readModels(t, clean)
	if d := simtest.Diff(got, want); len(d) > 0 {
		t.Fatalf("read models after %d kills differ from a clean rebuild:\n%s", kills, strings.Join(d, "\n"))
	}
	head, _ := store.Head(ctx)
	t.Logf("%d kills; %d events in the log; %d calls in the reports", kills, head.Commit, got.Daily.Total.CallsIn)
}

// checkpoints describes where the projections stand after a kill, or ""
// when every one is at the head (the kill came too late to test much).
func checkpoints(t *testing.T, dir string) string {
	t.Helper()
	store := openStore(t, filepath.Join(dir, "events"))
	defer store.Close()
	rs := openReadSide(t, dir, store, func() time.Time { return crashNow }, 0)
	defer rs.Close()
	sts, err := rs.Runner.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	behind := false
	for _, st := range sts {
		parts = append(parts, fmt.Sprintf("%s at %s of %s", st.Name, st.Checkpoint, st.Head))
		behind = behind || st.LagEvents > 0
	}
	if !behind {
		return ""
	}
	return strings.Join(parts, ", ")
}

// crashChild runs the child until it is projecting, kills it at a
// random moment and checks that it was killed mid-way, not finished.
func crashChild(t *testing.T, dir string, iter int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashIterEnv+"="+strconv.Itoa(iter))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "READY":
				ready <- nil
			case strings.HasPrefix(line, "ERROR"):
				ready <- fmt.Errorf("child: %s", line)
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start: %s", stderr.String())
	}
	time.Sleep(time.Duration(30+rand.IntN(400)) * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if strings.Contains(stderr.String(), "FAIL") || strings.Contains(stderr.String(), "panic") {
		t.Fatalf("child failed before the kill:\n%s", stderr.String())
	}
}
