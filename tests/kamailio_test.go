package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// Kamailio (Debian's 5.6) as the carrier's edge proxy in front of the
// guard, with tests/kamailio/edge.cfg: it record-routes the INVITE, relays
// it statefully, loose-routes everything in the dialog, and retransmits
// over UDP on its own. SIPp is the caller (behind Kamailio) and the PBX;
// tshark on the loopback interface checks what went where, in what order.

// proxyAddr is Kamailio's address: another loopback address than the
// guard's, SIPp's and the PBX's, so that trusting it alone
// (GUARD_TRUSTED_PEERS) proves every INVITE came through it.
const proxyAddr = "127.0.0.2"

// kamailioPath returns Kamailio's path, or skips the test.
func kamailioPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kamailio")
	if err != nil {
		for _, c := range []string{"/usr/sbin/kamailio", "/usr/local/sbin/kamailio"} {
			if _, err := os.Stat(c); err == nil {
				p = c
				break
			}
		}
	}
	if p == "" {
		t.Skip("kamailio is not installed: `apt-get install -y kamailio` (.ci/run does)")
	}
	if testing.Short() {
		t.Skip("Kamailio runs take seconds; skipped in -short mode")
	}
	return p
}

// startKamailio runs tests/kamailio/edge.cfg listening on listen (UDP) and
// relaying initial requests to next (host:port); retrT1 is tm's first retransmission
// interval in ms. Its log is returned; it is stopped at the end of the
// test.
func startKamailio(t *testing.T, listen, next string, retrT1 int) *lockedBuffer {
	t.Helper()
	bin := kamailioPath(t)
	cfg, err := filepath.Abs(filepath.Join("kamailio", "edge.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := &lockedBuffer{}
	cmd := exec.Command(bin, "-f", cfg, "-DD", "-E", "-n", "1", "-m", "32", "-M", "8", "-w", dir, "-Y", dir,
		"-A", "LISTEN=udp:"+listen, "-A", `NEXT="sip:`+next+`"`, "-A", "RETR_T1="+strconv.Itoa(retrT1))
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: Kamailio forks workers, stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kamailio log:\n%s", tail(log.String(), 8000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
		select {
		case <-done:
			return fmt.Errorf("kamailio exited:\n%s", log.String())
		default:
		}
		if !portBound(listen) {
			return fmt.Errorf("%s not bound yet", listen)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("kamailio did not start: %v\n%s", err, tail(log.String(), 4000))
	}
	return log
}

// portBound says whether a UDP address is taken (by the process under
// test): binding it fails.
func portBound(addr string) bool {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// loopbackAlias says whether addr can be bound here (Linux routes all of
// 127.0.0.0/8 to lo).
func loopbackAlias(addr string) bool {
	c, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// sipPacket is one SIP message seen on the wire by tshark.
type sipPacket struct {
	src, dst string // ip:port
	method   string // a request's method, "" for a response
	status   string // a response's status, "" for a request
	cseq     string
	callID   string
	branch   string // the top Via's branch
	vias     int
	route    string
	rr       string
	attrs    string // the SDP's media attributes, "|"-separated
}

func (p sipPacket) String() string {
	what := p.method
	if what == "" {
		what = p.status + " (" + p.cseq + ")"
	}
	return fmt.Sprintf("%s -> %s %s route=%q rr=%q vias=%d", p.src, p.dst, what, p.route, p.rr, p.vias)
}

// capture is tshark on the loopback interface, writing a pcap.
type capture struct {
	cmd   *exec.Cmd
	file  string
	ports []int
	log   *lockedBuffer
	done  chan struct{}
}

// startCapture captures UDP on the given ports, or skips the test when
// tshark is absent.
func startCapture(t *testing.T, ports ...int) *capture {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed: `DEBIAN_FRONTEND=noninteractive apt-get install -y tshark` (.ci/run does)")
	}
	c := &capture{file: filepath.Join(t.TempDir(), "sip.pcap"), ports: ports, log: &lockedBuffer{}, done: make(chan struct{})}
	var filter []string
	for _, p := range ports {
		filter = append(filter, "udp port "+strconv.Itoa(p))
	}
	c.cmd = exec.Command(bin, "-i", "lo", "-n", "-q", "-w", c.file, "-f", strings.Join(filter, " or "))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start tshark: %v", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
		select {
		case <-c.done:
			return fmt.Errorf("tshark exited: %s", c.log.String())
		default:
		}
		if !strings.Contains(c.log.String(), "Capturing on") {
			return fmt.Errorf("not capturing yet")
		}
		return nil
	})
	if err != nil {
		t.Skipf("tshark cannot capture on lo here (needs capture rights): %v", err)
	}
	// "Capturing on" comes a moment before the first packet is kept.
	time.Sleep(time.Second)
	return c
}

func (c *capture) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// fields stops the capture (after a moment for the last packets) and
// reads the given fields of the packets that match filter, in order;
// extra are tshark options (decode-as, preferences). Fields with several
// values have them separated by "|".
func (c *capture) fields(t *testing.T, extra []string, filter string, fields ...string) [][]string {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	c.stop()
	args := append([]string{"-r", c.file, "-n"}, extra...)
	args = append(args, "-Y", filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if f := strings.Split(line, "\t"); len(f) == len(fields) {
			rows = append(rows, f)
		}
	}
	return rows
}

// sipDecode has tshark decode the capture's ports as SIP.
func (c *capture) sipDecode() []string {
	var args []string
	for _, p := range c.ports {
		args = append(args, "-d", "udp.port=="+strconv.Itoa(p)+",sip")
	}
	return args
}

// packets decodes the SIP messages of the capture in order.
func (c *capture) packets(t *testing.T) []sipPacket {
	t.Helper()
	var ps []sipPacket
	for _, f := range c.fields(t, c.sipDecode(), "sip",
		"ip.src", "udp.srcport", "ip.dst", "udp.dstport",
		"sip.Method", "sip.Status-Code", "sip.CSeq", "sip.Call-ID",
		"sip.Via.branch", "sip.Via", "sip.Route", "sip.Record-Route", "sdp.media_attr") {
		p := sipPacket{
			src: f[0] + ":" + f[1], dst: f[2] + ":" + f[3], status: f[5], cseq: f[6], callID: f[7],
			branch: strings.Split(f[8], "|")[0], route: f[10], rr: f[11], attrs: f[12],
		}
		if p.status == "" {
			// sip.Method is set on responses too (the CSeq's method).
			p.method = f[4]
		}
		if f[9] != "" {
			p.vias = len(strings.Split(f[9], "|"))
		}
		ps = append(ps, p)
	}
	return ps
}

// Kamailio as the carrier's edge proxy in front of the built binary: the
// guard trusts only Kamailio's address; a blocked caller is rejected; a
// passed call gets the PBX, whose in-dialog requests and the carrier's go
// through Kamailio by the route set (Record-Route/Route, RFC 3261 §12),
// Kamailio's own retransmissions of the INVITE make no second call, a
// hold re-INVITE and an INFO key from the caller reach the PBX once, a
// CANCEL while the PBX rings cancels the PBX's INVITE, and
// the PBX's hold re-INVITE (with its ACK) and BYE reach the caller through
// Kamailio.
func TestKamailioInFrontOfTheGuard(t *testing.T) { testKamailio(t, false) }

// The same with a second Kamailio in front of the PBX (GUARD_PBX_URI is
// that proxy): the PBX's 200 carries its Record-Route, and the guard keeps
// the PBX leg's route set: its re-INVITE, INFO and BYE towards the PBX go
// through that proxy with its Route, and the PBX's BYE comes back by it.
func TestKamailioOnBothSidesOfTheGuard(t *testing.T) { testKamailio(t, true) }

// pbxProxyAddr is the PBX-side Kamailio's address.
const pbxProxyAddr = "127.0.0.3"

func testKamailio(t *testing.T, pbxBehindProxy bool) {
	sippPath(t)
	kamailioPath(t)
	if !loopbackAlias(proxyAddr) {
		t.Skipf("%s is not usable on this host's loopback", proxyAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pbxPort, kamPort, pbxKamPort := porttest.Port(t), porttest.Port(t), porttest.Port(t)
	pbxA := "127.0.0.1:" + strconv.Itoa(pbxPort)
	// pbxHop is where the guard sends the PBX leg: the PBX, or the
	// proxy in front of it.
	pbxHop := pbxA
	if pbxBehindProxy {
		pbxHop = net.JoinHostPort(pbxProxyAddr, strconv.Itoa(pbxKamPort))
	}
	g, sipAddr, env := guardSIP(t, "sip:pbx@"+pbxHop,
		"GUARD_TRUSTED_PEERS="+proxyAddr+"/32")
	_, guardPort, _ := strings.Cut(sipAddr, ":")
	kam := net.JoinHostPort(proxyAddr, strconv.Itoa(kamPort))
	kamLog := startKamailio(t, kam, sipAddr, 50)
	pbxKamLog := &lockedBuffer{}
	if pbxBehindProxy {
		pbxKamLog = startKamailio(t, pbxHop, pbxA, 500)
	}
	defer func() {
		if t.Failed() {
			t.Logf("guard log:\n%s", tail(g.output(), 12000))
		}
	}()
	gp, _ := strconv.Atoi(guardPort)

	// Straight from the caller's address, the guard refuses.
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	if res, err := trunk.Options(ctx, sipAddr); err != nil || res.StatusCode != 403 {
		t.Fatalf("OPTIONS straight from 127.0.0.1: %v %v, want 403 (only the proxy is trusted)", res, err)
	}

	const blocked = "+79990005566"
	if out, stderr, code := runCLI(t, env, "block", blocked, "--level", "7", "--reason", "behind Kamailio", "--by", "kamailio_test"); code != 0 {
		t.Fatalf("block %s: exit %d, %s %s", blocked, code, out, stderr)
	}

	t.Run("reject", func(t *testing.T) {
		const n = 3
		r := startSIPp(ctx, t, "sipp uac_reject", "uac_reject.xml", kam,
			"-inf", writeInjection(t, "reject.csv", blocked), "-s", tollFree,
			"-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", strconv.Itoa(n), "-r", "10", "-timeout", "30s", "-timeout_error")
		expectAllSuccessful(t, r, n)
	})

	t.Run("pass, hold, INFO, caller hangs up", func(t *testing.T) {
		callerPort := porttest.Port(t)
		cap := startCapture(t, kamPort, gp, pbxPort, callerPort, pbxKamPort)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_proxy", "uas_pbx_proxy.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		uac := startSIPp(ctx, t, "sipp uac_proxy", "uac_proxy.xml", kam,
			"-inf", writeInjection(t, "pass.csv", "+79990005501"), "-s", tollFree,
			"-p", strconv.Itoa(callerPort), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
		ps := cap.packets(t)
		guard, caller := "127.0.0.1:"+guardPort, "127.0.0.1:"+strconv.Itoa(callerPort)
		dump := func() string {
			var b strings.Builder
			for _, p := range ps {
				b.WriteString(p.String() + "\n")
			}
			return b.String()
		}
		// Kamailio retransmitted the INVITE to the guard (its 100 Trying
		// is dropped in the reply route) ...
		var invites, callIDs, infos, initial = 0, map[string]bool{}, map[string]bool{}, ""
		for _, p := range ps {
			switch {
			case p.src == kam && p.dst == guard && p.method == "INVITE" && p.cseq == "1 INVITE":
				invites++
			case p.src == guard && p.dst == pbxHop && p.method == "INVITE":
				// The guard's own dialog towards the PBX: a second
				// Call-ID would be a second call.
				callIDs[p.callID] = true
			case p.src == guard && p.dst == pbxHop && p.method == "INFO":
				// One transaction (its retransmissions share the
				// branch); SIPp checks its body.
				infos[p.branch] = true
			}
			// In the PBX leg's dialog (every request after the first
			// INVITE's transaction) the guard routes by the PBX
			// side's Record-Route.
			if p.src == guard && p.dst == pbxHop && p.method != "" {
				if initial == "" {
					initial = p.branch
				}
				if pbxBehindProxy && p.branch != initial && !strings.Contains(p.route, pbxHop+";lr") {
					t.Errorf("the guard's %s to the PBX has Route %q, want the PBX proxy's record-route", p.method, p.route)
				}
			}
		}
		if invites < 2 {
			t.Errorf("Kamailio sent the INVITE %d times to the guard; the test wants its retransmissions\n%s", invites, dump())
		}
		// ... and the PBX got one call, and the INFO once.
		if len(callIDs) != 1 {
			t.Errorf("the PBX got %d calls (Call-IDs %v), want 1\n%s", len(callIDs), callIDs, dump())
		}
		if len(infos) != 1 {
			t.Errorf("the PBX got %d INFO transactions, want 1\n%s", len(infos), dump())
		}
		// Every request of the caller's dialog reached the guard through
		// Kamailio, never straight.
		for _, p := range ps {
			if p.src == caller && p.dst != kam {
				t.Errorf("the caller sent straight to %s: %s", p.dst, p)
			}
		}
		for _, m := range []string{"ACK", "INVITE", "INFO", "BYE"} {
			if !strings.Contains(kamLog.String(), "edge: in-dialog "+m+" from 127.0.0.1:"+strconv.Itoa(callerPort)) {
				t.Errorf("Kamailio did not loose-route the caller's %s", m)
			}
			if pbxBehindProxy && !strings.Contains(pbxKamLog.String(), "edge: in-dialog "+m+" from "+guard) {
				t.Errorf("the PBX's Kamailio did not loose-route the guard's %s", m)
			}
		}
	})

	t.Run("caller cancels while the PBX rings", func(t *testing.T) {
		pbx := startSIPp(ctx, t, "sipp uas_pbx_cancel", "uas_pbx_cancel.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		uac := startSIPp(ctx, t, "sipp uac_proxy_cancel", "uac_proxy_cancel.xml", kam,
			"-inf", writeInjection(t, "cancel.csv", "+79990005503"), "-s", tollFree,
			"-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
	})

	t.Run("PBX holds and hangs up", func(t *testing.T) {
		callerPort := porttest.Port(t)
		cap := startCapture(t, kamPort, gp, pbxPort, callerPort, pbxKamPort)
		pbx := startSIPp(ctx, t, "sipp uas_pbx_bye", "uas_pbx_bye.xml",
			"-p", strconv.Itoa(pbxPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "60s", "-timeout_error")
		waitBound(ctx, t, pbx, pbxPort)
		uac := startSIPp(ctx, t, "sipp uac_proxy_hungup", "uac_proxy_hungup.xml", kam,
			"-inf", writeInjection(t, "pass.csv", "+79990005502"), "-s", tollFree,
			"-p", strconv.Itoa(callerPort), "-mp", strconv.Itoa(porttest.Block(t, 4)),
			"-m", "1", "-timeout", "60s", "-timeout_error")
		expectAllSuccessful(t, uac, 1)
		expectAllSuccessful(t, pbx, 1)
		ps := cap.packets(t)
		guard, caller := "127.0.0.1:"+guardPort, "127.0.0.1:"+strconv.Itoa(callerPort)
		// On the wire, in order: the guard's BYE to Kamailio with Route:
		// Kamailio's Record-Route; Kamailio's BYE to the caller without
		// it; the caller's 200 to Kamailio; Kamailio's 200 to the guard.
		steps := []struct {
			src, dst, what string
			check          func(sipPacket) error
		}{
			{guard, kam, "BYE", func(p sipPacket) error {
				if !strings.Contains(p.route, proxyAddr+":"+strconv.Itoa(kamPort)) || !strings.Contains(p.route, ";lr") {
					return fmt.Errorf("the guard's BYE has Route %q, want Kamailio's record-route", p.route)
				}
				return nil
			}},
			{kam, caller, "BYE", func(p sipPacket) error {
				if p.route != "" || p.vias != 2 {
					return fmt.Errorf("Kamailio's BYE has Route %q and %d Vias, want none and 2", p.route, p.vias)
				}
				return nil
			}},
			{caller, kam, "200", nil},
			{kam, guard, "200", nil},
		}
		i := 0
		for _, p := range ps {
			if i == len(steps) {
				break
			}
			s := steps[i]
			what := p.method
			if what == "" {
				what = p.status
			}
			if p.src == s.src && p.dst == s.dst && what == s.what && (what == "BYE" || strings.HasSuffix(p.cseq, "BYE")) {
				if s.check != nil {
					if err := s.check(p); err != nil {
						t.Error(err)
					}
				}
				i++
			}
		}
		if i != len(steps) {
			var b strings.Builder
			for _, p := range ps {
				b.WriteString(p.String() + "\n")
			}
			t.Errorf("the PBX's BYE took %d of its %d steps through Kamailio in order; on the wire:\n%s", i, len(steps), b.String())
		}
		for _, m := range []string{"INVITE", "ACK", "BYE"} {
			if !strings.Contains(kamLog.String(), "edge: in-dialog "+m+" from "+guard) {
				t.Errorf("Kamailio did not loose-route the guard's %s", m)
			}
		}
		for _, m := range []string{"INVITE", "ACK", "BYE"} {
			if pbxBehindProxy && !strings.Contains(pbxKamLog.String(), "edge: in-dialog "+m+" from "+pbxA) {
				t.Errorf("the PBX's Kamailio did not loose-route the PBX's %s", m)
			}
		}
	})
}
