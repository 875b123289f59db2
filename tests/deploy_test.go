package tests

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// The deployment files of cmd/callguard/deploy against the real binary
// (their own package checks them against the code).
const deployDir = "../cmd/callguard/deploy"

// TestDeployEnvExampleIsAccepted: the systemd unit's sample settings are a
// configuration the binary accepts, as shipped and with its commented
// several-node lines switched on.
func TestDeployEnvExampleIsAccepted(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "env.example"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^(#?)(GUARD_\w+=.*)$`)
	var shipped, all []string
	for _, m := range line.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "" {
			shipped = append(shipped, m[2])
		}
		if !strings.HasSuffix(m[2], "=") { // a commented empty value stays unset
			all = append(all, m[2])
		}
	}
	if len(shipped) < 10 || len(all) <= len(shipped) {
		t.Fatalf("env.example: %d variables set, %d with the commented ones", len(shipped), len(all))
	}
	for name, vars := range map[string][]string{"as shipped": shipped, "several nodes": all} {
		t.Run(name, func(t *testing.T) {
			env := append(vars, "GUARD_DATA_DIR="+t.TempDir())
			out, stderr, code := runCLI(t, env, "config")
			if code != 0 {
				t.Fatalf("callguard config: exit %d\n%s", code, stderr)
			}
			if !strings.Contains(out, "203.0.113.10:5060") {
				t.Errorf("callguard config does not show the sample's GUARD_SIP_LISTEN:\n%s", out)
			}
			if strings.Contains(stderr, "is not a callguard setting") {
				t.Errorf("env.example sets a variable the guard ignores:\n%s", stderr)
			}
		})
	}
}

// TestEveryExportedMetricIsInTheMetricsPackage: every callguard_ metric a
// running guard serves is defined in projections/metrics, whose registry
// the dashboard and alert checks gather (go test ./cmd/callguard/deploy/);
// a metric registered elsewhere would escape them.
func TestEveryExportedMetricIsInTheMetricsPackage(t *testing.T) {
	g := startGuard(t, "GUARD_DATA_DIR="+t.TempDir(), "GUARD_CRM_URL=http://127.0.0.1:9/lookup")
	text := scrapeMetrics(t, g)
	var src strings.Builder
	files, err := filepath.Glob("../projections/metrics/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	served := regexp.MustCompile(`(?m)^# TYPE callguard_(\w+) `).FindAllStringSubmatch(text, -1)
	if len(served) < 20 {
		t.Fatalf("only %d callguard metrics served:\n%s", len(served), text)
	}
	for _, m := range served {
		if !strings.Contains(src.String(), `Name: "`+m[1]+`"`) && !strings.Contains(src.String(), `Namespace+"_`+m[1]+`"`) {
			t.Errorf("callguard_%s is served but not defined in projections/metrics", m[1])
		}
	}
}

// TestStopWithACallUpFitsTheUnit: SIGTERM, as systemctl stop sends it,
// with a call up: the guard hangs the call up, records it, and exits 0
// well inside the unit's TimeoutStopSec, so systemd never kills it mid-way.
func TestStopWithACallUpFitsTheUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(deployDir, "callguard.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("callguard.service has no TimeoutStopSec")
	}
	limit, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}

	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, _ := guardSIP(t, pbx.URI())
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const caller = "+79990007788"
	c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: caller, Callee: "88005553535", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WaitAnswer(ctx); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.done:
		g.done <- err
		if err != nil {
			t.Fatalf("callguard exited with %v on SIGTERM\n%s", err, g.output())
		}
	case <-time.After(limit):
		t.Fatalf("callguard still running %v after SIGTERM: systemd would SIGKILL it\n%s", limit, g.output())
	}
	took := time.Since(start)
	t.Logf("stopped %v after SIGTERM with a call up (TimeoutStopSec=%v)", took.Round(time.Millisecond), limit)
	if took > limit/2 {
		t.Errorf("stopped %v after SIGTERM: too close to TimeoutStopSec=%v", took, limit)
	}
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
	defer bcancel()
	if _, err := c.WaitBye(bctx); err != nil {
		t.Errorf("the caller got no BYE from the stopping guard: %v", err)
	}
	calls := pbx.Calls()
	if len(calls) != 1 {
		t.Fatalf("the PBX saw %d calls, want 1", len(calls))
	}
	if _, err := calls[0].WaitEnded(bctx); err != nil {
		t.Errorf("the PBX leg was not hung up by the stopping guard: %v", err)
	}
	// The call ran to its end inside the stop: its call log line says so.
	logged := regexp.MustCompile(`msg=call .*caller=\` + caller + ` .*end=shutdown`)
	if !logged.MatchString(g.output()) {
		t.Errorf("no call log line of the call ended by the shutdown:\n%s", g.output())
	}
}

// TestServeNotifiesSystemd: started as the unit's Type=notify starts it,
// with NOTIFY_SOCKET, the guard says READY=1 once it serves and
// STOPPING=1 when it is told to stop.
func TestServeNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case msg, ok := <-got:
			if !ok || !strings.Contains(msg, want) {
				t.Fatalf("notification %q, want %s", msg, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s within 20s", want)
		}
	}
	g := startGuard(t, "GUARD_DATA_DIR="+t.TempDir(), "NOTIFY_SOCKET="+sock)
	next("READY=1")
	g.stop(t)
	next("STOPPING=1")
}
