package tests

import (
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// TestPassPathRelaysRingingThenAnswer: under load, every passed call gets
// the PBX's 180 Ringing and then its 200 OK, in the order the PBX sent
// them (it sends both at once, as an auto-answering PBX does), and no
// response comes after the 200. siptest.LoadRun records the responses of
// every call in the order they arrived; the guard and the PBX talk UDP
// over loopback. 300 calls/s for 3 s.
func TestPassPathRelaysRingingThenAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("load run in -short mode")
	}
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{
		NoInBandDetection: true,
		Behave:            func(*siptest.PBXCall) siptest.Behaviour { return siptest.Behaviour{Quiet: true} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	_, target, _ := guardSIP(t, pbx.URI())
	const rate, calls = 300, 900
	res := runLoad(t, target, calls, rate, 200, siptest.LoadOptions{Caller: freshCaller, Hold: 50 * time.Millisecond})
	t.Log(res)
	if got := res.Sequences["180 200"]; got != res.Calls {
		t.Errorf("%d of %d calls got the PBX's 180 and then its 200; by responses in order of arrival: %v", got, res.Calls, res.Sequences)
	}
}
