package guard

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// transferPolicy is where the guard may place a call on the PBX's behalf
// (a REFER's Refer-To, a 3xx's Contact): a guard that dials what it is
// told is a toll-fraud vector on the bank's trunk, so only the PBX itself
// and configured E.164 numbers are allowed, numbers go only to the
// configured carrier address (never to the host a URI names), and all of
// it is rate limited.
type transferPolicy struct {
	pbx     bool          // "pbx": any URI at the PBX's host and port
	ranges  []numberRange // E.164 prefixes and ranges
	carrier string        // host:port numbers are sent to; "" allows none
	limit   *rate.Limiter
}

// numberRange is an E.164 prefix (lo == hi) or a range of numbers of one
// length, compared digit by digit as prefixes of the number.
type numberRange struct{ lo, hi string }

func (r numberRange) match(n string) bool {
	if len(n) < len(r.lo) {
		return false
	}
	p := n[:len(r.lo)]
	return p >= r.lo && p <= r.hi
}

// parseTransferPolicy reads GUARD_TRANSFER_TARGETS, GUARD_CARRIER_OUTBOUND,
// GUARD_TRANSFER_RATE and GUARD_TRANSFER_BURST.
func parseTransferPolicy(targets, carrier string, perSecond float64, burst int) (*transferPolicy, error) {
	p := &transferPolicy{carrier: strings.TrimSpace(carrier)}
	var errs []error
	for _, f := range strings.Split(targets, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case strings.EqualFold(f, "pbx"):
			p.pbx = true
		default:
			lo, hi, isRange := strings.Cut(f, "-")
			if !isRange {
				hi = lo
			}
			if !e164(lo) || !e164(hi) || len(lo) != len(hi) || lo > hi {
				errs = append(errs, fmt.Errorf("GUARD_TRANSFER_TARGETS: %q is neither pbx, an E.164 prefix (+4930123) nor a range of one length (+4930123400-+4930123499)", f))
				continue
			}
			p.ranges = append(p.ranges, numberRange{lo, hi})
		}
	}
	if p.carrier != "" {
		if host, port, err := net.SplitHostPort(p.carrier); err != nil || host == "" {
			errs = append(errs, fmt.Errorf("GUARD_CARRIER_OUTBOUND %q is not host:port", carrier))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("GUARD_CARRIER_OUTBOUND %q has no valid port", carrier))
		}
	}
	if perSecond < 0 {
		errs = append(errs, fmt.Errorf("GUARD_TRANSFER_RATE is %v, want 0 or more", perSecond))
	}
	if burst < 1 {
		burst = 1
	}
	if perSecond == 0 {
		burst = 0 // a limiter with no burst allows nothing
	}
	p.limit = rate.NewLimiter(rate.Limit(perSecond), burst)
	return p, errors.Join(errs...)
}

// e164 is "+" and 1 to 15 digits.
func e164(s string) bool {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Why a target is refused (the Reason text of the 403).
const (
	whyNotAllowed  = "transfer target not allowed"
	whyNoCarrier   = "no carrier for outside targets"
	whyReplaces    = "Replaces only towards the PBX"
	whyBadReplaces = "bad Replaces"
	whyMethod      = "Refer-To method not INVITE"
	whyRate        = "transfer rate exceeded"
)

// placement is where an allowed target is called.
type placement struct {
	ruri     sip.Uri // Request-URI of the INVITE
	toPBX    bool    // at the PBX (else the carrier)
	replaces string  // RFC 3891 Replaces value for the INVITE, "" none
}

// resolve checks target against the policy and says where the INVITE
// goes, or why not (a whyX text). pbx is GUARD_PBX_URI. The rate limit is
// taken by the caller once everything else passed.
func (p *transferPolicy) resolve(target sip.Uri, pbx sip.Uri) (placement, string) {
	var pl placement
	for _, h := range target.Headers {
		switch {
		case strings.EqualFold(h.K, "Replaces"):
			v, err := url.PathUnescape(h.V)
			if err != nil {
				return pl, whyBadReplaces
			}
			if _, err := parseReplaces(v); err != nil {
				return pl, whyBadReplaces
			}
			pl.replaces = v
		case strings.EqualFold(h.K, "method"):
			if !strings.EqualFold(h.V, "INVITE") {
				return pl, whyMethod
			}
		}
		// Other embedded headers (RFC 3515 §2.1) are not carried: the
		// PBX does not get to write the guard's INVITE.
	}
	if m, ok := target.UriParams.Get("method"); ok && !strings.EqualFold(m, "INVITE") {
		return pl, whyMethod
	}
	scheme := strings.ToLower(target.Scheme)
	if (scheme == "sip" || scheme == "sips") && samePeer(target, pbx) {
		if !p.pbx {
			return pl, whyNotAllowed
		}
		ruri := sip.Uri{Scheme: pbx.Scheme, User: target.User, Host: pbx.Host, Port: pbx.Port, UriParams: pbx.UriParams.Clone()}
		return placement{ruri: ruri, toPBX: true, replaces: pl.replaces}, ""
	}
	if pl.replaces != "" {
		// Replaces names a dialog, and the only dialogs the guard may
		// reach on the bank's behalf are the PBX's.
		return pl, whyReplaces
	}
	number := target.User
	if scheme == "tel" {
		// sipgo keeps a tel: URI's number unparsed (RFC 3966).
		number, _, _ = strings.Cut(strings.TrimPrefix(target.String(), target.Scheme+":"), ";")
	}
	if !e164(number) || !p.allowed(number) {
		return pl, whyNotAllowed
	}
	if p.carrier == "" {
		return pl, whyNoCarrier
	}
	host, port, _ := net.SplitHostPort(p.carrier)
	n, _ := strconv.Atoi(port)
	return placement{ruri: sip.Uri{Scheme: "sip", User: number, Host: host, Port: n, UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}}, ""
}

func (p *transferPolicy) allowed(number string) bool {
	for _, r := range p.ranges {
		if r.match(number) {
			return true
		}
	}
	return false
}

// samePeer reports whether u names the PBX's host and port (5060, or
// 5061 for sips, when left out).
func samePeer(u, pbx sip.Uri) bool {
	port := func(x sip.Uri) int {
		if x.Port != 0 {
			return x.Port
		}
		if strings.EqualFold(x.Scheme, "sips") {
			return 5061
		}
		return 5060
	}
	return strings.EqualFold(u.Host, pbx.Host) && port(u) == port(pbx)
}

// replacesID is the dialog a Replaces header names (RFC 3891 §6.1).
type replacesID struct {
	callID, toTag, fromTag string
	earlyOnly              bool
}

var errReplaces = errors.New("malformed Replaces")

// parseReplaces reads "callid;to-tag=x;from-tag=y[;early-only]". The
// value goes on to the PBX as it came; it is parsed to refuse garbage.
func parseReplaces(v string) (replacesID, error) {
	var r replacesID
	parts := strings.Split(v, ";")
	r.callID = strings.TrimSpace(parts[0])
	if r.callID == "" || strings.ContainsAny(r.callID, " \t\r\n<>\"") {
		return r, errReplaces
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "to-tag":
			r.toTag = strings.TrimSpace(val)
		case "from-tag":
			r.fromTag = strings.TrimSpace(val)
		case "early-only":
			r.earlyOnly = true
		}
	}
	if r.toTag == "" || r.fromTag == "" || strings.ContainsAny(r.toTag+r.fromTag, " \t\r\n<>\";") {
		return r, errReplaces
	}
	return r, nil
}
