package media

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/actors/actortest"
)

func TestPeerAccept(t *testing.T) {
	var (
		sdpAddr   = netip.MustParseAddrPort("10.0.0.5:4000")
		sdpOtherP = netip.MustParseAddrPort("10.0.0.5:4002")
		signal    = netip.MustParseAddrPort("127.0.0.1:4000")
		signal2   = netip.MustParseAddrPort("127.0.0.1:4010")
		ranged    = netip.MustParseAddrPort("192.0.2.7:30000")
		stranger  = netip.MustParseAddrPort("203.0.113.9:4000")
	)
	trusted := func(a netip.Addr) bool {
		return a == signal.Addr() || netip.MustParsePrefix("192.0.2.0/24").Contains(a)
	}
	type pkt struct {
		from netip.AddrPort
		ok   bool
	}
	for _, tc := range []struct {
		name     string
		anyPort  bool
		trusted  func(netip.Addr) bool
		packets  []pkt
		latched  netip.AddrPort // zero: not latched
		dest     netip.AddrPort
		latches  int
		refusals int
	}{
		{
			name:    "latch on the first trusted packet, send back to it",
			trusted: trusted,
			packets: []pkt{{signal, true}, {signal, true}},
			latched: signal, dest: signal, latches: 1,
		},
		{
			name:    "latch onto a configured range",
			trusted: trusted,
			packets: []pkt{{ranged, true}},
			latched: ranged, dest: ranged, latches: 1,
		},
		{
			name:    "refuse an untrusted source, stay unlatched",
			trusted: trusted,
			packets: []pkt{{stranger, false}, {stranger, false}},
			dest:    sdpAddr, refusals: 2,
		},
		{
			name:    "stay latched: other trusted sources and the SDP address are refused after",
			trusted: trusted,
			packets: []pkt{{signal, true}, {ranged, false}, {sdpAddr, false}, {signal2, false}, {signal, true}},
			latched: signal, dest: signal, latches: 1, refusals: 3,
		},
		{
			name:    "SDP address accepted before latching, and media keeps going there",
			trusted: trusted,
			packets: []pkt{{sdpAddr, true}, {signal, false}, {sdpAddr, true}},
			latched: sdpAddr, dest: sdpAddr, refusals: 1,
		},
		{
			name:    "no trust function: strict SDP address and port",
			packets: []pkt{{signal, false}, {sdpOtherP, false}, {sdpAddr, true}},
			latched: sdpAddr, dest: sdpAddr, refusals: 2,
		},
		{
			name:    "AnyPort: the SDP address from any port, media to the announced port",
			anyPort: true,
			packets: []pkt{{sdpOtherP, true}, {sdpAddr, true}, {stranger, false}},
			latched: sdpAddr, dest: sdpAddr, refusals: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var latches, refusals int
			p, err := NewPeer(PeerConfig{
				Announced: sdpAddr, AnyPort: tc.anyPort, Trusted: tc.trusted,
				OnLatch:  func(netip.AddrPort, netip.AddrPort) { latches++ },
				OnRefuse: func(netip.AddrPort) { refusals++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, pk := range tc.packets {
				if got := p.Accept(pk.from); got != pk.ok {
					t.Errorf("packet %d from %v: accepted %v, want %v", i, pk.from, got, pk.ok)
				}
			}
			src, ok := p.Latched()
			if ok != tc.latched.IsValid() || (ok && src != tc.latched) {
				t.Errorf("latched = %v %v, want %v", src, ok, tc.latched)
			}
			if got := p.Dest().AddrPort(); got != tc.dest {
				t.Errorf("destination %v, want %v", got, tc.dest)
			}
			if latches != tc.latches || refusals != tc.refusals || p.Refused() != uint64(tc.refusals) {
				t.Errorf("latches %d refusals %d (Refused %d), want %d and %d", latches, refusals, p.Refused(), tc.latches, tc.refusals)
			}
		})
	}
}

// A flood of refused packets is logged once, then once per
// RefusedLogEvery with the count since; the latch is logged at info.
func TestPeerLogs(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p, err := NewPeer(PeerConfig{
		Announced: netip.MustParseAddrPort("10.0.0.5:4000"),
		Trusted:   func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") },
		Logger:    slog.New(slog.NewTextHandler(&buf, nil)),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	stranger := netip.MustParseAddrPort("203.0.113.9:4000")
	for range 100 {
		p.Accept(stranger)
	}
	now = now.Add(RefusedLogEvery)
	p.Accept(stranger)
	p.Accept(netip.MustParseAddrPort("127.0.0.1:5000"))
	out := buf.String()
	if n := strings.Count(out, "untrusted source ignored"); n != 2 {
		t.Errorf("%d refusal records, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "packets=100") {
		t.Errorf("the second refusal record does not count the 100 packets since the first:\n%s", out)
	}
	if !strings.Contains(out, "level=INFO msg=\"RTP latched") || !strings.Contains(out, "sdpAddress=10.0.0.5:4000 source=127.0.0.1:5000") {
		t.Errorf("no latch record:\n%s", out)
	}
}

// Over real sockets: the peer announces one address and sends from
// another, trusted one; the receiver takes its packets, and the sender of
// the same call sends back to where they came from.
func TestReceiverLatchesAndSenderFollows(t *testing.T) {
	guardConn, caller, stranger := listen(t), listen(t), listen(t)
	announced := netip.MustParseAddrPort("127.0.0.2:9") // nobody listens there
	var mu sync.Mutex
	var refusedFrom []netip.AddrPort
	peer, err := NewPeer(PeerConfig{
		Announced: announced,
		Trusted:   func(a netip.Addr) bool { return a == addrPort(caller).Addr() },
		OnRefuse: func(s netip.AddrPort) {
			mu.Lock()
			refusedFrom = append(refusedFrom, s)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The stranger binds 127.0.0.1 too, a trusted address: it is refused
	// because the stream is already latched onto the caller's port.
	rec := &Recorder{}
	r, err := NewReceiver(ReceiverConfig{Conn: guardConn, Peer: peer, Codecs: []Codec{PCMU{}}, EventPayloadType: 101, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(SenderConfig{Conn: guardConn, Peer: peer, Codec: PCMU{}, EventPayloadType: 101})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if got := peer.Dest().AddrPort(); got != announced {
		t.Fatalf("before latching media goes to %v, want the SDP address %v", got, announced)
	}
	send := func(c *net.UDPConn, seq uint16) {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: seq}, Payload: make([]byte, 160)}).Marshal()
		if _, err := c.WriteTo(b, guardConn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Neither garbage nor RTP of a type not negotiated latches, even
	// from the trusted caller's address: the stream latches on RTP.
	if _, err := stranger.WriteTo([]byte("not RTP"), guardConn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	odd, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 9}, Payload: make([]byte, 20)}).Marshal()
	if _, err := stranger.WriteTo(odd, guardConn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, func() error {
		if st := r.Stats(); st.Malformed != 1 || st.UnknownType != 1 {
			return fmt.Errorf("stats %+v, want 1 malformed and 1 of an unknown type", st)
		}
		return nil
	})
	if src, ok := peer.Latched(); ok {
		t.Fatalf("latched onto %v on a packet that is not negotiated RTP", src)
	}
	send(caller, 1)
	actortest.Eventually(t, 5*time.Second, func() error {
		if src, ok := peer.Latched(); !ok || src != addrPort(caller) {
			return fmt.Errorf("latched %v %v, want %v", src, ok, addrPort(caller))
		}
		return nil
	})
	send(stranger, 2)
	send(caller, 3)
	actortest.Eventually(t, 5*time.Second, func() error {
		if st := r.Stats(); st.Audio != 2 || st.WrongSource != 1 {
			return fmt.Errorf("stats %+v, want 2 audio and 1 wrong source", st)
		}
		return nil
	})
	mu.Lock()
	if len(refusedFrom) != 1 || refusedFrom[0] != addrPort(stranger) {
		t.Errorf("refused %v, want only the stranger %v", refusedFrom, addrPort(stranger))
	}
	mu.Unlock()
	// Symmetric: the guard's media now reaches the caller's real socket.
	if err := s.Play(ctx, make([]int16, FrameSamples)); err != nil {
		t.Fatal(err)
	}
	_ = caller.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := caller.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the caller's socket got no media after the latch: %v", err)
	}
	var pk rtp.Packet
	if err := pk.Unmarshal(buf[:n]); err != nil || pk.SSRC != s.SSRC() || from.(*net.UDPAddr).AddrPort() != addrPort(guardConn) {
		t.Errorf("got %d bytes from %v (err %v), want the sender's packet from the guard's port", n, from, err)
	}
}
