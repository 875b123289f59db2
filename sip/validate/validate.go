// Package validate checks a request that sipgo has parsed before the guard
// acts on it, and says which response a bad one gets.
//
// sipgo's parser is liberal: several requests that RFC 3261 calls invalid
// parse fine (RFC 4475 §3.3.1 missing headers, §3.1.2.17 a CSeq method
// that differs from the request's, §3.3.11 Max-Forwards 0, §3.3.8 repeated
// single-value headers). Request applies the checks of RFC 3261 §8.2 (UAS
// behaviour) and §16.3 (request validation) that the guard, a B2BUA that
// forwards calls to the PBX, needs, in the order those sections give, and
// returns the 4xx/5xx to send. It reads the request only; it is safe to
// call from any goroutine that owns the request.
package validate

import (
	"mime"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Result is the outcome of Check.
type Result struct {
	// OK is true when the request may be processed.
	OK bool
	// Status and Reason are the response to send when !OK.
	Status int
	Reason string
	// Unsupported lists the option tags for the Unsupported header of a
	// 420 response (RFC 3261 §8.2.2.3).
	Unsupported []string
	// Accept, AcceptEncoding are the values for the Accept and
	// Accept-Encoding headers of a 415 or 406 response (RFC 3261 §8.2.3,
	// §21.4.7).
	Accept         string
	AcceptEncoding string
}

// Options say what the guard supports. The zero value is the guard's
// default.
type Options struct {
	// Extensions are the option tags the guard supports (RFC 3261 §19.2);
	// a Require or Proxy-Require naming another gets 420. Default none;
	// the guard passes "100rel" (RFC 3262), and "timer" (RFC 4028) for
	// re-INVITE and UPDATE within a call, which it relays on passed calls.
	Extensions []string
	// BodyTypes maps a method to the body types it may carry; a body of
	// another type gets 415. Methods not in the map are not checked.
	// Default DefaultBodyTypes.
	BodyTypes map[string][]string
	// AllowMissingMaxForwards accepts requests without Max-Forwards (RFC
	// 2543 equipment, RFC 4475 §3.4.1); by default they get 400.
	AllowMissingMaxForwards bool
	// MaxVia caps the Via header field values of a request (default
	// DefaultMaxVia); more get 400. MaxHeaders caps its header fields
	// (default DefaultMaxHeaders); more get 513.
	MaxVia, MaxHeaders int
}

// DefaultMaxVia is the most Via values a request may carry: one per hop,
// and RFC 3261 §16.6 step 3 starts Max-Forwards at 70, so a request with
// more has been through more proxies than a loop-free path allows. The
// guard is a B2BUA and never forwards the Vias, but each is parsed, kept
// and copied into every response of the transaction.
const DefaultMaxVia = 70

// DefaultMaxHeaders is the most header fields a request may carry. A
// carrier's INVITE has 10-30 (SIP-I trunks add a few P- headers); 256
// leaves room for any of them and bounds what one message costs to keep.
const DefaultMaxHeaders = 256

// DefaultBodyTypes are the bodies the guard understands: SDP for the
// offer/answer methods (RFC 3264), and DTMF relay in INFO. A
// multipart/mixed body is accepted where SDP is, when one of its parts is
// SDP: SIP-I/SIP-T trunks (ITU-T Q.1912.5, RFC 3372) send the ISUP message
// alongside the SDP (see SessionBody).
var DefaultBodyTypes = map[string][]string{
	"INVITE": {"application/sdp", "multipart/mixed"},
	"ACK":    {"application/sdp", "multipart/mixed"},
	"PRACK":  {"application/sdp", "multipart/mixed"},
	"UPDATE": {"application/sdp", "multipart/mixed"},
	"INFO":   {"application/dtmf-relay", "application/dtmf"},
}

// mandatory are the header fields RFC 3261 §8.1.1 requires in every
// request: "A valid SIP request formulated by a UAC MUST, at a minimum,
// contain the following header fields: To, From, CSeq, Call-ID,
// Max-Forwards, and Via". sipgo files the compact forms (v, f, t, i)
// under these names.
var mandatory = []string{"Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"}

// single are the header fields that may appear once only: RFC 3261 §7.3.1
// lets a header repeat only when its grammar is a comma-separated list,
// and these are not (RFC 4475 §3.3.8, §3.3.9).
var single = []string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"}

// Request validates req with the default Options: ok, or the status and
// reason phrase to answer with. See Check for the details a response
// needs (Unsupported, Accept).
func Request(req *sip.Request) (status int, reason string, ok bool) {
	r := Check(req, Options{})
	return r.Status, r.Reason, r.OK
}

// Check validates req. The checks, in order:
//
//   - 505 for a SIP version other than 2.0 (RFC 3261 §8.2, §16.3 step 1);
//   - 513 for more than MaxHeaders header fields (§21.5.11) and 400 for
//     more than MaxVia Via values: one message's work stays bounded;
//   - 400 for a missing mandatory header or a repeated single-value one
//     (§8.1.1, §7.3.1), a CSeq method that is not the request's (§8.1.1.5),
//     and headers in the Request-URI (§19.1.1, Table 1);
//   - 416 for a Request-URI scheme other than sip, sips and tel
//     (§8.2.2.1, §16.3 step 2);
//   - 483 for Max-Forwards 0 on anything but OPTIONS (§16.3 step 3);
//   - 420 for a Require or Proxy-Require option tag we do not support
//     (§8.2.2.3, §16.3 step 5);
//   - 415 for a body type or encoding we do not understand (§8.2.3);
//   - 406 for an INVITE whose Accept rules out SDP (§20.1, §21.4.7).
func Check(req *sip.Request, opts Options) Result {
	if req == nil {
		return bad(400, "Bad Request")
	}
	// RFC 3261 §8.2 and §16.3 step 1: reasonable syntax. The version is
	// checked first: a UAS answers 505 to a request of another version.
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return bad(505, "Version Not Supported")
	}
	// Bounded work per message, before anything else reads the headers:
	// RFC 3261 §21.5.11 513 for a message larger than the server handles,
	// and a plain 400 for a Via list longer than any sane path.
	maxHeaders, maxVia := opts.MaxHeaders, opts.MaxVia
	if maxHeaders <= 0 {
		maxHeaders = DefaultMaxHeaders
	}
	if maxVia <= 0 {
		maxVia = DefaultMaxVia
	}
	hdrs := req.Headers()
	vias := 0
	for _, h := range hdrs {
		if _, ok := h.(*sip.ViaHeader); ok {
			vias++
		}
	}
	if vias > maxVia {
		return bad(400, "Too Many Via Headers")
	}
	if len(hdrs) > maxHeaders {
		return bad(513, "Message Too Large")
	}
	// §8.1.1: the mandatory headers. sipgo reports a header it could not
	// parse as absent, so this also catches malformed ones.
	// One pass counts them all (req.GetHeaders allocates a slice and a
	// lower-cased name per header for each name asked).
	var seen [len(counted)]int
	for _, h := range hdrs {
		for i, name := range counted {
			if headerIs(h, name) {
				seen[i]++
				break
			}
		}
	}
	for _, name := range mandatory {
		if name == "Max-Forwards" && opts.AllowMissingMaxForwards {
			continue
		}
		if seen[countedIndex(name)] == 0 {
			return bad(400, "Missing "+name)
		}
	}
	for _, name := range single {
		if seen[countedIndex(name)] > 1 {
			return bad(400, "Multiple "+name)
		}
	}
	if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return bad(400, "Malformed Header")
	}
	// §8.1.1.5: "The method MUST match that of the request." sipgo
	// upper-cases the request line's method but not CSeq's, and RFC 3261
	// §7.1 method names are case-sensitive, so compare as sipgo read the
	// request line: case-insensitively.
	if !strings.EqualFold(string(req.CSeq().MethodName), string(req.Method)) {
		return bad(400, "CSeq Method Mismatch")
	}
	// §19.1.1 Table 1: URI headers are not allowed in a Request-URI
	// (RFC 4475 §3.1.2.11 lets us reject them).
	if req.Recipient.Headers != nil && req.Recipient.Headers.Length() > 0 {
		return bad(400, "Headers Not Allowed In Request-URI")
	}
	// §8.2.2.1: "If the Request-URI uses a scheme not supported by the
	// UAS, it SHOULD reject the request with a 416 (Unsupported URI
	// Scheme) response." §16.3 step 2 says the same for proxies.
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return bad(416, "Unsupported URI Scheme")
	}
	// §16.3 step 3: "If the request contains a Max-Forwards header field
	// with a field value of zero (0), the element MUST NOT forward the
	// request. If the request was for OPTIONS, the element MAY act as
	// the final recipient and respond per Section 11. Otherwise, the
	// element MUST return a 483 (Too many hops) response." The guard
	// answers OPTIONS keep-alives itself and forwards everything else.
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && req.Method != sip.OPTIONS {
		return bad(483, "Too Many Hops")
	}
	// §8.2.2.3: "If a UAS does not understand an option-tag listed in a
	// Require header field, it MUST respond by generating a response with
	// status code 420 (Bad Extension)." Require is ignored in CANCEL and
	// in ACK (§8.2.2.3: these requests MUST NOT fail for it). §16.3 step
	// 5 applies the same to Proxy-Require for the forwarding element.
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		var unsupported []string
		for _, name := range []string{"Require", "Proxy-Require"} {
			for _, tag := range listValues(req, name) {
				if !slices.ContainsFunc(opts.Extensions, func(e string) bool { return strings.EqualFold(e, tag) }) &&
					!slices.Contains(unsupported, tag) {
					unsupported = append(unsupported, tag)
				}
			}
		}
		if len(unsupported) > 0 {
			r := bad(420, "Bad Extension")
			r.Unsupported = unsupported
			return r
		}
	}
	// §8.2.3: "If a UAS receives a request with a body of a type it does
	// not understand, it MUST respond 415 (Unsupported Media Type)", and
	// the same for a Content-Encoding or Content-Language it does not
	// understand.
	types := opts.BodyTypes
	if types == nil {
		types = DefaultBodyTypes
	}
	if len(req.Body()) > 0 {
		allowed, checked := types[string(req.Method)]
		if enc := listValues(req, "Content-Encoding"); len(enc) > 0 && !(len(enc) == 1 && strings.EqualFold(enc[0], "identity")) {
			r := bad(415, "Unsupported Media Type")
			r.AcceptEncoding = "identity"
			r.Accept = strings.Join(allowed, ", ")
			return r
		}
		if checked {
			ct := req.ContentType()
			if ct == nil {
				// §20.15: "The Content-Type header field MUST be present
				// if the body is not empty."
				return bad(400, "Missing Content-Type")
			}
			mt, params, err := mime.ParseMediaType(string(*ct))
			if err != nil {
				return bad(400, "Malformed Content-Type")
			}
			if !slices.Contains(allowed, mt) {
				r := bad(415, "Unsupported Media Type")
				r.Accept = strings.Join(allowed, ", ")
				return r
			}
			if mt == "multipart/mixed" {
				if _, err := sessionPart(req.Body(), params); err != nil {
					r := bad(415, "Unsupported Media Type")
					r.Accept = strings.Join(allowed, ", ")
					return r
				}
			}
		}
	}
	// §20.1: "If no Accept header field is present, the server SHOULD
	// assume a default value of application/sdp"; an Accept that rules
	// SDP out leaves an INVITE no answer we can give: 406 (§21.4.7,
	// RFC 4475 §3.3.15).
	if req.Method == sip.INVITE {
		if hasHeader(req, "Accept") && !acceptsSDP(req) {
			r := bad(406, "Not Acceptable")
			r.Accept = "application/sdp"
			return r
		}
	}
	return Result{OK: true}
}

func bad(status int, reason string) Result {
	return Result{Status: status, Reason: reason}
}

// listValues returns the comma-separated values of every header name,
// trimmed, empty ones dropped.
func listValues(req *sip.Request, name string) []string {
	var out []string
	for _, h := range req.Headers() {
		if !headerIs(h, name) {
			continue
		}
		for _, v := range strings.Split(h.Value(), ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// counted are the names Check counts: mandatory and single together.
var counted = [...]string{"Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"}

// countedIndex is name's place in counted.
func countedIndex(name string) int {
	for i, n := range counted {
		if n == name {
			return i
		}
	}
	panic("validate: " + name + " is not counted")
}

// headerIs reports whether h is named name, in any case, as
// req.GetHeaders matches names (sipgo.HeaderToLower is an ASCII lower
// case), without allocating.
func headerIs(h sip.Header, name string) bool {
	n := h.Name()
	if len(n) != len(name) {
		return false
	}
	for i := 0; i < len(n); i++ {
		a, b := n[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// hasHeader reports whether req has a header named name.
func hasHeader(req *sip.Request, name string) bool {
	for _, h := range req.Headers() {
		if headerIs(h, name) {
			return true
		}
	}
	return false
}

// acceptsSDP reports whether the request's Accept headers admit
// application/sdp (RFC 3261 §20.1 uses the HTTP media-range syntax:
// type/subtype, type/*, */*, with parameters). An empty Accept admits
// nothing.
func acceptsSDP(req *sip.Request) bool {
	for _, v := range listValues(req, "Accept") {
		mt, params, _ := strings.Cut(v, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/sdp", "application/*", "*/*":
			// A q-value of 0 means "not acceptable" (RFC 3261 §20.1 takes
			// the HTTP semantics).
			if !zeroQ(params) {
				return true
			}
		}
	}
	return false
}

// zeroQ reports whether media-range parameters carry q=0 (or 0.0...).
func zeroQ(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimSpace(v)
			return strings.Trim(v, "0.") == "" && v != ""
		}
	}
	return false
}
