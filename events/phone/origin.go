package phone

import (
	"slices"

	"github.com/nyaruka/phonenumbers"
)

// Number types Origin reports, libphonenumber's types in kebab case, and
// TypeInvalid for a number libphonenumber does not hold valid (a plausible
// length, but not a number its country assigns).
const (
	TypeFixedLine         = "fixed-line"
	TypeMobile            = "mobile"
	TypeFixedLineOrMobile = "fixed-line-or-mobile"
	TypeTollFree          = "toll-free"
	TypePremiumRate       = "premium-rate"
	TypeSharedCost        = "shared-cost"
	TypeVoIP              = "voip"
	TypePersonal          = "personal-number"
	TypePager             = "pager"
	TypeUAN               = "uan"
	TypeVoicemail         = "voicemail"
	TypeUnknown           = "unknown"
	TypeInvalid           = "invalid"
)

var numberTypes = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.FIXED_LINE: TypeFixedLine, phonenumbers.MOBILE: TypeMobile,
	phonenumbers.FIXED_LINE_OR_MOBILE: TypeFixedLineOrMobile, phonenumbers.TOLL_FREE: TypeTollFree,
	phonenumbers.PREMIUM_RATE: TypePremiumRate, phonenumbers.SHARED_COST: TypeSharedCost,
	phonenumbers.VOIP: TypeVoIP, phonenumbers.PERSONAL_NUMBER: TypePersonal, phonenumbers.PAGER: TypePager,
	phonenumbers.UAN: TypeUAN, phonenumbers.VOICEMAIL: TypeVoicemail, phonenumbers.UNKNOWN: TypeUnknown,
}

// NumberTypes lists the types Origin reports, sorted.
func NumberTypes() []string {
	out := []string{TypeInvalid}
	for _, t := range numberTypes {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// IsNumberType reports whether t is one of NumberTypes.
func IsNumberType(t string) bool { return slices.Contains(NumberTypes(), t) }

// IsRegion reports whether r is an ISO 3166 region libphonenumber has
// numbering data for ("GB", "AZ"; upper case).
func IsRegion(r string) bool {
	_, ok := phonenumbers.GetSupportedRegions()[r]
	return ok
}

// Origin returns the region (ISO 3166, "" when the number belongs to none,
// as a non-geographic +800 number) and the type of the E.164 key. It is
// pure (no cache): a key that is not E.164 has neither and gives "", "".
func Origin(key string) (region, typ string) {
	if !IsKey(key) || key == AnonymousKey {
		return "", ""
	}
	n, err := phonenumbers.Parse(key, "")
	if err != nil {
		return "", TypeInvalid
	}
	region = phonenumbers.GetRegionCodeForNumber(n)
	if region == "" || region == "ZZ" {
		// Not a number of any region's plan (invalid): the country code's
		// main region still says where it claims to come from.
		region = phonenumbers.GetRegionCodeForCountryCode(int(n.GetCountryCode()))
	}
	if region == "ZZ" || region == "001" {
		region = ""
	}
	if !phonenumbers.IsValidNumber(n) {
		return region, TypeInvalid
	}
	return region, numberTypes[phonenumbers.GetNumberType(n)]
}
