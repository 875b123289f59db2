package guard

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestRetargetFrom(t *testing.T) {
	withContact := func(c string) *sip.Request {
		r := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
		if c != "" {
			r.AppendHeader(sip.NewHeader("Contact", c))
		}
		return r
	}
	cases := []struct {
		name    string
		contact string
		want    string // "" : the target is kept
	}{
		{"no Contact keeps the target", "", ""},
		{"a new Contact moves it", "<sip:moved@10.0.0.7:5070;transport=udp>", "sip:moved@10.0.0.7:5070;transport=udp"},
		{"a bare Contact moves it", "sip:alice@192.0.2.1", "sip:alice@192.0.2.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *sip.Uri
			rt := &relayTarget{retarget: func(u sip.Uri) { got = &u }}
			req := withContact(tc.contact)
			if tc.contact != "" {
				// sipgo parses headers of received messages; built ones
				// stay generic, so parse this one as if received.
				m, err := sip.ParseMessage([]byte(req.String()))
				if err != nil {
					t.Fatal(err)
				}
				req = m.(*sip.Request)
			}
			rt.retargetFrom(req)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("target moved to %s", got)
			case tc.want != "" && (got == nil || got.String() != tc.want):
				t.Errorf("target %v, want %s", got, tc.want)
			}
		})
	}
	var none *relayTarget
	none.retargetFrom(withContact("")) // no leg: nothing happens
}
