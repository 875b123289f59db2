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
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// baresipPhone is one baresip (Debian's 1.0.0) driven through its cons
// module (commands as UDP datagrams).
type baresipPhone struct {
	name     string
	sipPort  int
	rtpPorts [2]int // first and last of its RTP port range
	out      *lockedBuffer
	cons     net.Conn
}

// startBaresip starts baresip with account (a SIP URI with baresip's
// account parameters) listening for SIP on a free loopback port, media on
// loopback only (net_interface 127.0.0.1) within a small RTP port range of its
// own, silence as the microphone, and extra (arguments such as -e
// "/dial ...").
func startBaresip(ctx context.Context, t *testing.T, name, account string, extra ...string) *baresipPhone {
	t.Helper()
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Skip("baresip is not installed (apt-get install -y baresip); CI installs it")
	}
	dir := t.TempDir()
	silence := filepath.Join(dir, "silence.wav")
	writeSilence(t, silence, 30)
	p := &baresipPhone{name: name, sipPort: porttest.Port(t), out: &lockedBuffer{}}
	// A reserved block of 8 ports (even first: RTP) for its RTP range.
	base := porttest.Block(t, 8)
	p.rtpPorts = [2]int{base, base + 7}
	consPort := porttest.Port(t)
	config := fmt.Sprintf(`module_path /usr/lib/baresip/modules
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
rtp_ports %d-%d
audio_source aufile,%s
audio_player aubridge,x
audio_alert aubridge,x
module g711.so
module aufile.so
module aubridge.so
module cons.so
cons_listen 127.0.0.1:%d
module_app account.so
module_app menu.so
`, p.sipPort, p.rtpPorts[0], p.rtpPorts[1], silence, consPort)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(account+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "contacts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-f", dir}, extra...)...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s:\n%s", name, tail(p.out.String(), 6000))
		}
	})
	if p.cons, err = net.Dial("udp", "127.0.0.1:"+strconv.Itoa(consPort)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cons.Close() })
	err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
		select {
		case <-done:
			return fmt.Errorf("%s exited:\n%s", name, p.out.String())
		default:
		}
		if !portBound("127.0.0.1:" + strconv.Itoa(p.sipPort)) {
			return fmt.Errorf("%s not listening yet", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// command sends a menu command ("/hold") or keys ("123") to baresip.
func (p *baresipPhone) command(t *testing.T, cmd string) {
	t.Helper()
	if strings.HasPrefix(cmd, "/") {
		cmd += "\n"
	}
	if _, err := p.cons.Write([]byte(cmd)); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// waitOutput waits until baresip has printed text n times.
func (p *baresipPhone) waitOutput(ctx context.Context, t *testing.T, text string, n int) {
	t.Helper()
	err := siptest.Poll(ctx, 100*time.Millisecond, func() error {
		if c := strings.Count(strings.ToLower(p.out.String()), strings.ToLower(text)); c < n {
			return fmt.Errorf("%s printed %q %d times, want %d", p.name, text, c, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *baresipPhone) owns(port int) bool { return port >= p.rtpPorts[0] && port <= p.rtpPorts[1] }

// writeSilence writes secs seconds of 8 kHz 16-bit mono silence as WAV.
func writeSilence(t *testing.T, path string, secs int) {
	t.Helper()
	n := 8000 * secs * 2
	hdr := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
	put := func(at, v int) {
		for i := range 4 {
			hdr[at+i] = byte(v >> (8 * i))
		}
	}
	put(4, 36+n)
	put(40, n)
	if err := os.WriteFile(path, append(hdr, make([]byte, n)...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// baresip on both sides of a passed call: a baresip caller on the
// carrier's side, a second baresip answering automatically as the PBX.
// The call connects and RTP flows both ways, straight between the two
// (the guard relays signalling only on a passed call); the caller puts
// the call on hold and resumes it, and the re-INVITEs reach the PBX side
// through the guard (a=sendonly, then a=sendrecv, answered a=recvonly and
// a=sendrecv); keys the caller types reach the PBX side as RFC 4733 events
// unchanged: one event per key press, in order, each with an end packet.
// tshark on loopback sees all of it.
func TestBaresipToBaresipThroughTheGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("baresip runs take seconds; skipped in -short mode")
	}
	// Generous: the first test to start the guard builds it (with -race,
	// a minute or more on a loaded machine).
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	callee := startBaresip(ctx, t, "baresip callee (PBX side)", "<sip:pbx@127.0.0.1>;regint=0;audio_codecs=PCMU;answermode=auto")
	g, target, _ := guardSIP(t, "sip:pbx@127.0.0.1:"+strconv.Itoa(callee.sipPort))
	defer func() {
		if t.Failed() {
			t.Logf("guard log:\n%s", tail(g.output(), 8000))
		}
	}()
	_, gport, _ := strings.Cut(target, ":")
	gp, _ := strconv.Atoi(gport)
	caller := startBaresip(ctx, t, "baresip caller (carrier side)", "<sip:+79990007001@127.0.0.1>;regint=0;audio_codecs=PCMU")
	// The capture, before the call: SIP and each phone's RTP range.
	ports := []int{gp, callee.sipPort, caller.sipPort}
	for _, ph := range []*baresipPhone{caller, callee} {
		for p := ph.rtpPorts[0]; p <= ph.rtpPorts[1]; p++ {
			ports = append(ports, p)
		}
	}
	cap := startCapture(t, ports...)

	caller.command(t, "/dial sip:88005553535@"+target)
	caller.waitOutput(ctx, t, "call established", 1)
	callee.waitOutput(ctx, t, "call established", 1)
	time.Sleep(2 * time.Second) // media both ways
	caller.command(t, "/hold")
	time.Sleep(1500 * time.Millisecond)
	caller.command(t, "/resume")
	time.Sleep(1500 * time.Millisecond)
	const keys = "159"
	for _, k := range keys {
		// A key down, held 200 ms, then released (baresip's
		// KEYCODE_REL, 0x04): the event's end.
		caller.command(t, string(k))
		time.Sleep(200 * time.Millisecond)
		caller.command(t, "\x04")
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Second)
	caller.command(t, "/hangup")
	callee.waitOutput(ctx, t, "terminated", 1)

	// Signalling: the hold and the resume reached the PBX side through
	// the guard, and its answers came back.
	ps := cap.packets(t)
	guard, pbx := "127.0.0.1:"+gport, "127.0.0.1:"+strconv.Itoa(callee.sipPort)
	var offers, answers []string
	for _, p := range ps {
		switch {
		case p.src == guard && p.dst == pbx && p.method == "INVITE":
			offers = append(offers, direction(p.attrs))
		case p.src == pbx && p.dst == guard && p.status == "200" && strings.HasSuffix(p.cseq, "INVITE"):
			answers = append(answers, direction(p.attrs))
		}
	}
	offers, answers = dedupe(offers), dedupe(answers)
	if !strings.HasSuffix(strings.Join(offers, ","), "sendrecv,sendonly,sendrecv") {
		t.Errorf("the PBX side got offers %v from the guard, want the call's, the hold's (sendonly) and the resume's (sendrecv)", offers)
	}
	if !strings.HasSuffix(strings.Join(answers, ","), "sendrecv,recvonly,sendrecv") {
		t.Errorf("the PBX side answered %v, want recvonly to the hold and sendrecv to the resume", answers)
	}

	// Media: straight between the two phones, both ways.
	rows := cap.fields(t, nil, "udp", "ip.src", "udp.srcport", "ip.dst", "udp.dstport")
	var up, down, viaGuard int
	for _, r := range rows {
		sp, _ := strconv.Atoi(r[1])
		dp, _ := strconv.Atoi(r[3])
		switch {
		case caller.owns(sp) && callee.owns(dp):
			up++
		case callee.owns(sp) && caller.owns(dp):
			down++
		case caller.owns(sp) || callee.owns(sp):
			viaGuard++
		}
	}
	t.Logf("RTP/RTCP caller->PBX %d packets, PBX->caller %d, elsewhere %d; offers to the PBX %v, its answers %v", up, down, viaGuard, offers, answers)
	if viaGuard > 0 {
		t.Errorf("%d media packets of the phones went elsewhere than the other phone: a passed call's media must flow end to end", viaGuard)
	}
	if up < 100 || down < 100 {
		t.Errorf("RTP caller->PBX %d packets, PBX->caller %d: want it flowing both ways", up, down)
	}

	// DTMF: RFC 4733 events from the caller at the PBX side.
	var decode []string
	for p := callee.rtpPorts[0]; p <= callee.rtpPorts[1]; p++ {
		decode = append(decode, "-d", "udp.port=="+strconv.Itoa(p)+",rtp")
	}
	decode = append(decode, "-o", "rtpevent.event_payload_type_value:101")
	ev := cap.fields(t, decode, "rtpevent", "udp.srcport", "udp.dstport", "rtp.timestamp", "rtpevent.event_id", "rtpevent.end_of_event", "rtpevent.duration")
	type event struct {
		key      string
		ended    bool
		duration int
	}
	var order []string
	events := map[string]*event{}
	for _, r := range ev {
		dp, _ := strconv.Atoi(r[1])
		if !callee.owns(dp) {
			continue
		}
		e := events[r[2]]
		if e == nil {
			e = &event{key: r[3]}
			events[r[2]] = e
			order = append(order, r[2])
		}
		if r[4] == "1" || r[4] == "True" {
			e.ended = true
		}
		if d, _ := strconv.Atoi(r[5]); d > e.duration {
			e.duration = d
		}
	}
	var got []string
	for _, ts := range order {
		e := events[ts]
		got = append(got, fmt.Sprintf("%s(%d samples, end %v)", e.key, e.duration, e.ended))
		if !e.ended || e.duration < 800 || e.duration > 4000 {
			t.Errorf("event %s at timestamp %s: end %v, duration %d samples; want an end packet and about the 200 ms the key was held (100 to 500 ms)", e.key, ts, e.ended, e.duration)
		}
	}
	t.Logf("RFC 4733 events at the PBX side: %v", got)
	// And the PBX-side baresip itself saw each key end once.
	for _, k := range keys {
		if n := strings.Count(callee.out.String(), fmt.Sprintf("received event: '%c' (end=1)", k)); n != 1 {
			t.Errorf("the PBX-side baresip saw key %c end %d times, want once", k, n)
		}
	}
	if len(order) != len(keys) {
		t.Errorf("the PBX side got %d RFC 4733 events %v for %d key presses", len(order), got, len(keys))
	} else {
		for i, ts := range order {
			if want := strconv.Itoa(int(keys[i] - '0')); events[ts].key != want {
				t.Errorf("event %d is %s, want %s", i, events[ts].key, want)
			}
		}
	}
}

// direction is the SDP direction among media attributes ("|"-separated);
// sendrecv when none is given (RFC 3264 §5.1).
func direction(attrs string) string {
	for _, a := range strings.Split(attrs, "|") {
		switch a {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a
		}
	}
	return "sendrecv"
}

// dedupe drops consecutive repeats (retransmissions).
func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
