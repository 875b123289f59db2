package guard

import (
	psdp "github.com/pion/sdp/v3"

	"net/netip"
	"testing"

	"github.com/callguard/callguard/sip/sdp"
)

func TestRTCPAddr(t *testing.T) {
	rtp := netip.MustParseAddrPort("192.0.2.1:4000")
	cases := []struct {
		name, attr string
		want       string
	}{
		{"none: RTP port + 1", "", "192.0.2.1:4001"},
		{"port only", "rtcp:5003", "192.0.2.1:5003"},
		{"port and address", "rtcp:5003 IN IP4 198.51.100.7", "198.51.100.7:5003"},
		{"bad port", "rtcp:x", "192.0.2.1:4001"},
		{"port 0", "rtcp:0", "192.0.2.1:4001"},
		{"empty value", "rtcp:", "192.0.2.1:4001"},
		{"bad address", "rtcp:5003 IN IP4 nowhere", "192.0.2.1:5003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
			if tc.attr != "" {
				body += "a=" + tc.attr + "\r\n"
			}
			s, err := sdp.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if got := rtcpAddr(s, 0, rtp).String(); got != tc.want {
				t.Errorf("rtcpAddr = %s, want %s", got, tc.want)
			}
		})
	}
}

// FuzzRTCPAddr: an a=rtcp from outside never panics and never yields
// port 0.
func FuzzRTCPAddr(f *testing.F) {
	for _, s := range []string{"5003", "5003 IN IP4 198.51.100.7", "", " ", "70000", "1 IN IP6 ::1"} {
		f.Add(s)
	}
	rtp := netip.MustParseAddrPort("192.0.2.1:4000")
	f.Fuzz(func(t *testing.T, v string) {
		s := &sdp.Session{}
		s.MediaDescriptions = []*sdp.Media{{MediaName: psdp.MediaName{Media: "audio", Port: psdp.RangedPort{Value: 4000}}, Attributes: []psdp.Attribute{{Key: "rtcp", Value: v}}}}
		if got := rtcpAddr(s, 0, rtp); got.Port() == 0 || !got.IsValid() {
			t.Errorf("rtcpAddr(%q) = %v", v, got)
		}
	})
}

func TestDirections(t *testing.T) {
	cases := []struct {
		d          sdp.Direction
		addr       string
		send, recv bool
	}{
		{sdp.SendRecv, "192.0.2.1:4000", true, true},
		{sdp.SendOnly, "192.0.2.1:4000", true, false},
		{sdp.RecvOnly, "192.0.2.1:4000", false, true},
		{sdp.Inactive, "192.0.2.1:4000", false, false},
		{sdp.SendRecv, "0.0.0.0:4000", true, false}, // RFC 2543 hold
		{sdp.RecvOnly, "0.0.0.0:4000", false, false},
	}
	for _, tc := range cases {
		d := effectiveDirection(tc.d, netip.MustParseAddrPort(tc.addr))
		if sends(d) != tc.send || receives(d) != tc.recv || directionFor(tc.send, tc.recv) != d {
			t.Errorf("%v at %s: effective %v, sends %v receives %v; want %v %v", tc.d, tc.addr, d, sends(d), receives(d), tc.send, tc.recv)
		}
	}
}
