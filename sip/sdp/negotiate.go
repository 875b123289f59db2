package sdp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Codec is an audio codec the guard speaks: G.711 μ-law or A-law (ITU-T
// G.711), which the prompts are stored in and which every Russian trunk
// offers.
type Codec struct {
	// PayloadType is the RTP payload type: the static one in our own
	// offers, the offerer's in an answer.
	PayloadType uint8
	// Name is the encoding name as written in a=rtpmap.
	Name string
	// ClockRate is the RTP clock rate in Hz.
	ClockRate uint32
}

// The codecs the guard supports, with their static payload types (RFC 3551
// §6, Table 4).
var (
	PCMU = Codec{PayloadType: 0, Name: "PCMU", ClockRate: 8000}
	PCMA = Codec{PayloadType: 8, Name: "PCMA", ClockRate: 8000}
)

func (c Codec) String() string {
	return c.Name + "/" + strconv.FormatUint(uint64(c.ClockRate), 10) + " (pt " + strconv.Itoa(int(c.PayloadType)) + ")"
}

// knownCodec returns the supported codec named name, case-insensitively
// (RFC 8866 §6.6: encoding names are case-insensitive).
func knownCodec(name string) (Codec, bool) {
	switch {
	case strings.EqualFold(name, PCMU.Name):
		return PCMU, true
	case strings.EqualFold(name, PCMA.Name):
		return PCMA, true
	}
	return Codec{}, false
}

// Preference says whose order of codecs wins when both sides support more
// than one.
type Preference uint8

const (
	// PreferOfferer picks the first codec in the offer's m= line that we
	// support: the offerer lists formats in its order of preference (RFC
	// 3264 §5.1), and following it avoids transcoding on its side.
	PreferOfferer Preference = iota
	// PreferLocal picks our first codec (Capabilities.Codecs order) that
	// the offer contains.
	PreferLocal
)

// The telephone-event defaults (RFC 4733).
const (
	// DefaultTelephoneEventPT is the dynamic payload type we offer for
	// telephone-event: 101, what most equipment uses.
	DefaultTelephoneEventPT = 101
	// DefaultPTime is the packetisation time we ask for, in ms.
	DefaultPTime = 20
	// maxEvent is the highest event we accept: 0-9, *, #, A-D are 0-15
	// and flash is 16 (RFC 4733 §3.2).
	maxEvent = 16
	// defaultEvents is what an offer without a=fmtp for telephone-event
	// means (RFC 4733 §7.1.1: "0-15" when the parameter is absent).
	defaultEvents = "0-15"
)

// Capabilities are what the guard offers and accepts for audio.
type Capabilities struct {
	// Addr is the IP address we receive RTP on; it goes into c= and o=.
	// Required.
	Addr netip.Addr
	// Port is our RTP port for this call (RFC 3550 §11: even). Required.
	Port int
	// Codecs are the codecs we accept, in our order of preference, from
	// PCMU and PCMA. Empty means PCMU then PCMA.
	Codecs []Codec
	// Preference says whose codec order wins; the default follows the
	// offerer.
	Preference Preference
	// NoTelephoneEvent turns RFC 4733 off: no telephone-event in our
	// offers or answers (DTMF then arrives in-band or by SIP INFO).
	NoTelephoneEvent bool
	// TelephoneEventPT is the payload type we offer for telephone-event
	// in our own offers (96-127; 0 means DefaultTelephoneEventPT). In an
	// answer the offerer's payload type is used, as RFC 3264 §6.1 asks.
	TelephoneEventPT uint8
	// PTime is the packetisation time we ask for in ms; 0 means
	// DefaultPTime.
	PTime int
	// Direction is what we want to do with the stream: the direction of
	// our own offers (SendOnly or Inactive put the peer on hold, RFC 3264
	// §8.4), and at most what our answers allow (Direction.AnswerWith).
	// DirectionUnset means SendRecv.
	Direction Direction
	// Username, SessionID and SessionVersion fill our o= line (RFC 8866
	// §5.2). Username empty means "-"; SessionID 0 is allowed but a
	// random or clock-derived ID is better. Use one SessionID per call
	// and raise SessionVersion whenever the description changes (RFC
	// 3264 §8).
	Username       string
	SessionID      uint64
	SessionVersion uint64
}

// validate checks c and fills defaults into a copy.
func (c Capabilities) validate() (Capabilities, error) {
	if !c.Addr.IsValid() || c.Addr.IsUnspecified() || c.Addr.IsMulticast() || c.Addr.Zone() != "" {
		return c, fmt.Errorf("sdp: capabilities: media address %v is not a unicast IP without zone", c.Addr)
	}
	c.Addr = c.Addr.Unmap()
	if c.Port <= 0 || c.Port > 65535 {
		return c, fmt.Errorf("sdp: capabilities: media port %d is not 1-65535", c.Port)
	}
	if len(c.Codecs) == 0 {
		c.Codecs = []Codec{PCMU, PCMA}
	}
	for _, k := range c.Codecs {
		if _, ok := knownCodec(k.Name); !ok {
			return c, fmt.Errorf("sdp: capabilities: codec %q is not supported (PCMU or PCMA)", k.Name)
		}
	}
	if c.TelephoneEventPT == 0 {
		c.TelephoneEventPT = DefaultTelephoneEventPT
	}
	if c.TelephoneEventPT < 96 || c.TelephoneEventPT > 127 {
		return c, fmt.Errorf("sdp: capabilities: telephone-event payload type %d is not dynamic (96-127)", c.TelephoneEventPT)
	}
	if c.PTime == 0 {
		c.PTime = DefaultPTime
	}
	if c.PTime < 10 || c.PTime > 60 || c.PTime%10 != 0 {
		return c, fmt.Errorf("sdp: capabilities: ptime %d is not 10-60 ms in 10 ms steps", c.PTime)
	}
	if c.Direction > Inactive {
		return c, fmt.Errorf("sdp: capabilities: direction %d is not one of RFC 8866 §6.7", c.Direction)
	}
	if c.Direction == DirectionUnset {
		c.Direction = SendRecv
	}
	if c.Username == "" {
		c.Username = "-"
	}
	if strings.ContainsAny(c.Username, " \t\r\n") {
		return c, fmt.Errorf("sdp: capabilities: username %q has white space", c.Username)
	}
	return c, nil
}

// Negotiated is the outcome of an offer/answer exchange for the audio
// stream.
type Negotiated struct {
	// MediaIndex is the index of the audio m= section in both offer and
	// answer.
	MediaIndex int
	// Codec is the chosen codec with the payload type both sides use.
	Codec Codec
	// DTMF reports whether telephone-events were negotiated; then
	// DTMFPayloadType is their payload type and DTMFEvents the events
	// both sides accept ("0-15", "0-16").
	DTMF            bool
	DTMFPayloadType uint8
	DTMFEvents      string
	// Remote is where to send RTP: the stream's connection address (its
	// own c=, else the session's) and port. An unspecified address
	// (0.0.0.0, the RFC 2543 way to put a call on hold) is returned as
	// is; send nothing there.
	Remote netip.AddrPort
	// RemoteDirection is the direction the peer declared for the stream.
	RemoteDirection Direction
	// Direction is ours: the answer to RemoteDirection within
	// Capabilities.Direction (RFC 3264 §6.1), or in ReadAnswer our offer's.
	Direction Direction
	// RemotePTime is the peer's a=ptime in ms; 0 when absent.
	RemotePTime int
}

// Answer is Negotiate's result: the negotiated stream and the answer to
// send.
type Answer struct {
	Negotiated
	// SDP is the answer. Send the same description in the 183 Session
	// Progress that starts early media and in the 200 OK: RFC 3261
	// §13.2.1 and RFC 3264 §8 make any later change a new offer, which
	// needs a higher o= version.
	SDP *Session
}

// Body returns the answer SDP as a message body.
func (a Answer) Body() []byte { return a.SDP.Marshal() }

// Negotiate answers an offer (RFC 3264 §6). The first audio stream with a
// non-zero port, the RTP/AVP profile and a codec we accept is taken; every
// other stream, and that stream's codecs we did not choose, are declined:
// other streams get port 0 in the answer, as RFC 3264 §6 asks, so the
// answer has one m= line per offered one, in the offer's order.
//
// The codec is PCMU or PCMA in the offerer's order of preference
// (local.Preference may make it ours), using the offerer's payload type.
// If the offer has telephone-event at the codec's clock rate, it is
// accepted with the offerer's payload type and the events both sides
// support (we accept 0-16).
//
// Errors: ErrNoCommonCodec when no stream is acceptable (the SIP layer
// answers 488); ErrUnsupported when the chosen stream's address is a host
// name or multicast group (488); ErrMalformed when the description lacks
// what RFC 8866 requires (only possible for a Session not made by Parse).
// A bad local configuration is an error wrapping none of them.
func Negotiate(offer *Session, local Capabilities) (Answer, error) {
	local, err := local.validate()
	if err != nil {
		return Answer{}, err
	}
	if offer == nil {
		return Answer{}, wrapf(ErrMalformed, "no offer")
	}
	var (
		chosen  = -1
		neg     Negotiated
		reasons []string
	)
	for i, m := range offer.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			reasons = append(reasons, fmt.Sprintf("audio stream %d is disabled (port 0)", i+1))
			continue
		}
		if proto(m) != "RTP/AVP" {
			// SRTP (RTP/SAVP) and feedback profiles need keys and RTCP
			// handling the guard does not have.
			reasons = append(reasons, fmt.Sprintf("audio stream %d uses %s, not RTP/AVP", i+1, proto(m)))
			continue
		}
		codec, ok := pickCodec(m, local)
		if !ok {
			reasons = append(reasons, fmt.Sprintf("audio stream %d offers %s, none of %s", i+1, describeFormats(m), describeCodecs(local.Codecs)))
			continue
		}
		addr, err := connAddr(offer.connectionOf(m))
		if err != nil {
			return Answer{}, fmt.Errorf("audio stream %d: %w", i+1, err)
		}
		neg = Negotiated{
			MediaIndex:      i,
			Codec:           codec,
			Remote:          netip.AddrPortFrom(addr.Unmap(), uint16(m.MediaName.Port.Value)),
			RemoteDirection: offer.MediaDirection(i),
		}
		neg.Direction = neg.RemoteDirection.AnswerWith(local.Direction)
		neg.RemotePTime, _ = ptimeOf(m)
		if !local.NoTelephoneEvent {
			if pt, events, ok := pickTelephoneEvent(m, codec.ClockRate); ok {
				neg.DTMF, neg.DTMFPayloadType, neg.DTMFEvents = true, pt, events
			}
		}
		chosen = i
		break
	}
	if chosen < 0 {
		if len(reasons) == 0 {
			reasons = append(reasons, "offer has no audio stream")
		}
		return Answer{}, wrapf(ErrNoCommonCodec, "%s", strings.Join(reasons, "; "))
	}
	// RFC 3264 §6: the t= line in the answer MUST equal the offer's.
	times := slices.Clone(offer.TimeDescriptions)
	for i := range times {
		times[i].RepeatTimes = slices.Clone(times[i].RepeatTimes)
	}
	if len(times) == 0 {
		times = []psdp.TimeDescription{{}}
	}
	ans := newSession(local, times)
	for i, m := range offer.MediaDescriptions {
		if i != chosen {
			// RFC 3264 §6: a declined stream keeps its m= line with port
			// 0 and at least one of the offered formats.
			fmts := []string{"0"} // only for a hand-built Media without formats
			if len(m.MediaName.Formats) > 0 {
				fmts = []string{m.MediaName.Formats[0]}
			}
			ans.MediaDescriptions = append(ans.MediaDescriptions, &Media{MediaName: psdp.MediaName{
				Media: m.MediaName.Media, Protos: slices.Clone(m.MediaName.Protos), Formats: fmts,
			}})
			continue
		}
		ans.MediaDescriptions = append(ans.MediaDescriptions, audioMedia(local, neg.Direction, []Codec{neg.Codec}, neg.DTMF, neg.DTMFPayloadType, neg.DTMFEvents))
	}
	return Answer{Negotiated: neg, SDP: ans}, nil
}

// pickCodec chooses the codec of m we support, by local.Preference.
func pickCodec(m *Media, local Capabilities) (Codec, bool) {
	var offered []Codec // in the offer's order, with the offer's payload types
	for _, pt := range payloadTypes(m) {
		r, ok := rtpMapOf(m, pt)
		if !ok || r.ClockRate != 8000 || r.Channels > 1 {
			continue
		}
		if k, ok := knownCodec(r.Encoding); ok {
			k.PayloadType = pt
			offered = append(offered, k)
		}
	}
	if local.Preference == PreferLocal {
		for _, l := range local.Codecs {
			for _, c := range offered {
				if strings.EqualFold(l.Name, c.Name) {
					return c, true
				}
			}
		}
		return Codec{}, false
	}
	for _, c := range offered {
		if slices.ContainsFunc(local.Codecs, func(l Codec) bool { return strings.EqualFold(l.Name, c.Name) }) {
			return c, true
		}
	}
	return Codec{}, false
}

// pickTelephoneEvent finds telephone-event at clock in m and the events
// both sides support.
func pickTelephoneEvent(m *Media, clock uint32) (uint8, string, bool) {
	for _, pt := range payloadTypes(m) {
		r, ok := rtpMapOf(m, pt)
		if !ok || !strings.EqualFold(r.Encoding, "telephone-event") || r.ClockRate != clock {
			continue
		}
		events := defaultEvents
		if params, ok := fmtpOf(m, pt); ok {
			events = params
		}
		set, err := parseEvents(events)
		if err != nil {
			// An unreadable event list: assume the default rather than
			// lose DTMF, which the challenge depends on.
			set, _ = parseEvents(defaultEvents)
		}
		common := formatEvents(set, maxEvent)
		if common == "" {
			continue
		}
		return pt, common, true
	}
	return 0, "", false
}

// parseEvents reads an RFC 4733 §7.1.1 event list: "0-15,66,70-72".
func parseEvents(s string) ([256]bool, error) {
	var set [256]bool
	s = strings.TrimSpace(s)
	if s == "" {
		return set, errors.New("empty event list")
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := strconv.ParseUint(lo, 10, 8)
		if err != nil {
			return set, fmt.Errorf("event %q", item)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 8); err != nil || b < a {
				return set, fmt.Errorf("event range %q", item)
			}
		}
		for e := a; e <= b; e++ {
			set[e] = true
		}
	}
	return set, nil
}

// formatEvents writes the events of set up to max as ranges: "0-16".
func formatEvents(set [256]bool, max int) string {
	var parts []string
	for e := 0; e <= max; e++ {
		if !set[e] {
			continue
		}
		start := e
		for e+1 <= max && set[e+1] {
			e++
		}
		if start == e {
			parts = append(parts, strconv.Itoa(e))
		} else {
			parts = append(parts, strconv.Itoa(start)+"-"+strconv.Itoa(e))
		}
	}
	return strings.Join(parts, ",")
}

func describeFormats(m *Media) string {
	var names []string
	for _, pt := range payloadTypes(m) {
		if r, ok := rtpMapOf(m, pt); ok {
			names = append(names, r.Encoding+"/"+strconv.FormatUint(uint64(r.ClockRate), 10))
		} else {
			names = append(names, "pt "+strconv.Itoa(int(pt)))
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

func describeCodecs(cs []Codec) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, "/")
}

// newSession returns our session-level lines with times and no media.
func newSession(local Capabilities, times []psdp.TimeDescription) *Session {
	return &Session{psdp.SessionDescription{
		Origin: psdp.Origin{
			Username:       local.Username,
			SessionID:      local.SessionID,
			SessionVersion: local.SessionVersion,
			NetworkType:    "IN",
			AddressType:    addrType(local.Addr),
			UnicastAddress: local.Addr.String(),
		},
		SessionName:           "-",
		ConnectionInformation: connectionFor(local.Addr),
		TimeDescriptions:      times,
	}}
}

// audioMedia builds our audio m= section: the codecs, telephone-event if
// dtmf, ptime and the direction.
func audioMedia(local Capabilities, dir Direction, codecs []Codec, dtmf bool, dtmfPT uint8, events string) *Media {
	m := &Media{MediaName: psdp.MediaName{Media: "audio", Port: psdp.RangedPort{Value: local.Port}, Protos: []string{"RTP", "AVP"}}}
	for _, c := range codecs {
		m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(c.PayloadType)))
	}
	if dtmf {
		m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(dtmfPT)))
	}
	for _, c := range codecs {
		// Static payload types need no rtpmap, but RFC 8866 §6.6 and
		// common practice include it; it costs a line and helps readers.
		m.Attributes = append(m.Attributes, psdp.Attribute{Key: "rtpmap", Value: RTPMap{PayloadType: c.PayloadType, Encoding: c.Name, ClockRate: c.ClockRate}.String()})
	}
	if dtmf {
		m.Attributes = append(m.Attributes,
			psdp.Attribute{Key: "rtpmap", Value: RTPMap{PayloadType: dtmfPT, Encoding: "telephone-event", ClockRate: 8000}.String()},
			psdp.Attribute{Key: "fmtp", Value: strconv.Itoa(int(dtmfPT)) + " " + events},
		)
	}
	m.Attributes = append(m.Attributes,
		psdp.Attribute{Key: "ptime", Value: strconv.Itoa(local.PTime)},
		psdp.Attribute{Key: dir.String()},
	)
	return m
}

// NewOffer builds our own offer (RFC 3264 §5): for the B2BUA leg to the
// PBX, or a re-INVITE. One audio stream with local.Codecs in our order of
// preference, telephone-event 0-16 at local.TelephoneEventPT unless
// local.NoTelephoneEvent, a=ptime and a=sendrecv.
func NewOffer(local Capabilities) (*Session, error) {
	local, err := local.validate()
	if err != nil {
		return nil, err
	}
	codecs := make([]Codec, len(local.Codecs))
	for i, c := range local.Codecs {
		k, _ := knownCodec(c.Name)
		codecs[i] = k // static payload type
	}
	s := newSession(local, []psdp.TimeDescription{{}})
	s.MediaDescriptions = []*Media{audioMedia(local, local.Direction, codecs, !local.NoTelephoneEvent, local.TelephoneEventPT,
		formatEvents(allEvents(), maxEvent))}
	return s, nil
}

func allEvents() [256]bool {
	var set [256]bool
	for e := 0; e <= maxEvent; e++ {
		set[e] = true
	}
	return set
}

// ReadAnswer reads the answer to an offer we made (RFC 3264 §6, §7): the
// PBX's answer on the B2BUA leg. The answer must have one m= line per
// offered one; its first accepted audio stream must use a codec we offered
// (PCMU or PCMA, by payload type), and telephone-event is taken if the
// answer kept it.
//
// Errors: ErrMalformed when the answer does not match the offer's shape;
// ErrNoCommonCodec when the answer accepted no audio stream or chose a
// codec we did not offer; ErrUnsupported for a host-name or multicast
// address.
func ReadAnswer(offer, answer *Session) (Negotiated, error) {
	if offer == nil || answer == nil {
		return Negotiated{}, wrapf(ErrMalformed, "missing offer or answer")
	}
	if len(answer.MediaDescriptions) != len(offer.MediaDescriptions) {
		return Negotiated{}, wrapf(ErrMalformed, "answer has %d media sections, offer %d (RFC 3264 §6)", len(answer.MediaDescriptions), len(offer.MediaDescriptions))
	}
	for i, m := range answer.MediaDescriptions {
		om := offer.MediaDescriptions[i]
		if m.MediaName.Media != om.MediaName.Media {
			return Negotiated{}, wrapf(ErrMalformed, "answer media %d is %s, offer's is %s", i+1, m.MediaName.Media, om.MediaName.Media)
		}
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		offered := payloadTypes(om)
		var codec Codec
		found := false
		for _, pt := range payloadTypes(m) {
			if !slices.Contains(offered, pt) {
				continue
			}
			r, ok := rtpMapOf(om, pt)
			if !ok {
				continue
			}
			if k, ok := knownCodec(r.Encoding); ok && r.ClockRate == 8000 {
				codec, found = k, true
				codec.PayloadType = pt
				break
			}
		}
		if !found {
			return Negotiated{}, wrapf(ErrNoCommonCodec, "answer audio stream %d chose %s, none of our offered codecs", i+1, describeFormats(m))
		}
		addr, err := connAddr(answer.connectionOf(m))
		if err != nil {
			return Negotiated{}, fmt.Errorf("answer audio stream %d: %w", i+1, err)
		}
		n := Negotiated{
			MediaIndex:      i,
			Codec:           codec,
			Remote:          netip.AddrPortFrom(addr.Unmap(), uint16(m.MediaName.Port.Value)),
			RemoteDirection: answer.MediaDirection(i),
			Direction:       offer.MediaDirection(i),
		}
		n.RemotePTime, _ = ptimeOf(m)
		for _, pt := range payloadTypes(m) {
			r, ok := rtpMapOf(m, pt)
			if ok && strings.EqualFold(r.Encoding, "telephone-event") && slices.Contains(offered, pt) {
				if pt, events, ok := pickTelephoneEvent(m, codec.ClockRate); ok {
					n.DTMF, n.DTMFPayloadType, n.DTMFEvents = true, pt, events
				}
				break
			}
		}
		return n, nil
	}
	return Negotiated{}, wrapf(ErrNoCommonCodec, "answer accepted no audio stream")
}
