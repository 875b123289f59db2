package sdp

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// wrapf returns an error "sdp: <detail>: <sentinel>" wrapping sentinel.
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("sdp: %s: %w", fmt.Sprintf(format, args...), sentinel)
}

func lineErr(n int, format string, args ...any) error {
	return fmt.Errorf("sdp: line %d: %s: %w", n, fmt.Sprintf(format, args...), ErrMalformed)
}

// Parse reads a session description. Errors wrap ErrMalformed or
// ErrTooLarge.
//
// It works in three steps. First the limits, on the raw lines, before the
// library reads anything: size, NUL and bare CR, line count and form, the
// number of m= sections and of their formats. Then pion/sdp parses a
// normalised copy (CRLF ends, the shim below applied). Last the checks the
// library does not make and the guard relies on (check).
func Parse(data []byte) (*Session, error) {
	if len(data) > MaxSize {
		return nil, wrapf(ErrTooLarge, "%d bytes, limit %d", len(data), MaxSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, wrapf(ErrMalformed, "NUL byte in body")
	}
	// RFC 8866 §5: records end in CRLF, and parsers SHOULD accept LF too.
	lines := strings.Split(string(data), "\n")
	// Trailing empty lines (a final CRLF, or a stray extra one) are not
	// records.
	for len(lines) > 0 && strings.TrimSuffix(lines[len(lines)-1], "\r") == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, wrapf(ErrMalformed, "empty body")
	}
	if len(lines) > MaxLines {
		return nil, wrapf(ErrTooLarge, "%d lines, limit %d", len(lines), MaxLines)
	}
	var (
		media    int
		firstM   = len(lines)
		restored []mediaName // per m= section, what the shim replaced
	)
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if strings.IndexByte(l, '\r') >= 0 {
			return nil, lineErr(i+1, "bare CR")
		}
		if len(l) < 2 || l[1] != '=' || l[0] < 'a' || l[0] > 'z' {
			return nil, lineErr(i+1, "%q is not <type>=<value>", clip(l))
		}
		lines[i] = l
		if l[0] != 'm' {
			continue
		}
		if media++; media > MaxMedia {
			return nil, wrapf(ErrTooLarge, "line %d: more than %d media sections", i+1, MaxMedia)
		}
		firstM = min(firstM, i)
		l, orig, err := mediaLine(i+1, l)
		if err != nil {
			return nil, err
		}
		lines[i] = l
		restored = append(restored, orig)
	}
	reorderSession(lines[:firstM])
	text := strings.Join(lines, "\r\n") + "\r\n"
	s := &Session{}
	if err := s.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("sdp: %s%v: %w", where(text, err), err, ErrMalformed)
	}
	for i, m := range s.MediaDescriptions {
		if i < len(restored) && restored[i].media != "" {
			m.MediaName.Media, m.MediaName.Protos = restored[i].media, strings.Split(restored[i].proto, "/")
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// syntaxPos finds the offset in pion/sdp's "syntax error at pos N".
var syntaxPos = regexp.MustCompile(`at pos (\d+)`)

// where quotes the line a pion/sdp syntax error points at (its offset is in the normalised text, so no line number), for the log.
func where(text string, err error) string {
	m := syntaxPos.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	pos, _ := strconv.Atoi(m[1])
	if pos < 0 || pos >= len(text) {
		return ""
	}
	start := strings.LastIndexByte(text[:pos], '\n') + 1
	l, _, _ := strings.Cut(text[start:], "\r\n")
	return fmt.Sprintf("at %q: ", clip(l))
}

// mediaName is an m= line's media and protocol as sent.
type mediaName struct{ media, proto string }

// pionMedia and pionProto are what pion/sdp accepts in an m= line (its
// unmarshalMediaDescription): media types and the parts of a protocol.
var (
	pionMedia = []string{"audio", "video", "text", "application", "message"}
	pionProto = []string{"UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS", "SCTP", "AVPF", "TCP", "MSRP", "BFCP", "UDT", "IX", "MRCPv2", "FEC"}
)

// mediaLine checks an m= line (RFC 8866 §5.14) against the limits and the
// grammar pion/sdp does not check (RTP formats are payload types 0-127),
// and applies the shim: pion/sdp refuses any media type or protocol outside
// its lists, so "m=image 4002 udptl t38", the T.38 fax stream carrier
// gateways offer (ITU-T T.38 Annex D), would fail the whole INVITE. Such a
// line goes to the library as "application ... UDP" and its own media and
// protocol, returned, are put back after parsing.
func mediaLine(n int, l string) (string, mediaName, error) {
	f := strings.Fields(l[2:])
	if len(f) < 4 {
		return "", mediaName{}, lineErr(n, "m= wants <media> <port> <proto> <fmt>...")
	}
	if len(f)-3 > MaxFormats {
		return "", mediaName{}, wrapf(ErrTooLarge, "line %d: %d formats, limit %d", n, len(f)-3, MaxFormats)
	}
	if !isToken(f[0]) {
		return "", mediaName{}, lineErr(n, "m= media %q is not a token", clip(f[0]))
	}
	port, count, hasCount := strings.Cut(f[1], "/")
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || !isDigits(port) {
		return "", mediaName{}, lineErr(n, "m= port %q is not 0-65535", clip(f[1]))
	}
	if c, err := strconv.ParseUint(count, 10, 16); hasCount && (err != nil || c == 0 || !isDigits(count)) {
		return "", mediaName{}, lineErr(n, "m= port count %q is not 1-65535", clip(count))
	}
	parts := strings.Split(f[2], "/")
	for _, p := range parts {
		if !isToken(p) {
			return "", mediaName{}, lineErr(n, "m= protocol %q is malformed", clip(f[2]))
		}
	}
	rtp := isRTPProto(f[2])
	for _, fm := range f[3:] {
		if rtp {
			if _, err := parsePT(fm); err != nil {
				return "", mediaName{}, lineErr(n, "m= format: %v", err)
			}
		} else if !isToken(fm) {
			return "", mediaName{}, lineErr(n, "m= format %q is not a token", clip(fm))
		}
	}
	known := slices.Contains(pionMedia, f[0])
	for _, p := range parts {
		known = known && slices.Contains(pionProto, p)
	}
	if known {
		return l, mediaName{}, nil
	}
	return "m=application " + f[1] + " UDP " + strings.Join(f[3:], " "), mediaName{media: f[0], proto: f[2]}, nil
}

// sessionOrder is the RFC 8866 §5 order of the session-level lines.
const sessionOrder = "vosiuepcbtzka"

// sessionRank is l's place in sessionOrder; r= shares t='s so that each
// r= stays after its t=, and a letter not allowed at session level is -1.
func sessionRank(l string) int {
	c := l[0]
	if c == 'r' {
		c = 't'
	}
	return strings.IndexByte(sessionOrder, c)
}

// reorderSession is the other half of the shim. pion/sdp holds the
// session-level lines to the RFC's order (c= before t=, b= before t=, a=
// last), while the guard has always taken them in any order, as equipment
// differs there without harm: the lines are keyed by letter, so their
// order carries no meaning. It sorts them (stably) into the RFC order. A
// letter not allowed at session level sorts first and fails in the
// library.
func reorderSession(lines []string) {
	byRank := func(a, b string) int { return cmp.Compare(sessionRank(a), sessionRank(b)) }
	if slices.IsSortedFunc(lines, byRank) {
		return
	}
	if len(lines) >= 3 && lines[0][0] == 'v' && lines[1][0] == 'o' && lines[2][0] == 's' {
		slices.SortStableFunc(lines[3:], byRank)
	}
}

// check makes the checks pion/sdp leaves out: RFC 8866 §5.9 wants a t=
// line, §5.7 a c= line at session level or in every stream (a stream with
// port 0 carries nothing, so it may lack one), and a c= address must be an
// IP literal of its address type, a host name, or a multicast group.
func (s *Session) check() error {
	if len(s.TimeDescriptions) == 0 {
		return wrapf(ErrMalformed, "no t= line (RFC 8866 §5.9 requires one)")
	}
	if err := checkConnection(s.ConnectionInformation); err != nil {
		return err
	}
	for i, m := range s.MediaDescriptions {
		if err := checkConnection(m.ConnectionInformation); err != nil {
			return fmt.Errorf("media %d: %w", i+1, err)
		}
		if s.connectionOf(m) == nil && m.MediaName.Port.Value != 0 {
			return wrapf(ErrMalformed, "media %d (%s) has no c= line and there is no session-level c=", i+1, m.MediaName.Media)
		}
	}
	return nil
}

// checkConnection checks a c= address (RFC 8866 §5.7): an IP literal of
// the line's family without zone, a host name, or a multicast group with
// its TTL and count (IP4 <addr>/<ttl>[/<n>], IP6 <addr>[/<n>]).
func checkConnection(c *psdp.ConnectionInformation) error {
	if c == nil {
		return nil
	}
	if c.Address == nil {
		return wrapf(ErrMalformed, "c= has no address")
	}
	addr := c.Address.Address
	host, suffix, multicast := strings.Cut(addr, "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		if multicast || !isHostname(host) {
			return wrapf(ErrMalformed, "c= address %q is neither an IP address nor a host name", clip(addr))
		}
		return nil
	}
	switch {
	case a.Zone() != "":
		return wrapf(ErrMalformed, "c= address %q has a zone", clip(addr))
	case a.Is4() != (c.AddressType == "IP4"):
		return wrapf(ErrMalformed, "c= address %q is not %s", clip(addr), c.AddressType)
	case !multicast:
		return nil
	}
	parts := strings.Split(suffix, "/")
	if !a.IsMulticast() || len(parts) > 2 || (c.AddressType == "IP6" && len(parts) > 1) {
		return wrapf(ErrMalformed, "c= address %q: bad multicast form", clip(addr))
	}
	for _, n := range parts {
		if _, err := strconv.ParseUint(n, 10, 16); err != nil || !isDigits(n) {
			return wrapf(ErrMalformed, "c= address %q: bad multicast form", clip(addr))
		}
	}
	return nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isHostname reports whether s has the shape of a DNS name (RFC 1123).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
