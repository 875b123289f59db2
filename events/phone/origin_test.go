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

// FuzzOrigin: any key gives a known region (or none) and a known type (or
// none), without panicking.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"+79161234567", "+449061234567", "+800123456789", "+1", "+999999999999999", AnonymousKey, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		region, typ := Origin(key)
		if region != "" && !IsRegion(region) {
			t.Errorf("Origin(%q) region %q is not a region", key, region)
		}
		if typ != "" && !IsNumberType(typ) {
			t.Errorf("Origin(%q) type %q is not a number type", key, typ)
		}
	})
}
