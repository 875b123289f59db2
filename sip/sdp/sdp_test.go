package sdp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	psdp "github.com/pion/sdp/v3"
)

// crlf turns a readable multi-line literal into an SDP body.
func crlf(s string) []byte {
	s = strings.TrimLeft(s, "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// A Rostelecom-style offer through a Huawei SBC: PCMA first, G.729, and
// telephone-event at 101.
const offerHuawei = `
v=0
o=HuaweiSBC 1705312345 1705312345 IN IP4 198.51.100.10
s=SBC call
c=IN IP4 198.51.100.10
t=0 0
m=audio 30000 RTP/AVP 8 0 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
`

func TestParseValid(t *testing.T) {
	s, err := Parse(crlf(offerHuawei))
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin.Username != "HuaweiSBC" || s.Origin.SessionID != 1705312345 || s.Origin.AddressType != "IP4" {
		t.Errorf("origin %+v", s.Origin)
	}
	if s.SessionName != "SBC call" {
		t.Errorf("name %q", s.SessionName)
	}
	if c := s.ConnectionInformation; c == nil || c.Address.Address != "198.51.100.10" {
		t.Errorf("connection %+v", c)
	}
	if len(s.MediaDescriptions) != 1 {
		t.Fatalf("%d media", len(s.MediaDescriptions))
	}
	m := s.MediaDescriptions[0]
	if m.MediaName.Media != "audio" || m.MediaName.Port.Value != 30000 || proto(m) != "RTP/AVP" || strings.Join(m.MediaName.Formats, " ") != "8 0 18 101" {
		t.Errorf("media %+v", m)
	}
	if r, ok := rtpMapOf(m, 101); !ok || r.Encoding != "telephone-event" || r.ClockRate != 8000 {
		t.Errorf("rtpmap 101 = %+v, %v", r, ok)
	}
	if f, ok := fmtpOf(m, 101); !ok || f != "0-15" {
		t.Errorf("fmtp 101 = %q, %v", f, ok)
	}
	if p, ok := ptimeOf(m); !ok || p != 20 {
		t.Errorf("ptime %d %v", p, ok)
	}
	if d := s.MediaDirection(0); d != SendRecv {
		t.Errorf("direction %v", d)
	}
}

func TestParseDetails(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, s *Session)
	}{
		{
			name: "LF line ends and no final newline",
			body: "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0",
			check: func(t *testing.T, s *Session) {
				if len(s.MediaDescriptions) != 1 || s.MediaDescriptions[0].MediaName.Port.Value != 4000 {
					t.Errorf("media %+v", s.MediaDescriptions)
				}
			},
		},
		{
			name: "static payload types without rtpmap",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 18\r\n\r\n",
			check: func(t *testing.T, s *Session) {
				m := s.MediaDescriptions[0]
				if r, ok := rtpMapOf(m, 8); !ok || r.Encoding != "PCMA" {
					t.Errorf("static 8 = %+v %v", r, ok)
				}
				if _, ok := rtpMapOf(m, 96); ok {
					t.Error("unmapped dynamic type resolved")
				}
			},
		},
		{
			name: "extra spaces between fields and empty s=",
			body: "v=0\r\no=-  7 7 IN IP4 192.0.2.1\r\ns=\r\nc=IN  IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 \r\n",
			check: func(t *testing.T, s *Session) {
				if got := strings.Join(s.MediaDescriptions[0].MediaName.Formats, ","); got != "0,8" {
					t.Errorf("formats %q", got)
				}
				if s.Origin.SessionID != 7 {
					t.Errorf("origin %+v", s.Origin)
				}
			},
		},
		{
			name: "media-level c overrides session",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\n",
			check: func(t *testing.T, s *Session) {
				if c := s.connectionOf(s.MediaDescriptions[0]); c.Address.Address != "203.0.113.5" {
					t.Errorf("connection %v", c)
				}
			},
		},
		{
			name: "session-level direction applies",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n",
			check: func(t *testing.T, s *Session) {
				if d := s.MediaDirection(0); d != SendOnly {
					t.Errorf("media 1 direction %v", d)
				}
				if d := s.MediaDirection(1); d != Inactive {
					t.Errorf("media 2 direction %v", d)
				}
			},
		},
		{
			name: "rejected stream needs no c",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\n",
			check: func(t *testing.T, s *Session) {
				if c := s.MediaDescriptions[1].ConnectionInformation; c.AddressType != "IP6" {
					t.Errorf("connection %+v", c)
				}
			},
		},
		{
			name: "all optional lines",
			body: "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 198.51.100.1\r\ns=Call\r\ni=info\r\nu=http://example.com/\r\ne=j@example.com\r\np=+7 800 555 35 35\r\nc=IN IP4 233.252.0.1/127\r\nb=CT:128\r\nt=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\na=rtpmap:0 PCMU/8000\r\n",
			check: func(t *testing.T, s *Session) {
				if len(s.TimeDescriptions) != 1 || len(s.TimeDescriptions[0].RepeatTimes) != 1 || len(s.TimeZones) != 1 || len(s.Bandwidth) != 1 || s.Bandwidth[0].Bandwidth != 128 {
					t.Errorf("session %+v", s)
				}
				if _, err := connAddr(s.ConnectionInformation); !errors.Is(err, ErrUnsupported) {
					t.Errorf("multicast Addr() error %v", err)
				}
			},
		},
		{
			name: "broken rtpmap in another stream is ignored (RFC 8866 §5.13)",
			body: "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n",
			check: func(t *testing.T, s *Session) {
				if _, ok := rtpMapOf(s.MediaDescriptions[1], 31); ok {
					t.Error("broken rtpmap resolved")
				}
			},
		},
		{
			name: "host name connection",
			body: "v=0\r\no=- 1 1 IN IP4 sbc.example.ru\r\ns=-\r\nc=IN IP4 media.example.ru\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			check: func(t *testing.T, s *Session) {
				if _, err := connAddr(s.ConnectionInformation); !errors.Is(err, ErrUnsupported) {
					t.Errorf("host name Addr() error %v", err)
				}
			},
		},
		{
			name: "non-RTP media with token formats",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=application 9 UDP/BFCP *\r\nm=image 4002 udptl t38\r\n",
			check: func(t *testing.T, s *Session) {
				m := s.MediaDescriptions
				if isRTPProto(proto(m[0])) || m[1].MediaName.Media != "image" || proto(m[1]) != "udptl" || m[1].MediaName.Formats[0] != "t38" {
					t.Errorf("media %+v %+v", m[0].MediaName, m[1].MediaName)
				}
				if want := "m=image 4002 udptl t38\r\n"; !strings.HasSuffix(s.String(), want) {
					t.Errorf("T.38 stream written as\n%s", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseInvalid(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	var many strings.Builder
	many.WriteString(head)
	for range MaxMedia + 1 {
		many.WriteString("m=audio 4000 RTP/AVP 0\r\n")
	}
	manyFormats := head + "m=audio 4000 RTP/AVP" + strings.Repeat(" 0", MaxFormats+1) + "\r\n"
	manyLines := head + strings.Repeat("a=x\r\n", MaxLines)
	big := head + "a=x:" + strings.Repeat("y", MaxSize) + "\r\n"

	tests := []struct {
		name string
		body string
		want error
		msg  string
	}{
		{"empty", "", ErrMalformed, "empty body"},
		{"blank lines only", "\r\n\r\n", ErrMalformed, "empty body"},
		{"no v", "o=- 1 1 IN IP4 192.0.2.1\r\n", ErrMalformed, `at "o=- 1 1 IN IP4 192.0.2.1": sdp: syntax error`},
		{"version 1", "v=1\r\n", ErrMalformed, "invalid value `1`"},
		{"o not second", "v=0\r\ns=-\r\n", ErrMalformed, `at "s=-"`},
		{"o fields", "v=0\r\no=- 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, `at "o=- 1 IN IP4 192.0.2.1"`},
		{"o id", "v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, "syntax error"},
		{"o nettype", "v=0\r\no=- 1 1 ATM IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, "invalid value `ATM`"},
		{"s not third", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", ErrMalformed, `at "t=0 0"`},
		{"only v o", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", ErrMalformed, "no t= line"},
		{"no t", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n", ErrMalformed, "no t= line"},
		{"no c", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", ErrMalformed, "no c= line"},
		{"unknown letter", head + "x=1\r\n", ErrMalformed, `at "x=1"`},
		{"upper letter", head + "M=audio 4000 RTP/AVP 0\r\n", ErrMalformed, "not <type>=<value>"},
		{"space before =", head + "m =video 3227 RTP/AVP 31\r\n", ErrMalformed, "not <type>=<value>"},
		{"bare CR", head + "a=x\ry\r\n", ErrMalformed, "bare CR"},
		{"NUL", head + "a=x\x00\r\n", ErrMalformed, "NUL"},
		{"c family", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 2001:db8::1\r\nt=0 0\r\n", ErrMalformed, "is not IP4"},
		{"c zone", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP6 fe80::1%eth0\r\nt=0 0\r\n", ErrMalformed, "zone"},
		{"c garbage", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 <script>\r\nt=0 0\r\n", ErrMalformed, "neither an IP"},
		{"c unicast with ttl", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1/127\r\nt=0 0\r\n", ErrMalformed, "multicast form"},
		{"c twice", head + "c=IN IP4 192.0.2.2\r\n", ErrMalformed, `at "c=IN IP4 192.0.2.2"`},
		{"s twice", head + "s=again\r\n", ErrMalformed, `at "s=again"`},
		{"t in media", head + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", ErrMalformed, `at "t=0 0"`},
		{"r before t", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nr=7d 1h 0\r\n", ErrMalformed, `at "r=7d 1h 0"`},
		{"m short", head + "m=audio 4000 RTP/AVP\r\n", ErrMalformed, "m= wants"},
		{"m port", head + "m=audio 70000 RTP/AVP 0\r\n", ErrMalformed, "port"},
		{"m port sign", head + "m=audio +4000 RTP/AVP 0\r\n", ErrMalformed, "port"},
		{"m port count", head + "m=audio 4000/0 RTP/AVP 0\r\n", ErrMalformed, "port count"},
		{"m pt range", head + "m=audio 4000 RTP/AVP 128\r\n", ErrMalformed, "not 0-127"},
		{"m pt word", head + "m=audio 4000 RTP/AVP PCMU\r\n", ErrMalformed, "not 0-127"},
		{"bandwidth", head + "b=AS:x\r\n", ErrMalformed, "invalid value `b=AS:x`"},
		{"too many media", many.String(), ErrTooLarge, "media sections"},
		{"too many formats", manyFormats, ErrTooLarge, "formats"},
		{"too many lines", manyLines, ErrTooLarge, "lines"},
		{"too large", big, ErrTooLarge, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.body))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", s)
			}
			if s != nil {
				t.Error("non-nil session with error")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestMarshalCanonical(t *testing.T) {
	in := "v=0\no=-  7 8 IN IP4 192.0.2.1\ns=\nt=0 0\nc=IN IP4 192.0.2.1\na=tool:x\nb=AS:64\nm=audio 4000/2 RTP/AVP 0  8\na=sendrecv\nc=IN IP4 192.0.2.2\na=foo:\n"
	want := "v=0\r\no=- 7 8 IN IP4 192.0.2.1\r\ns=\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\na=tool:x\r\nm=audio 4000/2 RTP/AVP 0 8\r\nc=IN IP4 192.0.2.2\r\na=sendrecv\r\na=foo\r\n"
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Marshal()); got != want {
		t.Errorf("Marshal:\n%q\nwant\n%q", got, want)
	}
	again, err := Parse(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if again.String() != want {
		t.Errorf("second Marshal differs: %q", again.String())
	}
}

func TestParseRTPMapFMTP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0 PCMU/8000", "0 PCMU/8000", true},
		{"101 telephone-event/8000", "101 telephone-event/8000", true},
		{"111 opus/48000/2", "111 opus/48000/2", true},
		{"31 LPC", "", false},
		{"x PCMU/8000", "", false},
		{"200 PCMU/8000", "", false},
		{"0 PCMU/0", "", false},
		{"0 PCMU/8000/0", "", false},
		{"0 PC MU/8000", "", false},
		{"0", "", false},
	} {
		r, err := ParseRTPMap(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseRTPMap(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRTPMap(%q) error %v does not wrap ErrMalformed", tt.in, err)
		}
		if tt.ok && r.String() != tt.want {
			t.Errorf("ParseRTPMap(%q) = %q", tt.in, r.String())
		}
	}
	m := &Media{Attributes: []psdp.Attribute{{Key: "fmtp", Value: "101"}, {Key: "fmtp", Value: "x 0-15"}, {Key: "fmtp", Value: "101  0-16 "}}}
	if f, ok := fmtpOf(m, 101); !ok || f != "0-16" {
		t.Errorf("fmtpOf = %q, %v", f, ok)
	}
	if f, ok := fmtpOf(m, 0); ok {
		t.Errorf("fmtpOf(0) = %q", f)
	}
}

func TestStatusFor(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{fmt.Errorf("x: %w", ErrMalformed), 400},
		{fmt.Errorf("x: %w", ErrTooLarge), 400},
		{fmt.Errorf("x: %w", ErrNoCommonCodec), 488},
		{fmt.Errorf("x: %w", ErrUnsupported), 488},
		{errors.New("other"), 500},
	} {
		if got := StatusFor(tt.err); got != tt.want {
			t.Errorf("StatusFor(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestDirectionAnswer(t *testing.T) {
	for in, want := range map[Direction]Direction{
		DirectionUnset: SendRecv, SendRecv: SendRecv, SendOnly: RecvOnly, RecvOnly: SendOnly, Inactive: Inactive,
	} {
		if got := in.Answer(); got != want {
			t.Errorf("%v.Answer() = %v, want %v", in, got, want)
		}
	}
}

func TestDirectionAnswerWith(t *testing.T) {
	for _, tt := range []struct{ offer, want, answer Direction }{
		{SendRecv, SendRecv, SendRecv},
		{SendRecv, SendOnly, SendOnly}, // we put the peer on hold
		{SendRecv, Inactive, Inactive}, // we hold with no media either way
		{SendOnly, SendRecv, RecvOnly}, // the peer holds us
		{SendOnly, SendOnly, Inactive}, // both hold
		{RecvOnly, SendRecv, SendOnly}, // the peer only listens
		{RecvOnly, RecvOnly, Inactive}, // nobody would send
		{Inactive, SendRecv, Inactive}, // an inactive offer stays inactive
		{DirectionUnset, DirectionUnset, SendRecv},
		{DirectionUnset, RecvOnly, RecvOnly},
	} {
		if got := tt.offer.AnswerWith(tt.want); got != tt.answer {
			t.Errorf("%v.AnswerWith(%v) = %v, want %v", tt.offer, tt.want, got, tt.answer)
		}
	}
}

// A re-INVITE that puts the call on hold, and the answer written with the
// direction the guard wants, read back from the wire.
func TestNegotiateDirection(t *testing.T) {
	hold := strings.Replace(offerHuawei, "a=sendrecv", "a=sendonly", 1)
	for _, tt := range []struct {
		name   string
		offer  string
		want   Direction
		remote Direction
		ours   Direction
	}{
		{"hold answered", hold, DirectionUnset, SendOnly, RecvOnly},
		{"hold while holding", hold, SendOnly, SendOnly, Inactive},
		{"we hold a live call", offerHuawei, SendOnly, SendRecv, SendOnly},
		{"resume", offerHuawei, SendRecv, SendRecv, SendRecv},
	} {
		t.Run(tt.name, func(t *testing.T) {
			offer, err := Parse(crlf(tt.offer))
			if err != nil {
				t.Fatal(err)
			}
			caps := guardCaps()
			caps.Direction = tt.want
			ans, err := Negotiate(offer, caps)
			if err != nil {
				t.Fatal(err)
			}
			if ans.RemoteDirection != tt.remote || ans.Direction != tt.ours {
				t.Errorf("directions remote %v ours %v, want %v %v", ans.RemoteDirection, ans.Direction, tt.remote, tt.ours)
			}
			back, err := Parse(ans.Body())
			if err != nil {
				t.Fatal(err)
			}
			if got := back.MediaDirection(0); got != tt.ours {
				t.Errorf("answer on the wire says %v, want %v\n%s", got, tt.ours, ans.Body())
			}
		})
	}
	caps := guardCaps()
	caps.Direction = Inactive
	o, err := NewOffer(caps)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.String(), "\r\na=inactive\r\n") || strings.Contains(o.String(), "sendrecv") {
		t.Errorf("offer with Direction inactive:\n%s", o)
	}
	caps.Direction = Inactive + 1
	if _, err := NewOffer(caps); err == nil {
		t.Error("NewOffer accepted an unknown direction")
	}
}

// What carriers send that pion/sdp alone refuses: the shim in parse.go.
func TestParseShim(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
	for _, tt := range []struct{ name, body, want string }{
		{
			"t= before c= and b=, a= before t=",
			head + "a=tool:sbc\r\nt=0 0\r\nb=AS:80\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8\r\n",
			head + "c=IN IP4 192.0.2.1\r\nb=AS:80\r\nt=0 0\r\na=tool:sbc\r\nm=audio 4000 RTP/AVP 8\r\n",
		},
		{
			"audio and T.38 in one offer",
			head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nm=image 4002 udptl t38\r\na=T38FaxVersion:0\r\nm=image 0 UDPTL t38\r\n",
			head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nm=image 4002 udptl t38\r\na=T38FaxVersion:0\r\nm=image 0 UDPTL t38\r\n",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.String(); got != tt.want {
				t.Errorf("Marshal:\n%q\nwant\n%q", got, tt.want)
			}
			ans, err := Negotiate(s, guardCaps())
			if err != nil {
				t.Fatal(err)
			}
			if ans.MediaIndex != 0 || ans.Codec != PCMA {
				t.Errorf("negotiated %+v", ans.Negotiated)
			}
		})
	}
}
