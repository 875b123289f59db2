package siptest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/media"
)

// ErrNoMedia is returned when audio or telephone-events are to be sent but
// no media session has been negotiated yet (no SDP answer seen), or the
// call's media is closed.
var ErrNoMedia = errors.New("no negotiated media")

// RTPPacket is one RTP packet as received (RFC 3550 §5.1).
type RTPPacket struct {
	At          time.Time      // arrival time
	From        netip.AddrPort // source address
	PayloadType uint8
	Marker      bool
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
	Payload     []byte
}

// DTMFMethod is how a key reaches the other side.
type DTMFMethod int

// The ways of conveying DTMF the guard accepts.
const (
	// DTMFRFC4733 sends telephone-events in RTP (RFC 4733), using the
	// payload type negotiated in SDP.
	DTMFRFC4733 DTMFMethod = iota
	// DTMFInfoRelay sends one SIP INFO per key with an
	// application/dtmf-relay body ("Signal=5\r\nDuration=100\r\n").
	DTMFInfoRelay
	// DTMFInfoPlain sends one SIP INFO per key with an application/dtmf
	// body ("5").
	DTMFInfoPlain
	// DTMFInBand plays the keys' dual tones in the G.711 audio.
	DTMFInBand
)

func (m DTMFMethod) String() string {
	switch m {
	case DTMFRFC4733:
		return "rfc4733"
	case DTMFInfoRelay:
		return "info-dtmf-relay"
	case DTMFInfoPlain:
		return "info-dtmf"
	case DTMFInBand:
		return "in-band"
	}
	return fmt.Sprintf("DTMFMethod(%d)", int(m))
}

// Digit is one key received, with the way it came.
type Digit struct {
	Key    rune
	Method DTMFMethod
	At     time.Time
}

// Limits on what one media session keeps, so that a long or flooded call
// cannot exhaust memory: ten minutes of packets and of audio.
const (
	maxPackets = 30_000
	maxSamples = 10 * 60 * 8000
	// maxGapFill is the longest run of silence inserted for a jump in the
	// RTP timestamps of one stream (lost packets or a pause in sending).
	maxGapFill = 2 * 8000
)

// mediaSession is one end of an RTP audio stream on its own UDP socket. One
// goroutine reads and records what arrives; one goroutine sends, every
// 20 ms, the next frame of the queued job (audio or telephone-events) or,
// if enabled, silence, so timestamps follow the sampling clock as RFC 3550
// §5.1 asks. It binds the address it advertises and sends from it
// (symmetric RTP), since the guard ignores RTP from unexpected sources.
type mediaSession struct {
	conn  *net.UDPConn
	local netip.AddrPort
	log   *slog.Logger

	mu      sync.Mutex
	remote  netip.AddrPort
	codec   media.Codec // what we send
	dtmfPT  uint8       // telephone-event payload type, 0 if none
	packets []RTPPacket
	dropped int // packets not kept beyond maxPackets
	pcm     []int16
	chunks  []pcmChunk // arrival time of each stretch of pcm
	stream  struct {   // the audio stream the timestamps of pcm follow
		ssrc  uint32
		next  uint32
		valid bool
	}
	events   dtmf.EventDecoder
	detector *dtmf.Detector // nil unless in-band detection is on
	digits   []Digit
	sent     int
	onDigit  func(Digit)

	silence atomic.Bool
	jobs    chan *sendJob
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

type pcmChunk struct {
	at  time.Time
	end int // pcm[:end] had arrived by at
}

type frame struct {
	pt      uint8
	payload []byte
	marker  bool
	// holdTS gives the frame the timestamp of the frame before it: the
	// update and end packets of an RFC 4733 event keep its start (§2.2.1).
	holdTS bool
	// eventPT marks a frame whose pt is to be the negotiated
	// telephone-event payload type, resolved when sent.
	eventPT bool
	// audio frames carry pcm and are encoded with the negotiated codec
	// when sent.
	pcm []int16
}

type sendJob struct {
	ctx    context.Context
	frames []frame
	next   int
	done   chan error
}

// newMediaSession binds an RTP socket on ip, on an even port (RFC 3550 §11).
func newMediaSession(ip netip.Addr, detectInBand bool, log *slog.Logger) (*mediaSession, error) {
	var conn *net.UDPConn
	for range 32 {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return nil, fmt.Errorf("siptest: rtp socket on %v: %w", ip, err)
		}
		if c.LocalAddr().(*net.UDPAddr).Port%2 == 0 {
			conn = c
			break
		}
		c.Close()
	}
	if conn == nil {
		return nil, fmt.Errorf("siptest: rtp socket on %v: no even port in 32 tries", ip)
	}
	m := &mediaSession{
		conn:   conn,
		local:  conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		log:    log,
		codec:  media.PCMU{},
		jobs:   make(chan *sendJob, 16),
		closed: make(chan struct{}),
	}
	if detectInBand {
		d, err := dtmf.NewDetector(dtmf.DefaultDetectorConfig())
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("siptest: in-band detector: %w", err)
		}
		m.detector = d
	}
	m.wg.Add(2)
	go m.readLoop()
	go m.sendLoop()
	return m, nil
}

// setRemote sets where to send and in which formats.
func (m *mediaSession) setRemote(remote netip.AddrPort, codecPT, dtmfPT uint8) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remote = remote
	if c, ok := media.CodecByPayloadType(codecPT); ok {
		m.codec = c
	}
	m.dtmfPT = dtmfPT
}

func (m *mediaSession) close() {
	m.once.Do(func() {
		close(m.closed)
		m.conn.Close()
	})
	m.wg.Wait()
}

func (m *mediaSession) readLoop() {
	defer m.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Warn("siptest: rtp read", "local", m.local, "error", err)
			}
			return
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil || p.Version != 2 {
			continue // not RTP (RTCP goes to the next port)
		}
		m.record(RTPPacket{
			At: time.Now(), From: from, PayloadType: p.PayloadType, Marker: p.Marker,
			Seq: p.SequenceNumber, Timestamp: p.Timestamp, SSRC: p.SSRC,
			Payload: slices.Clone(p.Payload),
		})
	}
}

func (m *mediaSession) record(p RTPPacket) {
	var found []Digit
	m.mu.Lock()
	if len(m.packets) < maxPackets {
		m.packets = append(m.packets, p)
	} else {
		m.dropped++
	}
	if codec, ok := media.CodecByPayloadType(p.PayloadType); ok {
		found = m.recordAudio(codec, p)
	} else if m.dtmfPT != 0 && p.PayloadType == m.dtmfPT {
		// RFC 4733: one key is many packets; the decoder reports it once.
		if key, ok, err := m.events.Decode(p.SSRC, p.Timestamp, p.Payload); err == nil && ok {
			found = append(found, Digit{Key: key, Method: DTMFRFC4733, At: p.At})
		}
	}
	m.digits = append(m.digits, found...)
	cb := m.onDigit
	m.mu.Unlock()
	if cb != nil {
		for _, d := range found {
			cb(d)
		}
	}
}

// recordAudio appends the decoded samples of p at the position its RTP
// timestamp gives: silence fills a forward jump within one stream (up to
// maxGapFill), and a packet from the past (a duplicate or a late one) is
// dropped. Called with m.mu held.
func (m *mediaSession) recordAudio(codec media.Codec, p RTPPacket) []Digit {
	if len(m.pcm) >= maxSamples {
		return nil
	}
	s := &m.stream
	if s.valid && s.ssrc == p.SSRC {
		gap := int32(p.Timestamp - s.next) // modulo 2^32, RFC 3550 §5.1
		if gap < 0 {
			return nil
		}
		if gap > 0 {
			m.pcm = append(m.pcm, make([]int16, min(int(gap), maxGapFill))...)
		}
	}
	start := len(m.pcm)
	m.pcm = codec.Decode(m.pcm, p.Payload)
	s.ssrc, s.next, s.valid = p.SSRC, p.Timestamp+uint32(len(p.Payload)), true
	m.chunks = append(m.chunks, pcmChunk{at: p.At, end: len(m.pcm)})
	if m.detector == nil {
		return nil
	}
	var out []Digit
	for _, k := range m.detector.Write(m.pcm[start:]) {
		out = append(out, Digit{Key: k, Method: DTMFInBand, At: p.At})
	}
	return out
}

// audio returns a copy of the audio received before t (all of it if t is
// zero).
func (m *mediaSession) audio(before time.Time) []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if before.IsZero() {
		return slices.Clone(m.pcm)
	}
	i := sort.Search(len(m.chunks), func(i int) bool { return !m.chunks[i].at.Before(before) })
	if i == 0 {
		return nil
	}
	return slices.Clone(m.pcm[:m.chunks[i-1].end])
}

func (m *mediaSession) rtpPackets() []RTPPacket {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.packets)
}

func (m *mediaSession) receivedDigits() []Digit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.digits)
}

// addDigit records a key that came outside RTP (SIP INFO).
func (m *mediaSession) addDigit(d Digit) {
	m.mu.Lock()
	m.digits = append(m.digits, d)
	cb := m.onDigit
	m.mu.Unlock()
	if cb != nil {
		cb(d)
	}
}

func (m *mediaSession) packetsSent() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent
}

// sendAudio queues pcm (8 kHz) in 20 ms frames and waits until the last
// one is sent.
func (m *mediaSession) sendAudio(ctx context.Context, pcm []int16) error {
	return m.run(ctx, audioFrames(pcm))
}

func audioFrames(pcm []int16) []frame {
	var fs []frame
	for i := 0; i < len(pcm); i += frameSamples {
		f := make([]int16, frameSamples)
		copy(f, pcm[i:min(i+frameSamples, len(pcm))])
		fs = append(fs, frame{pcm: f})
	}
	return fs
}

// sendEvents queues the RFC 4733 packets of keys, each held for on with
// off of silence after it, and waits until they are sent.
func (m *mediaSession) sendEvents(ctx context.Context, keys string, on, off time.Duration, volume uint8) error {
	var fs []frame
	for _, k := range keys {
		pkts, err := EncodeDigit(k, on, volume)
		if err != nil {
			return err
		}
		for i, p := range pkts {
			fs = append(fs, frame{eventPT: true, payload: p.Payload, marker: p.Marker, holdTS: i > 0})
		}
		fs = append(fs, audioFrames(make([]int16, int(off*8000/time.Second)))...)
	}
	return m.run(ctx, fs)
}

func (m *mediaSession) run(ctx context.Context, fs []frame) error {
	if len(fs) == 0 {
		return nil
	}
	j := &sendJob{ctx: ctx, frames: fs, done: make(chan error, 1)}
	select {
	case m.jobs <- j:
	case <-m.closed:
		return fmt.Errorf("siptest: send: %w (media closed)", ErrNoMedia)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case err := <-j.done:
		return err
	case <-m.closed:
		return fmt.Errorf("siptest: send: %w (media closed)", ErrNoMedia)
	}
}

func random32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func (m *mediaSession) sendLoop() {
	defer m.wg.Done()
	// RFC 3550 §5.1: random initial sequence number and timestamp.
	ssrc, seq, clock := random32(), uint16(random32()), random32()
	var (
		cur     *sendJob
		lastTS  uint32
		silence = make([]int16, frameSamples)
	)
	t := time.NewTicker(frameDuration)
	defer t.Stop()
	defer func() {
		if cur != nil {
			cur.done <- fmt.Errorf("siptest: send: %w (media closed)", ErrNoMedia)
		}
	}()
	for {
		select {
		case <-m.closed:
			return
		case <-t.C:
		}
		if cur == nil {
			select {
			case cur = <-m.jobs:
			default:
			}
		}
		if cur != nil && cur.ctx.Err() != nil {
			cur.done <- context.Cause(cur.ctx)
			cur = nil
		}
		m.mu.Lock()
		remote, codec, dtmfPT := m.remote, m.codec, m.dtmfPT
		m.mu.Unlock()

		var f frame
		switch {
		case cur != nil && !remote.IsValid():
			cur.done <- fmt.Errorf("siptest: send: %w (no remote RTP address)", ErrNoMedia)
			cur = nil
		case cur != nil && cur.frames[cur.next].eventPT && dtmfPT == 0:
			cur.done <- fmt.Errorf("siptest: send telephone-events: %w (telephone-event was not negotiated)", ErrNoMedia)
			cur = nil
		case cur != nil:
			f = cur.frames[cur.next]
			cur.next++
		case m.silence.Load() && remote.IsValid():
			f = frame{pcm: silence}
		default:
			clock += frameSamples
			continue
		}
		if f.pcm == nil && f.payload == nil {
			clock += frameSamples
			continue
		}
		ts := clock
		if f.holdTS {
			ts = lastTS
		}
		pt, payload := f.pt, f.payload
		if f.eventPT {
			pt = dtmfPT
		}
		if f.pcm != nil {
			pt, payload = codec.PayloadType(), codec.Encode(nil, f.pcm)
		}
		p := rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: pt, Marker: f.marker, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
			Payload: payload,
		}
		b, err := p.Marshal()
		if err == nil {
			_, err = m.conn.WriteToUDPAddrPort(b, remote)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			m.log.Warn("siptest: rtp send", "to", remote, "error", err)
		}
		m.mu.Lock()
		m.sent++
		m.mu.Unlock()
		seq++
		lastTS = ts
		clock += frameSamples
		if cur != nil && cur.next == len(cur.frames) {
			cur.done <- nil
			cur = nil
		}
	}
}
