package tests

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// Hostile and malformed SIP sent to the running binary over UDP: RFC 4475
// torture messages, an oversized header, a huge datagram and plain
// garbage. The guard must answer with a 4xx where it can answer at all,
// never a 2xx to an INVITE it could not understand, and keep serving: the
// process stays up and still answers OPTIONS.
func TestHostileSIPDoesNotStopTheGuard(t *testing.T) {
	g, target, _ := guardSIP(t, "sip:pbx@127.0.0.1:9")
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for _, name := range []string{"insuf.dat", "mismatch01.dat", "mismatch02.dat", "badvers.dat", "unkscm.dat", "bext01.dat", "escnull.dat", "longreq.dat", "badinv01.dat", "clerr.dat", "ncl.dat"} {
		b, err := os.ReadFile(filepath.Join("..", "sip", "validate", "testdata", "torture", name))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	huge := "INVITE sip:88005553535@" + target + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-huge\r\nFrom: <sip:+79990001122@127.0.0.1>;tag=1\r\nTo: <sip:88005553535@127.0.0.1>\r\nCall-ID: huge@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nX-Padding: " + strings.Repeat("a", 60000) + "\r\nContent-Length: 0\r\n\r\n"
	msgs = append(msgs, []byte(huge), []byte("\x00\x01\x02 not SIP at all \xff\xfe"), bytes.Repeat([]byte("SIP/2.0 "), 2000), []byte("INVITE\r\n\r\n"))
	// The torture messages answer to the hosts in their own Via headers;
	// these carry ours, so their answers can be checked.
	via := "Via: SIP/2.0/UDP " + conn.LocalAddr().String() + ";rport;branch=z9hG4bK-"
	base := func(id, method, cseqMethod, extra string) string {
		return method + " sip:88005553535@" + target + " SIP/2.0\r\n" + via + id + "\r\nFrom: <sip:+79990001122@127.0.0.1>;tag=" + id +
			"\r\nTo: <sip:88005553535@127.0.0.1>\r\nCall-ID: " + id + "@hostile\r\nCSeq: 1 " + cseqMethod + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
	}
	crafted := map[string]string{
		"cseq-mismatch":    base("m1", "INVITE", "OPTIONS", "Max-Forwards: 70\r\n"),
		"max-forwards-0":   base("m2", "INVITE", "INVITE", "Max-Forwards: 0\r\n"),
		"require-unknown":  base("m3", "INVITE", "INVITE", "Max-Forwards: 70\r\nRequire: nonsense-ext\r\n"),
		"no-max-forwards":  base("m4", "INVITE", "INVITE", ""),
		"oversized-header": base("m5", "INVITE", "INVITE", "Max-Forwards: 70\r\nX-Padding: "+strings.Repeat("a", 30000)+"\r\n"),
	}
	for _, m := range crafted {
		msgs = append(msgs, []byte(m))
	}
	buf := make([]byte, 65536)
	answered4xx := 0
	for i, m := range msgs {
		if _, err := conn.WriteTo(m, raddr); err != nil {
			t.Logf("message %d not sent: %v", i, err)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // no (more) answer: the guard dropped what it could not parse
			}
			status := strings.Fields(string(buf[:min(n, 40)]))
			if len(status) >= 2 && strings.HasPrefix(status[1], "4") {
				answered4xx++
			}
			if len(status) >= 2 && strings.HasPrefix(status[0], "SIP/2.0") && strings.HasPrefix(status[1], "2") && strings.HasPrefix(string(m), "INVITE") {
				t.Errorf("message %d got %q: a malformed INVITE must not be accepted", i, strings.Join(status[:2], " "))
			}
		}
	}
	// The crafted requests that parse (CSeq mismatch, Max-Forwards 0, an
	// unsupported extension, no Max-Forwards) get their 4xx.
	if answered4xx < 4 {
		t.Errorf("only %d of the malformed requests got a 4xx answer", answered4xx)
	}
	t.Logf("%d of %d hostile messages answered with a 4xx; the rest dropped unparsed", answered4xx, len(msgs))
	if g.cmd.ProcessState != nil {
		t.Fatalf("the guard exited:\n%s", g.output())
	}
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := trunk.Options(ctx, target)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS after the hostile messages: %v %v\n%s", res, err, g.output())
	}
}
