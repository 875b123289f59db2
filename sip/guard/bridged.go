package guard

import (
	psdp "github.com/pion/sdp/v3"

	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/sdp"
)

// bridgeLeg is one leg's media on a call bridged after a challenge, as
// last negotiated. The guard owns both legs' media, so a re-INVITE or
// UPDATE with a new offer is renegotiated leg by leg (see renegotiate).
type bridgeLeg struct {
	name    string
	conn    *media.Conn
	rtcp    *net.UDPConn // the RTP port + 1 (RFC 3550 §11); nil if it was taken
	recv    *media.Receiver
	in      *relay               // the relay sending this leg RTP
	rtcpIn  *media.RTCPForwarder // sending this leg RTCP; nil without RTCP
	rtcpOut *media.RTCPForwarder // reading this leg's RTCP; nil without RTCP

	peer, rtcpPeer *media.Peer
	signalling     []string // whose sources may latch (mediaPeer)

	codec  sdp.Codec // with this leg's payload type
	evPT   uint8     // this leg's telephone-event payload type, 0 if none
	dir    sdp.Direction
	remote netip.AddrPort
	rtcpTo netip.AddrPort
	// remoteVersion is the o= version of the leg's last description: an
	// offer with the same one changes nothing (RFC 3264 §8), a session
	// refresh that is answered locally.
	remoteVersion uint64
	// sessID and version are the o= of the guard's description to the
	// leg; version goes up with every new one.
	sessID, version uint64
}

// startBridgeLegs records both legs' media once the PBX answered the
// bridge, and starts relaying RTCP between them (loop only).
func (s *session) startBridgeLegs(c *challenge, res *sip.Response, answer *sdp.Session, neg sdp.Negotiated,
	pbxRecv *media.Receiver, toCaller, toPBX *relay, pbxPeer *media.Peer) {
	caller := &bridgeLeg{
		name: "caller", conn: c.conn, recv: c.recv, in: toCaller, peer: c.peer, signalling: []string{s.inv.Source()},
		codec: c.ans.Codec, evPT: c.evPT, dir: c.ans.Direction, remote: c.ans.Remote,
		rtcpTo:        rtcpAddr(s.callerSDPIn, c.ans.MediaIndex, c.ans.Remote),
		remoteVersion: s.callerSDPIn.Origin.SessionVersion,
	}
	caller.sessID, caller.version = c.ans.SDP.Origin.SessionID, c.ans.SDP.Origin.SessionVersion
	pbx := &bridgeLeg{
		name: "pbx", conn: c.pbxConn, recv: pbxRecv, in: toPBX, peer: pbxPeer, signalling: []string{res.Source(), s.g.set.pbx.Host},
		codec: neg.Codec, dir: neg.Direction, remote: neg.Remote,
		rtcpTo:        rtcpAddr(answer, neg.MediaIndex, neg.Remote),
		remoteVersion: answer.Origin.SessionVersion,
	}
	if neg.DTMF {
		pbx.evPT = neg.DTMFPayloadType
	}
	pbx.sessID, pbx.version = c.pbxOffer.Origin.SessionID, c.pbxOffer.Origin.SessionVersion
	c.legs[callerLeg], c.legs[pbxLeg] = caller, pbx
	s.startRTCP(c)
}

// startRTCP opens each leg's RTCP port (the odd one above its RTP port,
// which the port allocator keeps free) and relays RTCP both ways, with
// the RTP's trust rule: from the announced address or a trusted source
// that latches (loop only). A leg whose RTCP port is taken goes without.
func (s *session) startRTCP(c *challenge) {
	for _, l := range c.legs {
		rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.g.set.mediaIP, uint16(l.conn.Port()+1))))
		if err != nil {
			s.log.Warn("no RTCP port; RTCP not relayed", "leg", l.name, "err", err)
			for _, o := range c.legs {
				if o.rtcp != nil {
					o.rtcp.Close()
					o.rtcp = nil
				}
			}
			return
		}
		l.rtcp = rc
		if l.rtcpPeer, err = s.mediaPeer(l.name+" rtcp", l.rtcpTo, l.signalling...); err != nil {
			s.log.Warn("RTCP not relayed", "leg", l.name, "err", err)
			return
		}
	}
	caller, pbx := c.legs[callerLeg], c.legs[pbxLeg]
	count := func() { s.g.stats.rtcpRelayed.Add(1) }
	toPBX := &media.RTCPForwarder{In: caller.rtcp, Out: pbx.rtcp, OnPacket: count}
	toCaller := &media.RTCPForwarder{In: pbx.rtcp, Out: caller.rtcp, OnPacket: count}
	toPBX.From.Store(caller.rtcpPeer)
	toPBX.To.Store(pbx.rtcpPeer)
	toCaller.From.Store(pbx.rtcpPeer)
	toCaller.To.Store(caller.rtcpPeer)
	caller.rtcpOut, caller.rtcpIn = toPBX, toCaller
	pbx.rtcpOut, pbx.rtcpIn = toCaller, toPBX
	for _, f := range []*media.RTCPForwarder{toPBX, toCaller} {
		s.goDo(func() func() {
			if err := f.Run(c.ctx); err != nil {
				s.log.Debug("RTCP relay stopped", "err", err)
			}
			return nil
		})
	}
}

// rtcpAddr is where a leg wants RTCP: its a=rtcp (RFC 3605), else the RTP
// port + 1 on the RTP address (RFC 3550 §11).
func rtcpAddr(sess *sdp.Session, idx int, rtp netip.AddrPort) netip.AddrPort {
	def := netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	if sess == nil || idx < 0 || idx >= len(sess.MediaDescriptions) {
		return def
	}
	v, ok := sess.MediaDescriptions[idx].Attribute("rtcp")
	if !ok {
		return def
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return def
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || port == 0 {
		return def
	}
	addr := rtp.Addr()
	if len(f) == 4 {
		if a, err := netip.ParseAddr(f[3]); err == nil {
			addr = a.Unmap()
		}
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// Directions as what flows (RFC 3264 §5.1, §6.1): these small helpers
// live here rather than in sip/sdp.

// sends says whether a side with direction d sends media.
func sends(d sdp.Direction) bool { return d != sdp.RecvOnly && d != sdp.Inactive }

// receives says whether a side with direction d receives media.
func receives(d sdp.Direction) bool { return d != sdp.SendOnly && d != sdp.Inactive }

// directionFor is the direction of a side that sends and receives as said.
func directionFor(send, recv bool) sdp.Direction {
	switch {
	case send && recv:
		return sdp.SendRecv
	case send:
		return sdp.SendOnly
	case recv:
		return sdp.RecvOnly
	}
	return sdp.Inactive
}

// effectiveDirection is a peer's declared direction, where an address of
// 0.0.0.0 (RFC 2543's hold, still sent by some equipment; RFC 3264 §8.4)
// means it receives nothing.
func effectiveDirection(d sdp.Direction, remote netip.AddrPort) sdp.Direction {
	if remote.Addr().IsUnspecified() {
		return directionFor(sends(d), false)
	}
	return d
}

// setDirection makes d the direction of media idx of sess: it replaces
// every direction attribute of the stream and of the session.
func setDirection(sess *sdp.Session, idx int, d sdp.Direction) {
	drop := func(attrs []psdp.Attribute) []psdp.Attribute {
		out := attrs[:0]
		for _, a := range attrs {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
			default:
				out = append(out, a)
			}
		}
		return out
	}
	sess.Attributes = drop(sess.Attributes)
	m := sess.MediaDescriptions[idx]
	m.Attributes = append(drop(m.Attributes), psdp.Attribute{Key: d.String()})
}

// codecsFirst is PCMU and PCMA with the one named like c first: the other
// leg is offered the sender's codec first so that normally nothing is
// transcoded.
func codecsFirst(c sdp.Codec) []sdp.Codec {
	if strings.EqualFold(c.Name, sdp.PCMA.Name) {
		return []sdp.Codec{sdp.PCMA, sdp.PCMU}
	}
	return []sdp.Codec{sdp.PCMU, sdp.PCMA}
}

// bridgedTarget is the other leg for a re-INVITE or UPDATE with a new
// offer on leg l of a call bridged after a challenge, or nil (loop only):
// no such call, or an offer with the version already seen (a session
// refresh, answered locally with the SDP already given).
func (s *session) bridgedTarget(l leg, body []byte) *relayTarget {
	c := s.chal
	if s.ended || c == nil || c.legs[l] == nil || len(body) == 0 || s.pbx == nil || !s.pbx.answered || !s.answered {
		return nil
	}
	if offer, err := sdp.Parse(body); err == nil && offer.Origin.SessionVersion == c.legs[l].remoteVersion {
		return nil
	}
	return s.legTarget(l)
}

// renegotiate handles a new offer in a re-INVITE or UPDATE on leg l of a
// bridged call, where the guard terminates both legs' media: the other
// leg gets a re-INVITE (or UPDATE) with the guard's own offer carrying the
// sender's direction (a hold reaches it as a=sendonly or a=inactive) and
// codec first; its final response decides. A failure (491, 488, ...) goes
// back to the sender as it is; a 2xx moves the relay (new addresses, a
// codec to transcode to, what flows in which direction) and answers the
// sender with the guard's SDP: same port, its direction mirrored, o=
// version raised.
func (s *session) renegotiate(l leg, req *sip.Request, tx sip.ServerTransaction, t *relayTarget) {
	invite := req.Method == sip.INVITE
	if invite {
		s.g.respond(req, tx, 100, "", nil)
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		s.g.refuseWith(req, tx, refusalOf(refBadOffer).withStatus(sdp.StatusFor(err)))
		return
	}
	var (
		c        *challenge
		from, to bridgeLeg
		busy     bool
	)
	other := pbxLeg
	if l == pbxLeg {
		other = callerLeg
	}
	if !s.do(func() {
		c = s.chal
		if c == nil || s.ended || c.legs[l] == nil {
			c = nil
			return
		}
		if busy = c.renegotiating; !busy {
			c.renegotiating = true
			from, to = *c.legs[l], *c.legs[other]
		}
	}) || c == nil {
		s.g.refuseWith(req, tx, refusalOf(refNoDialog))
		return
	}
	if busy {
		s.g.refuseWith(req, tx, refusalOf(refGlare))
		return
	}
	defer s.post(func() { c.renegotiating = false })
	g := s.g
	ans, err := sdp.Negotiate(offer, sdp.Capabilities{
		Addr: g.set.mediaIP, Port: from.conn.Port(), Username: "callguard",
		SessionID: from.sessID, SessionVersion: from.version + 1,
	})
	if err == nil && !ans.Remote.IsValid() {
		err = fmt.Errorf("%w: no media address", sdp.ErrUnsupported)
	}
	if err != nil {
		s.log.Info("mid-call offer refused", "leg", l, "err", err)
		g.refuseWith(req, tx, refusalOf(refNoMedia).withStatus(sdp.StatusFor(err)))
		return
	}
	dirL := effectiveDirection(ans.RemoteDirection, ans.Remote)
	toOffer, err := sdp.NewOffer(sdp.Capabilities{
		Addr: g.set.mediaIP, Port: to.conn.Port(), Username: "callguard", Codecs: codecsFirst(ans.Codec),
		Preference: sdp.PreferLocal, SessionID: to.sessID, SessionVersion: to.version + 1,
	})
	if err != nil {
		g.refuseWith(req, tx, refusalOf(refMediaError).withStatus(500))
		return
	}
	setDirection(toOffer, 0, dirL)
	out := sip.NewRequest(req.Method, t.to)
	copyMidCall(out, req)
	out.SetBody(toOffer.Marshal())
	s.route(out, t.transport, t.source)
	ctx, cancel := context.WithTimeout(context.Background(), sip.Timer_F)
	defer cancel()
	if !t.ready(ctx) {
		g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	res, otx, err := t.send(ctx, out)
	s.post(func() {
		// The offer was sent: the next one needs a higher version even
		// if this one fails (RFC 3264 §8).
		if c.legs[other] != nil {
			c.legs[other].version = to.version + 1
		}
	})
	if err != nil {
		s.log.Debug("mid-call offer not relayed", "method", req.Method, "err", err)
		g.refuseWith(req, tx, refusalOf(refRelayTimeout))
		return
	}
	if invite && res.IsSuccess() {
		if err := s.ackInvite(t, otx, nil, ""); err != nil {
			s.log.Debug("ACK of a mid-call re-INVITE not sent", "err", err)
		}
	}
	if !res.IsSuccess() {
		// 491 (glare), 488 (no media it takes), ...: the sender hears it
		// and nothing changes.
		g.respond(req, tx, res.StatusCode, "", nil)
		return
	}
	var negTo sdp.Negotiated
	toAns, err := sdp.Parse(res.Body())
	if err == nil {
		negTo, err = sdp.ReadAnswer(toOffer, toAns)
	}
	if err != nil {
		s.log.Warn("the other leg's answer to a mid-call offer is unusable", "leg", other, "err", err)
		g.refuseWith(req, tx, refusalOf(refNoMedia).withStatus(488))
		return
	}
	dirTo := effectiveDirection(negTo.RemoteDirection, negTo.Remote)
	// Media goes from L to the other leg when L sends and the other
	// receives, and back likewise; the guard says so to each.
	fwd, back := sends(dirL) && receives(dirTo), sends(dirTo) && receives(dirL)
	setDirection(ans.SDP, ans.MediaIndex, directionFor(back, fwd))
	body := ans.Body()
	var applied error
	s.do(func() {
		if s.ended || c != s.chal || c.legs[l] == nil {
			applied = fmt.Errorf("call ended")
			return
		}
		nl, no := c.legs[l], c.legs[other]
		nl.codec, nl.remote, nl.dir, nl.version = ans.Codec, ans.Remote, directionFor(back, fwd), from.version+1
		nl.evPT = 0
		if ans.DTMF {
			nl.evPT = ans.DTMFPayloadType
		}
		nl.rtcpTo = rtcpAddr(offer, ans.MediaIndex, ans.Remote)
		nl.remoteVersion = offer.Origin.SessionVersion
		no.codec, no.remote, no.dir = negTo.Codec, negTo.Remote, directionFor(fwd, back)
		no.evPT = 0
		if negTo.DTMF {
			no.evPT = negTo.DTMFPayloadType
		}
		no.rtcpTo = rtcpAddr(toAns, negTo.MediaIndex, negTo.Remote)
		no.remoteVersion = toAns.Origin.SessionVersion
		if applied = s.moveRelay(c); applied != nil {
			return
		}
		if l == callerLeg {
			s.callerSDP, s.pbx.localSDP = body, toOffer.Marshal()
		} else {
			s.pbx.localSDP, s.callerSDP = body, toOffer.Marshal()
		}
	})
	if applied != nil {
		s.log.Warn("relay not moved", "err", applied)
		g.refuseWith(req, tx, refusalOf(refMediaError).withStatus(500))
		return
	}
	s.log.Info("bridged call renegotiated", "from", l, "direction", dirL, "answered", dirTo,
		"codec", ans.Codec.Name, "otherCodec", negTo.Codec.Name)
	back200 := sip.NewResponseFromRequest(req, 200, "OK", body)
	back200.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	back200.AppendHeader(sip.HeaderClone(&s.ua.ContactHDR))
	answerTimer(back200, req, nil)
	if err := tx.Respond(back200); err != nil {
		s.log.Debug("mid-call answer not sent", "err", err)
		return
	}
	s.retargetLeg(l, req)
	g.d.Observer.ResponseOut(string(req.Method), 200)
}

// moveRelay makes the relay follow both legs as now negotiated (loop
// only): a leg whose address changed gets a new media peer (latching
// again under the same trust rule), each receiver takes the leg's codec
// and telephone-event type, and a leg that receives nothing gets nothing.
func (s *session) moveRelay(c *challenge) error {
	for _, l := range c.legs {
		var err error
		if l.remote != l.peer.Announced() {
			if l.peer, err = s.mediaPeer(l.name, l.remote, l.signalling...); err != nil {
				return err
			}
		}
		if l.rtcpPeer != nil && l.rtcpTo != l.rtcpPeer.Announced() {
			if l.rtcpPeer, err = s.mediaPeer(l.name+" rtcp", l.rtcpTo, l.signalling...); err != nil {
				return err
			}
		}
		codec, err := codecFor(l.codec)
		if err != nil {
			return err
		}
		if err := l.recv.Renegotiate(l.peer, []media.Codec{codec}, l.evPT); err != nil {
			return err
		}
		l.in.out.Store(&relayOut{to: l.peer, codec: codec, eventPT: l.evPT, hold: !sends(l.dir) || l.remote.Addr().IsUnspecified()})
		if l.rtcpIn != nil {
			l.rtcpIn.To.Store(l.rtcpPeer)
			l.rtcpOut.From.Store(l.rtcpPeer)
		}
	}
	return nil
}

// takeAckAnswer reads the answer, from the ACK, to the offer the guard
// made in its 2xx to a re-INVITE without SDP on leg l (a helper
// goroutine). An answer with the version already seen changes nothing
// (RFC 3264 §8); a new one moves the leg's side of the relay: its address
// and RTCP, its codec and telephone-event type, and what the guard sends
// it (nothing to a leg that no longer receives). The other leg is not
// re-offered: the guard's description to it has not changed.
func (s *session) takeAckAnswer(l leg, offered, answer []byte) {
	if len(answer) == 0 {
		s.log.Info("ACK without the answer to the guard's offer", "leg", l)
		return
	}
	off, err := sdp.Parse(offered)
	if err != nil {
		s.log.Warn("own offer unreadable", "err", err)
		return
	}
	ans, err := sdp.Parse(answer)
	var neg sdp.Negotiated
	if err == nil {
		neg, err = sdp.ReadAnswer(off, ans)
	}
	if err != nil {
		s.log.Warn("the answer in an ACK is unusable; nothing moves", "leg", l, "err", err)
		return
	}
	var (
		moved   bool
		applied error
	)
	s.do(func() {
		c := s.chal
		if s.ended || c == nil || c.legs[l] == nil || s.pbx == nil || !s.pbx.answered {
			return
		}
		nl := c.legs[l]
		if ans.Origin.SessionVersion == nl.remoteVersion {
			return
		}
		rd := effectiveDirection(neg.RemoteDirection, neg.Remote)
		nl.codec, nl.remote, nl.remoteVersion = neg.Codec, neg.Remote, ans.Origin.SessionVersion
		nl.evPT = 0
		if neg.DTMF {
			nl.evPT = neg.DTMFPayloadType
		}
		nl.rtcpTo = rtcpAddr(ans, neg.MediaIndex, neg.Remote)
		// The guard sends to the leg what it offered to send and the leg
		// now receives, and takes what the leg sends.
		nl.dir = directionFor(sends(neg.Direction) && receives(rd), sends(rd))
		moved, applied = true, s.moveRelay(c)
	})
	switch {
	case applied != nil:
		s.log.Warn("relay not moved", "err", applied)
	case moved:
		s.log.Info("bridged call renegotiated by an ACK's answer", "leg", l, "codec", neg.Codec.Name, "remote", neg.Remote)
	}
}
