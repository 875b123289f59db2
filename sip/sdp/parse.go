package sdp

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// wrapf returns an error "sdp: <detail>: <sentinel>" wrapping sentinel.
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("sdp: %s: %w", fmt.Sprintf(format, args...), sentinel)
}

// parser holds the state of one Parse call.
type parser struct {
	s     *Session
	media *Media // current m= section; nil at session level
	line  int    // 1-based number of the line being read
	seen  map[byte]bool
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("sdp: line %d: %s: %w", p.line, fmt.Sprintf(format, args...), ErrMalformed)
}

// Parse reads a session description. Errors wrap ErrMalformed or
// ErrTooLarge and name the offending line.
func Parse(data []byte) (*Session, error) {
	if len(data) > MaxSize {
		return nil, wrapf(ErrTooLarge, "%d bytes, limit %d", len(data), MaxSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, wrapf(ErrMalformed, "NUL byte in body")
	}
	// RFC 8866 §5: records end in CRLF, and parsers SHOULD accept LF too.
	text := string(data)
	lines := strings.Split(text, "\n")
	// Trailing empty lines (a final CRLF, or a stray extra one) are not
	// records.
	for len(lines) > 0 {
		last := strings.TrimSuffix(lines[len(lines)-1], "\r")
		if last != "" {
			break
		}
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, wrapf(ErrMalformed, "empty body")
	}
	if len(lines) > MaxLines {
		return nil, wrapf(ErrTooLarge, "%d lines, limit %d", len(lines), MaxLines)
	}
	p := &parser{s: &Session{}, seen: make(map[byte]bool)}
	for i, raw := range lines {
		p.line = i + 1
		l := strings.TrimSuffix(raw, "\r")
		if strings.IndexByte(l, '\r') >= 0 {
			return nil, p.errorf("bare CR")
		}
		if len(l) < 2 || l[1] != '=' || l[0] < 'a' || l[0] > 'z' {
			return nil, p.errorf("%q is not <type>=<value>", clip(l))
		}
		if err := p.record(l[0], l[2:]); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	// MaxSize holds for the canonical form too, so that whatever Parse
	// accepts, Parse accepts again after Marshal (which writes CRLF, ends
	// the last line and writes an empty s= as "-"; nothing else it does
	// makes a line longer).
	canonical := len(data) + bytes.Count(data, []byte("\n")) - bytes.Count(data, []byte("\r\n"))
	if data[len(data)-1] != '\n' {
		canonical += 2
	}
	if p.s.Name == "" {
		canonical++
	}
	if canonical > MaxSize {
		return nil, wrapf(ErrTooLarge, "%d bytes in canonical form, limit %d", canonical, MaxSize)
	}
	return p.s, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// record reads one <type>=<value> line. The order rules enforced are the
// ones whose violation makes a description ambiguous (RFC 8866 §5): v=
// first, o= second, s= third, r= after a t=, session-only lines before
// the first m=, and at most one of each single-valued line per level.
func (p *parser) record(typ byte, v string) error {
	switch p.line {
	case 1:
		if typ != 'v' {
			return p.errorf("first line must be v=")
		}
		if v != "0" {
			return p.errorf("version %q, want 0", clip(v))
		}
		return nil
	case 2:
		if typ != 'o' {
			return p.errorf("second line must be o=")
		}
		return p.origin(v)
	case 3:
		if typ != 's' {
			return p.errorf("third line must be s=")
		}
		p.s.Name = v
		return nil
	}
	if typ == 'm' {
		return p.mediaLine(v)
	}
	if p.media != nil {
		return p.mediaRecord(typ, v)
	}
	return p.sessionRecord(typ, v)
}

func (p *parser) once(typ byte) error {
	if p.seen[typ] {
		return p.errorf("more than one %c= line", typ)
	}
	p.seen[typ] = true
	return nil
}

func (p *parser) sessionRecord(typ byte, v string) error {
	s := p.s
	switch typ {
	case 'v', 'o', 's':
		return p.errorf("%c= line repeated", typ)
	case 'i':
		if err := p.once(typ); err != nil {
			return err
		}
		s.Info = v
	case 'u':
		if err := p.once(typ); err != nil {
			return err
		}
		s.URI = v
	case 'e':
		s.Emails = append(s.Emails, v)
	case 'p':
		s.Phones = append(s.Phones, v)
	case 'c':
		if err := p.once(typ); err != nil {
			return err
		}
		c, err := p.connection(v)
		if err != nil {
			return err
		}
		s.Connection = c
	case 'b':
		b, err := p.bandwidth(v)
		if err != nil {
			return err
		}
		s.Bandwidths = append(s.Bandwidths, b)
	case 't':
		f := strings.Fields(v)
		if len(f) != 2 {
			return p.errorf("t= wants <start> <stop>")
		}
		start, err1 := strconv.ParseUint(f[0], 10, 64)
		stop, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return p.errorf("t= times must be decimal")
		}
		s.Times = append(s.Times, Timing{Start: start, Stop: stop})
	case 'r':
		if len(s.Times) == 0 {
			return p.errorf("r= before any t=")
		}
		if strings.TrimSpace(v) == "" {
			return p.errorf("empty r=")
		}
		t := &s.Times[len(s.Times)-1]
		t.Repeats = append(t.Repeats, v)
	case 'z':
		if err := p.once(typ); err != nil {
			return err
		}
		if strings.TrimSpace(v) == "" {
			return p.errorf("empty z=")
		}
		s.TimeZones = v
	case 'k':
		if err := p.once(typ); err != nil {
			return err
		}
		s.Key = v
	case 'a':
		a, err := p.attribute(v)
		if err != nil {
			return err
		}
		s.Attributes = append(s.Attributes, a)
	default:
		// RFC 8866 §5: a parser MUST ignore a whole description with a
		// type letter it does not understand; for us that is a reject.
		return p.errorf("unknown type letter %q", typ)
	}
	return nil
}

func (p *parser) mediaRecord(typ byte, v string) error {
	m := p.media
	switch typ {
	case 'i':
		if err := p.once(typ); err != nil {
			return err
		}
		m.Info = v
	case 'c':
		if err := p.once(typ); err != nil {
			return err
		}
		c, err := p.connection(v)
		if err != nil {
			return err
		}
		m.Connection = c
	case 'b':
		b, err := p.bandwidth(v)
		if err != nil {
			return err
		}
		m.Bandwidths = append(m.Bandwidths, b)
	case 'k':
		if err := p.once(typ); err != nil {
			return err
		}
		m.Key = v
	case 'a':
		a, err := p.attribute(v)
		if err != nil {
			return err
		}
		m.Attributes = append(m.Attributes, a)
	case 'v', 'o', 's', 'u', 'e', 'p', 't', 'r', 'z':
		return p.errorf("session-level %c= line inside a media section", typ)
	default:
		return p.errorf("unknown type letter %q", typ)
	}
	return nil
}

// origin reads o=<username> <sess-id> <sess-version> <nettype> <addrtype>
// <unicast-address> (RFC 8866 §5.2).
func (p *parser) origin(v string) error {
	f := strings.Fields(v)
	if len(f) != 6 {
		return p.errorf("o= wants 6 fields, has %d", len(f))
	}
	if !digits(f[1]) || !digits(f[2]) {
		return p.errorf("o= session id and version must be decimal")
	}
	if f[3] != "IN" {
		return p.errorf("o= network type %q, want IN", clip(f[3]))
	}
	if f[4] != "IP4" && f[4] != "IP6" {
		return p.errorf("o= address type %q, want IP4 or IP6", clip(f[4]))
	}
	p.s.Origin = Origin{Username: f[0], SessionID: f[1], SessionVersion: f[2], NetType: f[3], AddrType: f[4], Address: f[5]}
	return nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// connection reads c=<nettype> <addrtype> <connection-address> (RFC 8866
// §5.7): IN, IP4 or IP6, and an IP literal of that family, a host name, or
// a multicast group with its TTL and count.
func (p *parser) connection(v string) (*Connection, error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return nil, p.errorf("c= wants 3 fields, has %d", len(f))
	}
	if f[0] != "IN" {
		return nil, p.errorf("c= network type %q, want IN", clip(f[0]))
	}
	if f[1] != "IP4" && f[1] != "IP6" {
		return nil, p.errorf("c= address type %q, want IP4 or IP6", clip(f[1]))
	}
	addr := f[2]
	host, suffix, multicast := strings.Cut(addr, "/")
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, p.errorf("c= address %q has a zone", clip(addr))
		}
		if a.Is4() != (f[1] == "IP4") {
			return nil, p.errorf("c= address %q is not %s", clip(addr), f[1])
		}
		if multicast {
			// RFC 8866 §5.7: IP4 multicast is <addr>/<ttl>[/<n>], IP6
			// multicast <addr>[/<n>].
			parts := strings.Split(suffix, "/")
			if !a.IsMulticast() || len(parts) > 2 || (f[1] == "IP6" && len(parts) > 1) {
				return nil, p.errorf("c= address %q: bad multicast form", clip(addr))
			}
			for _, n := range parts {
				if !digits(n) || len(n) > 5 {
					return nil, p.errorf("c= address %q: bad multicast form", clip(addr))
				}
			}
		}
	} else if multicast || !isHostname(host) {
		return nil, p.errorf("c= address %q is neither an IP address nor a host name", clip(addr))
	}
	return &Connection{NetType: f[0], AddrType: f[1], Address: addr}, nil
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

// bandwidth reads b=<bwtype>:<bandwidth> (RFC 8866 §5.8).
func (p *parser) bandwidth(v string) (Bandwidth, error) {
	t, n, ok := strings.Cut(v, ":")
	if !ok || !isToken(t) {
		return Bandwidth{}, p.errorf("b= wants <type>:<bandwidth>")
	}
	val, err := strconv.ParseUint(n, 10, 64)
	if err != nil || !digits(n) {
		return Bandwidth{}, p.errorf("b= bandwidth %q is not decimal", clip(n))
	}
	return Bandwidth{Type: t, Value: val}, nil
}

// attribute reads a=<name>[:<value>] (RFC 8866 §5.13).
func (p *parser) attribute(v string) (Attribute, error) {
	k, val, _ := strings.Cut(v, ":")
	if !isToken(k) {
		return Attribute{}, p.errorf("a= name %q is not a token", clip(k))
	}
	return Attribute{Key: k, Value: val}, nil
}

// mediaLine reads m=<media> <port>[/<number of ports>] <proto> <fmt> ...
// (RFC 8866 §5.14).
func (p *parser) mediaLine(v string) error {
	if len(p.s.Media) >= MaxMedia {
		return wrapf(ErrTooLarge, "line %d: more than %d media sections", p.line, MaxMedia)
	}
	f := strings.Fields(v)
	if len(f) < 4 {
		return p.errorf("m= wants <media> <port> <proto> <fmt>...")
	}
	if len(f)-3 > MaxFormats {
		return wrapf(ErrTooLarge, "line %d: %d formats, limit %d", p.line, len(f)-3, MaxFormats)
	}
	if !isToken(f[0]) {
		return p.errorf("m= media %q is not a token", clip(f[0]))
	}
	m := &Media{Type: f[0], Proto: f[2]}
	portText, countText, hasCount := strings.Cut(f[1], "/")
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || !digits(portText) {
		return p.errorf("m= port %q is not 0-65535", clip(f[1]))
	}
	m.Port = int(port)
	if hasCount {
		n, err := strconv.ParseUint(countText, 10, 16)
		if err != nil || n == 0 || !digits(countText) {
			return p.errorf("m= port count %q is not 1-65535", clip(countText))
		}
		m.PortCount = int(n)
	}
	for _, part := range strings.Split(m.Proto, "/") {
		if !isToken(part) {
			return p.errorf("m= protocol %q is malformed", clip(m.Proto))
		}
	}
	for _, fm := range f[3:] {
		if m.IsRTP() {
			if _, err := parsePT(fm); err != nil {
				return p.errorf("m= format: %v", err)
			}
		} else if !isToken(fm) {
			return p.errorf("m= format %q is not a token", clip(fm))
		}
	}
	m.Formats = f[3:]
	p.s.Media = append(p.s.Media, m)
	p.media = m
	p.seen = make(map[byte]bool) // single-valued lines are per level
	return nil
}

// finish checks what can only be checked at the end.
func (p *parser) finish() error {
	if p.line < 3 {
		return wrapf(ErrMalformed, "description ends before v=, o= and s=")
	}
	if len(p.s.Times) == 0 {
		return wrapf(ErrMalformed, "no t= line (RFC 8866 §5.9 requires one)")
	}
	// RFC 8866 §5.7: a c= at the session level or in every media section.
	// A stream with port 0 carries nothing, so it may lack one.
	if p.s.Connection == nil {
		for i, m := range p.s.Media {
			if m.Connection == nil && m.Port != 0 {
				return wrapf(ErrMalformed, "media %d (%s) has no c= line and there is no session-level c=", i+1, m.Type)
			}
		}
	}
	return nil
}
