package guard_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/schema"
)

// rejectingCallers is a fake caller grain: it rejects every call at once,
// so that a fuzzed INVITE that gets through parsing and validation runs
// the decision path and ends there, without a PBX leg or media.
type rejectingCallers struct{ admits *atomic.Int64 }

func (c rejectingCallers) Admit(_ context.Context, _ string, req caller.Admit) (caller.Verdict, error) {
	c.admits.Add(1)
	return caller.Verdict{CallID: req.CallID, Verdict: schema.Reject, Level: 7, Rule: schema.RuleManual, At: time.Now()}, nil
}

func (rejectingCallers) Outcome(context.Context, string, caller.Outcome) (caller.Applied, error) {
	return caller.Applied{}, nil
}

// ingressSeed is a well-formed INVITE from a telephone number to the
// toll-free number with an SDP offer: the decision path's way in.
const ingressSeed = "INVITE sip:78005553535@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-seed1\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"Ivan\" <sip:+79990001122@127.0.0.1>;tag=seed\r\n" +
	"To: <sip:78005553535@127.0.0.1>\r\n" +
	"Call-ID: seed1@fuzz\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: <sip:+79990001122@127.0.0.1:5999>\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 129\r\n\r\n" +
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// FuzzIngress feeds raw datagrams to a running guard's UDP socket: sipgo's
// parser, package validate, and for an INVITE that gets through, the
// guard's call setup (SDP, caller identity) and the decision by a fake
// grain. After each datagram an OPTIONS probe must still be answered, and
// no handler may have panicked (the guard recovers handler panics and
// counts them; a panic in sipgo's reader kills the process, which the
// fuzzer reports as a crash). The seeds are the RFC 4475 torture set and
// a valid INVITE.
//
//	go tool task fuzz-ingress FUZZTIME=10m
func FuzzIngress(f *testing.F) {
	files, err := filepath.Glob("../validate/testdata/torture/*.dat")
	if err != nil || len(files) == 0 {
		f.Fatalf("no torture messages: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(ingressSeed))
	f.Add([]byte(strings.Replace(ingressSeed, "Content-Length: 129\r\n", "Require: 100rel\r\nContent-Length: 129\r\n", 1)))

	admits := &atomic.Int64{}
	e := newEnv(f, withCallers(rejectingCallers{admits: admits}))
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		conn.Close()
		f.Logf("decisions by the fake grain: %d", admits.Load())
	})
	to := net.UDPAddrFromAddrPort(e.guard.UDPAddr())
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := conn.WriteTo(data, to); err != nil {
			return // too large for a datagram
		}
		n := seq.Add(1)
		probeID := "fuzz-probe-" + strconv.FormatInt(n, 10)
		probe := "OPTIONS sip:" + to.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() + ";branch=z9hG4bK-" + probeID +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=" + probeID + "\r\nTo: <sip:" + to.String() + ">\r\nCall-ID: " + probeID +
			"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.WriteTo([]byte(probe), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		deadline := time.Now().Add(10 * time.Second)
		for {
			_ = conn.SetReadDeadline(deadline)
			m, _, err := conn.ReadFrom(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the guard stopped answering OPTIONS after %q", data)
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(buf[:m]), "Call-ID: "+probeID+"\r\n") {
				break
			}
		}
		if p := e.guard.Stats().Panics; p != 0 {
			t.Fatalf("%d handler panics after %q", p, data)
		}
	})
}
