// Package sdp reads and writes the Session Description Protocol (RFC 8866,
// which obsoletes RFC 4566) as far as a telephony offer/answer exchange
// (RFC 3264) needs, and negotiates the guard's audio: G.711 (PCMU or PCMA)
// and RFC 4733 telephone-events.
//
// The parser is strict about the grammar (RFC 8866 §9): the line form
// "<type>=<value>", the type letters and where they may appear, the fields
// of v=, o=, s=, c=, t= and m=, and the sizes it will read (MaxSize,
// MaxLines, MaxMedia, MaxFormats). It is lenient where real carrier
// equipment differs from the RFC without harm: LF as well as CRLF line
// ends (RFC 8866 §5 allows it), extra spaces between fields, an empty s=,
// and the relative order of the optional lines within a level. Attribute
// values are kept verbatim and interpreted on demand (RTPMap, FMTP, PTime,
// Direction); an attribute this package does not understand, or one it
// understands but cannot read, is ignored as RFC 8866 §5.13 asks, so a
// broken a=rtpmap in a video stream does not fail an audio call.
//
// The writer emits CRLF, single spaces and the RFC order, so
// Parse(Marshal(Parse(x))) equals Parse(x): the fuzz test checks it.
//
// Values are not safe for concurrent mutation; a parsed Session that is no
// longer modified may be read from several goroutines.
package sdp

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
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

// Session is a session description (RFC 8866 §5).
type Session struct {
	// Origin is the o= line.
	Origin Origin
	// Name is the s= line. Empty is written as "-" (RFC 8866 §5.3).
	Name string
	// Info is the session-level i= line; empty when absent.
	Info string
	// URI is the u= line; empty when absent.
	URI string
	// Emails and Phones are the e= and p= lines.
	Emails, Phones []string
	// Connection is the session-level c= line; nil when absent. A media
	// section's own c= overrides it (RFC 8866 §5.7).
	Connection *Connection
	// Bandwidths are the session-level b= lines.
	Bandwidths []Bandwidth
	// Times are the t= lines with their r= lines; at least one.
	Times []Timing
	// TimeZones is the z= line, verbatim; empty when absent.
	TimeZones string
	// Key is the obsolete k= line, verbatim; empty when absent.
	Key string
	// Attributes are the session-level a= lines, in order.
	Attributes []Attribute
	// Media are the m= sections, in order.
	Media []*Media
}

// Origin is the o= line (RFC 8866 §5.2).
type Origin struct {
	Username       string // "-" when there is none
	SessionID      string // numeric string
	SessionVersion string // numeric string
	NetType        string // "IN"
	AddrType       string // "IP4" or "IP6"
	Address        string // the creator's address or host name
}

// Connection is a c= line (RFC 8866 §5.7).
type Connection struct {
	NetType  string // "IN"
	AddrType string // "IP4" or "IP6"
	// Address is an IP literal, a host name, or a multicast group with
	// its TTL or count ("233.252.0.1/127").
	Address string
}

// Addr returns the connection address as an IP. A host name or multicast
// form is an error wrapping ErrUnsupported: the guard sends RTP to
// unicast literals only (resolving a name per call would put DNS on the
// call path).
func (c *Connection) Addr() (netip.Addr, error) {
	a, err := netip.ParseAddr(c.Address)
	if err != nil {
		return netip.Addr{}, wrapf(ErrUnsupported, "connection address %q is not an IP literal", c.Address)
	}
	if a.IsMulticast() {
		return netip.Addr{}, wrapf(ErrUnsupported, "connection address %s is multicast", a)
	}
	return a, nil
}

// ConnectionFor returns the IN IP4 or IN IP6 connection line for a.
func ConnectionFor(a netip.Addr) *Connection {
	a = a.Unmap()
	t := "IP4"
	if a.Is6() {
		t = "IP6"
	}
	return &Connection{NetType: "IN", AddrType: t, Address: a.String()}
}

// Bandwidth is a b= line (RFC 8866 §5.8): "AS:64".
type Bandwidth struct {
	Type  string
	Value uint64
}

// Timing is a t= line with the r= lines that follow it (RFC 8866 §5.9,
// §5.10).
type Timing struct {
	Start, Stop uint64
	// Repeats are the r= lines, verbatim.
	Repeats []string
}

// Attribute is an a= line (RFC 8866 §5.13): "a=<Key>" when Value is empty,
// else "a=<Key>:<Value>".
type Attribute struct {
	Key   string
	Value string
}

// Media is an m= section (RFC 8866 §5.14).
type Media struct {
	// Type is the media type: "audio", "video", ...
	Type string
	// Port is the transport port; 0 means the stream is rejected or
	// disabled (RFC 3264 §5.1, §6).
	Port int
	// PortCount is the number after a slash in the port field; 0 when
	// absent.
	PortCount int
	// Proto is the transport protocol: "RTP/AVP" for plain RTP.
	Proto string
	// Formats are the media formats: RTP payload type numbers for RTP
	// profiles, in the offerer's order of preference (RFC 3264 §5.1).
	Formats []string
	// Info is the media-level i= line; empty when absent.
	Info string
	// Connection is the media-level c= line; nil when absent.
	Connection *Connection
	// Bandwidths are the media-level b= lines.
	Bandwidths []Bandwidth
	// Key is the obsolete k= line; empty when absent.
	Key string
	// Attributes are the media-level a= lines, in order.
	Attributes []Attribute
}

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

// Answer returns the direction an answerer puts against an offered
// direction d (RFC 3264 §6.1): sendonly is answered recvonly, recvonly
// sendonly, inactive inactive, sendrecv (or unset) sendrecv.
func (d Direction) Answer() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	default:
		return SendRecv
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
func directionIn(attrs []Attribute) Direction {
	for _, a := range attrs {
		if d := directionOf(a.Key); d != DirectionUnset {
			return d
		}
	}
	return DirectionUnset
}

// Direction returns the session-level direction, DirectionUnset if none.
func (s *Session) Direction() Direction { return directionIn(s.Attributes) }

// Direction returns the media's effective direction: its own attribute,
// else the session's, else sendrecv (RFC 8866 §6.7).
func (m *Media) Direction(s *Session) Direction {
	if d := directionIn(m.Attributes); d != DirectionUnset {
		return d
	}
	if s != nil {
		if d := s.Direction(); d != DirectionUnset {
			return d
		}
	}
	return SendRecv
}

// Attr returns the value of the first attribute named key.
func (m *Media) Attr(key string) (string, bool) {
	for _, a := range m.Attributes {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// ConnectionIn returns the media's connection: its own c= line, else the
// session's; nil when neither is present.
func (m *Media) ConnectionIn(s *Session) *Connection {
	if m.Connection != nil {
		return m.Connection
	}
	if s != nil {
		return s.Connection
	}
	return nil
}

// IsRTP reports whether the media uses an RTP profile, so its formats are
// payload type numbers.
func (m *Media) IsRTP() bool { return isRTPProto(m.Proto) }

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

// ParseRTPMap reads an a=rtpmap value. Errors wrap ErrMalformed.
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

// FMTP is an a=fmtp value (RFC 8866 §6.15): "101 0-16".
type FMTP struct {
	PayloadType uint8
	Params      string
}

// ParseFMTP reads an a=fmtp value. Errors wrap ErrMalformed.
func ParseFMTP(v string) (FMTP, error) {
	ptText, params, ok := strings.Cut(v, " ")
	if !ok || strings.TrimSpace(params) == "" {
		return FMTP{}, wrapf(ErrMalformed, "fmtp %q: no parameters", v)
	}
	pt, err := parsePT(ptText)
	if err != nil {
		return FMTP{}, wrapf(ErrMalformed, "fmtp %q: %v", v, err)
	}
	return FMTP{PayloadType: pt, Params: strings.TrimSpace(params)}, nil
}

// RTPMap returns the media's mapping for payload type pt: its first
// well-formed a=rtpmap for pt, else the static assignment of RFC 3551 §6
// (Table 4) for the payload types a telephone network sends.
func (m *Media) RTPMap(pt uint8) (RTPMap, bool) {
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

// FMTP returns the parameters of the media's first well-formed a=fmtp for
// pt.
func (m *Media) FMTP(pt uint8) (string, bool) {
	for _, a := range m.Attributes {
		if a.Key != "fmtp" {
			continue
		}
		f, err := ParseFMTP(a.Value)
		if err == nil && f.PayloadType == pt {
			return f.Params, true
		}
	}
	return "", false
}

// PTime returns the media's a=ptime in milliseconds (RFC 8866 §6.4); false
// when absent or unreadable. Fractional values ("20.0") are truncated.
func (m *Media) PTime() (int, bool) {
	v, ok := m.Attr("ptime")
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

// PayloadTypes returns the media's formats as RTP payload types, skipping
// any that are not (only possible in a hand-built Media: Parse checks
// them for RTP profiles).
func (m *Media) PayloadTypes() []uint8 {
	out := make([]uint8, 0, len(m.Formats))
	for _, f := range m.Formats {
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
