package callerid

import (
	"errors"
	"testing"

	"github.com/callguard/callguard/events/phone"
)

// FuzzCallerID feeds hostile header values to the caller and callee
// parsing. It checks that nothing panics, that errors wrap a sentinel,
// that every key is a valid grain key, and that an untrusted request's
// P-Asserted-Identity is never believed (RFC 3325 §5).
//
//	go test ./sip/callerid -run '^$' -fuzz FuzzCallerID -fuzztime 60s
func FuzzCallerID(f *testing.F) {
	f.Add(`<sip:+79101234567@ims.mnc001.mcc250.3gppnetwork.org;user=phone>, <tel:+79101234567>`, `<sip:89101234567@ims.example.ru>;tag=1`, "id", "sip:88005553535@192.0.2.50:5060", "<sip:88005553535@192.0.2.50>", true)
	f.Add(`"Иванов" <tel:+7-903-123-45-67;cpc=ordinary>`, `"Anonymous" <sip:anonymous@anonymous.invalid>;tag=9`, "user;critical", "tel:+78005553535", "", false)
	f.Add(`<sip:+79161234567;npdi;rn=+79160000000@trunk.example.ru;user=phone>`, `caller<sip:caller@example.com>;tag=323`, "", "sip:guard.example.ru", `"8-800" <sip:88005553535@guard.example.ru>`, true)
	f.Add(`"J Rosenberg \\\"" <sip:jdrosen@example.com>`, `"unterminated <sip:a@b>`, "none", "sip:%2B78005553535@h", "", true)
	f.Add(`<sip:a@b`, `sip:+79161234567@trunk.example.ru;user=phone;tag=9`, "id,header", "sips:%41@[2001:db8::1]:5061", "<tel:>", true)
	n, err := phone.New("RU")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pai, from, privacy, ruri, to string, trusted bool) {
		c, err := ReadCaller(Headers{PAI: []string{pai}, From: from, Privacy: []string{privacy}}, trusted, n)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("caller error wraps no sentinel: %v", err)
			}
		} else {
			if !phone.IsKey(c.Number.Key) {
				t.Fatalf("caller key %q is not a key", c.Number.Key)
			}
			if c.Source == SourcePAI && !trusted {
				t.Fatalf("untrusted P-Asserted-Identity believed: %+v", c)
			}
			if c.Source != SourcePAI && c.Source != SourceFrom {
				t.Fatalf("caller source %v", c.Source)
			}
			if c.Number.Anonymous() == (c.Number.Kind == phone.KindE164) {
				t.Fatalf("number %+v: Anonymous() disagrees with Kind", c.Number)
			}
		}
		id, err := ReadCallee(ruri, to, n)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("callee error wraps no sentinel: %v", err)
			}
		} else if !phone.IsKey(id.Number.Key) || (id.Source != SourceRequestURI && id.Source != SourceTo) {
			t.Fatalf("callee %+v", id)
		}
		for _, v := range SplitList(pai, 0) {
			if na, err := ParseNameAddr(v); err == nil {
				_ = na.String()
				_ = na.URI.UserPhone()
			}
		}
		_ = ParsePrivacy(privacy).String()
	})
}
