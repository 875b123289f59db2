package guard_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/guard"
)

// Outcomes of a torture message at the guard.
const (
	// dropped: sipgo cannot parse the datagram; the guard counts it as
	// malformed and sends nothing (there is no Via to answer to that it
	// can trust).
	dropped = "dropped"
	// ignored: a response that matches no transaction of the guard's;
	// it is logged and discarded (RFC 3261 §18.1.2).
	ignored = "ignored"
	// unanswered: a request the guard parsed but sent no final response
	// to (where the RFC expects one, the table says so).
	unanswered = "unanswered"
	// call: an INVITE the guard took as a call and passed to the PBX,
	// whose 200 OK it relayed.
	passed = "call"
)

// TestTortureAtTheGuard sends every message of RFC 4475 §3 (the archive
// of its Appendix A, in ../validate/testdata/torture) to a running guard
// over UDP from a trusted source, one after the other, and checks what
// the guard does with each: the final status it answers, "dropped" for a
// datagram it cannot parse, "ignored" for a stray response. The RFC's own
// expectation is beside each row; where the two differ the comment says
// why. Afterwards a normal call still passes. Two of the messages
// (esc01, baddate) reach the PBX as calls.
func TestTortureAtTheGuard(t *testing.T) {
	tests := []struct {
		file, section string
		want          string // guard's outcome: a status, dropped or ignored
		rfc           string // what RFC 4475 expects of a UAS
	}{
		// 3.1.1 Valid messages: parsed, then refused by the guard's own
		// rules (not a telephone number, a method it does not serve).
		// sipgo reads no tag from "tag = 98asjd8" (LWS around "="), cannot
		// key the transaction and answers 400 itself: RFC 4475 says valid.
		{"wsinv", "3.1.1.1", "400", "parse; any response"},
		{"intmeth", "3.1.1.2", "405", "parse; 405 for an unknown method"},
		// From and To are no telephone numbers; the caller's identity is
		// then unknown, which the default policy passes to the PBX.
		{"esc01", "3.1.1.3", passed, "parse; any response"},
		{"escnull", "3.1.1.4", "405", "parse (REGISTER)"},
		{"esc02", "3.1.1.5", "405", "parse (RE%47IST%45R is not REGISTER): 405"},
		{"lwsdisp", "3.1.1.6", "200", "parse (OPTIONS)"},
		// Its answer would copy headers past what sipgo sends over UDP
		// (ErrUDPMTUCongestion), so none leaves: RFC 4475 expects one.
		{"longreq", "3.1.1.7", unanswered, "parse; any response"},
		{"dblreq", "3.1.1.8", "405", "parse the REGISTER, ignore what follows Content-Length"},
		{"semiuri", "3.1.1.9", "200", "parse (OPTIONS)"},
		{"transports", "3.1.1.10", "200", "parse (OPTIONS)"},
		{"mpart01", "3.1.1.11", "405", "parse (MESSAGE, multipart body)"},
		{"unreason", "3.1.1.12", ignored, "parse the response"},
		{"noreason", "3.1.1.13", ignored, "parse the response"},
		// 3.1.2 Invalid messages: RFC 4475 wants a 400 where the element
		// can answer; sipgo drops what it cannot parse, so there is no
		// answer (a carrier retransmits, then gives up: the call is lost
		// either way, and nothing of it reaches a grain).
		{"badinv01", "3.1.2.1", dropped, "400"},
		{"clerr", "3.1.2.2", dropped, "400 (UDP: Content-Length larger than the datagram)"},
		{"ncl", "3.1.2.3", dropped, "400"},
		{"scalar02", "3.1.2.4", dropped, "400"},
		{"scalarlg", "3.1.2.5", dropped, "drop the response"}, // sipgo: CSeq overflows
		{"quotbal", "3.1.2.6", dropped, "400"},
		{"ltgtruri", "3.1.2.7", dropped, "400"},
		{"lwsruri", "3.1.2.8", dropped, "400"},
		{"lwsstart", "3.1.2.9", dropped, "400"},
		{"trws", "3.1.2.10", dropped, "400"},
		{"escruri", "3.1.2.11", "400", "400 (or process it without the header)"},
		{"baddate", "3.1.2.12", passed, "any response (or 400)"},
		{"regbadct", "3.1.2.13", "405", "400 from a registrar"},
		{"badaspec", "3.1.2.14", dropped, "400 (or accept it)"},
		{"baddn", "3.1.2.15", dropped, "400 (or accept it)"},
		{"badvers", "3.1.2.16", "505", "505"},
		{"mismatch01", "3.1.2.17", "400", "400"},
		{"mismatch02", "3.1.2.18", "400", "400 (or 501)"},
		{"bigcode", "3.1.2.19", dropped, "drop the response"},
		// 3.2 Transaction layer.
		{"badbranch", "3.2.1", "200", "process it (RFC 2543 transaction matching)"},
		// 3.3 Application layer.
		// No From, Call-ID, CSeq: sipgo cannot key a transaction and
		// drops it; RFC 4475 wants 400 (validate would give "Missing From").
		{"insuf", "3.3.1", unanswered, "400"},
		{"unkscm", "3.3.2", "416", "416"},
		{"novelsc", "3.3.3", dropped, "416"},
		{"unksm2", "3.3.4", "405", "process it (REGISTER)"},
		{"bext01", "3.3.5", "420", "420 with Unsupported"},
		{"invut", "3.3.6", "415", "415 with Accept"},
		{"regaut01", "3.3.7", "405", "process it (REGISTER)"},
		{"multi01", "3.3.8", "400", "400"},
		{"mcl01", "3.3.9", "400", "400"},
		{"bcast", "3.3.10", ignored, "drop the response (Via to a broadcast address)"},
		{"zeromf", "3.3.11", "200", "process it: the guard is its destination"},
		{"cparam01", "3.3.12", "405", "process it (REGISTER)"},
		{"cparam02", "3.3.13", "405", "process it (REGISTER)"},
		{"regescrt", "3.3.14", "405", "process it (REGISTER)"},
		{"sdp01", "3.3.15", "406", "415 or 488 (Accept: text/nobodyKnowsThis)"},
		// 3.4 Backward compatibility.
		// No Max-Forwards: the guard forwards INVITEs, so it requires one
		// (validate.Options.AllowMissingMaxForwards is not used).
		{"inv2543", "3.4.1", "400", "process it (RFC 2543 INVITE)"},
		// In the archive, not in the RFC's text.
		{"test", "-", dropped, "-"},
	}
	// The guard answers a request over UDP at its source address and the
	// port of its top Via (RFC 3261 §18.2.2), 5060 for these messages: the
	// test sends from port 5060 of a loopback address of its own. Many of
	// the messages share a Via branch and sent-by, so that a guard that
	// got one takes the next for its retransmission (RFC 3261 §17.2.3):
	// each message goes to a guard of its own, then all of them to one.
	trusted := withConfig(func(c *guard.Config) { c.TrustedPeers = "127.0.0.0/8" })
	conn := listen5060(t)
	var summary strings.Builder
	counts := map[string]int{}
	var all [][]byte
	for i, tt := range tests {
		data, err := os.ReadFile(filepath.Join("..", "validate", "testdata", "torture", tt.file+".dat"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data)
		e := newEnv(t, trusted)
		got := tortureOutcome(t, e, conn, net.UDPAddrFromAddrPort(e.guard.UDPAddr()), data, i)
		e.stop()
		kind := "parsed, answered " + got
		switch got {
		case passed:
			kind = "parsed, a call: PBX's 200 relayed"
		case unanswered:
			kind = "parsed, not answered"
		case dropped:
			kind = "dropped unparsed"
		case ignored:
			kind = "parsed, stray response ignored"
		}
		counts[got]++
		fmt.Fprintf(&summary, "  %-10s §%-8s %-34s RFC: %s\n", tt.file, tt.section, kind, tt.rfc)
		if got != tt.want {
			t.Errorf("%s (RFC 4475 §%s): the guard %s, want %s", tt.file, tt.section, got, tt.want)
		}
	}
	t.Logf("RFC 4475 at the guard (%d messages):\n%s%v", len(tests), summary.String(), counts)

	// All of them to one guard, back to back: it keeps serving, and a
	// normal call passes to the PBX.
	e := newEnv(t, trusted)
	to := net.UDPAddrFromAddrPort(e.guard.UDPAddr())
	for _, data := range all {
		if _, err := conn.WriteTo(data, to); err != nil {
			t.Fatal(err)
		}
	}
	c := newFakeCaller(e)
	pai := sip.NewHeader("P-Asserted-Identity", "<tel:"+e.number+">")
	cl := c.invite(ctxFor(t, 5*time.Second), e.uri(), nil, pai)
	if cl.err != nil || cl.status() != 200 {
		t.Fatalf("a normal call after the torture set: got %d (%v), want 200", cl.status(), cl.err)
	}
	c.hangup(cl)
	st := e.guard.Stats()
	if st.Panics != 0 {
		t.Errorf("%d handler panics", st.Panics)
	}
	if st.Malformed != uint64(counts[dropped]) {
		t.Errorf("%d datagrams counted malformed, want %d", st.Malformed, counts[dropped])
	}
}

// tortureOutcome sends data to the guard, then an OPTIONS probe, and
// returns the final status the guard answers data with; dropped once the
// guard counted the datagram as malformed; or, once the probe is answered
// and half a second more has passed without an answer, ignored for a
// response and unanswered for a request. It waits up to 10 s.
func tortureOutcome(t *testing.T, e *env, conn net.PacketConn, to net.Addr, data []byte, seq int) string {
	t.Helper()
	malformed := e.guard.Stats().Malformed
	callIDs := map[string]bool{} // multi01 has two
	for _, m := range callIDLine.FindAllSubmatch(data, -1) {
		callIDs[string(m[1])] = true
	}
	if _, err := conn.WriteTo(data, to); err != nil {
		t.Fatalf("send: %v", err)
	}
	probeID := "probe-" + strconv.Itoa(seq) + "@torture"
	probe := "OPTIONS sip:" + to.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() + ";branch=z9hG4bK-probe" + strconv.Itoa(seq) +
		"\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p" + strconv.Itoa(seq) + "\r\nTo: <sip:" + to.String() + ">\r\nCall-ID: " + probeID +
		"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.WriteTo([]byte(probe), to); err != nil {
		t.Fatalf("send probe: %v", err)
	}
	// A request's answer may come well after the probe's on a loaded
	// machine; only a failing row waits the whole grace.
	silent, grace := unanswered, 3*time.Second
	if strings.HasPrefix(string(data), "SIP/2.0 ") {
		silent, grace = ignored, 500*time.Millisecond
	}
	parser := sip.NewParser()
	buf := make([]byte, 65536)
	var probed time.Time
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.guard.Stats().Malformed > malformed {
			drainProbe(conn, buf)
			return dropped
		}
		if !probed.IsZero() && time.Since(probed) > grace {
			return silent
		}
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		msg, err := parser.ParseSIP(buf[:n])
		if err != nil {
			t.Fatalf("the guard sent what does not parse: %v\n%s", err, buf[:n])
		}
		res, ok := msg.(*sip.Response)
		if !ok {
			t.Fatalf("the guard sent a request: %s", buf[:n])
		}
		if res.StatusCode < 200 {
			continue
		}
		if callIDOf(res) == probeID {
			probed = time.Now()
			continue
		}
		if !callIDs[callIDOf(res)] {
			continue // a retransmission of an earlier INVITE's final response
		}
		if probed.IsZero() {
			drainProbe(conn, buf)
		}
		if res.StatusCode < 300 && strings.HasPrefix(string(data), "INVITE ") {
			return passed
		}
		return strconv.Itoa(res.StatusCode)
	}
	t.Fatalf("no outcome within 10 s for:\n%s", data)
	return ""
}

// callIDLine finds a raw message's Call-ID (long or compact form).
var callIDLine = regexp.MustCompile(`(?mi)^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$`)

// drainProbe reads the probe's answer (best effort), so that it is not
// taken for the next message's.
func drainProbe(conn net.PacketConn, buf []byte) {
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil || strings.Contains(string(buf[:n]), "@torture") {
			return
		}
	}
}

// listen5060 binds UDP port 5060 on a loopback address 127.0.0.N that is
// free (N drawn at random, so that parallel test runs do not collide).
func listen5060(t *testing.T) net.PacketConn {
	t.Helper()
	var err error
	for range 40 {
		var conn net.PacketConn
		addr := fmt.Sprintf("127.0.%d.%d:5060", 1+rand.IntN(250), 2+rand.IntN(250))
		if conn, err = net.ListenPacket("udp", addr); err == nil {
			t.Cleanup(func() { conn.Close() })
			return conn
		}
	}
	t.Fatalf("no loopback address with UDP port 5060 free: %v", err)
	return nil
}

func callIDOf(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
