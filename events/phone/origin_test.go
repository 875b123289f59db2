package phone

import "testing"

func TestOrigin(t *testing.T) {
	for _, c := range []struct{ key, region, typ string }{
		{"+79161234567", "RU", TypeMobile},
		{"+74951234567", "RU", TypeFixedLine},
		{"+78005553535", "RU", TypeTollFree},
		{"+447400123456", "GB", TypeMobile},
		{"+994501234567", "AZ", TypeMobile},
		{"+449061234567", "GB", TypePremiumRate},
		{"+70001234567", "RU", TypeInvalid},
		{AnonymousKey, "", ""},
		{"not a key", "", ""},
	} {
		region, typ := Origin(c.key)
		if region != c.region || typ != c.typ {
			t.Errorf("Origin(%q) = %q, %q; want %q, %q", c.key, region, typ, c.region, c.typ)
		}
	}
	if !IsRegion("AZ") || IsRegion("XX") || IsRegion("az") {
		t.Error("IsRegion does not tell regions apart")
	}
	if !IsNumberType("premium-rate") || !IsNumberType("invalid") || IsNumberType("premium") {
		t.Error("IsNumberType does not tell types apart")
	}
}
