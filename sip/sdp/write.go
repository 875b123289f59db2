package sdp

import (
	"strconv"
	"strings"
)

// Marshal writes the description in RFC 8866 §5 order with CRLF line ends.
// It writes what the fields hold without checking them; a Session built
// by Parse, Negotiate or NewOffer is always well formed.
func (s *Session) Marshal() []byte {
	var b strings.Builder
	b.Grow(512)
	s.write(&b)
	return []byte(b.String())
}

// String returns Marshal as a string.
func (s *Session) String() string {
	var b strings.Builder
	s.write(&b)
	return b.String()
}

func line(b *strings.Builder, typ byte, v string) {
	b.WriteByte(typ)
	b.WriteByte('=')
	b.WriteString(v)
	b.WriteString("\r\n")
}

func (s *Session) write(b *strings.Builder) {
	line(b, 'v', "0")
	o := s.Origin
	line(b, 'o', strings.Join([]string{o.Username, o.SessionID, o.SessionVersion, o.NetType, o.AddrType, o.Address}, " "))
	name := s.Name
	if name == "" {
		name = "-" // RFC 8866 §5.3: s= must not be empty
	}
	line(b, 's', name)
	if s.Info != "" {
		line(b, 'i', s.Info)
	}
	if s.URI != "" {
		line(b, 'u', s.URI)
	}
	for _, e := range s.Emails {
		line(b, 'e', e)
	}
	for _, p := range s.Phones {
		line(b, 'p', p)
	}
	if s.Connection != nil {
		line(b, 'c', s.Connection.String())
	}
	writeBandwidths(b, s.Bandwidths)
	for _, t := range s.Times {
		line(b, 't', strconv.FormatUint(t.Start, 10)+" "+strconv.FormatUint(t.Stop, 10))
		for _, r := range t.Repeats {
			line(b, 'r', r)
		}
	}
	if s.TimeZones != "" {
		line(b, 'z', s.TimeZones)
	}
	if s.Key != "" {
		line(b, 'k', s.Key)
	}
	writeAttributes(b, s.Attributes)
	for _, m := range s.Media {
		m.write(b)
	}
}

func (m *Media) write(b *strings.Builder) {
	port := strconv.Itoa(m.Port)
	if m.PortCount > 0 {
		port += "/" + strconv.Itoa(m.PortCount)
	}
	line(b, 'm', m.Type+" "+port+" "+m.Proto+" "+strings.Join(m.Formats, " "))
	if m.Info != "" {
		line(b, 'i', m.Info)
	}
	if m.Connection != nil {
		line(b, 'c', m.Connection.String())
	}
	writeBandwidths(b, m.Bandwidths)
	if m.Key != "" {
		line(b, 'k', m.Key)
	}
	writeAttributes(b, m.Attributes)
}

func writeBandwidths(b *strings.Builder, bws []Bandwidth) {
	for _, bw := range bws {
		line(b, 'b', bw.Type+":"+strconv.FormatUint(bw.Value, 10))
	}
}

func writeAttributes(b *strings.Builder, attrs []Attribute) {
	for _, a := range attrs {
		if a.Value == "" {
			line(b, 'a', a.Key)
		} else {
			line(b, 'a', a.Key+":"+a.Value)
		}
	}
}

// String returns the c= value: "IN IP4 192.0.2.1".
func (c *Connection) String() string {
	return c.NetType + " " + c.AddrType + " " + c.Address
}
