package validate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const parseError = -1

// TestTorture runs the RFC 4475 messages in testdata/torture through
// sipgo's parser and Request. status parseError means sipgo refuses the
// message, so it never reaches the guard; 0 means the request is valid as
// far as Request is concerned (methods the guard does not serve, such as
// REGISTER or MESSAGE, are answered 405 by the SIP layer, not here).
func TestTorture(t *testing.T) {
	tests := []struct {
		file    string
		section string
		status  int
		reason  string
	}{
		// 3.1.1 Valid messages.
		{"wsinv", "3.1.1.1", 0, ""},
		{"intmeth", "3.1.1.2", 0, ""},
		{"esc01", "3.1.1.3", 0, ""},
		{"escnull", "3.1.1.4", 0, ""},
		{"esc02", "3.1.1.5", 0, ""},
		{"lwsdisp", "3.1.1.6", 0, ""},
		{"longreq", "3.1.1.7", 0, ""},
		{"dblreq", "3.1.1.8", 0, ""},
		{"semiuri", "3.1.1.9", 0, ""},
		{"transports", "3.1.1.10", 0, ""},
		{"mpart01", "3.1.1.11", 0, ""},
		// 3.1.2 Invalid messages.
		{"badinv01", "3.1.2.1", parseError, ""},
		{"clerr", "3.1.2.2", parseError, ""},
		{"ncl", "3.1.2.3", parseError, ""},
		{"scalar02", "3.1.2.4", parseError, ""},
		{"quotbal", "3.1.2.6", parseError, ""},
		{"ltgtruri", "3.1.2.7", parseError, ""},
		{"lwsruri", "3.1.2.8", parseError, ""},
		{"lwsstart", "3.1.2.9", parseError, ""},
		{"trws", "3.1.2.10", parseError, ""},
		{"escruri", "3.1.2.11", 400, "Headers Not Allowed In Request-URI"},
		{"baddate", "3.1.2.12", 0, ""},
		{"regbadct", "3.1.2.13", 0, ""},
		{"badaspec", "3.1.2.14", parseError, ""},
		{"baddn", "3.1.2.15", parseError, ""},
		{"badvers", "3.1.2.16", 505, "Version Not Supported"},
		{"mismatch01", "3.1.2.17", 400, "CSeq Method Mismatch"},
		{"mismatch02", "3.1.2.18", 400, "CSeq Method Mismatch"},
		// 3.2 Transaction layer.
		{"badbranch", "3.2.1", 0, ""},
		// 3.3 Application layer.
		{"insuf", "3.3.1", 400, "Missing From"},
		{"unkscm", "3.3.2", 416, "Unsupported URI Scheme"},
		// RFC 4475 expects 416 here too, but sipgo v1.7.3 cannot parse
		// the soap.beep:// Request-URI, so the message never arrives.
		{"novelsc", "3.3.3", parseError, ""},
		{"unksm2", "3.3.4", 0, ""},
		{"bext01", "3.3.5", 420, "Bad Extension"},
		{"invut", "3.3.6", 415, "Unsupported Media Type"},
		{"regaut01", "3.3.7", 0, ""},
		{"multi01", "3.3.8", 400, "Multiple From"},
		{"mcl01", "3.3.9", 400, "Multiple Content-Length"},
		{"zeromf", "3.3.11", 0, ""}, // OPTIONS: the guard is its final recipient
		{"cparam01", "3.3.12", 0, ""},
		{"cparam02", "3.3.13", 0, ""},
		{"regescrt", "3.3.14", 0, ""},
		{"sdp01", "3.3.15", 406, "Not Acceptable"},
		// 3.4 Backward compatibility: RFC 2543 had no Max-Forwards.
		{"inv2543", "3.4.1", 400, "Missing Max-Forwards"},
		// Not in RFC 4475's text but in its archive.
		{"test", "-", parseError, ""},
	}
	parser := sip.NewParser()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/torture/" + tt.file + ".dat")
			if err != nil {
				t.Fatal(err)
			}
			msg, err := parser.ParseSIP(data)
			if tt.status == parseError {
				if err == nil {
					t.Fatalf("RFC 4475 §%s: sipgo parsed it; validate now: %v", tt.section, Check(msg.(*sip.Request), Options{}))
				}
				return
			}
			if err != nil {
				t.Fatalf("RFC 4475 §%s: sipgo: %v", tt.section, err)
			}
			req, ok := msg.(*sip.Request)
			if !ok {
				t.Fatalf("not a request: %T", msg)
			}
			status, reason, ok := Request(req)
			if tt.status == 0 {
				if !ok {
					t.Errorf("RFC 4475 §%s: got %d %s, want accepted", tt.section, status, reason)
				}
				return
			}
			if ok || status != tt.status || reason != tt.reason {
				t.Errorf("RFC 4475 §%s: got %d %q ok=%v, want %d %q", tt.section, status, reason, ok, tt.status, tt.reason)
			}
		})
	}
}

func TestTortureDetails(t *testing.T) {
	parser := sip.NewParser()
	load := func(name string) *sip.Request {
		t.Helper()
		data, err := os.ReadFile("testdata/torture/" + name + ".dat")
		if err != nil {
			t.Fatal(err)
		}
		msg, err := parser.ParseSIP(data)
		if err != nil {
			t.Fatal(err)
		}
		return msg.(*sip.Request)
	}
	r := Check(load("bext01"), Options{})
	if got := strings.Join(r.Unsupported, ","); got != "nothingSupportsThis,nothingSupportsThisEither,noProxiesSupportThis,norDoAnyProxiesSupportThis" {
		t.Errorf("bext01 Unsupported = %q", got)
	}
	r = Check(load("invut"), Options{})
	if r.Accept != "application/sdp, multipart/mixed" {
		t.Errorf("invut Accept = %q", r.Accept)
	}
	if r := Check(load("inv2543"), Options{AllowMissingMaxForwards: true}); !r.OK {
		t.Errorf("inv2543 with AllowMissingMaxForwards: %+v", r)
	}
	// zeromf as an INVITE: the guard would forward it, so 483.
	data, err := os.ReadFile("testdata/torture/zeromf.dat")
	if err != nil {
		t.Fatal(err)
	}
	inv := strings.ReplaceAll(string(data), "OPTIONS", "INVITE")
	msg, err := parser.ParseSIP([]byte(inv))
	if err != nil {
		t.Fatal(err)
	}
	if status, reason, ok := Request(msg.(*sip.Request)); ok || status != 483 || reason != "Too Many Hops" {
		t.Errorf("INVITE with Max-Forwards 0: %d %q %v", status, reason, ok)
	}
}

const sdpBody = "v=0\r\no=- 1 1 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// request builds and parses a request; headers replace the defaults of
// the same name ("-Name" removes one).
func request(t *testing.T, method, ruri, body string, headers ...string) *sip.Request {
	t.Helper()
	defaults := []string{
		"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-1",
		"Max-Forwards: 70",
		"From: <sip:79161234567@198.51.100.10>;tag=1",
		"To: <sip:88005553535@192.0.2.50>",
		"Call-ID: abc@198.51.100.10",
		"CSeq: 1 " + method,
	}
	if body != "" {
		defaults = append(defaults, "Content-Type: application/sdp")
	}
	var out []string
	for _, d := range defaults {
		name, _, _ := strings.Cut(d, ":")
		replaced := false
		for _, h := range headers {
			if n, _, _ := strings.Cut(strings.TrimPrefix(h, "-"), ":"); strings.EqualFold(n, name) {
				replaced = true
			}
		}
		if !replaced {
			out = append(out, d)
		}
	}
	for _, h := range headers {
		if !strings.HasPrefix(h, "-") {
			out = append(out, h)
		}
	}
	raw := method + " " + ruri + " SIP/2.0\r\n" + strings.Join(out, "\r\n") + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("sipgo: %v\n%s", err, raw)
	}
	return msg.(*sip.Request)
}

// vias returns n Via values for request, perLine of them per header line
// (a comma-separated list, RFC 3261 §7.3.1).
func vias(n, perLine int) []string {
	var lines []string
	for i := 0; i < n; i += perLine {
		var vals []string
		for j := i; j < min(n, i+perLine); j++ {
			vals = append(vals, fmt.Sprintf("SIP/2.0/TCP 198.51.100.%d:5060;branch=z9hG4bK-%d", j%250+1, j))
		}
		lines = append(lines, "Via: "+strings.Join(vals, ", "))
	}
	return lines
}

// manyHeaders returns n extension headers for request.
func manyHeaders(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("X-Filler-%d: %d", i, i)
	}
	return hs
}

const sipI = "--unique-boundary-1\r\n" +
	"Content-Type: application/sdp\r\n\r\n" + sdpBody +
	"--unique-boundary-1\r\n" +
	"Content-Type: application/ISUP;version=itu-t92+\r\n" +
	"Content-Disposition: signal;handling=optional\r\n\r\n" +
	"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00\r\n" +
	"--unique-boundary-1--\r\n"

func TestCheck(t *testing.T) {
	const ruri = "sip:88005553535@192.0.2.50:5060"
	tests := []struct {
		name   string
		req    func(t *testing.T) *sip.Request
		opts   Options
		status int // 0: accepted
		reason string
	}{
		{"plain INVITE", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody) }, Options{}, 0, ""},
		{"INVITE without SDP", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, "") }, Options{}, 0, ""},
		{"tel Request-URI", func(t *testing.T) *sip.Request { return request(t, "INVITE", "tel:+78005553535", sdpBody) }, Options{}, 0, ""},
		{"lower-case CSeq method", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "CSeq: 1 invite")
		}, Options{}, 0, ""},
		{"missing Via", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "-Via") }, Options{}, 400, "Missing Via"},
		{"missing Call-ID", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "-Call-ID") }, Options{}, 400, "Missing Call-ID"},
		{"missing CSeq", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "-CSeq") }, Options{}, 400, "Missing CSeq"},
		{"missing To", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "-To") }, Options{}, 400, "Missing To"},
		{"missing Max-Forwards", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "-Max-Forwards") }, Options{}, 400, "Missing Max-Forwards"},
		{"compact headers count", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "-From", "-To", "-Call-ID", "f: <sip:1@h>;tag=2", "t: <sip:2@h>", "i: x@y")
		}, Options{}, 0, ""},
		{"CSeq for BYE on INVITE", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "CSeq: 1 BYE") }, Options{}, 400, "CSeq Method Mismatch"},
		{"Max-Forwards 0", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "Max-Forwards: 0") }, Options{}, 483, "Too Many Hops"},
		{"Max-Forwards 0 on OPTIONS", func(t *testing.T) *sip.Request { return request(t, "OPTIONS", ruri, "", "Max-Forwards: 0") }, Options{}, 0, ""},
		{"Max-Forwards 1", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "Max-Forwards: 1") }, Options{}, 0, ""},
		{"urn Request-URI", func(t *testing.T) *sip.Request { return request(t, "INVITE", "urn:service:sos", sdpBody) }, Options{}, 416, "Unsupported URI Scheme"},
		{"Require 100rel", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Require: 100rel")
		}, Options{}, 420, "Bad Extension"},
		{"Require 100rel supported", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Require: 100rel, timer")
		}, Options{Extensions: []string{"100rel", "Timer"}}, 0, ""},
		{"Require in ACK is ignored", func(t *testing.T) *sip.Request {
			return request(t, "ACK", ruri, "", "Require: 100rel")
		}, Options{}, 0, ""},
		{"Supported is not Require", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Supported: 100rel, timer, replaces")
		}, Options{}, 0, ""},
		{"XML body on INVITE", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, "<audio/>", "Content-Type: application/xml")
		}, Options{}, 415, "Unsupported Media Type"},
		{"SDP with parameters", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Content-Type: Application/SDP; charset=utf-8")
		}, Options{}, 0, ""},
		{"gzip body", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Content-Encoding: gzip")
		}, Options{}, 415, "Unsupported Media Type"},
		{"body without Content-Type", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "-Content-Type")
		}, Options{}, 400, "Missing Content-Type"},
		{"bad Content-Type", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Content-Type: application/")
		}, Options{}, 400, "Malformed Content-Type"},
		{"SIP-I multipart", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sipI, `Content-Type: multipart/mixed;boundary=unique-boundary-1`)
		}, Options{}, 0, ""},
		{"multipart without SDP", func(t *testing.T) *sip.Request {
			body := "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
			return request(t, "INVITE", ruri, body, `Content-Type: multipart/mixed; boundary=b`)
		}, Options{}, 415, "Unsupported Media Type"},
		{"multipart with a required part we do not know", func(t *testing.T) *sip.Request {
			body := "--b\r\nContent-Type: application/sdp\r\n\r\n" + sdpBody + "--b\r\nContent-Type: application/x-secret\r\nContent-Disposition: signal;handling=required\r\n\r\nx\r\n--b--\r\n"
			return request(t, "INVITE", ruri, body, `Content-Type: multipart/mixed; boundary=b`)
		}, Options{}, 415, "Unsupported Media Type"},
		{"INFO dtmf-relay", func(t *testing.T) *sip.Request {
			return request(t, "INFO", ruri, "Signal=5\r\nDuration=160\r\n", "Content-Type: application/dtmf-relay")
		}, Options{}, 0, ""},
		{"INFO text", func(t *testing.T) *sip.Request {
			return request(t, "INFO", ruri, "5", "Content-Type: text/plain")
		}, Options{}, 415, "Unsupported Media Type"},
		{"MESSAGE is not checked", func(t *testing.T) *sip.Request {
			return request(t, "MESSAGE", ruri, "hi", "Content-Type: text/plain")
		}, Options{}, 0, ""},
		{"Accept without SDP", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Accept: text/html")
		}, Options{}, 406, "Not Acceptable"},
		{"Accept SDP with q=0", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Accept: application/sdp;q=0.0, text/html")
		}, Options{}, 406, "Not Acceptable"},
		{"Accept list with SDP", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, "Accept: application/isup, application/sdp;level=1")
		}, Options{}, 0, ""},
		{"Accept anything", func(t *testing.T) *sip.Request { return request(t, "INVITE", ruri, sdpBody, "Accept: */*") }, Options{}, 0, ""},
		{"Accept on OPTIONS is not checked", func(t *testing.T) *sip.Request {
			return request(t, "OPTIONS", ruri, "", "Accept: text/html")
		}, Options{}, 0, ""},
		{"70 Via headers", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, vias(70, 1)...)
		}, Options{}, 0, ""},
		{"71 Via headers", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, vias(71, 1)...)
		}, Options{}, 400, "Too Many Via Headers"},
		{"1,000 Via headers", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, vias(1000, 1)...)
		}, Options{}, 400, "Too Many Via Headers"},
		{"71 Via values in comma lists", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, vias(71, 10)...)
		}, Options{}, 400, "Too Many Via Headers"},
		{"Via cap set lower", func(t *testing.T) *sip.Request {
			return request(t, "BYE", ruri, "", vias(3, 1)...)
		}, Options{MaxVia: 2}, 400, "Too Many Via Headers"},
		{"300 headers", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, manyHeaders(300)...)
		}, Options{}, 513, "Message Too Large"},
		{"200 headers", func(t *testing.T) *sip.Request {
			return request(t, "INVITE", ruri, sdpBody, manyHeaders(200)...)
		}, Options{}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.req(t), tt.opts)
			if tt.status == 0 {
				if !r.OK {
					t.Errorf("got %d %q, want accepted", r.Status, r.Reason)
				}
				return
			}
			if r.OK || r.Status != tt.status || r.Reason != tt.reason {
				t.Errorf("got %+v, want %d %q", r, tt.status, tt.reason)
			}
		})
	}

	if status, reason, ok := Request(nil); ok || status != 400 || reason == "" {
		t.Errorf("nil request: %d %q %v", status, reason, ok)
	}
	vers := request(t, "INVITE", ruri, sdpBody)
	vers.SipVersion = "SIP/3.0"
	if status, _, _ := Request(vers); status != 505 {
		t.Errorf("SIP/3.0: %d", status)
	}
}

func TestSessionBody(t *testing.T) {
	const ruri = "sip:88005553535@192.0.2.50"
	got, err := SessionBody(request(t, "INVITE", ruri, sdpBody))
	if err != nil || string(got) != sdpBody {
		t.Errorf("plain SDP: %q, %v", got, err)
	}
	got, err = SessionBody(request(t, "INVITE", ruri, sipI, `Content-Type: multipart/mixed;boundary=unique-boundary-1`))
	// The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
	if err != nil || string(got) != strings.TrimSuffix(sdpBody, "\r\n") {
		t.Errorf("SIP-I: %q, %v", got, err)
	}
	got, err = SessionBody(request(t, "INVITE", ruri, ""))
	if err != nil || got != nil {
		t.Errorf("no body: %q, %v", got, err)
	}
	for name, req := range map[string]*sip.Request{
		"xml":           request(t, "INVITE", ruri, "<x/>", "Content-Type: application/xml"),
		"no boundary":   request(t, "INVITE", ruri, sipI, "Content-Type: multipart/mixed"),
		"bad multipart": request(t, "INVITE", ruri, "garbage", "Content-Type: multipart/mixed;boundary=b"),
		"no type":       request(t, "INVITE", ruri, sdpBody, "-Content-Type"),
		"too many parts": request(t, "INVITE", ruri, strings.Repeat("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n", maxParts+1)+"--b--\r\n",
			"Content-Type: multipart/mixed;boundary=b"),
	} {
		if _, err := SessionBody(req); !errors.Is(err, ErrNoSession) {
			t.Errorf("%s: error %v, want ErrNoSession", name, err)
		}
	}
}
