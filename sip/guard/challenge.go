package guard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sip/trust"
)

// challenge is the guard's own media for a challenged call: one RTP port
// facing the caller, the announcement sender, the receiver feeding the key
// collector, and, once bridged, a second port facing the PBX.
type challenge struct {
	conn   *media.Conn
	ans    sdp.Answer
	peer   *media.Peer // the caller's media address, latched (RFC 4961)
	codec  media.Codec // the caller's, with the caller's payload type
	evPT   uint8       // the caller's telephone-event payload type, 0 if none
	sender *media.Sender
	coll   *dtmf.Collector
	sink   *switchSink

	ctx        context.Context // the media's lifetime
	cancel     context.CancelFunc
	playCancel context.CancelFunc // the announcement and the silence after it
	ringCancel context.CancelFunc // the ringback while the PBX rings

	recv     *media.Receiver // the caller's RTP
	pbxConn  *media.Conn
	pbxOffer *sdp.Session

	// Once bridged (loop-owned): each leg's media as last negotiated, and
	// whether a re-offer is being relayed (a second one gets 491).
	legs          [2]*bridgeLeg
	renegotiating bool
}

// stop ends the media and frees the ports (loop only).
func (c *challenge) stop() {
	c.cancel()
	c.conn.Close()
	if c.pbxConn != nil {
		c.pbxConn.Close()
	}
	for _, l := range c.legs {
		if l != nil && l.rtcp != nil {
			l.rtcp.Close()
		}
	}
}

// ptCodec is a G.711 codec under the payload type the peer chose: an offer
// may map PCMU or PCMA to a dynamic payload type (RFC 3551 §3).
type ptCodec struct {
	media.Codec
	pt uint8
}

func (c ptCodec) PayloadType() uint8 { return c.pt }

func codecFor(c sdp.Codec) (media.Codec, error) {
	mc, ok := media.CodecByName(c.Name)
	if !ok {
		return nil, fmt.Errorf("codec %s is not G.711", c.Name)
	}
	if mc.PayloadType() != c.PayloadType {
		return ptCodec{Codec: mc, pt: c.PayloadType}, nil
	}
	return mc, nil
}

// doChallenge starts a challenge (loop only): answer the offer with the
// guard's media in 183 Session Progress (early media, RFC 3960), play the
// announcement of code, then answer with 200 OK (see onPromptDone). Keys
// go to the call actor as they come. A late offer (no SDP in the INVITE)
// gets the guard's own offer in a reliable 183 when the carrier has
// 100rel (offerChallenge), else 488.
func (s *session) doChallenge(code string) {
	if s.ended || s.final {
		return
	}
	g := s.g
	if s.offerSDP == nil {
		if s.rel.use {
			s.offerChallenge(code)
			return
		}
		// A late offer from a carrier without 100rel: the guard's offer
		// could only go in an unreliable 183, with no way to get the
		// answer before the 200 (RFC 3262 §5), and the 200 is what bills.
		// GUARD_LATE_OFFER=pass never gets here (the call is passed
		// unchallenged, see lateOfferFallback).
		g.stats.lateOfferRejected.Add(1)
		s.log.Info("late offer refused: a challenge needs the caller's SDP offer, or 100rel for the guard's own")
		s.end(ending{by: schema.PartyGuard, cause: schema.EndMediaFailed, refusal: refusalOf(refNoOffer),
			detail: "late offer: a challenge needs the SDP offer in the INVITE, or 100rel"})
		return
	}
	conn, err := g.ports.ListenUDP(g.set.mediaIP)
	if err != nil {
		s.log.Error("no RTP port for a challenge", "err", err)
		s.mediaFailed(refusalOf(refNoPort), err)
		return
	}
	ans, err := sdp.Negotiate(s.offerSDP, sdp.Capabilities{
		Addr: g.set.mediaIP, Port: conn.Port(), Username: "callguard",
		SessionID: uint64(s.now().UnixNano()), SessionVersion: 1,
	})
	if err == nil && (!ans.Remote.Addr().IsValid() || ans.Remote.Addr().IsUnspecified() || ans.Remote.Port() == 0) {
		err = fmt.Errorf("%w: the offer's audio address %v cannot receive", sdp.ErrUnsupported, ans.Remote)
	}
	if err != nil {
		conn.Close()
		s.mediaFailed(refusalOf(refNoMedia).withStatus(sdp.StatusFor(err)), err)
		return
	}
	s.startChallenge(code, conn, ans, true)
}

// mediaFailed ends a call whose challenge media could not start (loop
// only).
func (s *session) mediaFailed(r refusal, err error) {
	s.end(ending{by: schema.PartyGuard, cause: schema.EndMediaFailed, refusal: r, detail: fmt.Sprint(err)})
}

// startChallenge runs the challenge on the negotiated media (loop only):
// ans is the guard's answer to the caller's offer, sent in a 183 when
// send183; or, on a late offer, the caller's answer (from the PRACK) to
// the guard's offer, already sent in the reliable 183.
func (s *session) startChallenge(code string, conn *media.Conn, ans sdp.Answer, send183 bool) {
	g := s.g
	failed := s.mediaFailed
	codec, err := codecFor(ans.Codec)
	if err != nil {
		conn.Close()
		failed(refusalOf(refNoMedia), err)
		return
	}
	c := &challenge{conn: conn, ans: ans, codec: codec, sink: &switchSink{}}
	if ans.DTMF {
		c.evPT = ans.DTMFPayloadType
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.peer, err = s.mediaPeer("caller", ans.Remote, s.inv.Source())
	if err == nil {
		c.coll, err = dtmf.NewCollector(dtmf.CollectorConfig{MaxKeys: 16})
	}
	if err == nil {
		c.sink.set(c.coll)
		var recv *media.Receiver
		recv, err = media.NewReceiver(media.ReceiverConfig{
			Conn: conn, Peer: c.peer, Codecs: []media.Codec{codec}, EventPayloadType: c.evPT, Sink: c.sink,
		})
		if err == nil {
			c.sender, err = media.NewSender(media.SenderConfig{
				Conn: conn, Peer: c.peer, Codec: codec, EventPayloadType: c.evPT,
			})
		}
		if err == nil {
			s.chal = c
			c.recv = recv
			s.goDo(func() func() {
				if err := recv.Run(c.ctx); err != nil {
					s.log.Debug("RTP receiver stopped", "err", err)
				}
				return nil
			})
		}
	}
	var pcm []int16
	if err == nil {
		pcm, err = g.set.prompts.Sequence(code)
	}
	if err != nil {
		c.stop()
		s.chal = nil
		failed(refusalOf(refMediaError), err)
		return
	}
	if send183 {
		s.callerSDP = ans.Body()
		if err := s.respondProvisional(183, "Session Progress", s.callerSDP, "application/sdp"); err != nil {
			s.log.Debug("183 not sent", "err", err)
			if errors.Is(s.tx.Err(), sip.ErrTransactionCanceled) {
				return // a CANCEL raced us, and its handler ends the call
			}
			failed(refusalOf(refMediaError), err)
			return
		}
	}
	s.report(call.EarlyMedia{At: s.now(), Codec: ans.Codec.Name, TelephoneEvent: ans.DTMF})
	s.forwardKeys(c)
	var playCtx context.Context
	playCtx, c.playCancel = context.WithCancel(c.ctx)
	s.goDo(func() func() {
		err := c.sender.Play(playCtx, pcm)
		return func() { s.onPromptDone(c, playCtx, err) }
	})
}

// forwardKeys sends each key the collector gets to the call actor, which
// judges the code (loop only).
func (s *session) forwardKeys(c *challenge) {
	s.goDo(func() func() {
		for i := 0; ; i++ {
			k, err := c.coll.Next(c.ctx, i)
			if err != nil {
				return nil
			}
			s.report(call.Digit{Key: k.Key, Method: k.Source.String(), At: s.now()})
		}
	})
}

// onPromptDone answers the call once the announcement has played, and
// keeps RTP flowing (silence) while the caller types: a stream that stops
// may make a gateway think the call is dead.
func (s *session) onPromptDone(c *challenge, playCtx context.Context, err error) {
	if c != s.chal || s.ended || s.bridging || s.final {
		return
	}
	if err != nil {
		s.log.Warn("announcement failed", "err", err)
	}
	s.answerCaller(s.callerSDP, "application/sdp", schema.PartyGuard, nil)
	s.playLoop(c, playCtx, make([]int16, media.ClockRate/5))
}

// playLoop plays pcm over and over until ctx ends (loop only).
func (s *session) playLoop(c *challenge, ctx context.Context, pcm []int16) {
	s.goDo(func() func() {
		for ctx.Err() == nil {
			if err := c.sender.Play(ctx, pcm); err != nil {
				return nil
			}
		}
		return nil
	})
}

// ringback is the Russian ring tone (GOST 21655, also ITU-T E.180's
// common plan): 425 Hz, 0.8 s on, 3.2 s off. A caller who typed the code
// hears it while the PBX rings instead of dead air.
func ringback() []int16 {
	const (
		on    = media.ClockRate * 8 / 10
		total = media.ClockRate * 4
		amp   = 0.2 * 32767
	)
	pcm := make([]int16, total)
	for i := 0; i < on; i++ {
		pcm[i] = int16(amp * math.Sin(2*math.Pi*425*float64(i)/media.ClockRate))
	}
	return pcm
}

// doBridge connects a caller who typed the right code to the PBX (loop
// only): ringback to the caller, an INVITE with the guard's own offer to
// the PBX, and, once it answers, RTP relayed between the two legs.
func (s *session) doBridge() {
	c := s.chal
	if s.ended || c == nil || s.bridging {
		return
	}
	s.bridging = true
	c.playCancel()
	var ringCtx context.Context
	ringCtx, c.ringCancel = context.WithCancel(c.ctx)
	s.playLoop(c, ringCtx, ringback())
	conn, err := s.g.ports.ListenUDP(s.g.set.mediaIP)
	if err != nil {
		s.log.Error("no RTP port for the PBX leg", "err", err)
		s.end(ending{by: schema.PartyGuard, cause: schema.EndMediaFailed, refusal: refusalOf(refNoPort)})
		return
	}
	c.pbxConn = conn
	// Offer the caller's codec first, so that the PBX normally takes it
	// and the relay need not transcode.
	first := sdp.PCMU
	second := sdp.PCMA
	if c.ans.Codec.Name == sdp.PCMA.Name {
		first, second = sdp.PCMA, sdp.PCMU
	}
	offer, err := sdp.NewOffer(sdp.Capabilities{
		Addr: s.g.set.mediaIP, Port: conn.Port(), Username: "callguard", Codecs: []sdp.Codec{first, second},
		Preference: sdp.PreferLocal, SessionID: uint64(s.now().UnixNano()), SessionVersion: 1,
	})
	if err != nil {
		s.end(ending{by: schema.PartyGuard, cause: schema.EndMediaFailed, refusal: refusalOf(refMediaError), detail: err.Error()})
		return
	}
	c.pbxOffer = offer
	s.startPBX(offer.Marshal(), true)
}

// onBridgeAnswered starts the relay once the PBX answered the bridge
// with res (loop only).
func (s *session) onBridgeAnswered(res *sip.Response) {
	c := s.chal
	fail := func(err error) {
		s.log.Warn("PBX answer unusable", "err", err)
		s.end(ending{by: schema.PartyPBX, cause: schema.EndMediaFailed, refusal: refusalOf(refPBXMedia), detail: err.Error()})
	}
	answer, err := sdp.Parse(res.Body())
	if err != nil {
		fail(err)
		return
	}
	neg, err := sdp.ReadAnswer(c.pbxOffer, answer)
	if err != nil {
		fail(err)
		return
	}
	pbxCodec, err := codecFor(neg.Codec)
	if err != nil {
		fail(err)
		return
	}
	var pbxEv uint8
	if neg.DTMF {
		pbxEv = neg.DTMFPayloadType
	}
	pbxPeer, err := s.mediaPeer("pbx", neg.Remote, res.Source(), s.g.set.pbx.Host)
	if err != nil {
		fail(err)
		return
	}
	toCaller := newRelay(c.conn, c.peer, c.codec, c.evPT)
	toPBX := newRelay(c.pbxConn, pbxPeer, pbxCodec, pbxEv)
	recv, err := media.NewReceiver(media.ReceiverConfig{
		Conn: c.pbxConn, Peer: pbxPeer, Codecs: []media.Codec{pbxCodec}, EventPayloadType: pbxEv, Sink: toCaller,
	})
	if err != nil {
		fail(err)
		return
	}
	if c.ringCancel != nil {
		c.ringCancel()
	}
	c.sink.bridge(toPBX)
	s.goDo(func() func() {
		if err := recv.Run(c.ctx); err != nil {
			s.log.Debug("PBX RTP receiver stopped", "err", err)
		}
		return nil
	})
	s.startBridgeLegs(c, res, answer, neg, recv, toCaller, toPBX, pbxPeer)
	s.report(call.PBXAnswered{At: s.now()})
	if !s.answered {
		// The code was typed during the announcement: the caller is
		// answered now that the PBX is.
		s.answerCaller(s.callerSDP, "application/sdp", schema.PartyPBX, nil)
	}
}

// mediaPeer is the far end of one leg's RTP (RFC 4961 latching): the SDP
// address announced, or the source its packets really come from if that
// is the leg's signalling peer (one of signalling: a request's or
// response's source, or a host) or in GUARD_TRUSTED_MEDIA. Every latch is
// logged and counted, and so is every refused packet (logged at a
// limited rate).
func (s *session) mediaPeer(leg string, announced netip.AddrPort, signalling ...string) (*media.Peer, error) {
	var sig []netip.Addr
	for _, src := range signalling {
		if a, err := trust.ParseSource(src); err == nil {
			sig = append(sig, a)
		}
	}
	g := s.g
	return media.NewPeer(media.PeerConfig{
		Announced: announced,
		Trusted: func(a netip.Addr) bool {
			return slices.Contains(sig, a) || g.set.media.Allows(a)
		},
		OnLatch:  func(netip.AddrPort, netip.AddrPort) { g.stats.mediaLatched.Add(1) },
		OnRefuse: func(netip.AddrPort) { g.stats.mediaRefused.Add(1) },
		Logger:   s.log.With("leg", leg),
		Now:      g.d.Clock,
	})
}

// switchSink passes a receiver's output to the current sink: the key
// collector during the challenge, the relay to the PBX once bridged. A
// telephone-event the collector saw the start of (the code's last key,
// whose end packets are repeated, RFC 4733 §2.5.1.4) never reaches the
// PBX: the code stays the guard's, and the PBX gets no truncated event.
type switchSink struct {
	cur     atomic.Pointer[media.Sink]
	bridged atomic.Bool
	// lastEvent is the SSRC and timestamp (one key press) of the last
	// event given to the collector, as ssrc<<32 | timestamp; haveEvent
	// says it is set.
	lastEvent atomic.Uint64
	haveEvent atomic.Bool
}

func (w *switchSink) set(s media.Sink) { w.cur.Store(&s) }

// bridge makes s, the relay to the PBX, the sink from now on.
func (w *switchSink) bridge(s media.Sink) {
	// Bridged first: an event in between still goes to the collector,
	// never to the PBX unfiltered.
	w.bridged.Store(true)
	w.set(s)
}

func (w *switchSink) Audio(h *rtp.Header, pcm []int16) {
	if s := w.cur.Load(); s != nil {
		(*s).Audio(h, pcm)
	}
}

func (w *switchSink) Event(h *rtp.Header, payload []byte) {
	key := uint64(h.SSRC)<<32 | uint64(h.Timestamp)
	if !w.bridged.Load() {
		w.lastEvent.Store(key)
		w.haveEvent.Store(true)
	} else if w.haveEvent.Load() && w.lastEvent.Load() == key {
		return
	}
	if s := w.cur.Load(); s != nil {
		(*s).Event(h, payload)
	}
}

// relay forwards one direction of a bridged call's RTP: audio re-encoded
// with the far leg's codec (a no-op re-encoding when both use the same
// G.711 law, a transcoding between μ-law and A-law otherwise), and RFC
// 4733 telephone-events under the far leg's payload type (dropped if it
// negotiated none). SSRC, sequence numbers, timestamps and marker bits are
// kept: the relay adds no packets and loses none, so the far end's jitter
// buffer and RFC 4733 decoder see the original stream. It is used by one
// receiver goroutine.
type relay struct {
	conn    net.PacketConn
	out     atomic.Pointer[relayOut]
	buf     []byte
	payload []byte
}

// relayOut is where and how a relay sends; a re-INVITE or UPDATE replaces
// it (a moved leg, a changed codec, a hold).
type relayOut struct {
	to      *media.Peer // the far leg, latched by its own receiver
	codec   media.Codec
	eventPT uint8
	// hold sends nothing: the far leg does not receive (RFC 3264 §5.1:
	// recvonly or inactive from us, or its address 0.0.0.0).
	hold bool
}

func newRelay(conn net.PacketConn, to *media.Peer, codec media.Codec, eventPT uint8) *relay {
	r := &relay{conn: conn, buf: make([]byte, 1500)}
	r.out.Store(&relayOut{to: to, codec: codec, eventPT: eventPT})
	return r
}

func (r *relay) Audio(h *rtp.Header, pcm []int16) {
	o := r.out.Load()
	if o.hold {
		return
	}
	r.payload = o.codec.Encode(r.payload[:0], pcm)
	r.send(o, h, o.codec.PayloadType(), r.payload)
}

func (r *relay) Event(h *rtp.Header, payload []byte) {
	o := r.out.Load()
	if o.eventPT == 0 || o.hold {
		return
	}
	r.send(o, h, o.eventPT, payload)
}

func (r *relay) send(o *relayOut, h *rtp.Header, pt uint8, payload []byte) {
	dest := o.to.Dest()
	if dest.IP.IsUnspecified() {
		return
	}
	p := rtp.Packet{Header: rtp.Header{
		Version: 2, Marker: h.Marker, PayloadType: pt,
		SequenceNumber: h.SequenceNumber, Timestamp: h.Timestamp, SSRC: h.SSRC, CSRC: h.CSRC,
	}, Payload: payload}
	n, err := p.MarshalTo(r.buf)
	if err != nil {
		return
	}
	_, _ = r.conn.WriteTo(r.buf[:n], dest)
}
