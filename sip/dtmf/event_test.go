package dtmf

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseTelephoneEvent(t *testing.T) {
	tests := []struct {
		in   []byte
		want TelephoneEvent
	}{
		// RFC 4733 §2.3 layout: event 5, E=0, volume 10, duration 160.
		{[]byte{0x05, 0x0A, 0x00, 0xA0}, TelephoneEvent{Event: 5, Volume: 10, Duration: 160}},
		// '#' (11) ending: E=1, R=1 (ignored), volume 63, duration 0xFFFF.
		{[]byte{0x0B, 0xFF, 0xFF, 0xFF}, TelephoneEvent{Event: 11, End: true, Volume: 63, Duration: 0xFFFF}},
		{[]byte{0x10, 0x80, 0x03, 0x20}, TelephoneEvent{Event: 16, End: true, Duration: 800}},
	}
	for _, tt := range tests {
		got, err := ParseTelephoneEvent(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(% x) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if tt.in[1]&0x40 == 0 && !bytes.Equal(got.Marshal(), tt.in) {
			t.Errorf("Marshal(%+v) = % x, want % x", got, got.Marshal(), tt.in)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {1, 2, 3, 4, 5}, make([]byte, 8)} {
		if _, err := ParseTelephoneEvent(bad); !errors.Is(err, ErrEvent) {
			t.Errorf("Parse(% x) err = %v, want ErrEvent", bad, err)
		}
	}
}

func TestEventCodes(t *testing.T) {
	for i, k := range "0123456789*#ABCD" {
		code, ok := EventCode(k)
		if !ok || int(code) != i {
			t.Errorf("EventCode(%c) = %d, %v", k, code, ok)
		}
		if back, ok := EventKey(code); !ok || back != k {
			t.Errorf("EventKey(%d) = %c, %v", code, back, ok)
		}
	}
	if c, ok := EventCode('b'); !ok || c != 13 {
		t.Errorf("EventCode(b) = %d, %v", c, ok)
	}
	if _, ok := EventCode('x'); ok {
		t.Error("EventCode(x) ok")
	}
	if _, ok := EventKey(16); ok {
		t.Error("EventKey(16) (flash) is a key")
	}
}

// press is how a sender reports one key (RFC 4733 §2.5.1): a first packet,
// updates every 20 ms (160 units), and the final packet three times.
func press(ssrc, ts uint32, event uint8, updates int) (pkts [][3]any) {
	for i := 1; i <= updates; i++ {
		pkts = append(pkts, [3]any{ssrc, ts, TelephoneEvent{Event: event, Volume: 10, Duration: uint16(160 * i)}.Marshal()})
	}
	end := TelephoneEvent{Event: event, End: true, Volume: 10, Duration: uint16(160 * (updates + 1))}.Marshal()
	for range 3 {
		pkts = append(pkts, [3]any{ssrc, ts, end})
	}
	return pkts
}

func decodeAll(t *testing.T, d *EventDecoder, pkts [][3]any) string {
	t.Helper()
	var out []rune
	for _, p := range pkts {
		k, ok, err := d.Decode(p[0].(uint32), p[1].(uint32), p[2].([]byte))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, k)
		}
	}
	return string(out)
}

func TestEventDecoderCountsEachPressOnce(t *testing.T) {
	var pkts [][3]any
	pkts = append(pkts, press(1, 1000, 4, 5)...)
	pkts = append(pkts, press(1, 3000, 4, 2)...)    // the same key again: a new timestamp
	pkts = append(pkts, press(1, 5000, 11, 100)...) // a long '#'
	pkts = append(pkts, press(1, 25000, 16, 3)...)  // hook flash: not a key
	pkts = append(pkts, press(1, 27000, 0, 1)...)
	var d EventDecoder
	if got := decodeAll(t, &d, pkts); got != "44#0" {
		t.Errorf("keys = %q, want 44#0", got)
	}
}

func TestEventDecoderLossAndReordering(t *testing.T) {
	var d EventDecoder
	a := press(7, 100, 1, 3)
	b := press(7, 900, 2, 3)
	// The first packets of '1' are lost; one end packet of '1' arrives
	// after '2' has started; then a late duplicate of '2'.
	pkts := append(append([][3]any{}, a[2:4]...), b[0], a[4])
	pkts = append(pkts, b[1:]...)
	pkts = append(pkts, b[0])
	if got := decodeAll(t, &d, pkts); got != "12" {
		t.Errorf("keys = %q, want 12", got)
	}
}

func TestEventDecoderSSRCChange(t *testing.T) {
	var d EventDecoder
	// The same timestamp under a new SSRC is a new stream (RFC 3550 §8).
	pkts := append(press(1, 500, 3, 2), press(2, 500, 3, 2)...)
	if got := decodeAll(t, &d, pkts); got != "33" {
		t.Errorf("keys = %q, want 33", got)
	}
}

func TestEventDecoderLongEventSegments(t *testing.T) {
	var d EventDecoder
	// A 10 s '5': segment one reaches 0xFFFF without E, segment two
	// starts 0xFFFF later (RFC 4733 §2.5.1.3) and ends.
	var ts uint32 = 0xFFFF_0000 // wraps during the event
	seg1 := TelephoneEvent{Event: 5, Volume: 10, Duration: 0xFFFF}.Marshal()
	first := TelephoneEvent{Event: 5, Volume: 10, Duration: 160}.Marshal()
	seg2 := TelephoneEvent{Event: 5, Volume: 10, Duration: 14465}.Marshal()
	end2 := TelephoneEvent{Event: 5, End: true, Volume: 10, Duration: 14625}.Marshal()
	pkts := [][3]any{
		{uint32(9), ts, first}, {uint32(9), ts, seg1},
		{uint32(9), ts + 0xFFFF, seg2}, {uint32(9), ts + 0xFFFF, end2},
		{uint32(9), ts + 0xFFFF, end2},
	}
	if got := decodeAll(t, &d, pkts); got != "5" {
		t.Errorf("keys = %q, want one 5", got)
	}
	// After it ended, a new press of 5 is a new key.
	if got := decodeAll(t, &d, press(9, ts+0xFFFF+20000, 5, 2)); got != "5" {
		t.Errorf("next press = %q, want 5", got)
	}
}

func TestEventDecoderMalformed(t *testing.T) {
	var d EventDecoder
	if _, _, err := d.Decode(1, 1, []byte{1}); !errors.Is(err, ErrEvent) {
		t.Errorf("err = %v, want ErrEvent", err)
	}
}

// FuzzParseTelephoneEvent: never panics; accepts exactly the 4-byte
// payloads; Marshal restores them except for the reserved R bit.
func FuzzParseTelephoneEvent(f *testing.F) {
	f.Add([]byte{0x05, 0x0A, 0x00, 0xA0})
	f.Add([]byte{0x0B, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseTelephoneEvent(b)
		if len(b) != EventSize {
			if err == nil {
				t.Fatalf("accepted %d bytes", len(b))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(nil), b...)
		want[1] &^= 0x40
		if got := ev.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("Marshal = % x, want % x", got, want)
		}
		var d EventDecoder
		for range 3 {
			if _, _, err := d.Decode(1, 2, b); err != nil {
				t.Fatal(err)
			}
		}
	})
}
