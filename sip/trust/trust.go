// Package trust decides which network sources may send calls to the guard:
// the carrier's SIP trunk (its signalling addresses) and nothing else.
//
// The list comes from GUARD_TRUSTED_PEERS, a comma-separated list of CIDR
// prefixes ("195.0.2.0/28, 2001:db8:17::/48") or single addresses
// ("198.51.100.7", taken as /32; "2001:db8::5", taken as /128). An empty
// list trusts nobody: the guard fails closed.
//
// Trust matters twice on the INVITE path: an INVITE from an untrusted
// source is refused (403), and only a trusted source's P-Asserted-Identity
// is believed (RFC 3325 §5, see package callerid). Allows is therefore
// called for every request; it is a binary search over sorted disjoint
// ranges and does not allocate.
//
// A List is immutable after Parse and safe for concurrent use; its
// Refused counter is safe for concurrent use too.
package trust

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrBadEntry means an entry of the trusted peer list is neither a CIDR
// prefix nor an IP address.
var ErrBadEntry = errors.New("bad trusted peer entry")

// maxEntries bounds the list an operator can configure; a longer list is
// almost certainly a mistake (a pasted file), and it bounds Parse's work.
const maxEntries = 4096

// List is a set of trusted source prefixes.
type List struct {
	prefixes []netip.Prefix // as configured, canonical (masked), deduplicated
	v4       []range4       // sorted, disjoint
	v6       []range6       // sorted, disjoint
	refused  *Refused
}

// range4 is an inclusive IPv4 range [lo, hi].
type range4 struct{ lo, hi uint32 }

// u128 is an IPv6 address as two big-endian halves.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// range6 is an inclusive IPv6 range [lo, hi].
type range6 struct{ lo, hi u128 }

// Option configures Parse.
type Option func(*options) error

type options struct {
	maxTracked int
}

// WithMaxTracked sets how many distinct refused source addresses the
// Refused counter tracks individually (default DefaultMaxTracked); n must
// be at least 1.
func WithMaxTracked(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("trust: max tracked sources %d: must be at least 1", n)
		}
		o.maxTracked = n
		return nil
	}
}

// Parse reads a comma-separated list of CIDR prefixes and IP addresses.
// Whitespace around entries is ignored. An empty (or all-blank) string
// gives an empty list that allows nothing. A bad entry is an error naming
// the entry and its position, wrapping ErrBadEntry. IPv4-mapped IPv6
// entries (::ffff:192.0.2.1) are read as the IPv4 address they map.
func Parse(s string, opts ...Option) (*List, error) {
	o := options{maxTracked: DefaultMaxTracked}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	l := &List{refused: NewRefused(o.maxTracked)}
	if strings.TrimSpace(s) == "" {
		return l, nil
	}
	entries := strings.Split(s, ",")
	if len(entries) > maxEntries {
		return nil, fmt.Errorf("trust: %d entries, at most %d: %w", len(entries), maxEntries, ErrBadEntry)
	}
	for i, raw := range entries {
		e := strings.TrimSpace(raw)
		if e == "" {
			return nil, fmt.Errorf("trust: entry %d is empty (stray comma?): %w", i+1, ErrBadEntry)
		}
		p, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("trust: entry %d %q: %v: %w", i+1, e, err, ErrBadEntry)
		}
		l.prefixes = append(l.prefixes, p)
	}
	l.prefixes = canonical(l.prefixes)
	for _, p := range l.prefixes {
		if p.Addr().Is4() {
			l.v4 = append(l.v4, toRange4(p))
		} else {
			l.v6 = append(l.v6, toRange6(p))
		}
	}
	return l, nil
}

// parseEntry reads one entry: a prefix or a single address.
func parseEntry(e string) (netip.Prefix, error) {
	if strings.IndexByte(e, '/') >= 0 {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR prefix")
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("zoned addresses are not allowed")
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// ::ffff:192.0.2.0/120 is 192.0.2.0/24.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Masked() != p {
			// 192.0.2.7/24 is usually a typo for a host or for the network;
			// refuse rather than silently widen trust to the whole network.
			return netip.Prefix{}, fmt.Errorf("host bits set (did you mean %s or %s?)", p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		return p, nil
	}
	a, err := netip.ParseAddr(e)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zoned addresses are not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// canonical sorts prefixes and drops those contained in another, leaving
// disjoint prefixes (two CIDR prefixes either nest or do not overlap).
func canonical(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if a.Addr().Is4() != b.Addr().Is4() {
			if a.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits()) // wider first
	})
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Overlaps(p) {
			// Sorted by address then width, so the earlier one contains p.
			continue
		}
		out = append(out, p)
	}
	return out
}

func toRange4(p netip.Prefix) range4 {
	b := p.Addr().As4()
	lo := binary.BigEndian.Uint32(b[:])
	var hostMask uint32
	if p.Bits() < 32 {
		hostMask = ^uint32(0) >> p.Bits()
	}
	return range4{lo: lo, hi: lo | hostMask}
}

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func toRange6(p netip.Prefix) range6 {
	lo := toU128(p.Addr())
	hi := lo
	switch bits := p.Bits(); {
	case bits == 0:
		hi = u128{hi: ^uint64(0), lo: ^uint64(0)}
	case bits < 64:
		hi.hi |= ^uint64(0) >> bits
		hi.lo = ^uint64(0)
	case bits < 128:
		hi.lo |= ^uint64(0) >> (bits - 64)
	}
	return range6{lo: lo, hi: hi}
}

// Allows reports whether a is inside one of the trusted prefixes. An
// IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
// peer) is checked as IPv4; a zone is ignored. The zero Addr is never
// allowed. Allows does not count refusals; see Check.
func (l *List) Allows(a netip.Addr) bool {
	if l == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		// The last range starting at or below x is the only candidate.
		i, found := slices.BinarySearchFunc(l.v4, x, func(r range4, x uint32) int { return cmp.Compare(r.lo, x) })
		if found {
			return true
		}
		return i > 0 && x <= l.v4[i-1].hi
	}
	x := toU128(a)
	i, found := slices.BinarySearchFunc(l.v6, x, func(r range6, x u128) int {
		switch {
		case r.lo.less(x):
			return -1
		case x.less(r.lo):
			return 1
		}
		return 0
	})
	if found {
		return true
	}
	return i > 0 && !l.v6[i-1].hi.less(x)
}

// Check is Allows that also counts a refused source in Refused. Call it
// once per request from the network; call Allows where nothing should be
// counted.
func (l *List) Check(a netip.Addr) bool {
	if l.Allows(a) {
		return true
	}
	if l != nil {
		l.refused.Add(a)
	}
	return false
}

// Refused returns the counter of refused sources that Check feeds.
func (l *List) Refused() *Refused { return l.refused }

// Prefixes returns the trusted prefixes, canonical: sorted, IPv4 first,
// masked, with prefixes contained in others dropped.
func (l *List) Prefixes() []netip.Prefix { return slices.Clone(l.prefixes) }

// Len returns the number of canonical prefixes.
func (l *List) Len() int { return len(l.prefixes) }

// String returns the canonical list in the form Parse reads.
func (l *List) String() string {
	parts := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// ParseSource reads the source address of a request as sipgo reports it
// ((*sip.Request).Source(): "192.0.2.1:5060" or "[2001:db8::1]:5060") or
// a bare address, and returns the IP address, unmapped.
func ParseSource(src string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(src); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(src, "[]"))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("trust: source %q is not an IP address or address:port", src)
	}
	return a.Unmap(), nil
}
