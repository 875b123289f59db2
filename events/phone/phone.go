// Package phone turns the caller identity a SIP trunk presents into the key
// of the caller's grain and stream: the number in E.164 form ("+78005553535"),
// or AnonymousKey for a caller who withheld the number or presented
// something that is not a phone number.
//
// One caller must land on one key however the trunk spells the number, or
// the per-caller counters split and the limits never fire: Russian trunks
// send "8 800 555 35 35", "88005553535", "78005553535", "+7 800 555-35-35"
// and "sip:+78005553535@host;user=phone" for the same line. Parsing is done
// by github.com/nyaruka/phonenumbers, a port of Google's libphonenumber, with
// a configurable default region for numbers written without a country code.
//
// A Normalizer is safe for concurrent use: its settings are fixed at New,
// and the only state it changes, a bounded cache of recent answers, is
// behind its mutex; phonenumbers guards its own lazily loaded metadata.
package phone

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// AnonymousKey is the key of every caller without a usable number: withheld
// ("anonymous", "restricted", an empty From user, RFC 3323's
// anonymous@anonymous.invalid) and unparsable alike. All such calls share
// one key, so the policy cannot count them per person; it applies the
// configured anonymous policy instead (see policy.Config.Anonymous).
const AnonymousKey = "anonymous"

// DefaultRegion is the region assumed for numbers without a country code.
const DefaultRegion = "RU"

// maxInput bounds the work spent on one presented identity. libphonenumber
// refuses more than 250 characters anyway; a SIP URI with parameters can be
// longer than the number in it, so the cut is applied to the user part.
const maxInput = 250

// maxDigits is the most digits an E.164 number has, country code included.
const maxDigits = 15

// ErrRegion means the configured default region is not one libphonenumber
// knows.
var ErrRegion = errors.New("unknown phone region")

// Kind says what a presented caller identity turned out to be.
type Kind uint8

const (
	// KindE164 is a possible phone number; Key is its E.164 form.
	KindE164 Kind = iota
	// KindAnonymous is a caller who withheld the number (Key is AnonymousKey).
	KindAnonymous
	// KindUnparsable is an identity that is not a phone number: letters, too
	// few or too many digits, an unknown country code (Key is AnonymousKey).
	KindUnparsable
)

func (k Kind) String() string {
	switch k {
	case KindE164:
		return "e164"
	case KindAnonymous:
		return "anonymous"
	case KindUnparsable:
		return "unparsable"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Number is a normalised caller identity.
type Number struct {
	// Key names the caller's grain and stream: E.164 ("+78005553535") or
	// AnonymousKey.
	Key string
	// Kind says how Key was obtained.
	Kind Kind
}

// Anonymous reports whether the caller has no usable number, so the
// anonymous policy applies instead of per-caller counting.
func (n Number) Anonymous() bool { return n.Kind != KindE164 }

// Normalizer turns presented identities into Numbers. It is safe for
// concurrent use.
type Normalizer struct {
	region string

	// cache remembers recent answers: libphonenumber parses with regular
	// expressions, a tenth of the guard's CPU under a flood, while a bot
	// presents the same identity on every call. Bounded: cleared whole
	// when it reaches cacheSize, so a spoofed flood cannot grow it.
	mu       sync.Mutex
	cache    map[string]Number
	cacheMax int
}

// cacheSize bounds the Normalizer's cache of recent answers.
const cacheSize = 1 << 16

// New returns a Normalizer that reads numbers without a country code as
// numbers of region (an ISO 3166-1 alpha-2 code such as "RU"; case does not
// matter). An empty region means DefaultRegion.
func New(region string) (*Normalizer, error) {
	if region == "" {
		region = DefaultRegion
	}
	r := strings.ToUpper(region)
	if phonenumbers.GetCountryCodeForRegion(r) == 0 {
		return nil, fmt.Errorf("phone: default region %q: %w", region, ErrRegion)
	}
	return &Normalizer{region: r, cache: make(map[string]Number), cacheMax: cacheSize}, nil
}

// Region returns the default region.
func (n *Normalizer) Region() string { return n.region }

// withheld lists the user parts trunks and phones put in From or
// P-Asserted-Identity when the number is not shown. RFC 3323 §4.1.1.3
// recommends "Anonymous" <sip:anonymous@anonymous.invalid>; carriers also
// send their own words. Compared case-insensitively.
var withheld = map[string]bool{
	"":                  true,
	"anonymous":         true,
	"anonymous.invalid": true,
	"unknown":           true,
	"unavailable":       true,
	"restricted":        true,
	"private":           true,
	"withheld":          true,
	"blocked":           true,
	"hidden":            true,
	"unknown caller":    true,
	"no caller id":      true,
}

// Normalize returns the Number for a presented caller identity: a bare
// number in any usual spelling, or a tel:, sip: or sips: URI (optionally in
// angle brackets) whose user part holds the number. It never fails: what is
// not a number is KindAnonymous or KindUnparsable with Key AnonymousKey.
// Normalize is idempotent: Normalize(Normalize(s).Key).Key ==
// Normalize(s).Key.
func (n *Normalizer) Normalize(presented string) Number {
	n.mu.Lock()
	num, ok := n.cache[presented]
	n.mu.Unlock()
	if ok {
		return num
	}
	num = n.normalize(presented)
	n.mu.Lock()
	if len(n.cache) >= n.cacheMax {
		clear(n.cache)
	}
	n.cache[presented] = num
	n.mu.Unlock()
	return num
}

func (n *Normalizer) normalize(presented string) Number {
	user := userPart(presented)
	if withheld[strings.ToLower(user)] {
		return Number{Key: AnonymousKey, Kind: KindAnonymous}
	}
	if len(user) > maxInput || !numeric(user) {
		// Letters are refused here rather than left to libphonenumber, which
		// would read "800-FLOWERS" as a vanity number: a caller ID with
		// letters is a name, not a number we can count calls by.
		return Number{Key: AnonymousKey, Kind: KindUnparsable}
	}
	num, err := phonenumbers.Parse(user, n.region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		// IsPossibleNumber (length by country) rather than IsValidNumber
		// (number ranges): ranges allocated after the metadata was built
		// must still count as callers, not collapse into one anonymous key.
		return Number{Key: AnonymousKey, Kind: KindUnparsable}
	}
	key := phonenumbers.Format(num, phonenumbers.E164)
	if len(key) > 1+maxDigits {
		// libphonenumber accepts national numbers of up to 17 digits for a
		// few countries; E.164 (ITU-T E.164 §6) caps the whole number at
		// 15, and our keys are E.164.
		return Number{Key: AnonymousKey, Kind: KindUnparsable}
	}
	// E.164 drops an extension and leading-zero details; make sure the key
	// reads back as itself so that a key passed through an admin command
	// or a replay names the same caller.
	if again, err := phonenumbers.Parse(key, n.region); err != nil || phonenumbers.Format(again, phonenumbers.E164) != key {
		return Number{Key: AnonymousKey, Kind: KindUnparsable}
	}
	return Number{Key: key, Kind: KindE164}
}

// userPart extracts the part of a presented identity that holds the number:
// the user part of a SIP URI (RFC 3261 §19.1.1: sip:user;params@host), the
// number of a tel URI (RFC 3966: tel:+7...;params), or the input itself.
// Percent-escapes are decoded (%2B is a common spelling of "+").
func userPart(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		// A name-addr: "Display" <sip:...>; the number is inside the brackets.
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
		s = strings.TrimSpace(s)
	}
	lower := strings.ToLower(s)
	uri := false
	for _, scheme := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(lower, scheme) {
			s = s[len(scheme):]
			uri = true
			break
		}
	}
	if uri {
		if at := strings.IndexByte(s, '@'); at >= 0 {
			s = s[:at]
		} else if strings.HasPrefix(lower, "sip") {
			// sip:host with no user part carries no number (RFC 3261 allows
			// it for requests to a domain); treat it as withheld.
			return ""
		}
		// User and tel parameters (";user=phone", ";npdi", ";rn=...",
		// ";isub=") are not part of the number.
		if semi := strings.IndexByte(s, ';'); semi >= 0 {
			s = s[:semi]
		}
	}
	if strings.IndexByte(s, '%') >= 0 {
		if dec, err := url.PathUnescape(s); err == nil {
			s = dec
		}
	}
	return strings.TrimSpace(s)
}

// numeric reports whether s is written only with digits and the separators
// people and switches put between them.
func numeric(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/':
		default:
			return false
		}
	}
	return digits > 0
}

// IsKey reports whether s has the shape of a key Normalize returns:
// AnonymousKey, or "+" and 2 to 15 digits (ITU-T E.164 caps a number at 15
// digits). It checks the shape only; use it where a key arrives from
// outside (an admin API path, a replay flag) before naming a stream by it.
func IsKey(s string) bool {
	if s == AnonymousKey {
		return true
	}
	if len(s) < 3 || len(s) > 1+maxDigits || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
