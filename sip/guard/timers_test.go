package guard_test

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/siptest"
)

// Session timers (RFC 4028) on the initial INVITE of a passed call: the
// carrier's Session-Expires, Min-SE and Supported: timer reach the PBX,
// and the PBX's Session-Expires and Require: timer come back in the
// guard's 200. A PBX without timers leaves the guard answering as a UAS
// that supports timer and makes the carrier the refresher; an INVITE
// that requires timer is no longer refused with 420.
func TestSessionTimersOnAPassedInvite(t *testing.T) {
	se := func(v string) sip.Header { return sip.NewHeader("Session-Expires", v) }
	cases := []struct {
		name   string
		invite []sip.Header
		pbx    []sip.Header // on the PBX's 200
		// wantPBX are the headers the PBX's INVITE must carry ("" absent).
		wantPBX map[string]string
		// wantSE and wantRequire are on the guard's 200 ("" absent).
		wantSE, wantRequire string
	}{
		{
			name:    "PBX refreshes",
			invite:  []sip.Header{se("1800"), sip.NewHeader("Min-SE", "90"), sip.NewHeader("Supported", "timer")},
			pbx:     []sip.Header{se("1800;refresher=uas"), sip.NewHeader("Require", "timer")},
			wantPBX: map[string]string{"Session-Expires": "1800", "Min-SE": "90", "Supported": "timer", "Require": ""},
			wantSE:  "1800;refresher=uas", wantRequire: "timer",
		},
		{
			name:    "carrier requires timer, PBX without timers",
			invite:  []sip.Header{se("1200;refresher=uac"), sip.NewHeader("Require", "timer")},
			wantPBX: map[string]string{"Session-Expires": "1200;refresher=uac", "Min-SE": "", "Supported": "timer", "Require": ""},
			wantSE:  "1200;refresher=uac", wantRequire: "timer",
		},
		{
			name: "no timers",
			// Supported: 100rel only, the guard's own (it PRACKs the PBX's
			// reliable 18x itself): nothing of timer.
			wantPBX: map[string]string{"Session-Expires": "", "Min-SE": "", "Supported": "100rel", "Require": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := pbxAnswer
			b.Headers = tc.pbx
			e.setPBX(b)
			c := newFakeCaller(e)
			cl := c.invite(ctxFor(t, 10*time.Second), e.uri(), nil, tc.invite...)
			if cl.status() != 200 {
				t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
			}
			pc := e.pbxAnswered()
			for name, want := range tc.wantPBX {
				h := pc.Invite.GetHeader(name)
				switch {
				case want == "" && h != nil:
					t.Errorf("PBX's INVITE has %s: %s, want none", name, h.Value())
				case want != "" && (h == nil || h.Value() != want):
					t.Errorf("PBX's INVITE has %s %v, want %q", name, h, want)
				}
			}
			res := cl.final()
			for name, want := range map[string]string{"Session-Expires": tc.wantSE, "Require": tc.wantRequire} {
				h := res.GetHeader(name)
				switch {
				case want == "" && h != nil:
					t.Errorf("guard's 200 has %s: %s, want none", name, h.Value())
				case want != "" && (h == nil || h.Value() != want):
					t.Errorf("guard's 200 has %s %v, want %q", name, h, want)
				}
			}
			c.hangup(cl)
			e.pbxEnded("BYE from the caller")
		})
	}
}

// A 422 (Session Interval Too Small) from the PBX reaches the carrier with
// the PBX's Min-SE, so the carrier can retry with a longer interval.
func TestPBX422IsRelayedWithMinSE(t *testing.T) {
	e := newEnv(t)
	e.setPBX(siptest.Behaviour{Status: 422, Headers: []sip.Header{sip.NewHeader("Min-SE", "1800")}})
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 10*time.Second), e.uri(), nil,
		sip.NewHeader("Session-Expires", "300"), sip.NewHeader("Supported", "timer"))
	if cl.status() != 422 {
		t.Fatalf("INVITE with a short interval the PBX refuses: got %d (%v), want 422", cl.status(), cl.err)
	}
	if h := cl.final().GetHeader("Min-SE"); h == nil || h.Value() != "1800" {
		t.Errorf("422 to the carrier has Min-SE %v, want the PBX's 1800", h)
	}
}

// On a challenged call the guard answers the carrier itself: its 200 makes
// the carrier the refresher with the carrier's interval, and the PBX leg
// opened after the code carries no session timer.
func TestSessionTimersOnAChallengedInvite(t *testing.T) {
	e := newEnv(t)
	e.block(3)
	c := newFakeCaller(e)
	cl := c.invite(ctxFor(t, 20*time.Second), e.uri(), nil,
		sip.NewHeader("Session-Expires", "900"), sip.NewHeader("Supported", "timer"), sip.NewHeader("Require", "timer"))
	if cl.status() != 200 {
		t.Fatalf("challenge with Require: timer: got %d (%v), want 200", cl.status(), cl.err)
	}
	res := cl.final()
	if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "900;refresher=uac" {
		t.Errorf("guard's 200 has Session-Expires %v, want 900;refresher=uac", h)
	}
	if !hasTag(res, "Require", "timer") {
		t.Errorf("guard's 200 lacks Require: timer")
	}
	c.hangup(cl)
}

func hasTag(m sip.Message, name, tag string) bool {
	for _, h := range m.GetHeaders(name) {
		if h.Value() == tag {
			return true
		}
	}
	return false
}
