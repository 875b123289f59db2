package sdp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
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
	if s.Origin.Username != "HuaweiSBC" || s.Origin.SessionID != "1705312345" || s.Origin.AddrType != "IP4" {
		t.Errorf("origin %+v", s.Origin)
	}
	if s.Name != "SBC call" {
		t.Errorf("name %q", s.Name)
	}
	if s.Connection == nil || s.Connection.Address != "198.51.100.10" {
		t.Errorf("connection %+v", s.Connection)
	}
	if len(s.Media) != 1 {
		t.Fatalf("%d media", len(s.Media))
	}
	m := s.Media[0]
	if m.Type != "audio" || m.Port != 30000 || m.Proto != "RTP/AVP" || strings.Join(m.Formats, " ") != "8 0 18 101" {
		t.Errorf("media %+v", m)
	}
	if r, ok := m.RTPMap(101); !ok || r.Encoding != "telephone-event" || r.ClockRate != 8000 {
		t.Errorf("rtpmap 101 = %+v, %v", r, ok)
	}
	if f, ok := m.FMTP(101); !ok || f != "0-15" {
		t.Errorf("fmtp 101 = %q, %v", f, ok)
	}
	if p, ok := m.PTime(); !ok || p != 20 {
		t.Errorf("ptime %d %v", p, ok)
	}
	if d := m.Direction(s); d != SendRecv {
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
				if len(s.Media) != 1 || s.Media[0].Port != 4000 {
					t.Errorf("media %+v", s.Media)
				}
			},
		},
		{
			name: "static payload types without rtpmap",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 18\r\n\r\n",
			check: func(t *testing.T, s *Session) {
				m := s.Media[0]
				if r, ok := m.RTPMap(8); !ok || r.Encoding != "PCMA" {
					t.Errorf("static 8 = %+v %v", r, ok)
				}
				if _, ok := m.RTPMap(96); ok {
					t.Error("unmapped dynamic type resolved")
				}
			},
		},
		{
			name: "extra spaces between fields and empty s=",
			body: "v=0\r\no=-  7 7 IN IP4 192.0.2.1\r\ns=\r\nc=IN  IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 \r\n",
			check: func(t *testing.T, s *Session) {
				if got := strings.Join(s.Media[0].Formats, ","); got != "0,8" {
					t.Errorf("formats %q", got)
				}
				if !strings.Contains(s.String(), "\r\ns=-\r\n") {
					t.Errorf("empty s= not written as -: %q", s.String())
				}
			},
		},
		{
			name: "media-level c overrides session",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\n",
			check: func(t *testing.T, s *Session) {
				if c := s.Media[0].ConnectionIn(s); c.Address != "203.0.113.5" {
					t.Errorf("connection %v", c)
				}
			},
		},
		{
			name: "session-level direction applies",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n",
			check: func(t *testing.T, s *Session) {
				if d := s.Media[0].Direction(s); d != SendOnly {
					t.Errorf("media 1 direction %v", d)
				}
				if d := s.Media[1].Direction(s); d != Inactive {
					t.Errorf("media 2 direction %v", d)
				}
			},
		},
		{
			name: "rejected stream needs no c",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\n",
			check: func(t *testing.T, s *Session) {
				if s.Media[1].Connection.AddrType != "IP6" {
					t.Errorf("connection %+v", s.Media[1].Connection)
				}
			},
		},
		{
			name: "all optional lines",
			body: "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 198.51.100.1\r\ns=Call\r\ni=info\r\nu=http://example.com/\r\ne=j@example.com\r\np=+7 800 555 35 35\r\nc=IN IP4 233.252.0.1/127\r\nb=CT:128\r\nt=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\na=rtpmap:0 PCMU/8000\r\n",
			check: func(t *testing.T, s *Session) {
				if len(s.Times) != 1 || len(s.Times[0].Repeats) != 1 || s.TimeZones == "" || len(s.Bandwidths) != 1 || s.Bandwidths[0].Value != 128 {
					t.Errorf("session %+v", s)
				}
				if _, err := s.Connection.Addr(); !errors.Is(err, ErrUnsupported) {
					t.Errorf("multicast Addr() error %v", err)
				}
			},
		},
		{
			name: "broken rtpmap in another stream is ignored (RFC 8866 §5.13)",
			body: "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n",
			check: func(t *testing.T, s *Session) {
				if _, ok := s.Media[1].RTPMap(31); ok {
					t.Error("broken rtpmap resolved")
				}
			},
		},
		{
			name: "host name connection",
			body: "v=0\r\no=- 1 1 IN IP4 sbc.example.ru\r\ns=-\r\nc=IN IP4 media.example.ru\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			check: func(t *testing.T, s *Session) {
				if _, err := s.Connection.Addr(); !errors.Is(err, ErrUnsupported) {
					t.Errorf("host name Addr() error %v", err)
				}
			},
		},
		{
			name: "non-RTP media with token formats",
			body: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=application 9 UDP/BFCP *\r\nm=image 4002 udptl t38\r\n",
			check: func(t *testing.T, s *Session) {
				if s.Media[0].IsRTP() || s.Media[1].Formats[0] != "t38" {
					t.Errorf("media %+v %+v", s.Media[0], s.Media[1])
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
		{"no v", "o=- 1 1 IN IP4 192.0.2.1\r\n", ErrMalformed, "line 1: first line must be v="},
		{"version 1", "v=1\r\n", ErrMalformed, `version "1"`},
		{"o not second", "v=0\r\ns=-\r\n", ErrMalformed, "line 2: second line must be o="},
		{"o fields", "v=0\r\no=- 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, "o= wants 6 fields"},
		{"o id", "v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, "decimal"},
		{"o nettype", "v=0\r\no=- 1 1 ATM IP4 192.0.2.1\r\ns=-\r\n", ErrMalformed, "network type"},
		{"s not third", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", ErrMalformed, "line 3: third line must be s="},
		{"only v o", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", ErrMalformed, "ends before"},
		{"no t", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n", ErrMalformed, "no t= line"},
		{"no c", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", ErrMalformed, "no c= line"},
		{"unknown letter", head + "x=1\r\n", ErrMalformed, `unknown type letter 'x'`},
		{"upper letter", head + "M=audio 4000 RTP/AVP 0\r\n", ErrMalformed, "not <type>=<value>"},
		{"space before =", head + "m =video 3227 RTP/AVP 31\r\n", ErrMalformed, "not <type>=<value>"},
		{"bare CR", head + "a=x\ry\r\n", ErrMalformed, "bare CR"},
		{"NUL", head + "a=x\x00\r\n", ErrMalformed, "NUL"},
		{"c family", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 2001:db8::1\r\n", ErrMalformed, "is not IP4"},
		{"c zone", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP6 fe80::1%eth0\r\n", ErrMalformed, "zone"},
		{"c garbage", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 <script>\r\n", ErrMalformed, "neither an IP"},
		{"c unicast with ttl", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1/127\r\n", ErrMalformed, "multicast form"},
		{"c twice", head + "c=IN IP4 192.0.2.2\r\n", ErrMalformed, "more than one c="},
		{"s twice", head + "s=again\r\n", ErrMalformed, "s= line repeated"},
		{"t in media", head + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", ErrMalformed, "inside a media section"},
		{"r before t", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nr=7d 1h 0\r\n", ErrMalformed, "r= before any t="},
		{"t fields", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0\r\n", ErrMalformed, "t= wants"},
		{"m short", head + "m=audio 4000 RTP/AVP\r\n", ErrMalformed, "m= wants"},
		{"m port", head + "m=audio 70000 RTP/AVP 0\r\n", ErrMalformed, "port"},
		{"m port sign", head + "m=audio +4000 RTP/AVP 0\r\n", ErrMalformed, "port"},
		{"m port count", head + "m=audio 4000/0 RTP/AVP 0\r\n", ErrMalformed, "port count"},
		{"m pt range", head + "m=audio 4000 RTP/AVP 128\r\n", ErrMalformed, "not 0-127"},
		{"m pt word", head + "m=audio 4000 RTP/AVP PCMU\r\n", ErrMalformed, "not 0-127"},
		{"attribute name", head + "a=rtp map:0 PCMU/8000\r\n", ErrMalformed, "not a token"},
		{"bandwidth", head + "b=AS:x\r\n", ErrMalformed, "b= bandwidth"},
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
	want := "v=0\r\no=- 7 8 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\na=tool:x\r\nm=audio 4000/2 RTP/AVP 0 8\r\nc=IN IP4 192.0.2.2\r\na=sendrecv\r\na=foo\r\n"
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
	if f, err := ParseFMTP("101 0-16"); err != nil || f.PayloadType != 101 || f.Params != "0-16" {
		t.Errorf("ParseFMTP = %+v, %v", f, err)
	}
	if _, err := ParseFMTP("101"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseFMTP without params: %v", err)
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
