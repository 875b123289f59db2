// Package media moves the audio of a challenged call: G.711 codecs, an RTP
// sender that plays prompts in 20 ms frames on an exact schedule and sends
// RFC 4733 key presses, a receiver that hands audio and telephone-events to
// a Sink (a dtmf.Collector), and the allocator of RTP ports.
package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/sip/dtmf"
)

// Media timing: G.711 at 8000 Hz (RFC 3551 §4.5.14) in 20 ms packets, the
// default packetisation time of the audio profile (RFC 3551 §4.2), so each
// packet carries 160 samples and advances the timestamp by 160.
const (
	ClockRate     = 8000
	FrameDuration = 20 * time.Millisecond
	FrameSamples  = ClockRate * int(FrameDuration) / int(time.Second)
)

// DefaultMaxLag is the default SenderConfig.MaxLag.
const DefaultMaxLag = 3 * FrameDuration

// lateThreshold is the lateness from which a packet counts as Late: timer
// wake-ups are routinely some tens of microseconds late.
const lateThreshold = time.Millisecond

// eventVolume is the level, in −dBm0, SendKey reports in its
// telephone-events (RFC 4733 §2.3.4): that of a typical phone's tones.
const eventVolume = 10

// MaxKeyDuration is the longest press SendKey sends: what the 16-bit
// duration field of one event segment holds at 8 kHz (RFC 4733 §2.3.5),
// rounded down to whole frames.
const MaxKeyDuration = 8 * time.Second

// ErrNoEvents is returned by SendKey when no telephone-event payload type
// was negotiated.
var ErrNoEvents = errors.New("no telephone-event payload type negotiated")

// SenderConfig configures a Sender. Conn, Remote and Codec are required.
type SenderConfig struct {
	// Conn is the local RTP socket; the Sender writes to it, never closes it.
	Conn net.PacketConn
	// Remote is where packets go: the address and port of the peer's SDP.
	// Ignored when Peer is set.
	Remote net.Addr
	// Peer, when set, gives the destination of each packet: the SDP
	// address until the receiver latched onto the peer's real source
	// (symmetric RTP, RFC 4961).
	Peer *Peer
	// Codec is the negotiated audio codec.
	Codec Codec
	// EventPayloadType is the negotiated telephone-event payload type
	// (dynamic, commonly 101); 0 when none was, and SendKey then fails.
	EventPayloadType uint8
	// Clock paces the packets; nil means SystemClock.
	Clock Clock
	// Random supplies the SSRC and the initial sequence number and
	// timestamp, which RFC 3550 §5.1 wants random (known-plaintext
	// attacks on encryption, and telling streams apart). nil means
	// crypto/rand; tests inject a seeded source.
	Random io.Reader
	// MaxLag is how far behind its schedule the sender may fall (a stalled
	// process, a saturated CPU) before it stops catching up: frames up to
	// MaxLag late are sent at once, back to back, to get back on time;
	// beyond it the schedule is re-anchored to now, and the timestamps jump
	// with it so they still tell the receiver when the audio was due.
	// Default DefaultMaxLag.
	MaxLag time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// SenderStats counts what a Sender did.
type SenderStats struct {
	Packets uint64
	Octets  uint64 // payload bytes (RTCP's sender octet count, RFC 3550 §6.4.1)
	// Late counts packets sent more than 1 ms after their deadline;
	// MaxLateness is the worst lateness of any packet. Both measure the
	// jitter the schedule could not absorb.
	Late        uint64
	MaxLateness time.Duration
	// Reanchors counts schedule resets after falling more than MaxLag behind.
	Reanchors uint64
}

// Sender is the sending half of one RTP stream: one SSRC, one sequence of
// sequence numbers and one media clock for all its audio and key presses.
// Its methods may be called from any goroutine; they are serialised, each
// holding the stream until it has sent its last packet.
type Sender struct {
	cfg SenderConfig
	log *slog.Logger

	mu      sync.Mutex
	ssrc    uint32
	seq     uint16
	anchor  time.Time // wall time of timestamp ts0
	ts0     uint32
	started bool
	free    time.Time // end of the media last sent: audio before it overlaps
	timer   Timer
	buf     []byte
	payload []byte

	// statsMu guards stats apart from mu, so Stats answers while a Play
	// holds the stream for seconds.
	statsMu sync.Mutex
	stats   SenderStats
}

// NewSender validates cfg and draws the stream's random identifiers.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Conn == nil || (cfg.Remote == nil && cfg.Peer == nil) || cfg.Codec == nil {
		return nil, errors.New("media: sender needs Conn, Remote and Codec")
	}
	if cfg.EventPayloadType > 127 {
		return nil, fmt.Errorf("media: telephone-event payload type %d is not 0-127", cfg.EventPayloadType)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var r [10]byte
	if _, err := io.ReadFull(cfg.Random, r[:]); err != nil {
		return nil, fmt.Errorf("media: drawing SSRC, first sequence number and timestamp: %w", err)
	}
	return &Sender{
		cfg:  cfg,
		log:  log,
		ssrc: binary.BigEndian.Uint32(r[0:4]),
		seq:  binary.BigEndian.Uint16(r[4:6]),
		ts0:  binary.BigEndian.Uint32(r[6:10]),
		buf:  make([]byte, 1500),
	}, nil
}

// SSRC is the stream's synchronisation source identifier.
func (s *Sender) SSRC() uint32 { return s.ssrc } // immutable after NewSender

// Stats returns the counters so far.
func (s *Sender) Stats() SenderStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// updateStats changes the counters under their own lock.
func (s *Sender) updateStats(f func(*SenderStats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// Play sends pcm (8 kHz samples) as one talk-spurt of 20 ms packets, the
// last padded with silence, and returns when the last packet is sent or
// ctx ends. Packet n is due at start + n·20 ms, where start is now or, if
// the previous Play or SendKey has not finished its media yet, its end:
// deadlines are absolute, so time spent sending one packet never delays
// the next and no drift accumulates. The first packet of a talk-spurt
// after silence carries the marker bit (RFC 3551 §4.1).
func (s *Sender) Play(ctx context.Context, pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	frames := (len(pcm) + FrameSamples - 1) / FrameSamples
	start, marker := s.begin()
	var frame [FrameSamples]int16
	for n := 0; n < frames; n++ {
		due, err := s.wait(ctx, &start, n)
		if err != nil {
			return fmt.Errorf("media: play: %w", err)
		}
		chunk := pcm[n*FrameSamples : min(len(pcm), (n+1)*FrameSamples)]
		if len(chunk) < FrameSamples {
			copy(frame[:], chunk)
			clear(frame[len(chunk):])
			chunk = frame[:]
		}
		s.payload = s.cfg.Codec.Encode(s.payload[:0], chunk)
		if err := s.send(s.cfg.Codec.PayloadType(), marker && n == 0, s.timestamp(due), s.payload); err != nil {
			return fmt.Errorf("media: play: %w", err)
		}
		s.free = due.Add(FrameDuration) // also right if a later frame is cancelled
	}
	return nil
}

// SendKey sends one key press as RFC 4733 telephone-events, as a phone's
// gateway does: a first packet with the marker bit (§2.2.2), an update per
// 20 ms with the same timestamp — the start of the event (§2.2.1) — and the
// duration so far (§2.3.5), then the final packet with the E bit three times
// (§2.5.1.4), 20 ms apart. No audio is sent meanwhile: the events replace
// the tone. It returns when the last packet is sent or ctx ends.
func (s *Sender) SendKey(ctx context.Context, key rune, d time.Duration) error {
	code, ok := dtmf.EventCode(key)
	if !ok {
		return fmt.Errorf("media: send key %q: not a DTMF key", key)
	}
	if s.cfg.EventPayloadType == 0 {
		return fmt.Errorf("media: send key %q: %w", key, ErrNoEvents)
	}
	if d <= 0 || d > MaxKeyDuration {
		return fmt.Errorf("media: send key %q: duration %v outside (0, %v]", key, d, MaxKeyDuration)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	frames := max(1, int((d+FrameDuration-1)/FrameDuration))
	start, _ := s.begin()
	var ts uint32
	for n := 0; n < frames+3; n++ {
		due, err := s.wait(ctx, &start, n)
		if err != nil {
			return fmt.Errorf("media: send key: %w", err)
		}
		if n == 0 {
			ts = s.timestamp(due)
		}
		ev := dtmf.TelephoneEvent{Event: code, Volume: eventVolume, Duration: uint16(min(n+1, frames) * FrameSamples)}
		ev.End = n >= frames
		if err := s.send(s.cfg.EventPayloadType, n == 0, ts, ev.Marshal()); err != nil {
			return fmt.Errorf("media: send key: %w", err)
		}
		if !ev.End {
			s.free = due.Add(FrameDuration) // the tone's end; the E packets only repeat it
		}
	}
	return nil
}

// begin returns when the next media starts, and whether it follows silence
// (and so starts a talk-spurt). The first media of the stream anchors its
// media clock.
func (s *Sender) begin() (time.Time, bool) {
	now := s.cfg.Clock.Now()
	if !s.started {
		s.started, s.anchor, s.free = true, now, now
		return now, true
	}
	if now.After(s.free) {
		return now, true
	}
	return s.free, false
}

// timestamp is the RTP timestamp of the sampling instant at (RFC 3550 §5.1:
// it advances with the media clock, in 1/8000 s, also across silences).
func (s *Sender) timestamp(at time.Time) uint32 {
	elapsed := at.Sub(s.anchor)
	return s.ts0 + uint32(elapsed.Nanoseconds()*ClockRate/int64(time.Second))
}

// wait blocks until frame n of the media started at *start is due and
// returns its deadline, which the frame's timestamp is computed from. If the
// sender wakes (or already is) more than MaxLag behind, it moves *start
// forward so frame n is due now, and returns now.
func (s *Sender) wait(ctx context.Context, start *time.Time, n int) (time.Time, error) {
	due := start.Add(time.Duration(n) * FrameDuration)
	if err := ctx.Err(); err != nil {
		return due, err
	}
	if d := due.Sub(s.cfg.Clock.Now()); d > 0 {
		if s.timer == nil {
			s.timer = s.cfg.Clock.NewTimer(d)
		} else {
			s.timer.Reset(d)
		}
		select {
		case <-s.timer.C():
		case <-ctx.Done():
			s.timer.Stop()
			return due, ctx.Err()
		}
	}
	now := s.cfg.Clock.Now()
	late := now.Sub(due)
	if late > s.cfg.MaxLag {
		s.updateStats(func(st *SenderStats) { st.Reanchors++ })
		s.log.Debug("media: sender fell behind; re-anchoring", "late", late, "ssrc", s.ssrc)
		*start = now.Add(-time.Duration(n) * FrameDuration)
		return now, nil
	}
	s.updateStats(func(st *SenderStats) {
		if late > lateThreshold {
			st.Late++
		}
		st.MaxLateness = max(st.MaxLateness, late)
	})
	return due, nil
}

// send writes one RTP packet (RFC 3550 §5.1) and advances the sequence.
func (s *Sender) send(pt uint8, marker bool, ts uint32, payload []byte) error {
	p := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			Marker:         marker,
			PayloadType:    pt,
			SequenceNumber: s.seq,
			Timestamp:      ts,
			SSRC:           s.ssrc,
		},
		Payload: payload,
	}
	n, err := p.MarshalTo(s.buf)
	if err != nil {
		return fmt.Errorf("marshal RTP: %w", err)
	}
	to := s.cfg.Remote
	if s.cfg.Peer != nil {
		to = s.cfg.Peer.Dest()
	}
	if _, err := s.cfg.Conn.WriteTo(s.buf[:n], to); err != nil {
		return fmt.Errorf("write RTP to %s: %w", to, err)
	}
	s.seq++
	s.updateStats(func(st *SenderStats) {
		st.Packets++
		st.Octets += uint64(len(payload))
	})
	return nil
}
