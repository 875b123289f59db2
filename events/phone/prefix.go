package phone

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrPrefix marks a search prefix that cannot be the start of a number.
var ErrPrefix = errors.New("not the start of a phone number")

// Prefix reads the start of a number as a person types it to search the
// lists and profiles, and returns the start of the E.164 keys it matches,
// so that a prefix finds what the whole number in the same spelling
// finds: in region RU, "8999123", "7999123", "+7 999 123" and "999123"
// all give "+7999123". Spaces, dashes, dots and brackets are dropped. A
// "+" starts the country code; without it the digits are read in the
// default region: the national (trunk) prefix is replaced by the country
// code, digits that already start with the country code get a "+", and
// any others are taken as a national number without its trunk prefix.
// "anonymous" is the anonymous key itself; "" is no prefix.
func (n *Normalizer) Prefix(s string) (string, error) {
	t := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '\t':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	switch {
	case strings.TrimSpace(s) == "":
		return "", nil
	case strings.EqualFold(t, AnonymousKey):
		return AnonymousKey, nil
	}
	plus := strings.HasPrefix(t, "+")
	digits := strings.TrimPrefix(t, "+")
	if digits == "" || !allDigits(digits) {
		return "", fmt.Errorf("%q is %w: use digits, optionally after a +", s, ErrPrefix)
	}
	key := "+" + digits
	if !plus {
		cc := strconv.Itoa(phonenumbers.GetCountryCodeForRegion(n.region))
		switch ndd := phonenumbers.GetNddPrefixForRegion(n.region, true); {
		case ndd != "" && strings.HasPrefix(digits, ndd):
			key = "+" + cc + digits[len(ndd):]
		case strings.HasPrefix(digits, cc):
		default:
			key = "+" + cc + digits
		}
	}
	if len(key)-1 > maxDigits {
		return "", fmt.Errorf("%q is %w: more than %d digits", s, ErrPrefix, maxDigits)
	}
	return key, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
