package phone

import (
	"errors"
	"fmt"
	"testing"
)

func mustNew(t testing.TB, region string) *Normalizer {
	t.Helper()
	n, err := New(region)
	if err != nil {
		t.Fatalf("New(%q): %v", region, err)
	}
	return n
}

func TestNormalize(t *testing.T) {
	ru := mustNew(t, "")
	tests := []struct {
		in   string
		key  string
		kind Kind
	}{
		// One toll-free line, every spelling trunks use.
		{"8 800 555 35 35", "+78005553535", KindE164},
		{"88005553535", "+78005553535", KindE164},
		{"+7 800 555-35-35", "+78005553535", KindE164},
		{"+7 (800) 555-35-35", "+78005553535", KindE164},
		{"78005553535", "+78005553535", KindE164},
		{"8005553535", "+78005553535", KindE164},
		{"tel:+7-800-555-35-35", "+78005553535", KindE164},
		{"tel:+78005553535;npdi", "+78005553535", KindE164},
		{"sip:+78005553535@10.0.0.1", "+78005553535", KindE164},
		{"sip:+78005553535@trunk.example.ru;user=phone", "+78005553535", KindE164},
		{"SIP:88005553535@trunk", "+78005553535", KindE164},
		{"sips:%2B78005553535@trunk", "+78005553535", KindE164},
		{`"Ivan" <sip:+78005553535@trunk>;tag=abc`, "+78005553535", KindE164},
		{"<tel:88005553535>", "+78005553535", KindE164},
		{"  +78005553535  ", "+78005553535", KindE164},
		// Mobile numbers.
		{"+79990001122", "+79990001122", KindE164},
		{"89990001122", "+79990001122", KindE164},
		{"9990001122", "+79990001122", KindE164},
		// A foreign number with its country code keeps it.
		{"+44 20 7946 0958", "+442079460958", KindE164},
		{"sip:+12025550123@gw", "+12025550123", KindE164},
		// Withheld.
		{"", AnonymousKey, KindAnonymous},
		{"anonymous", AnonymousKey, KindAnonymous},
		{"Anonymous", AnonymousKey, KindAnonymous},
		{"unknown", AnonymousKey, KindAnonymous},
		{"restricted", AnonymousKey, KindAnonymous},
		{"PRIVATE", AnonymousKey, KindAnonymous},
		{`"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1`, AnonymousKey, KindAnonymous},
		{"sip:anonymous@anonymous.invalid", AnonymousKey, KindAnonymous},
		{"sip:trunk.example.ru", AnonymousKey, KindAnonymous},
		{"tel:", AnonymousKey, KindAnonymous},
		// Not a number.
		{"garbage", AnonymousKey, KindUnparsable},
		{"800-FLOWERS", AnonymousKey, KindUnparsable},
		{"12", AnonymousKey, KindUnparsable},
		{"+7 800", AnonymousKey, KindUnparsable},
		{"+999 1234567", AnonymousKey, KindUnparsable},
		{"123456789012345678901234567890", AnonymousKey, KindUnparsable},
		{"--", AnonymousKey, KindUnparsable},
		{"+", AnonymousKey, KindUnparsable},
		{"sip:alice@example.com", AnonymousKey, KindUnparsable},
		// libphonenumber allows 17-digit national numbers; E.164 stops at 15.
		{"+8110000000000000", AnonymousKey, KindUnparsable},
	}
	for _, tt := range tests {
		got := ru.Normalize(tt.in)
		if got.Key != tt.key || got.Kind != tt.kind {
			t.Errorf("Normalize(%q) = %q %v, want %q %v", tt.in, got.Key, got.Kind, tt.key, tt.kind)
		}
		if got.Anonymous() != (tt.kind != KindE164) {
			t.Errorf("Normalize(%q).Anonymous() = %v", tt.in, got.Anonymous())
		}
	}
}

func TestDefaultRegionIsConfigurable(t *testing.T) {
	kz := mustNew(t, "kz")
	if got := kz.Region(); got != "KZ" {
		t.Fatalf("Region() = %q, want KZ", got)
	}
	// Kazakhstan shares +7; a national number dialled there reads as +7.
	if got := kz.Normalize("8 727 250 00 00").Key; got != "+77272500000" {
		t.Fatalf("KZ national number = %q", got)
	}
	us := mustNew(t, "US")
	if got := us.Normalize("(202) 555-0123").Key; got != "+12025550123" {
		t.Fatalf("US national number = %q", got)
	}
	// The same digits mean another line in another region.
	if got := us.Normalize("88005553535"); got.Key == "+78005553535" {
		t.Fatalf("US read a Russian national number as Russian: %+v", got)
	}
}

func TestNewRejectsUnknownRegion(t *testing.T) {
	for _, r := range []string{"XX", "RUS", "zz"} {
		if _, err := New(r); !errors.Is(err, ErrRegion) {
			t.Errorf("New(%q) error = %v, want ErrRegion", r, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindE164: "e164", KindAnonymous: "anonymous", KindUnparsable: "unparsable", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"8 800 555 35 35", "+7 800 555-35-35", "78005553535", "tel:+78005553535",
		"sip:+78005553535@host;user=phone", "anonymous", "", "garbage", "%", "sip:%zz@h",
		"<sip:", "+", "00 7 800 555 35 35", "8 10 44 20 7946 0958", "+44 (0) 20 7946 0958",
		"+39 02 1234 5678", "+800 1234 5678", "+882 1234 5678",
	} {
		f.Add(s)
	}
	n := mustNew(f, "RU")
	f.Fuzz(func(t *testing.T, s string) {
		got := n.Normalize(s)
		if got.Key == "" {
			t.Fatalf("Normalize(%q) has an empty key", s)
		}
		again := n.Normalize(got.Key)
		if again.Key != got.Key {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got.Key, again.Key)
		}
		if got.Kind == KindE164 && again.Kind != KindE164 {
			t.Fatalf("E.164 key %q of %q re-normalises as %v", got.Key, s, again.Kind)
		}
		if !IsKey(got.Key) {
			t.Fatalf("Normalize(%q) = %q, not a key", s, got.Key)
		}
		if (got.Key == AnonymousKey) != got.Anonymous() {
			t.Fatalf("Normalize(%q) = %+v: key and kind disagree", s, got)
		}
	})
}

func TestIsKey(t *testing.T) {
	for s, want := range map[string]bool{
		"+78005553535": true, AnonymousKey: true, "+12": true, "+123456789012345": true,
		"": false, "78005553535": false, "+": false, "+1": false, "+1234567890123456": false,
		"+7800555353a": false, "+07800": false, "Anonymous": false,
	} {
		if got := IsKey(s); got != want {
			t.Errorf("IsKey(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestConcurrentUse backs the doc's promise; run with -race.
func TestConcurrentUse(t *testing.T) {
	n := mustNew(t, "RU")
	done := make(chan string)
	for i := 0; i < 8; i++ {
		go func() {
			key := ""
			for j := 0; j < 200; j++ {
				key = n.Normalize("8 800 555 35 35").Key
			}
			done <- key
		}()
	}
	for i := 0; i < 8; i++ {
		if got := <-done; got != "+78005553535" {
			t.Errorf("got %q", got)
		}
	}
}

func TestNormalizeCacheAnswersAlikeAndStaysBounded(t *testing.T) {
	n, err := New("RU")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"8 999 000-11-22", "+79990001122", "anonymous", "sip:+79990001122@trunk", "garbage!"} {
		first, second := n.Normalize(in), n.Normalize(in)
		if first != second || first != n.normalize(in) {
			t.Fatalf("%q: %v, then %v from the cache; uncached %v", in, first, second, n.normalize(in))
		}
	}
	n.cacheMax = 100 // the production bound, cacheSize, works alike
	for i := range n.cacheMax + 10 {
		n.Normalize(fmt.Sprintf("+7999%07d", i))
	}
	n.mu.Lock()
	size := len(n.cache)
	n.mu.Unlock()
	if size > n.cacheMax {
		t.Fatalf("cache holds %d entries, bound %d", size, n.cacheMax)
	}
}

// A search prefix reads like the number it starts: every spelling of the
// start of +7 999 123... finds the same keys.
func TestPrefix(t *testing.T) {
	ru := mustNew(t, "RU")
	for in, want := range map[string]string{
		"8999123": "+7999123", "+7999123": "+7999123", "7999123": "+7999123", "999123": "+7999123",
		"+7 (999) 12-3": "+7999123", "8 800": "+7800", "+44": "+44", "": "", "Anonymous": AnonymousKey,
	} {
		got, err := ru.Prefix(in)
		if err != nil || got != want {
			t.Errorf("Prefix(%q) = %q, %v; want %q", in, got, err, want)
		}
		// The prefix of a number matches that number's key.
		if full := ru.Normalize(in + "0000"); in != "" && in != "Anonymous" && full.Kind == KindE164 && len(in) > 6 && full.Key[:len(got)] != got {
			t.Errorf("Prefix(%q) = %q, but %q normalises to %q", in, got, in+"0000", full.Key)
		}
	}
	de := mustNew(t, "DE")
	if got, err := de.Prefix("030 12"); err != nil || got != "+493012" {
		t.Errorf("DE Prefix(030 12) = %q, %v", got, err)
	}
	for _, bad := range []string{"+", "99a", "+1234567890123456", "--"} {
		if got, err := ru.Prefix(bad); !errors.Is(err, ErrPrefix) {
			t.Errorf("Prefix(%q) = %q, %v; want ErrPrefix", bad, got, err)
		}
	}
}
