package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Sink receives what a Receiver decodes, on the Receiver's goroutine, in
// arrival order. *dtmf.Collector implements it. The arguments are valid only
// during the call: a Sink that keeps them must copy.
type Sink interface {
	// Audio is one packet of decoded audio (8 kHz PCM).
	Audio(h *rtp.Header, pcm []int16)
	// Event is the payload of one telephone-event packet (RFC 4733).
	Event(h *rtp.Header, payload []byte)
}

// ReceiverConfig configures a Receiver. Conn, Remote (or Peer), Codecs and
// Sink are required.
type ReceiverConfig struct {
	// Conn is the local RTP socket; the Receiver reads it, never closes it.
	Conn net.PacketConn
	// Remote is the address the peer's SDP offered for its media (the c=
	// address and m= port). Without Peer, packets from any other address
	// are dropped; see Receiver.
	Remote netip.AddrPort
	// AnyPort accepts packets from Remote's address with any source port,
	// for carriers whose media gateway sends from a port other than the one
	// it receives on (asymmetric RTP). The address is still checked.
	AnyPort bool
	// Peer, when set, decides which sources are accepted (latching onto
	// a trusted source, see Peer) instead of Remote and AnyPort, and
	// tells the senders of the same call where to send.
	Peer *Peer
	// Codecs are the audio payload formats to decode (what was negotiated).
	Codecs []Codec
	// EventPayloadType is the negotiated telephone-event payload type, 0
	// for none.
	EventPayloadType uint8
	// Sink receives audio and events.
	Sink Sink
	// Logger; nil discards.
	Logger *slog.Logger
}

// ReceiverStats counts the packets a Receiver read, by fate.
type ReceiverStats struct {
	Packets     uint64 // datagrams read
	Audio       uint64 // audio packets passed to the sink
	Events      uint64 // telephone-event packets passed to the sink
	WrongSource uint64 // from a source the Peer refused (not the negotiated or latched one)
	Malformed   uint64 // not RTP version 2, or truncated
	UnknownType uint64 // payload type not negotiated
	Stale       uint64 // audio older than, or a duplicate of, audio already passed on
}

// Receiver reads one call's RTP and dispatches it by payload type: audio
// (decoded to PCM) and telephone-events to its Sink, for in-band and
// RFC 4733 key detection.
//
// Source filtering is the Peer's: the negotiated remote address, or a
// trusted source latched onto (RFC 4961), never whatever address sends
// first, which would let anyone who guesses the port inject audio or keys
// into a challenge. Without a Peer only the negotiated address and port
// are accepted; AnyPort relaxes only the port, for asymmetric gateways.
//
// Audio packets whose sequence number is not newer than the newest passed
// on (duplicates, reordering) are dropped, so in-band detection sees the
// audio in order; telephone-events all go through, their decoder sorts
// them by timestamp. A new SSRC (the carrier switched media streams, RFC
// 3550 §8.2) restarts the sequence check.
type Receiver struct {
	cfg    ReceiverConfig
	log    *slog.Logger
	format atomic.Pointer[format]

	mu    sync.Mutex
	stats ReceiverStats
}

// NewReceiver validates cfg.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Conn == nil || cfg.Sink == nil || len(cfg.Codecs) == 0 {
		return nil, errors.New("media: receiver needs Conn, Sink and at least one codec")
	}
	if cfg.Peer == nil {
		if !cfg.Remote.IsValid() {
			return nil, errors.New("media: receiver needs the remote media address")
		}
		peer, err := NewPeer(PeerConfig{Announced: cfg.Remote, AnyPort: cfg.AnyPort, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		cfg.Peer = peer
	}
	f, err := newFormat(cfg.Peer, cfg.Codecs, cfg.EventPayloadType)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{cfg: cfg, log: log}
	r.format.Store(f)
	return r, nil
}

// format is what a receiver accepts: from whom, which payload types.
type format struct {
	peer    *Peer
	codecs  map[uint8]Codec
	eventPT uint8
}

func newFormat(peer *Peer, cs []Codec, eventPT uint8) (*format, error) {
	if peer == nil || len(cs) == 0 {
		return nil, errors.New("media: receiver needs a peer and at least one codec")
	}
	codecs := make(map[uint8]Codec, len(cs))
	for _, c := range cs {
		codecs[c.PayloadType()] = c
	}
	if _, clash := codecs[eventPT]; clash && eventPT != 0 {
		return nil, fmt.Errorf("media: telephone-event payload type %d is also an audio codec", eventPT)
	}
	return &format{peer: peer, codecs: codecs, eventPT: eventPT}, nil
}

// Renegotiate changes, while the receiver runs, where its packets may
// come from and the payload types it takes: a re-INVITE or UPDATE that
// moved the peer's media or changed its codec (RFC 3264 §8).
func (r *Receiver) Renegotiate(peer *Peer, codecs []Codec, eventPT uint8) error {
	f, err := newFormat(peer, codecs, eventPT)
	if err != nil {
		return err
	}
	r.format.Store(f)
	return nil
}

// Stats returns the counters so far; safe to call while Run runs.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run reads packets until ctx ends or Conn is closed, both of which return
// nil; any other read error is returned. Run owns Conn's read deadline (it
// moves it to the past to stop when ctx ends) and the Sink calls: call it
// once, from one goroutine.
func (r *Receiver) Run(ctx context.Context) error {
	// Unblock the read when ctx ends by moving the deadline to the past.
	stop := context.AfterFunc(ctx, func() { _ = r.cfg.Conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 2048)
	var (
		pcm     []int16
		pkt     rtp.Packet
		ssrc    uint32
		lastSeq uint16
		haveSeq bool
	)
	for {
		n, from, err := r.cfg.Conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("media: reading RTP: %w", err)
		}
		r.count(func(s *ReceiverStats) { s.Packets++ })
		// Only well-formed RTP of a negotiated type reaches the source
		// check, so that a stray datagram (STUN, RTCP, garbage) from a
		// trusted address cannot latch the stream onto the wrong port.
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.Version != 2 {
			r.count(func(s *ReceiverStats) { s.Malformed++ })
			continue
		}
		f := r.format.Load()
		isEvent := pkt.PayloadType == f.eventPT && f.eventPT != 0
		codec, ok := f.codecs[pkt.PayloadType]
		if !isEvent && !ok {
			r.count(func(s *ReceiverStats) { s.UnknownType++ })
			continue
		}
		if !fromPeer(f.peer, from) {
			r.count(func(s *ReceiverStats) { s.WrongSource++ })
			continue
		}
		if isEvent {
			r.count(func(s *ReceiverStats) { s.Events++ })
			r.cfg.Sink.Event(&pkt.Header, pkt.Payload)
			continue
		}
		if haveSeq && pkt.SSRC == ssrc && int16(pkt.SequenceNumber-lastSeq) <= 0 {
			r.count(func(s *ReceiverStats) { s.Stale++ })
			continue
		}
		ssrc, lastSeq, haveSeq = pkt.SSRC, pkt.SequenceNumber, true
		pcm = codec.Decode(pcm[:0], pkt.Payload)
		r.count(func(s *ReceiverStats) { s.Audio++ })
		r.cfg.Sink.Audio(&pkt.Header, pcm)
	}
}

func (r *Receiver) count(f func(*ReceiverStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// fromPeer reports whether a datagram's source is the peer's.
func fromPeer(p *Peer, from net.Addr) bool {
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return false
	}
	return p.Accept(ua.AddrPort())
}

// Recorder is a Sink that keeps everything: the audio as one PCM stream and
// the telephone-event payloads. Test callers use it to record the prompt
// and hand it to sounds.Recognize. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	pcm    []int16
	events [][]byte
}

// Audio implements Sink.
func (rec *Recorder) Audio(_ *rtp.Header, pcm []int16) {
	rec.mu.Lock()
	rec.pcm = append(rec.pcm, pcm...)
	rec.mu.Unlock()
}

// Event implements Sink.
func (rec *Recorder) Event(_ *rtp.Header, payload []byte) {
	rec.mu.Lock()
	rec.events = append(rec.events, append([]byte(nil), payload...))
	rec.mu.Unlock()
}

// PCM returns a copy of the audio so far.
func (rec *Recorder) PCM() []int16 {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]int16(nil), rec.pcm...)
}

// Events returns the telephone-event payloads so far.
func (rec *Recorder) Events() [][]byte {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([][]byte(nil), rec.events...)
}
