package guard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The carrier cannot make the guard place calls: a REFER on the caller's
// leg of a passed call is refused with 403 and a Reason, and one without
// a Refer-To gets 400 (RFC 3515 §2.4.1). The PBX learns nothing of it.
func TestReferFromTheCarrierIsRefused(t *testing.T) {
	e := newEnv(t)
	c := newFakeCaller(e)
	ctx := ctxFor(t, 10*time.Second)
	cl := c.invite(ctx, e.uri(), nil)
	if cl.status() != 200 {
		t.Fatalf("pass: got %d (%v)", cl.status(), cl.err)
	}
	e.pbxAnswered()
	for _, tc := range []struct {
		name, referTo string
		status        int
		reason        string
	}{
		{"to the PBX", "<sip:201@127.0.0.1>", 403, "no transfer on this call"},
		{"no Refer-To", "", 400, "bad Refer-To"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := sip.NewRequest(sip.REFER, cl.dlg.InviteResponse.Contact().Address)
			if tc.referTo != "" {
				req.AppendHeader(sip.NewHeader("Refer-To", tc.referTo))
			}
			res, err := cl.dlg.Do(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("REFER %s: %d, want %d", tc.name, res.StatusCode, tc.status)
			}
			if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), tc.reason) {
				t.Errorf("Reason %v, want one saying %q", h, tc.reason)
			}
		})
	}
}
