package tests

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// The SIPp scenarios of tests/sipp drive the guard the way a load test in
// the field does: SIPp as the carrier (uac_pass.xml, uac_reject.xml) and as
// the PBX (uas_pbx.xml), the guard between them. The scenarios are first
// checked against the harness (siptest's PBX and trunk speak plain SIP), so
// a broken scenario is told apart from a broken guard.

const tollFree = siptest.DefaultCallee

// sippPath returns SIPp's path, or skips the test.
func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("sipp is not on PATH: install it with `apt-get install -y sip-tester` (.ci/run does)")
	}
	if testing.Short() {
		t.Skip("SIPp runs take seconds; skipped in -short mode")
	}
	return p
}

// writeInjection writes a SIPp injection file (-inf): SEQUENTIAL, then one
// line of fields per call.
func writeInjection(t *testing.T, name string, rows ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for _, r := range rows {
		b.WriteString(r + ";\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// freshCallers returns n distinct caller numbers no test blocks.
func freshCallers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// sippRun is one SIPp process.
type sippRun struct {
	name  string
	cmd   *exec.Cmd
	dir   string
	out   bytes.Buffer
	done  chan error
	stats string
}

// startSIPp starts SIPp with args plus statistics and error traces in a
// temporary directory. The scenario is a file of tests/sipp. It is killed
// when ctx ends or the test is over.
func startSIPp(ctx context.Context, t *testing.T, name, scenario string, args ...string) *sippRun {
	t.Helper()
	bin := sippPath(t)
	r := &sippRun{name: name, dir: t.TempDir(), done: make(chan error, 1)}
	r.stats = filepath.Join(r.dir, "stats.csv")
	sf, err := filepath.Abs(filepath.Join("sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"-sf", sf, "-i", "127.0.0.1", "-nostdin", "-aa",
		"-trace_stat", "-stf", r.stats, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(r.dir, "errors.log")}, args...)
	r.cmd = exec.CommandContext(ctx, bin, full...)
	r.cmd.Dir = r.dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	r.cmd.WaitDelay = 5 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// waitBound waits until SIPp has bound its UDP port: a probe request
// would count as a (failed) call in its statistics, so the test polls
// by trying to bind the port itself.
func waitBound(ctx context.Context, t *testing.T, r *sippRun, port int) {
	t.Helper()
	err := siptest.Poll(ctx, 20*time.Millisecond, func() error {
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("%s exited: %v", r.name, err)
		default:
		}
		c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil // taken: SIPp is listening
		}
		c.Close()
		return errors.New("port still free")
	})
	if err != nil {
		t.Fatalf("%s did not bind 127.0.0.1:%d: %v\n%s", r.name, port, err, r.report())
	}
}

// sippStats are the final counters of SIPp's statistics file.
type sippStats struct {
	Successful, Failed, Outgoing, Incoming int
}

// wait waits for SIPp to exit and returns its exit code and statistics.
func (r *sippRun) wait(t *testing.T) (int, sippStats) {
	t.Helper()
	err := <-r.done
	r.done <- err
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", r.name, err)
	}
	st, serr := readSIPpStats(r.stats)
	if serr != nil {
		t.Errorf("%s: statistics: %v\n%s", r.name, serr, r.report())
	}
	return code, st
}

// report is what a failing test prints: SIPp's last screen and its error log.
func (r *sippRun) report() string {
	out := r.out.String()
	if i := strings.LastIndex(out, "Statistics Screen"); i > 0 {
		out = out[max(0, i-200):]
	}
	if len(out) > 6000 {
		out = out[len(out)-6000:]
	}
	errs, _ := os.ReadFile(filepath.Join(r.dir, "errors.log"))
	if len(errs) > 4000 {
		errs = errs[:4000]
	}
	return fmt.Sprintf("--- %s output (tail):\n%s\n--- %s errors.log:\n%s", r.name, out, r.name, errs)
}

func readSIPpStats(path string) (sippStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sippStats{}, err
	}
	rd := csv.NewReader(bytes.NewReader(b))
	rd.Comma = ';'
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		return sippStats{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return sippStats{}, fmt.Errorf("%s: no statistics rows", path)
	}
	head, last := rows[0], rows[len(rows)-1]
	col := func(name string) (int, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return strconv.Atoi(strings.TrimSpace(last[i]))
			}
		}
		return 0, fmt.Errorf("%s: no column %s", path, name)
	}
	var st sippStats
	var errs []error
	for _, c := range []struct {
		name string
		dst  *int
	}{{"SuccessfulCall(C)", &st.Successful}, {"FailedCall(C)", &st.Failed}, {"OutgoingCall(C)", &st.Outgoing}, {"IncomingCall(C)", &st.Incoming}} {
		v, err := col(c.name)
		errs = append(errs, err)
		*c.dst = v
	}
	return st, errors.Join(errs...)
}

// expectAllSuccessful checks SIPp's exit code (0: every call succeeded)
// and its statistics.
func expectAllSuccessful(t *testing.T, r *sippRun, n int) {
	t.Helper()
	code, st := r.wait(t)
	if code != 0 || st.Successful != n || st.Failed != 0 {
		t.Errorf("%s: exit %d, %d successful and %d failed calls; want exit 0, %d successful, 0 failed\n%s",
			r.name, code, st.Successful, st.Failed, n, r.report())
	}
}

// The scenario files against the harness: the reject scenario against a
// PBX that declines, the pass scenario against one that answers, and the
// PBX scenario answering the fake trunk.
func TestSIPpScenariosAgainstTheHarness(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("uac_reject", func(t *testing.T) {
		pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{
			Behave:            func(*siptest.PBXCall) siptest.Behaviour { return siptest.Behaviour{Status: 603, NoRinging: true} },
			NoInBandDetection: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer pbx.Close()
		const n = 20
		inf := writeInjection(t, "reject.csv", "+79990003344")
		r := startSIPp(ctx, t, "sipp uac_reject", "uac_reject.xml", pbx.Addr().String(),
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "50", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, r, n)
		calls := pbx.Calls()
		if len(calls) != n || calls[0].Caller != "+79990003344" || calls[0].Callee != tollFree {
			t.Fatalf("PBX saw %d calls, the first from %q to %q", len(calls), calls[0].Caller, calls[0].Callee)
		}
	})

	t.Run("uac_pass", func(t *testing.T) {
		pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{NoInBandDetection: true,
			Behave: func(*siptest.PBXCall) siptest.Behaviour { return siptest.Behaviour{Quiet: true} }})
		if err != nil {
			t.Fatal(err)
		}
		defer pbx.Close()
		const n = 10
		inf := writeInjection(t, "pass.csv", freshCallers("+7999100", n)...)
		r := startSIPp(ctx, t, "sipp uac_pass", "uac_pass.xml", pbx.Addr().String(),
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "100", "-m", strconv.Itoa(n), "-r", "20", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, r, n)
		callers := map[string]bool{}
		for _, c := range pbx.Calls() {
			if reason, _, _ := c.Ended(); reason != "BYE from the caller" {
				t.Errorf("PBX call %s ended %q", c.CallID, reason)
			}
			callers[c.Caller] = true
		}
		if len(callers) != n {
			t.Errorf("PBX saw %d distinct callers, want %d", len(callers), n)
		}
	})

	t.Run("uas_pbx", func(t *testing.T) {
		const n = 5
		port := porttest.Port(t)
		r := startSIPp(ctx, t, "sipp uas_pbx", "uas_pbx.xml",
			"-p", strconv.Itoa(port), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "30s", "-timeout_error")
		trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer trunk.Close()
		target := "127.0.0.1:" + strconv.Itoa(port)
		waitBound(ctx, t, r, port)
		for i := range n {
			call, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: fmt.Sprintf("+7999200%04d", i), Quiet: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := call.WaitAnswer(ctx); err != nil {
				t.Fatal(err)
			}
			if got := call.Responses(); got[0].Status != 180 {
				t.Errorf("first response %d, want 180", got[0].Status)
			}
			if err := call.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			call.Close()
		}
		expectAllSuccessful(t, r, n)
	})
}

// guardSIP starts `callguard serve` with SIP on a free loopback port, the
// PBX at pbxURI, and the admin API; it returns the guard, its SIP address
// and the CLI's environment. If the guard does not answer an OPTIONS
// there, the test is skipped: serve has no SIP listener yet.
func guardSIP(t *testing.T, pbxURI string, extra ...string) (*guardProcess, string, []string) {
	t.Helper()
	dir := t.TempDir()
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

// requireSIPListener probes addr with OPTIONS for a few seconds and skips
// the test if nothing answers.
func requireSIPListener(t *testing.T, addr string) {
	t.Helper()
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = siptest.Poll(ctx, 100*time.Millisecond, func() error {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := trunk.Options(pctx, addr)
		return err
	})
	if err != nil {
		t.Fatalf("callguard serve does not answer OPTIONS at %s: %v", addr, err)
	}
}

// SIPp's pass and reject scenarios through the real guard, with SIPp as
// the PBX: every call must succeed, and the PBX must see only the passed
// calls.
func TestSIPpPassAndRejectThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pbxPort := porttest.Port(t)
	g, sipAddr, env := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort))

	const blocked = "+79990003344"
	out, stderr, code := runCLI(t, env, "block", blocked, "--level", "7", "--reason", "SIPp reject path", "--by", "sipp_test")
	if code != 0 {
		t.Fatalf("block %s: exit %d, %s %s", blocked, code, out, stderr)
	}

	t.Run("reject", func(t *testing.T) {
		const n = 200
		inf := writeInjection(t, "reject.csv", blocked)
		r := startSIPp(ctx, t, "sipp uac_reject", "uac_reject.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "100", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, r, n)
	})

	t.Run("pass", func(t *testing.T) {
		const n = 50
		pbx := startSIPp(ctx, t, "sipp uas_pbx", "uas_pbx.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "90s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		inf := writeInjection(t, "pass.csv", freshCallers("+7999300", n)...)
		uac := startSIPp(ctx, t, "sipp uac_pass", "uac_pass.xml", sipAddr,
			"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-d", "200", "-m", strconv.Itoa(n), "-r", "25", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, n)
		expectAllSuccessful(t, pbx, n)
	})
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}

// SIPp as the carrier asks for a session timer on its INVITE (Require:
// timer), puts passed calls on hold by re-INVITE and refreshes their
// session timer by UPDATE; SIPp as the PBX must receive the INVITE's
// Session-Expires, Min-SE and Supported: timer, and the re-INVITE and
// UPDATE with the SDP and Session-Expires, and the carrier must get the
// PBX's answers (its Session-Expires and Require: timer on the 200 too).
func TestSIPpMidCallThroughTheGuard(t *testing.T) {
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pbxPort := porttest.Port(t)
	g, sipAddr, _ := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(pbxPort))
	const n = 10
	pbx := startSIPp(ctx, t, "sipp uas_pbx_midcall", "uas_pbx_midcall.xml",
		"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", strconv.Itoa(n), "-timeout", "60s", "-timeout_error")
	waitBound(ctx, t, pbx, pbxPort)
	inf := writeInjection(t, "midcall.csv", freshCallers("+7999400", n)...)
	uac := startSIPp(ctx, t, "sipp uac_midcall", "uac_midcall.xml", sipAddr,
		"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
		"-m", strconv.Itoa(n), "-r", "5", "-timeout", "60s", "-timeout_error")
	expectAllSuccessful(t, uac, n)
	expectAllSuccessful(t, pbx, n)
	if t.Failed() {
		t.Logf("guard log:\n%s", g.output())
	}
}
