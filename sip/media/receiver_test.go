package media

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sounds"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrPort(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// link is a caller-to-guard RTP path on loopback: a sender on one socket,
// a receiver on another, the receiver running until the test ends.
type link struct {
	sender   *Sender
	receiver *Receiver
	send     *net.UDPConn
	recv     *net.UDPConn
	done     chan error
}

func newLink(t *testing.T, codec Codec, sink Sink, clock Clock) *link {
	t.Helper()
	send, recv := listen(t), listen(t)
	s, err := NewSender(SenderConfig{Conn: send, Remote: recv.LocalAddr(), Codec: codec, EventPayloadType: 101, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(ReceiverConfig{Conn: recv, Remote: addrPort(send), Codecs: []Codec{PCMU{}, PCMA{}}, EventPayloadType: 101, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{sender: s, receiver: r, send: send, recv: recv, done: make(chan error, 1)}
	go func() { l.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-l.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// TestPromptOverRTPIsRecognised is the test caller's path: the guard plays
// an announcement over RTP, the caller records what arrives and decodes the
// digits from the audio alone.
func TestPromptOverRTPIsRecognised(t *testing.T) {
	for _, tc := range []struct {
		lang  string
		codec Codec
		code  string
	}{{"ru", PCMA{}, "42"}, {"en", PCMU{}, "907"}} {
		p, err := sounds.Load(tc.lang, "")
		if err != nil {
			t.Fatal(err)
		}
		seq, err := p.Sequence(tc.code)
		if err != nil {
			t.Fatal(err)
		}
		rec := &Recorder{}
		clock := newFakeClock()
		clock.auto = true // play the seconds of audio at once, timestamps exact
		l := newLink(t, tc.codec, rec, clock)
		if err := l.sender.Play(context.Background(), seq); err != nil {
			t.Fatal(err)
		}
		frames := uint64((len(seq) + FrameSamples - 1) / FrameSamples)
		actortest.Eventually(t, 5*time.Second, func() error {
			if got := l.receiver.Stats().Audio; got != frames {
				return fmt.Errorf("%d of %d frames received", got, frames)
			}
			return nil
		})
		got, err := sounds.Recognize(rec.PCM(), p)
		if err != nil || got != tc.code {
			t.Errorf("%s over %s: recognised %q, %v; want %s", tc.lang, tc.codec.Name(), got, err, tc.code)
		}
	}
}

// TestKeysOverRTP types a code both ways a phone can over RTP — RFC 4733
// events and in-band tones — into a dtmf.Collector through the receiver.
func TestKeysOverRTP(t *testing.T) {
	c, err := dtmf.NewCollector(dtmf.CollectorConfig{KeepInBand: true})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	clock.auto = true
	l := newLink(t, PCMU{}, c, clock)
	ctx := context.Background()
	for _, k := range "12" {
		if err := l.sender.SendKey(ctx, k, 80*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	tones, err := dtmf.Dial("34", 80*time.Millisecond, 80*time.Millisecond, -8)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.sender.Play(ctx, tones); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	code, err := c.Wait(wctx, 4)
	if err != nil || code != "1234" {
		t.Fatalf("code = %q, %v; want 1234", code, err)
	}
	keys := c.Keys()
	if keys[0].Source != dtmf.SourceRFC4733 || keys[3].Source != dtmf.SourceInBand {
		t.Errorf("sources = %v", keys)
	}
}

// TestReceiverFiltersAndCounts sends the receiver everything a hostile or
// broken network can: packets from a stranger, garbage, an unknown payload
// type, duplicates and late packets.
func TestReceiverFiltersAndCounts(t *testing.T) {
	rec := &Recorder{}
	l := newLink(t, PCMU{}, rec, nil)
	stranger := listen(t)
	to := l.recv.LocalAddr()
	pkt := func(pt uint8, seq uint16, payload []byte) []byte {
		b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, SSRC: 5}, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	frame := make([]byte, 160)
	write := func(c *net.UDPConn, b []byte) {
		if _, err := c.WriteTo(b, to); err != nil {
			t.Fatal(err)
		}
	}
	write(stranger, pkt(0, 1, frame))                        // wrong source
	write(stranger, pkt(101, 2, []byte{1, 0, 0, 160}))       // wrong source, event
	write(l.send, []byte{0x80, 0x00})                        // truncated
	write(l.send, append([]byte{0x40}, make([]byte, 20)...)) // RTP version 1
	write(l.send, pkt(18, 3, frame))                         // G.729: not negotiated
	write(l.send, pkt(0, 10, frame))                         // audio
	write(l.send, pkt(0, 10, frame))                         // duplicate
	write(l.send, pkt(0, 9, frame))                          // late
	write(l.send, pkt(8, 11, frame))                         // A-law, also negotiated
	write(l.send, pkt(101, 12, []byte{1, 0, 0, 160}))        // event
	want := ReceiverStats{Packets: 10, Audio: 2, Events: 1, WrongSource: 2, Malformed: 2, UnknownType: 1, Stale: 2}
	actortest.Eventually(t, 5*time.Second, func() error {
		if got := l.receiver.Stats(); got != want {
			return fmt.Errorf("stats = %+v, want %+v", got, want)
		}
		return nil
	})
	if n := len(rec.PCM()); n != 320 {
		t.Errorf("recorded %d samples, want 320", n)
	}
	if ev := rec.Events(); len(ev) != 1 {
		t.Errorf("recorded %d events", len(ev))
	}
}

func TestReceiverAnyPort(t *testing.T) {
	rec := &Recorder{}
	recv, peer, other := listen(t), listen(t), listen(t)
	r, err := NewReceiver(ReceiverConfig{Conn: recv, Remote: addrPort(peer), AnyPort: true, Codecs: []Codec{PCMU{}}, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
	if _, err := other.WriteTo(b, recv.LocalAddr()); err != nil { // same IP, another port
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		if r.Stats().Audio != 1 {
			return fmt.Errorf("stats = %+v", r.Stats())
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestReceiverStopsOnClose(t *testing.T) {
	recv, peer := listen(t), listen(t)
	r, err := NewReceiver(ReceiverConfig{Conn: recv, Remote: addrPort(peer), Codecs: []Codec{PCMU{}}, Sink: &Recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	recv.Close()
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestNewReceiverErrors(t *testing.T) {
	c := listen(t)
	ap := addrPort(c)
	for _, cfg := range []ReceiverConfig{
		{},
		{Conn: c, Sink: &Recorder{}, Codecs: []Codec{PCMU{}}},
		{Conn: c, Remote: ap, Sink: &Recorder{}},
		{Conn: c, Remote: ap, Sink: &Recorder{}, Codecs: []Codec{PCMA{}}, EventPayloadType: 8},
	} {
		if _, err := NewReceiver(cfg); err == nil {
			t.Errorf("NewReceiver(%+v) succeeded", cfg)
		}
	}
}

// TestSenderRealClock plays one second over loopback with the system clock
// and measures the arrival times: no drift over the second, and the schedule
// keeps each packet close to its 20 ms slot.
func TestSenderRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second of real time")
	}
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	sink := sinkFunc(func() {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
	})
	l := newLink(t, PCMU{}, sink, nil)
	if err := l.sender.Play(context.Background(), make([]int16, 50*FrameSamples)); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(arrivals) != 50 {
			return fmt.Errorf("%d of 50 packets", len(arrivals))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	span := arrivals[49].Sub(arrivals[0])
	worst := time.Duration(0)
	for n, at := range arrivals {
		off := at.Sub(arrivals[0]) - time.Duration(n)*FrameDuration
		worst = max(worst, off, -off)
	}
	st := l.sender.Stats()
	t.Logf("49 intervals in %v (ideal 980ms); worst offset from the grid %v; sender: late %d, max lateness %v",
		span, worst, st.Late, st.MaxLateness)
	// Generous bounds: the machine is shared and -race slows everything.
	if span < 960*time.Millisecond || span > 1100*time.Millisecond {
		t.Errorf("49 intervals took %v, want about 980ms", span)
	}
}

type sinkFunc func()

func (f sinkFunc) Audio(*rtp.Header, []int16) { f() }
func (f sinkFunc) Event(*rtp.Header, []byte)  {}
