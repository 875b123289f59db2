package sdp

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	psdp "github.com/pion/sdp/v3"
)

func guardCaps() Capabilities {
	return Capabilities{
		Addr:           netip.MustParseAddr("192.0.2.50"),
		Port:           20000,
		Username:       "callguard",
		SessionID:      42,
		SessionVersion: 1,
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name   string
		offer  string
		caps   func(*Capabilities)
		codec  Codec
		dtmf   string // "pt events", "" for none
		remote string
		dir    Direction
		answer string // the expected answer body, "" to skip
	}{
		{
			name:   "Huawei SBC offer, PCMA first",
			offer:  offerHuawei,
			codec:  Codec{PayloadType: 8, Name: "PCMA", ClockRate: 8000},
			dtmf:   "101 0-15",
			remote: "198.51.100.10:30000",
			dir:    SendRecv,
			answer: `
v=0
o=callguard 42 1 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
m=audio 20000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
`,
		},
		{
			name: "PCMU first, static types without rtpmap, no telephone-event",
			offer: `
v=0
o=- 3921 3921 IN IP4 203.0.113.20
s=-
c=IN IP4 203.0.113.20
t=0 0
m=audio 16384 RTP/AVP 0 8
`,
			codec:  PCMU,
			remote: "203.0.113.20:16384",
			dir:    SendRecv,
		},
		{
			name: "our preference wins with PreferLocal",
			offer: `
v=0
o=- 1 1 IN IP4 203.0.113.20
s=-
c=IN IP4 203.0.113.20
t=0 0
m=audio 16384 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
`,
			caps:   func(c *Capabilities) { c.Codecs = []Codec{PCMA, PCMU}; c.Preference = PreferLocal },
			codec:  PCMA,
			dtmf:   "101 0-16",
			remote: "203.0.113.20:16384",
			dir:    SendRecv,
		},
		{
			name: "only PCMA supported locally",
			offer: `
v=0
o=- 1 1 IN IP4 203.0.113.20
s=-
c=IN IP4 203.0.113.20
t=0 0
m=audio 16384 RTP/AVP 0 8
`,
			caps:   func(c *Capabilities) { c.Codecs = []Codec{PCMA} },
			codec:  PCMA,
			remote: "203.0.113.20:16384",
			dir:    SendRecv,
		},
		{
			name: "dynamic payload types, media-level c, events trimmed to 0-16",
			offer: `
v=0
o=MTS-SBC 77 78 IN IP4 198.51.100.99
s=-
c=IN IP4 198.51.100.99
t=0 0
m=audio 40002 RTP/AVP 18 97 96
c=IN IP4 198.51.100.77
a=rtpmap:97 pcmu/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15,16,66,70-72
a=ptime:30
`,
			codec:  Codec{PayloadType: 97, Name: "PCMU", ClockRate: 8000},
			dtmf:   "96 0-16",
			remote: "198.51.100.77:40002",
			dir:    SendRecv,
		},
		{
			name: "video first and disabled audio declined, second audio taken",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=3149328700 0
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
m=audio 0 RTP/AVP 0
m=audio 49217 RTP/AVP 0 12
`,
			codec:  PCMU,
			remote: "192.0.2.5:49217",
			dir:    SendRecv,
			answer: `
v=0
o=callguard 42 1 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=3149328700 0
m=video 0 RTP/AVP 31
m=audio 0 RTP/AVP 0
m=audio 20000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
`,
		},
		{
			name: "sendonly offer answered recvonly",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
a=sendonly
m=audio 5004 RTP/AVP 8
`,
			codec:  PCMA,
			remote: "192.0.2.5:5004",
			dir:    RecvOnly,
		},
		{
			name: "IPv6 trunk",
			offer: `
v=0
o=- 1 1 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 5004 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
`,
			caps:   func(c *Capabilities) { c.Addr = netip.MustParseAddr("2001:db8::50") },
			codec:  PCMA,
			dtmf:   "101 0-15",
			remote: "[2001:db8::10]:5004",
			dir:    SendRecv,
			answer: `
v=0
o=callguard 42 1 IN IP6 2001:db8::50
s=-
c=IN IP6 2001:db8::50
t=0 0
m=audio 20000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
`,
		},
		{
			name: "telephone-event at another clock rate is not taken",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/AVP 8 100
a=rtpmap:100 telephone-event/16000
`,
			codec:  PCMA,
			remote: "192.0.2.5:5004",
			dir:    SendRecv,
		},
		{
			name:   "telephone-event off locally",
			offer:  offerHuawei,
			caps:   func(c *Capabilities) { c.NoTelephoneEvent = true },
			codec:  PCMA,
			remote: "198.51.100.10:30000",
			dir:    SendRecv,
		},
		{
			name: "unreadable event list falls back to 0-15",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 all-of-them
`,
			codec:  PCMU,
			dtmf:   "101 0-15",
			remote: "192.0.2.5:5004",
			dir:    SendRecv,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer, err := Parse(crlf(tt.offer))
			if err != nil {
				t.Fatal(err)
			}
			caps := guardCaps()
			if tt.caps != nil {
				tt.caps(&caps)
			}
			ans, err := Negotiate(offer, caps)
			if err != nil {
				t.Fatal(err)
			}
			if ans.Codec != tt.codec {
				t.Errorf("codec %v, want %v", ans.Codec, tt.codec)
			}
			dtmf := ""
			if ans.DTMF {
				dtmf = strconv.Itoa(int(ans.DTMFPayloadType)) + " " + ans.DTMFEvents
			}
			if dtmf != tt.dtmf {
				t.Errorf("dtmf %q, want %q", dtmf, tt.dtmf)
			}
			if ans.Remote.String() != tt.remote {
				t.Errorf("remote %v, want %s", ans.Remote, tt.remote)
			}
			if ans.Direction != tt.dir {
				t.Errorf("direction %v, want %v", ans.Direction, tt.dir)
			}
			body := ans.Body()
			if tt.answer != "" && string(body) != string(crlf(tt.answer)) {
				t.Errorf("answer:\n%s\nwant:\n%s", body, crlf(tt.answer))
			}
			// The answer is itself a valid description with one m= per
			// offered m= (RFC 3264 §6), and reads back as the same
			// negotiation from the offerer's side.
			back, err := Parse(body)
			if err != nil {
				t.Fatalf("answer does not parse: %v\n%s", err, body)
			}
			if len(back.MediaDescriptions) != len(offer.MediaDescriptions) {
				t.Fatalf("answer has %d m= lines, offer %d", len(back.MediaDescriptions), len(offer.MediaDescriptions))
			}
			got, err := ReadAnswer(offer, back)
			if err != nil {
				t.Fatalf("ReadAnswer: %v", err)
			}
			if got.Codec != ans.Codec || got.DTMF != ans.DTMF || got.DTMFPayloadType != ans.DTMFPayloadType || got.MediaIndex != ans.MediaIndex {
				t.Errorf("ReadAnswer = %+v, Negotiate = %+v", got, ans.Negotiated)
			}
			if want := netip.AddrPortFrom(caps.Addr, uint16(caps.Port)); got.Remote != want {
				t.Errorf("ReadAnswer remote %v, want %v", got.Remote, want)
			}
		})
	}
}

func TestNegotiateErrors(t *testing.T) {
	tests := []struct {
		name  string
		offer string
		want  error
		msg   string
	}{
		{
			name: "G.729 only",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/AVP 18 101
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
`,
			want: ErrNoCommonCodec,
			msg:  "offers [G729/8000 telephone-event/8000], none of PCMU/PCMA",
		},
		{
			name: "PCMU at 16 kHz is not G.711",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/AVP 96
a=rtpmap:96 PCMU/16000
`,
			want: ErrNoCommonCodec,
		},
		{
			name: "SRTP only",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/SAVP 0 8
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
`,
			want: ErrNoCommonCodec,
			msg:  "uses RTP/SAVP",
		},
		{
			name: "video only",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=video 5004 RTP/AVP 31
`,
			want: ErrNoCommonCodec,
			msg:  "no audio stream",
		},
		{
			name: "no media at all",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
t=0 0
`,
			want: ErrNoCommonCodec,
		},
		{
			name: "audio disabled",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
t=0 0
m=audio 0 RTP/AVP 0
`,
			want: ErrNoCommonCodec,
			msg:  "disabled",
		},
		{
			name: "host name address",
			offer: `
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 media.example.ru
t=0 0
m=audio 5004 RTP/AVP 0
`,
			want: ErrUnsupported,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer, err := Parse(crlf(tt.offer))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Negotiate(offer, guardCaps())
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if got := StatusFor(err); got != 488 {
				t.Errorf("StatusFor = %d, want 488", got)
			}
		})
	}
}

func TestNegotiateBadInput(t *testing.T) {
	offer, err := Parse(crlf(offerHuawei))
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Capabilities){
		"no address":      func(c *Capabilities) { c.Addr = netip.Addr{} },
		"unspecified":     func(c *Capabilities) { c.Addr = netip.MustParseAddr("0.0.0.0") },
		"no port":         func(c *Capabilities) { c.Port = 0 },
		"big port":        func(c *Capabilities) { c.Port = 70000 },
		"unknown codec":   func(c *Capabilities) { c.Codecs = []Codec{{Name: "G729", ClockRate: 8000}} },
		"static te pt":    func(c *Capabilities) { c.TelephoneEventPT = 13 },
		"odd ptime":       func(c *Capabilities) { c.PTime = 25 },
		"spaced username": func(c *Capabilities) { c.Username = "call guard" },
	} {
		caps := guardCaps()
		mod(&caps)
		if _, err := Negotiate(offer, caps); err == nil {
			t.Errorf("%s: Negotiate accepted %+v", name, caps)
		}
		if _, err := NewOffer(caps); err == nil {
			t.Errorf("%s: NewOffer accepted %+v", name, caps)
		}
	}
	if _, err := Negotiate(nil, guardCaps()); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil offer: %v", err)
	}
	// A hand-built session without a connection address.
	hand := &Session{psdp.SessionDescription{
		TimeDescriptions:  []psdp.TimeDescription{{}},
		MediaDescriptions: []*Media{{MediaName: psdp.MediaName{Media: "audio", Port: psdp.RangedPort{Value: 4000}, Protos: []string{"RTP", "AVP"}, Formats: []string{"0"}}}},
	}}
	if _, err := Negotiate(hand, guardCaps()); !errors.Is(err, ErrMalformed) {
		t.Errorf("no connection: %v", err)
	}
}

func TestNewOffer(t *testing.T) {
	caps := guardCaps()
	caps.Codecs = []Codec{PCMA, PCMU}
	caps.SessionVersion = 2
	offer, err := NewOffer(caps)
	if err != nil {
		t.Fatal(err)
	}
	want := string(crlf(`
v=0
o=callguard 42 2 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
m=audio 20000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
`))
	if got := offer.String(); got != want {
		t.Errorf("offer:\n%s\nwant:\n%s", got, want)
	}

	// The PBX answers our offer: a full round trip through Negotiate on
	// its side and ReadAnswer on ours.
	parsed, err := Parse(offer.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	pbx := Capabilities{Addr: netip.MustParseAddr("10.20.0.5"), Port: 12000, Preference: PreferLocal, Codecs: []Codec{PCMU}}
	ans, err := Negotiate(parsed, pbx)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(ans.Body())
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReadAnswer(offer, back)
	if err != nil {
		t.Fatal(err)
	}
	if n.Codec != PCMU || !n.DTMF || n.DTMFPayloadType != 101 || n.DTMFEvents != "0-16" || n.Remote.String() != "10.20.0.5:12000" {
		t.Errorf("ReadAnswer = %+v", n)
	}

	caps.NoTelephoneEvent = true
	plain, err := NewOffer(caps)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "telephone-event") {
		t.Errorf("telephone-event offered with NoTelephoneEvent:\n%s", plain)
	}
}

func TestReadAnswerErrors(t *testing.T) {
	offer, err := NewOffer(guardCaps())
	if err != nil {
		t.Fatal(err)
	}
	const head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
	for _, tt := range []struct {
		name, answer string
		want         error
	}{
		{"extra stream", head + "m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", ErrMalformed},
		{"type changed", head + "m=video 4000 RTP/AVP 0\r\n", ErrMalformed},
		{"rejected", head + "m=audio 0 RTP/AVP 0\r\n", ErrNoCommonCodec},
		{"codec not offered", head + "m=audio 4000 RTP/AVP 18\r\n", ErrNoCommonCodec},
		{"host name", "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 pbx.local\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", ErrUnsupported},
	} {
		ans, err := Parse([]byte(tt.answer))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if _, err := ReadAnswer(offer, ans); !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := ReadAnswer(nil, offer); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil offer: %v", err)
	}
}

func TestEvents(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"0-15", "0-15"},
		{"0-16", "0-16"},
		{"0-255", "0-16"},
		{"0-11", "0-11"},
		{"0-9,11", "0-9,11"},
		{" 1 , 3-4 ", "1,3-4"},
		{"32-63", ""},
	} {
		set, err := parseEvents(tt.in)
		if err != nil {
			t.Errorf("parseEvents(%q): %v", tt.in, err)
			continue
		}
		if got := formatEvents(set, maxEvent); got != tt.want {
			t.Errorf("events(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "x", "5-3", "0-256", "1,,2"} {
		if _, err := parseEvents(bad); err == nil {
			t.Errorf("parseEvents(%q) accepted", bad)
		}
	}
}
