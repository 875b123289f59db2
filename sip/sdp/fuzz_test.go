package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error wraps a
// sentinel, and that what Parse accepts is canonical after one Marshal:
// Marshal(Parse(Marshal(Parse(x)))) == Marshal(Parse(x)). It also runs the
// typed accessors and Negotiate over what Parse accepts, since those read
// the same hostile input.
//
//	go test ./sip/sdp -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		crlf(offerHuawei),
		[]byte("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16"),
		[]byte("v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 31\r\nm=audio 4000/2 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\na=sendonly\r\n"),
		[]byte("v=0\r\no=jdoe 2890844526 2890842807 IN IP4 198.51.100.1\r\ns=Call\r\ni=info\r\nu=http://example.com/\r\ne=j@example.com\r\np=+7 800 555 35 35\r\nc=IN IP4 233.252.0.1/127/3\r\nb=CT:128\r\nt=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\na=rtpmap:0 PCMU/8000\r\n"),
		[]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 media.example.ru\r\nt=0 0\r\nm=application 9 UDP/BFCP *\r\nm=image 4002 udptl t38\r\n"),
		// Session-level lines out of order, and T.38 beside audio: the shim.
		[]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\na=tool:x\r\nt=0 0\r\nr=7d 1h 0\r\nb=AS:80\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8 101\r\na=sendonly\r\nm=image 4002 UDPTL t38\r\n"),
	}
	// The SDP bodies of the RFC 4475 torture messages.
	files, _ := filepath.Glob("../validate/testdata/torture/*.dat")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if i := bytes.Index(data, []byte("\r\n\r\nv=0")); i >= 0 {
			seeds = append(seeds, data[i+4:])
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	caps := Capabilities{Addr: netip.MustParseAddr("192.0.2.50"), Port: 20000}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		first := s.Marshal()
		again, err := Parse(first)
		if err != nil {
			// The canonical form may be longer than the input (LF to
			// CRLF, "r=7d" to "r=604800"); only the size limit may
			// refuse it.
			if errors.Is(err, ErrTooLarge) && len(first) > MaxSize {
				return
			}
			t.Fatalf("Marshal output does not parse: %v\ninput %q\noutput %q", err, data, first)
		}
		if second := again.Marshal(); !bytes.Equal(first, second) {
			t.Fatalf("not stable:\ninput  %q\nfirst  %q\nsecond %q", data, first, second)
		}
		for i, m := range s.MediaDescriptions {
			for _, pt := range payloadTypes(m) {
				rtpMapOf(m, pt)
				fmtpOf(m, pt)
			}
			ptimeOf(m)
			s.MediaDirection(i)
			if c := s.connectionOf(m); c != nil {
				_, _ = connAddr(c)
			}
		}
		ans, err := Negotiate(s, caps)
		if err != nil {
			if StatusFor(err) == 500 {
				t.Fatalf("Negotiate error wraps no sentinel: %v", err)
			}
			return
		}
		back, err := Parse(ans.Body())
		if err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, ans.Body())
		}
		if len(back.MediaDescriptions) != len(s.MediaDescriptions) {
			t.Fatalf("answer has %d m= lines, offer %d", len(back.MediaDescriptions), len(s.MediaDescriptions))
		}
		if _, err := ReadAnswer(s, back); err != nil {
			t.Fatalf("ReadAnswer of our own answer: %v", err)
		}
	})
}
