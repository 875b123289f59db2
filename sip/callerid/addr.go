package callerid

import (
	"fmt"
	"net/url"
	"strings"
)

// maxValueLen bounds one header value this package reads. sipgo already
// caps a whole message at 64 KiB; identities are a few dozen bytes, and
// the cap keeps the fuzzed pure functions linear and cheap.
const maxValueLen = 2048

// URI is a SIP, SIPS or tel URI as far as identifying a party needs (RFC
// 3261 §19.1.1, RFC 3966). Other schemes are kept with Scheme and Opaque
// only.
type URI struct {
	// Scheme is lower-case: "sip", "sips", "tel", or another scheme.
	Scheme string
	// User is the user part of a SIP URI, percent-decoded, with its
	// parameters (";npdi;rn=...", RFC 4694) if any; for a tel URI it is
	// the number with its visual separators. Empty when there is none.
	User string
	// Host is the host of a SIP URI, lower-case and without its port;
	// empty for tel.
	Host string
	// Params are the URI parameters (";user=phone;transport=udp" or the
	// tel parameters), verbatim without the leading ";".
	Params string
	// Opaque is everything after "scheme:" for other schemes.
	Opaque string
}

// UserPhone reports whether the URI has user=phone (RFC 3261 §19.1.1):
// the user part is a telephone number.
func (u URI) UserPhone() bool {
	return param(u.Params, "user") == "phone"
}

// Number returns the text that should hold a telephone number: the tel
// number, or the SIP user part without its parameters. It is what
// phone.Normalizer.Normalize reads.
func (u URI) Number() string {
	switch u.Scheme {
	case "sip", "sips", "tel":
		n, _, _ := strings.Cut(u.User, ";")
		return n
	}
	return ""
}

// String writes the URI back (percent-encoding and the port are not
// restored).
func (u URI) String() string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	switch u.Scheme {
	case "sip", "sips":
		if u.User != "" {
			b.WriteString(u.User)
			b.WriteByte('@')
		}
		b.WriteString(u.Host)
	case "tel":
		b.WriteString(u.User)
	default:
		b.WriteString(u.Opaque)
		return b.String()
	}
	if u.Params != "" {
		b.WriteByte(';')
		b.WriteString(u.Params)
	}
	return b.String()
}

// param returns the lower-cased value of the ;-separated parameter name.
func param(params, name string) string {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// ParseURI reads an addr-spec: a SIP or SIPS URI (RFC 3261 §19.1.1), a tel
// URI (RFC 3966), or another absolute URI. Errors wrap ErrMalformed.
func ParseURI(s string) (URI, error) {
	if len(s) > maxValueLen {
		return URI{}, fmt.Errorf("callerid: URI of %d bytes: %w", len(s), ErrMalformed)
	}
	if strings.ContainsAny(s, " \t\r\n<>\"") || strings.IndexByte(s, 0) >= 0 {
		return URI{}, fmt.Errorf("callerid: URI %q has white space, quotes or brackets: %w", clip(s), ErrMalformed)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !isScheme(scheme) {
		return URI{}, fmt.Errorf("callerid: %q has no URI scheme: %w", clip(s), ErrMalformed)
	}
	u := URI{Scheme: strings.ToLower(scheme)}
	switch u.Scheme {
	case "sip", "sips":
		return parseSIP(u, rest)
	case "tel":
		num, params, _ := strings.Cut(rest, ";")
		if num == "" {
			return URI{}, fmt.Errorf("callerid: tel URI %q has no number: %w", clip(s), ErrMalformed)
		}
		u.User, u.Params = num, params
		return u, nil
	default:
		u.Opaque = rest
		return u, nil
	}
}

func parseSIP(u URI, rest string) (URI, error) {
	// Headers (?...) are not part of an identity.
	rest, _, _ = strings.Cut(rest, "?")
	// The user part ends at the last "@": RFC 3261 §19.1.1 lets the user
	// part hold ";", "?", "/" and escaped "@", never a bare "@" (an "@"
	// after the host would not be a SIP URI either). The host part starts
	// after it and its parameters at the first ";".
	hostport := rest
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		hostport = rest[at+1:]
		if userinfo == "" {
			return URI{}, fmt.Errorf("callerid: SIP URI %q has an empty user part: %w", clip(rest), ErrMalformed)
		}
		// A password (user:password) is not part of the user.
		if i := strings.IndexByte(userinfo, ':'); i >= 0 {
			userinfo = userinfo[:i]
		}
		user, err := url.PathUnescape(userinfo)
		if err != nil {
			user = userinfo // esc02-style bare "%": keep it as written
		}
		u.User = user
	}
	host, params, _ := strings.Cut(hostport, ";")
	host = stripPort(host)
	if host == "" {
		return URI{}, fmt.Errorf("callerid: SIP URI %q has no host: %w", clip(rest), ErrMalformed)
	}
	u.Host = strings.ToLower(host)
	u.Params = params
	return u, nil
}

// stripPort removes a ":port" from host or "[v6]:port".
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

// isScheme reports whether s is an RFC 3986 scheme: ALPHA *( ALPHA / DIGIT
// / "+" / "-" / "." ).
func isScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// NameAddr is one parsed From, To or P-Asserted-Identity value: a
// name-addr or an addr-spec (RFC 3261 §20.10, §25.1; RFC 3325 §9.1).
type NameAddr struct {
	// Display is the display name, unquoted and unescaped; empty when
	// absent. It is shown to people and never used to identify anyone.
	Display string
	// URI is the addr-spec.
	URI URI
	// Params are the header parameters after the address (";tag=..."),
	// verbatim without the leading ";".
	Params string
}

// String writes the value back in name-addr form.
func (n NameAddr) String() string {
	var b strings.Builder
	if n.Display != "" {
		b.WriteByte('"')
		for i := 0; i < len(n.Display); i++ {
			if c := n.Display[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(n.Display[i])
		}
		b.WriteString(`" `)
	}
	b.WriteByte('<')
	b.WriteString(n.URI.String())
	b.WriteByte('>')
	if n.Params != "" {
		b.WriteByte(';')
		b.WriteString(n.Params)
	}
	return b.String()
}

// ParseNameAddr reads one header value of the form
//
//	[display-name] "<" addr-spec ">" *( ";" param )   ; name-addr
//	addr-spec *( ";" param )
//
// where display-name is a quoted-string (with \-escapes, RFC 3261 §25.1)
// or a run of tokens. Without angle brackets the parameters after the URI
// are header parameters (RFC 3261 §20.10), so "sip:+7...@host;user=phone"
// written bare has user=phone in Params, not in the URI. Errors wrap
// ErrMalformed.
func ParseNameAddr(s string) (NameAddr, error) {
	if len(s) > maxValueLen {
		return NameAddr{}, fmt.Errorf("callerid: value of %d bytes: %w", len(s), ErrMalformed)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return NameAddr{}, fmt.Errorf("callerid: empty value: %w", ErrMalformed)
	}
	var n NameAddr
	rest := s
	switch {
	case rest[0] == '"':
		display, after, err := unquote(rest)
		if err != nil {
			return NameAddr{}, err
		}
		n.Display = display
		rest = strings.TrimLeft(after, " \t")
		if rest == "" || rest[0] != '<' {
			return NameAddr{}, fmt.Errorf("callerid: %q: quoted display name not followed by <URI>: %w", clip(s), ErrMalformed)
		}
		fallthrough
	case strings.IndexByte(rest, '<') >= 0:
		lt := strings.IndexByte(rest, '<')
		if display := strings.TrimSpace(rest[:lt]); display != "" {
			if strings.IndexByte(display, '"') >= 0 || !printable(display) {
				return NameAddr{}, fmt.Errorf("callerid: %q: bad display name: %w", clip(s), ErrMalformed)
			}
			n.Display = strings.Join(strings.Fields(display), " ")
		}
		rest = rest[lt+1:]
		gt := strings.IndexByte(rest, '>')
		if gt < 0 {
			return NameAddr{}, fmt.Errorf("callerid: %q: no closing >: %w", clip(s), ErrMalformed)
		}
		// Spaces inside the brackets are not allowed (RFC 4475 §3.1.2.14)
		// but harmless to skip.
		u, err := ParseURI(strings.TrimSpace(rest[:gt]))
		if err != nil {
			return NameAddr{}, err
		}
		n.URI = u
		rest = strings.TrimSpace(rest[gt+1:])
		if rest != "" {
			if rest[0] != ';' {
				return NameAddr{}, fmt.Errorf("callerid: %q: text after >: %w", clip(s), ErrMalformed)
			}
			n.Params = rest[1:]
		}
	default:
		addr, params, _ := strings.Cut(rest, ";")
		u, err := ParseURI(strings.TrimSpace(addr))
		if err != nil {
			return NameAddr{}, err
		}
		n.URI, n.Params = u, params
	}
	if !printable(n.Params) {
		return NameAddr{}, fmt.Errorf("callerid: %q: control characters in parameters: %w", clip(s), ErrMalformed)
	}
	return n, nil
}

// unquote reads a quoted-string at the start of s (RFC 3261 §25.1:
// quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)) and returns its
// content and the rest of s.
func unquote(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) || s[i+1] == '\r' || s[i+1] == '\n' || s[i+1] > 0x7f {
				return "", "", fmt.Errorf("callerid: %q: bad escape in quoted string: %w", clip(s), ErrMalformed)
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		case '\r', '\n', 0:
			return "", "", fmt.Errorf("callerid: %q: control character in quoted string: %w", clip(s), ErrMalformed)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("callerid: %q: unterminated quoted string: %w", clip(s), ErrMalformed)
}

// printable reports whether s has no control characters other than HTAB.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// SplitList splits a header value that may hold several comma-separated
// values (RFC 3261 §7.3.1; P-Asserted-Identity, RFC 3325 §9.1), keeping
// commas inside quoted strings and angle brackets. Empty elements are
// dropped. At most max values are returned (max < 1: no limit).
func SplitList(s string, max int) []string {
	var out []string
	inQuote, inAngle, escaped := false, false, false
	start := 0
	emit := func(end int) {
		if v := strings.TrimSpace(s[start:end]); v != "" {
			out = append(out, v)
		}
		start = end + 1
	}
	for i := 0; i < len(s); i++ {
		if max > 0 && len(out) >= max {
			return out
		}
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"' && !inAngle:
			inQuote = !inQuote
		case inQuote:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case c == ',' && !inAngle:
			emit(i)
		}
	}
	if max < 1 || len(out) < max {
		emit(len(s))
	}
	return out
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
