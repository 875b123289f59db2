package media

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/sip/dtmf"
)

var remote = &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

// fixedRandom makes SSRC 0xDEADBEEF, first sequence number 0xFFFE (so it
// wraps) and first timestamp 0xFFFFFF00 (so it wraps too).
func fixedRandom() *bytes.Reader {
	return bytes.NewReader([]byte{0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0x00})
}

func newTestSender(t *testing.T, clock *fakeClock, conn net.PacketConn, cfg SenderConfig) *Sender {
	t.Helper()
	cfg.Conn, cfg.Remote, cfg.Clock, cfg.Random = conn, remote, clock, fixedRandom()
	if cfg.Codec == nil {
		cfg.Codec = PCMU{}
	}
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parse(t *testing.T, b []byte) *rtp.Packet {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &p
}

func ramp(n int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16((i * 37) % 20000)
	}
	return pcm
}

// TestSenderPacesOnAbsoluteDeadlines wakes the sender 7 ms late for every
// frame, as a loaded machine would: each next deadline must still be
// start + n·20 ms, never "7 ms late + 20 ms".
func TestSenderPacesOnAbsoluteDeadlines(t *testing.T) {
	clock := newFakeClock()
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{})
	start := clock.Now()
	pcm := ramp(50*FrameSamples - 40) // 50 frames, the last one short

	done := make(chan error, 1)
	go func() { done <- s.Play(context.Background(), pcm) }()
	for n := 1; n < 50; n++ {
		due := clock.nextDeadline(t)
		if want := start.Add(time.Duration(n) * FrameDuration); !due.Equal(want) {
			t.Fatalf("frame %d due at +%v, want +%v", n, due.Sub(start), want.Sub(start))
		}
		clock.set(due.Add(7 * time.Millisecond))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	pkts := conn.packets()
	if len(pkts) != 50 {
		t.Fatalf("%d packets, want 50", len(pkts))
	}
	enc := PCMU{}.Encode(nil, append(pcm, make([]int16, 40)...))
	for n, sp := range pkts {
		p := parse(t, sp.b)
		wantSeq := uint16(0xFFFE + n)
		wantTS := uint32(0xFFFFFF00 + 160*n)
		if p.SSRC != 0xDEADBEEF || p.SequenceNumber != wantSeq || p.Timestamp != wantTS ||
			p.PayloadType != 0 || p.Marker != (n == 0) || p.Version != 2 {
			t.Fatalf("packet %d: %v; want seq %d ts %d marker %v", n, p.Header, wantSeq, wantTS, n == 0)
		}
		if !bytes.Equal(p.Payload, enc[n*160:(n+1)*160]) {
			t.Fatalf("packet %d payload differs", n)
		}
		if sp.to.String() != remote.String() {
			t.Fatalf("sent to %v", sp.to)
		}
	}
	if st := s.Stats(); st.Packets != 50 || st.Octets != 50*160 || st.Late != 49 || st.MaxLateness != 7*time.Millisecond || st.Reanchors != 0 {
		t.Errorf("stats = %+v", st)
	}
	if s.SSRC() != 0xDEADBEEF {
		t.Errorf("SSRC = %x", s.SSRC())
	}
}

// TestSenderReanchors: a stall beyond MaxLag resets the schedule instead of
// bursting every missed frame, and the timestamps jump by the stall.
func TestSenderReanchors(t *testing.T) {
	clock := newFakeClock()
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{})
	start := clock.Now()
	done := make(chan error, 1)
	go func() { done <- s.Play(context.Background(), ramp(5*FrameSamples)) }()

	due := clock.nextDeadline(t) // frame 1 at +20 ms
	clock.set(due.Add(200 * time.Millisecond))
	due = clock.nextDeadline(t) // frame 2: 20 ms after frame 1 was actually sent
	if want := start.Add(240 * time.Millisecond); !due.Equal(want) {
		t.Errorf("after the stall frame 2 is due at +%v, want +240ms", due.Sub(start))
	}
	for range 3 {
		clock.set(due)
		if due.Sub(start) < 280*time.Millisecond {
			due = clock.nextDeadline(t)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pkts := conn.packets()
	ts1, ts2 := parse(t, pkts[1].b).Timestamp, parse(t, pkts[2].b).Timestamp
	if d := ts2 - ts1; d != 160 {
		t.Errorf("timestamps after the stall advance by %d, want 160", d)
	}
	if d := ts1 - parse(t, pkts[0].b).Timestamp; d != 220*8 {
		t.Errorf("timestamp across the stall advances by %d, want %d (220 ms)", d, 220*8)
	}
	if st := s.Stats(); st.Reanchors != 1 {
		t.Errorf("stats = %+v, want one re-anchor", st)
	}
}

// TestSenderTalkSpurts: a pause between Plays starts a new talk-spurt with
// the marker bit and a timestamp that counted the pause; Plays back to back
// continue one spurt.
func TestSenderTalkSpurts(t *testing.T) {
	clock := newFakeClock()
	clock.auto = true
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{})
	ctx := context.Background()
	if err := s.Play(ctx, ramp(2*FrameSamples)); err != nil {
		t.Fatal(err)
	}
	// Played to its end (the clock stands at the last frame's deadline):
	// the next Play follows on without a gap.
	if err := s.Play(ctx, ramp(FrameSamples)); err != nil {
		t.Fatal(err)
	}
	clock.set(clock.Now().Add(500 * time.Millisecond))
	if err := s.Play(ctx, ramp(FrameSamples)); err != nil {
		t.Fatal(err)
	}
	pkts := conn.packets()
	if len(pkts) != 4 {
		t.Fatalf("%d packets", len(pkts))
	}
	var hs []rtp.Header
	for _, p := range pkts {
		hs = append(hs, parse(t, p.b).Header)
	}
	if !hs[0].Marker || hs[1].Marker || hs[2].Marker || !hs[3].Marker {
		t.Errorf("markers = %v %v %v %v, want true false false true", hs[0].Marker, hs[1].Marker, hs[2].Marker, hs[3].Marker)
	}
	if d := hs[2].Timestamp - hs[1].Timestamp; d != 160 {
		t.Errorf("back-to-back Play: timestamp step %d, want 160", d)
	}
	// Packet 2 was due at +40 ms; the clock then moved 500 ms on.
	if d := hs[3].Timestamp - hs[2].Timestamp; d != 500*8 {
		t.Errorf("after a pause: timestamp step %d, want %d", d, 500*8)
	}
	for i := 1; i < 4; i++ {
		if hs[i].SequenceNumber != hs[i-1].SequenceNumber+1 {
			t.Errorf("sequence %d after %d", hs[i].SequenceNumber, hs[i-1].SequenceNumber)
		}
	}
}

func TestSendKey(t *testing.T) {
	clock := newFakeClock()
	clock.auto = true
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{EventPayloadType: 101})
	start := clock.Now()
	if err := s.SendKey(context.Background(), '#', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	pkts := conn.packets()
	if len(pkts) != 5+3 {
		t.Fatalf("%d packets, want 5 updates and 3 ends", len(pkts))
	}
	var dec dtmf.EventDecoder
	keys := ""
	for i, sp := range pkts {
		p := parse(t, sp.b)
		ev, err := dtmf.ParseTelephoneEvent(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		wantDur := uint16(160 * min(i+1, 5))
		if p.PayloadType != 101 || p.Marker != (i == 0) || p.Timestamp != 0xFFFFFF00 ||
			ev.Event != 11 || ev.End != (i >= 5) || ev.Duration != wantDur || ev.Volume != eventVolume {
			t.Errorf("packet %d: %v %+v; want duration %d", i, p.Header, ev, wantDur)
		}
		if want := start.Add(time.Duration(i) * FrameDuration); !sp.at.Equal(want) {
			t.Errorf("packet %d sent at +%v, want +%v", i, sp.at.Sub(start), want.Sub(start))
		}
		if k, ok, _ := dec.Decode(p.SSRC, p.Timestamp, p.Payload); ok {
			keys += string(k)
		}
	}
	if keys != "#" {
		t.Errorf("decoded %q, want one #", keys)
	}
	// Audio after the key is a new talk-spurt on the same media clock.
	if err := s.Play(context.Background(), ramp(FrameSamples)); err != nil {
		t.Fatal(err)
	}
	last := parse(t, conn.packets()[8].b)
	if ts0 := uint32(0xFFFFFF00); !last.Marker || last.Timestamp != ts0+7*160 {
		t.Errorf("audio after the key: %v", last.Header)
	}
}

func TestSendKeyErrors(t *testing.T) {
	clock := newFakeClock()
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{})
	if err := s.SendKey(context.Background(), '1', 100*time.Millisecond); !errors.Is(err, ErrNoEvents) {
		t.Errorf("err = %v, want ErrNoEvents", err)
	}
	s = newTestSender(t, clock, conn, SenderConfig{EventPayloadType: 101})
	if err := s.SendKey(context.Background(), 'x', 100*time.Millisecond); err == nil {
		t.Error("key x accepted")
	}
	if err := s.SendKey(context.Background(), '1', 9*time.Second); err == nil {
		t.Error("9 s press accepted")
	}
	if len(conn.packets()) != 0 {
		t.Error("packets sent on error")
	}
}

func TestSenderCancel(t *testing.T) {
	clock := newFakeClock()
	conn := &captureConn{clock: clock}
	s := newTestSender(t, clock, conn, SenderConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Play(ctx, ramp(100*FrameSamples)) }()
	clock.nextDeadline(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	if n := len(conn.packets()); n != 1 {
		t.Errorf("%d packets after cancel, want 1", n)
	}
}

func TestNewSenderErrors(t *testing.T) {
	conn := &captureConn{clock: newFakeClock()}
	for _, cfg := range []SenderConfig{
		{},
		{Conn: conn, Remote: remote},
		{Conn: conn, Remote: remote, Codec: PCMU{}, EventPayloadType: 200},
		{Conn: conn, Remote: remote, Codec: PCMU{}, Random: bytes.NewReader([]byte{1, 2})},
	} {
		if _, err := NewSender(cfg); err == nil {
			t.Errorf("NewSender(%+v) succeeded", cfg)
		}
	}
	s, err := NewSender(SenderConfig{Conn: conn, Remote: remote, Codec: PCMA{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxLag != DefaultMaxLag {
		t.Errorf("MaxLag = %v", s.cfg.MaxLag)
	}
}
