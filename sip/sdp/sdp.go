// Package sdp reads and writes the Session Description Protocol (RFC 8866,
// which obsoletes RFC 4566) as far as a telephony offer/answer exchange
// (RFC 3264) needs, and negotiates the guard's audio: G.711 (PCMU or PCMA)
// and RFC 4733 telephone-events.
//
// The grammar is github.com/pion/sdp/v3's: Parse hands the body to its
// parser and Marshal to its writer, and a Session is its
// SessionDescription. What stays here is the guard's own part:
//
//   - the input limits (MaxSize, MaxLines, MaxMedia, MaxFormats, no NUL or
//     bare CR), checked on the raw lines before the library reads a byte;
//   - a small shim for what carriers send and the library refuses (see
//     parse.go): session-level lines out of RFC order, and m= lines whose
//     media or transport it does not know (T.38 fax: "m=image 4002 udptl
//     t38");
//   - the checks the library leaves out and the guard needs: a t= line, a
//     c= line for every live stream, c= addresses that are IP literals,
//     host names or multicast groups, RTP formats that are payload types;
//   - the offer/answer negotiation (negotiate.go).
//
// Attribute values are kept verbatim and interpreted on demand (rtpmap,
// fmtp, ptime, the direction); one this package cannot read is ignored as
// RFC 8866 §5.13 asks, so a broken a=rtpmap in a video stream does not fail
// an audio call.
//
// Values are not safe for concurrent mutation; a parsed Session that is no
// longer modified may be read from several goroutines.
package sdp

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Sentinel errors. Every error this package returns wraps exactly one of
// them; StatusFor maps them to the SIP response the guard sends.
var (
	// ErrMalformed means the body is not a session description by RFC 8866
	// §9: the SIP layer answers 400 Bad Request.
	ErrMalformed = errors.New("malformed session description")
	// ErrTooLarge means the body exceeds MaxSize, MaxLines, MaxMedia or
	// MaxFormats: the SIP layer answers 400 Bad Request as for
	// ErrMalformed, but the log says why.
	ErrTooLarge = errors.New("session description too large")
	// ErrNoCommonCodec means the offer is well formed but has no audio
	// stream with a codec we accept: the SIP layer answers 488 Not
	// Acceptable Here (RFC 3261 §13.3.1.3, RFC 3264 §6).
	ErrNoCommonCodec = errors.New("no common codec")
	// ErrUnsupported means the chosen audio stream asks for something the
	// guard does not do: a connection address that is a host name or a
	// multicast group. The SIP layer answers 488 Not Acceptable Here.
	ErrUnsupported = errors.New("unsupported media description")
)

// Limits on what Parse reads. A telephony offer is a few hundred bytes
// with one or two m= lines; these leave room for rich offers (video,
// several crypto lines, ICE candidates) while bounding the work a hostile
// body can cause.
const (
	// MaxSize is the largest body Parse reads, in bytes.
	MaxSize = 8 << 10
	// MaxLines is the most lines a body may have.
	MaxLines = 256
	// MaxMedia is the most m= sections a body may have.
	MaxMedia = 8
	// MaxFormats is the most formats one m= line may list.
	MaxFormats = 64
)

// StatusFor returns the SIP status code that answers an INVITE whose SDP
// failed with err: 400 for ErrMalformed and ErrTooLarge, 488 for
// ErrNoCommonCodec and ErrUnsupported, 500 for anything else, 200 for nil.
func StatusFor(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrNoCommonCodec), errors.Is(err, ErrUnsupported):
		return 488
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge):
		return 400
	default:
		return 500
	}
}

// Session is a session description (RFC 8866 §5): pion/sdp's, with a
// Marshal that cannot fail.
type Session struct {
	psdp.SessionDescription
}

// Media is an m= section (RFC 8866 §5.14).
type Media = psdp.MediaDescription

// Marshal writes the description in RFC 8866 §5 order with CRLF line ends.
func (s *Session) Marshal() []byte {
	b, _ := s.SessionDescription.Marshal() // it returns no error
	return b
}

// String returns Marshal as a string.
func (s *Session) String() string { return string(s.Marshal()) }

// Direction is the media direction attribute (RFC 8866 §6.7, RFC 3264
// §5.1).
type Direction uint8

// Directions. DirectionUnset means no direction attribute at that level.
const (
	DirectionUnset Direction = iota
	SendRecv
	SendOnly
	RecvOnly
	Inactive
)

func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	default:
		return ""
	}
}

// sends and receives report what d allows; unset is sendrecv (RFC 8866
// §6.7).
func (d Direction) sends() bool    { return d == SendRecv || d == SendOnly || d == DirectionUnset }
func (d Direction) receives() bool { return d == SendRecv || d == RecvOnly || d == DirectionUnset }

// Answer returns the direction an answerer puts against an offered
// direction d (RFC 3264 §6.1): sendonly is answered recvonly, recvonly
// sendonly, inactive inactive, sendrecv (or unset) sendrecv.
func (d Direction) Answer() Direction { return d.AnswerWith(SendRecv) }

// AnswerWith returns the answer to an offered direction d by an answerer
// that wants to do at most want (RFC 3264 §6.1): it sends only if the
// offerer receives and want sends, and receives only if the offerer sends
// and want receives. A hold answered while holding ourselves (want
// sendonly or inactive) is how a B2BUA keeps both legs' hold state.
// DirectionUnset as want means sendrecv.
func (d Direction) AnswerWith(want Direction) Direction {
	send := d.receives() && want.sends()
	recv := d.sends() && want.receives()
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	default:
		return Inactive
	}
}

func directionOf(key string) Direction {
	switch key {
	case "sendrecv":
		return SendRecv
	case "sendonly":
		return SendOnly
	case "recvonly":
		return RecvOnly
	case "inactive":
		return Inactive
	}
	return DirectionUnset
}

// directionIn returns the first direction attribute in attrs.
func directionIn(attrs []psdp.Attribute) Direction {
	for _, a := range attrs {
		if d := directionOf(a.Key); d != DirectionUnset {
			return d
		}
	}
	return DirectionUnset
}

// Direction returns the session-level direction, DirectionUnset if none.
func (s *Session) Direction() Direction { return directionIn(s.Attributes) }

// MediaDirection returns the effective direction of s's media section i:
// its own attribute, else the session's, else sendrecv (RFC 8866 §6.7).
// An index out of range is sendrecv.
func (s *Session) MediaDirection(i int) Direction {
	if i >= 0 && i < len(s.MediaDescriptions) {
		if d := directionIn(s.MediaDescriptions[i].Attributes); d != DirectionUnset {
			return d
		}
	}
	if d := s.Direction(); d != DirectionUnset {
		return d
	}
	return SendRecv
}

// connectionOf returns m's connection: its own c= line, else the
// session's; nil when neither is present.
func (s *Session) connectionOf(m *Media) *psdp.ConnectionInformation {
	if m.ConnectionInformation != nil {
		return m.ConnectionInformation
	}
	return s.ConnectionInformation
}

// connAddr returns the connection address as an IP. A host name or
// multicast form is an error wrapping ErrUnsupported: the guard sends RTP
// to unicast literals only (resolving a name per call would put DNS on the
// call path).
func connAddr(c *psdp.ConnectionInformation) (netip.Addr, error) {
	if c == nil || c.Address == nil {
		return netip.Addr{}, wrapf(ErrMalformed, "no connection address")
	}
	a, err := netip.ParseAddr(c.Address.Address)
	if err != nil {
		return netip.Addr{}, wrapf(ErrUnsupported, "connection address %q is not an IP literal", c.Address.Address)
	}
	if a.IsMulticast() {
		return netip.Addr{}, wrapf(ErrUnsupported, "connection address %s is multicast", a)
	}
	return a, nil
}

// connectionFor returns the IN IP4 or IN IP6 connection line for a.
func connectionFor(a netip.Addr) *psdp.ConnectionInformation {
	a = a.Unmap()
	return &psdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType(a), Address: &psdp.Address{Address: a.String()}}
}

func addrType(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "IP6"
	}
	return "IP4"
}

// proto returns m's transport protocol: "RTP/AVP".
func proto(m *Media) string { return strings.Join(m.MediaName.Protos, "/") }

func isRTPProto(proto string) bool {
	return strings.HasPrefix(proto, "RTP/") || strings.Contains(proto, "/RTP/")
}

// RTPMap is an a=rtpmap value (RFC 8866 §6.6): "101 telephone-event/8000".
type RTPMap struct {
	PayloadType uint8
	Encoding    string
	ClockRate   uint32
	// Channels is the encoding parameter of audio formats; 0 when absent
	// (meaning one channel).
	Channels uint16
}

func (r RTPMap) String() string {
	s := strconv.Itoa(int(r.PayloadType)) + " " + r.Encoding + "/" + strconv.FormatUint(uint64(r.ClockRate), 10)
	if r.Channels > 0 {
		s += "/" + strconv.Itoa(int(r.Channels))
	}
	return s
}

// ParseRTPMap reads an a=rtpmap value. Errors wrap ErrMalformed. (pion/sdp
// reads rtpmap only session-wide, merging every stream's, and skips static
// payload types; the guard needs one stream's.)
func ParseRTPMap(v string) (RTPMap, error) {
	ptText, rest, ok := strings.Cut(v, " ")
	if !ok {
		return RTPMap{}, wrapf(ErrMalformed, "rtpmap %q: no encoding", v)
	}
	pt, err := parsePT(ptText)
	if err != nil {
		return RTPMap{}, wrapf(ErrMalformed, "rtpmap %q: %v", v, err)
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) < 2 || len(parts) > 3 || !isToken(parts[0]) {
		return RTPMap{}, wrapf(ErrMalformed, "rtpmap %q: want <encoding>/<clock rate>[/<channels>]", v)
	}
	clock, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || clock == 0 {
		return RTPMap{}, wrapf(ErrMalformed, "rtpmap %q: bad clock rate", v)
	}
	r := RTPMap{PayloadType: pt, Encoding: parts[0], ClockRate: uint32(clock)}
	if len(parts) == 3 {
		ch, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil || ch == 0 {
			return RTPMap{}, wrapf(ErrMalformed, "rtpmap %q: bad channel count", v)
		}
		r.Channels = uint16(ch)
	}
	return r, nil
}

// rtpMapOf returns m's mapping for payload type pt: its first well-formed
// a=rtpmap for pt, else the static assignment of RFC 3551 §6 (Table 4) for
// the payload types a telephone network sends.
func rtpMapOf(m *Media, pt uint8) (RTPMap, bool) {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		r, err := ParseRTPMap(a.Value)
		if err == nil && r.PayloadType == pt {
			return r, true
		}
	}
	if r, ok := staticPT[pt]; ok {
		return r, true
	}
	return RTPMap{}, false
}

// staticPT are the static audio payload types of RFC 3551 §6, Table 4,
// that appear in telephony offers.
var staticPT = map[uint8]RTPMap{
	0:  {PayloadType: 0, Encoding: "PCMU", ClockRate: 8000},
	3:  {PayloadType: 3, Encoding: "GSM", ClockRate: 8000},
	4:  {PayloadType: 4, Encoding: "G723", ClockRate: 8000},
	8:  {PayloadType: 8, Encoding: "PCMA", ClockRate: 8000},
	9:  {PayloadType: 9, Encoding: "G722", ClockRate: 8000},
	13: {PayloadType: 13, Encoding: "CN", ClockRate: 8000},
	18: {PayloadType: 18, Encoding: "G729", ClockRate: 8000},
}

// fmtpOf returns the parameters of m's first well-formed a=fmtp for pt
// (RFC 8866 §6.15: "101 0-16").
func fmtpOf(m *Media, pt uint8) (string, bool) {
	for _, a := range m.Attributes {
		if a.Key != "fmtp" {
			continue
		}
		ptText, params, ok := strings.Cut(a.Value, " ")
		params = strings.TrimSpace(params)
		if !ok || params == "" {
			continue
		}
		if p, err := parsePT(ptText); err == nil && p == pt {
			return params, true
		}
	}
	return "", false
}

// ptimeOf returns m's a=ptime in milliseconds (RFC 8866 §6.4); false when
// absent or unreadable. Fractional values ("20.0") are truncated.
func ptimeOf(m *Media) (int, bool) {
	v, ok := m.Attribute("ptime")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms <= 0 || ms > 1000 {
		return 0, false
	}
	return ms, true
}

// payloadTypes returns m's formats as RTP payload types, skipping any that
// are not (only possible in a hand-built Media: Parse checks them for RTP
// profiles).
func payloadTypes(m *Media) []uint8 {
	out := make([]uint8, 0, len(m.MediaName.Formats))
	for _, f := range m.MediaName.Formats {
		if pt, err := parsePT(f); err == nil {
			out = append(out, pt)
		}
	}
	return out
}

func parsePT(s string) (uint8, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n > 127 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("payload type " + strconv.Quote(s) + " is not 0-127")
	}
	return uint8(n), nil
}

// isToken reports whether s is a non-empty RFC 8866 token (§9: token-char
// is any visible ASCII except the separators "(),/:;<=>?@[\]{}" space and
// quote).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
