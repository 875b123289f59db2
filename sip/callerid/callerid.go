// Package callerid takes the caller and the callee of an INVITE: who is
// calling the toll-free number, and which number they called, both as
// presented and as the E.164 key the caller grain is named by
// (events/phone).
//
// The caller comes from P-Asserted-Identity (RFC 3325) only when the
// request arrived from a trusted trunk (package trust): that header is the
// network's assertion, and RFC 3325 §5 says an element MUST NOT believe it
// from outside the trust domain. Otherwise, and when a trusted request
// carries no usable P-Asserted-Identity, the caller is the From header,
// which the calling party writes itself. The callee is the Request-URI's
// user part (the number the carrier routed to us), or the To header when
// the Request-URI has none.
//
// The string parsing is pure (Caller, Callee, ParseNameAddr, ParseURI,
// SplitList, ParsePrivacy take strings), so it is fuzzed without SIP
// messages; CallerOf and CalleeOf adapt a sipgo request to it.
package callerid

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/phone"
)

// Sentinel errors.
var (
	// ErrMalformed means a header value is not a name-addr or addr-spec.
	ErrMalformed = errors.New("malformed identity header")
	// ErrNoIdentity means the request has no header to take the identity
	// from (no From, or neither a Request-URI user nor a To).
	ErrNoIdentity = errors.New("no identity in request")
)

// MaxAssertedValues is how many P-Asserted-Identity values are read. RFC
// 3325 §9.1 allows at most two (one sip/sips and one tel); a few more are
// read for broken trunks, the rest are ignored.
const MaxAssertedValues = 4

// Source says which header an identity was taken from.
type Source uint8

// Sources.
const (
	SourceNone Source = iota
	// SourcePAI is P-Asserted-Identity from a trusted source (RFC 3325).
	SourcePAI
	// SourceFrom is the From header (RFC 3261 §20.20).
	SourceFrom
	// SourceRequestURI is the Request-URI (RFC 3261 §8.1.1.1).
	SourceRequestURI
	// SourceTo is the To header (RFC 3261 §20.39).
	SourceTo
)

func (s Source) String() string {
	switch s {
	case SourcePAI:
		return "p-asserted-identity"
	case SourceFrom:
		return "from"
	case SourceRequestURI:
		return "request-uri"
	case SourceTo:
		return "to"
	default:
		return "none"
	}
}

// Privacy is the Privacy header (RFC 3323 §4.2, RFC 3325 §9.3): what the
// caller asked the network not to reveal.
type Privacy struct {
	// ID (RFC 3325 §9.3): the asserted identity must not be passed
	// outside the trust domain.
	ID bool
	// User: user-level privacy; From is anonymised (RFC 3323 §4.2).
	User bool
	// Header: headers that reveal the caller are hidden.
	Header bool
	// Session: media privacy.
	Session bool
	// None: no privacy; overrides the others.
	None bool
	// Critical: the call should fail if privacy cannot be given.
	Critical bool
}

// Withheld reports whether the caller asked for the number not to be
// shown to the called party. The guard still counts calls by the asserted
// number (it is inside the trust domain); the SIP layer must not forward
// that number to an untrusted PBX.
func (p Privacy) Withheld() bool {
	return !p.None && (p.ID || p.User || p.Header)
}

// String writes the privacy values as a Privacy header value.
func (p Privacy) String() string {
	var v []string
	for _, f := range []struct {
		on   bool
		name string
	}{{p.ID, "id"}, {p.User, "user"}, {p.Header, "header"}, {p.Session, "session"}, {p.None, "none"}, {p.Critical, "critical"}} {
		if f.on {
			v = append(v, f.name)
		}
	}
	return strings.Join(v, ";")
}

// ParsePrivacy reads Privacy header values: priv-values separated by ";"
// (RFC 3323 §4.2), and by "," as some equipment writes them. Unknown
// values are ignored; matching is case-insensitive.
func ParsePrivacy(values ...string) Privacy {
	var p Privacy
	for _, v := range values {
		if len(v) > maxValueLen {
			v = v[:maxValueLen]
		}
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
			switch strings.ToLower(strings.TrimSpace(f)) {
			case "id":
				p.ID = true
			case "user":
				p.User = true
			case "header":
				p.Header = true
			case "session":
				p.Session = true
			case "none":
				p.None = true
			case "critical":
				p.Critical = true
			}
		}
	}
	return p
}

// Identity is a party of a call: where it was read, as presented, and
// normalised.
type Identity struct {
	// Source is the header the identity was read from.
	Source Source
	// Raw is that header value as presented (for sipgo's parsed From and
	// To, as sipgo writes them back).
	Raw string
	// NameAddr is Raw parsed.
	NameAddr
	// Number is the normalised number: the key of the caller's grain and
	// stream, or phone.AnonymousKey.
	Number phone.Number
}

// Caller is the calling party of an INVITE.
type Caller struct {
	Identity
	// Privacy is the request's Privacy header.
	Privacy Privacy
	// IgnoredPAI reports that the request carried P-Asserted-Identity
	// from an untrusted source, which was ignored (RFC 3325 §5). Worth
	// logging: a trunk that should be trusted may be missing from
	// GUARD_TRUSTED_PEERS, or someone is spoofing.
	IgnoredPAI bool
	// BadPAI holds why a trusted request's P-Asserted-Identity could not
	// be used and From was used instead; empty otherwise.
	BadPAI string
}

// Headers are the header values the caller is read from, as strings.
type Headers struct {
	// PAI are the values of every P-Asserted-Identity header, in order
	// (each may itself hold a comma-separated list).
	PAI []string
	// From is the From header value.
	From string
	// Privacy are the values of every Privacy header.
	Privacy []string
}

// ReadCaller returns the caller of a request with headers h, normalised by
// n; trusted says whether the request came from a trusted trunk.
//
// P-Asserted-Identity choice, when trusted: RFC 3325 §9.1 allows one
// sip/sips and one tel value. tel values are tried first, then sip/sips
// values, each group in header order; the first whose number normalises
// to E.164 wins. A tel URI is a number by definition, while a SIP URI may
// name a subscriber by login; trunks that send both put the same number in
// each. If no value is a number (an asserted "anonymous", a login), the
// first in that order is used: the network vouched for it, so it is not
// overridden by a From the caller wrote. From is used only when there is
// no P-Asserted-Identity or none of its values parses (BadPAI says why).
//
// A host of anonymous.invalid (RFC 3323 §4.1.1.3) makes the identity
// anonymous whatever its user part. Errors: ErrNoIdentity when From is
// empty and no P-Asserted-Identity is usable; ErrMalformed when From does
// not parse.
func ReadCaller(h Headers, trusted bool, n *phone.Normalizer) (Caller, error) {
	c := Caller{Privacy: ParsePrivacy(h.Privacy...)}
	if !trusted {
		c.IgnoredPAI = len(h.PAI) > 0
	} else if len(h.PAI) > 0 {
		id, why := asserted(h.PAI, n)
		if why == "" {
			c.Identity = id
			return c, nil
		}
		c.BadPAI = why
	}
	if strings.TrimSpace(h.From) == "" {
		return c, fmt.Errorf("callerid: caller: no From header: %w", ErrNoIdentity)
	}
	na, err := ParseNameAddr(h.From)
	if err != nil {
		return c, fmt.Errorf("callerid: caller from From: %w", err)
	}
	c.Identity = identity(SourceFrom, h.From, na, n)
	return c, nil
}

// asserted picks the P-Asserted-Identity value to use, or says why none.
func asserted(values []string, n *phone.Normalizer) (Identity, string) {
	var tel, sips []Identity
	var problems []string
	count := 0
	for _, v := range values {
		for _, item := range SplitList(v, MaxAssertedValues) {
			if count >= MaxAssertedValues {
				break
			}
			count++
			na, err := ParseNameAddr(item)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			id := identity(SourcePAI, item, na, n)
			switch na.URI.Scheme {
			case "tel":
				tel = append(tel, id)
			case "sip", "sips":
				sips = append(sips, id)
			default:
				// RFC 3325 §9.1 allows only sip, sips and tel.
				problems = append(problems, fmt.Sprintf("scheme %q is not sip, sips or tel", na.URI.Scheme))
			}
		}
	}
	ordered := append(tel, sips...)
	for _, id := range ordered {
		if id.Number.Kind == phone.KindE164 {
			return id, ""
		}
	}
	if len(ordered) > 0 {
		return ordered[0], ""
	}
	if len(problems) == 0 {
		return Identity{}, "P-Asserted-Identity is empty"
	}
	return Identity{}, "P-Asserted-Identity unusable: " + strings.Join(problems, "; ")
}

// identity builds an Identity and normalises its number.
func identity(src Source, raw string, na NameAddr, n *phone.Normalizer) Identity {
	id := Identity{Source: src, Raw: raw, NameAddr: na}
	if na.URI.Host == "anonymous.invalid" {
		// RFC 3323 §4.1.1.3: the anonymous URI; the user part carries
		// nothing even when it looks like a number.
		id.Number = phone.Number{Key: phone.AnonymousKey, Kind: phone.KindAnonymous}
		return id
	}
	switch na.URI.Scheme {
	case "sip", "sips", "tel":
		// An empty user part (sip:host) is read as withheld by Normalize.
		id.Number = n.Normalize(na.URI.Number())
	default:
		// http:, urn: and the like name no telephone line.
		id.Number = phone.Number{Key: phone.AnonymousKey, Kind: phone.KindUnparsable}
	}
	return id
}

// ReadCallee returns the called party: the user part of requestURI (a SIP
// or tel URI, RFC 3261 §8.1.1.1), or the To header value when the
// Request-URI has no user part (sip:guard.example.ru). Errors:
// ErrNoIdentity when neither holds a user; ErrMalformed when the one used
// does not parse.
func ReadCallee(requestURI, to string, n *phone.Normalizer) (Identity, error) {
	u, err := ParseURI(strings.TrimSpace(requestURI))
	if err != nil && strings.TrimSpace(to) == "" {
		return Identity{}, fmt.Errorf("callerid: callee from Request-URI: %w", err)
	}
	if err == nil && u.Number() != "" {
		return identity(SourceRequestURI, requestURI, NameAddr{URI: u}, n), nil
	}
	if strings.TrimSpace(to) == "" {
		return Identity{}, fmt.Errorf("callerid: callee: Request-URI %q has no user part and there is no To: %w", clip(requestURI), ErrNoIdentity)
	}
	na, err := ParseNameAddr(to)
	if err != nil {
		return Identity{}, fmt.Errorf("callerid: callee from To: %w", err)
	}
	if na.URI.Number() == "" {
		return Identity{}, fmt.Errorf("callerid: callee: neither Request-URI %q nor To has a user part: %w", clip(requestURI), ErrNoIdentity)
	}
	return identity(SourceTo, to, na, n), nil
}

// HeadersOf collects the caller headers of a sipgo request.
func HeadersOf(req *sip.Request) Headers {
	var h Headers
	for _, v := range req.GetHeaders("P-Asserted-Identity") {
		h.PAI = append(h.PAI, v.Value())
	}
	if f := req.From(); f != nil {
		h.From = f.Value()
	}
	for _, v := range req.GetHeaders("Privacy") {
		h.Privacy = append(h.Privacy, v.Value())
	}
	return h
}

// CallerOf returns the caller of a sipgo INVITE; see ReadCaller.
func CallerOf(req *sip.Request, trusted bool, n *phone.Normalizer) (Caller, error) {
	return ReadCaller(HeadersOf(req), trusted, n)
}

// CalleeOf returns the callee of a sipgo INVITE; see ReadCallee.
func CalleeOf(req *sip.Request, n *phone.Normalizer) (Identity, error) {
	to := ""
	if h := req.To(); h != nil {
		to = h.Value()
	}
	return ReadCallee(req.Recipient.String(), to, n)
}
