package guard

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/sip/media"
)

// The key press whose start the collector saw (the code's last key, its
// end packets repeated) does not reach the PBX after the bridge; the next
// key press does, every packet of it.
func TestSwitchSinkKeepsTheCodeFromThePBX(t *testing.T) {
	coll, pbx := &media.Recorder{}, &media.Recorder{}
	w := &switchSink{}
	w.set(coll)
	ev := func(ts uint32, end bool) {
		p := []byte{1, 10, 0, 160}
		if end {
			p[1] |= 0x80
		}
		w.Event(&rtp.Header{SSRC: 7, Timestamp: ts}, p)
	}
	ev(8000, false)
	ev(8000, true)
	w.bridge(pbx)
	ev(8000, true) // the code's last key: its repeated end packets
	ev(8000, true)
	ev(9600, false) // a key typed after the bridge
	ev(9600, true)
	ev(9600, true)
	ev(9600, true)
	if got := len(coll.Events()); got != 2 {
		t.Errorf("collector got %d packets, want the 2 sent before the bridge", got)
	}
	if got := len(pbx.Events()); got != 4 {
		t.Errorf("PBX got %d packets, want the 4 of the key typed after the bridge", got)
	}
}
