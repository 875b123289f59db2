package guard

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func mustURI(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}

func TestTransferPolicyResolve(t *testing.T) {
	pbx := mustURI(t, "sip:pbx@10.0.0.5:5070")
	cases := []struct {
		name, targets, carrier, target string
		want                           string // the Request-URI placed, or "" when refused
		why                            string
		toPBX                          bool
		replaces                       string
	}{
		{name: "PBX extension", targets: "pbx", target: "sip:201@10.0.0.5:5070", want: "sip:201@10.0.0.5:5070", toPBX: true},
		{name: "PBX host other case", targets: "pbx", target: "sip:201@10.0.0.5:5070;user=phone", want: "sip:201@10.0.0.5:5070", toPBX: true},
		{name: "PBX port differs", targets: "pbx", target: "sip:201@10.0.0.5:5080", why: whyNotAllowed},
		{name: "PBX not listed", targets: "+4930", carrier: "192.0.2.1:5060", target: "sip:201@10.0.0.5:5070", why: whyNotAllowed},
		{name: "default refuses numbers", targets: "pbx", carrier: "192.0.2.1:5060", target: "sip:+4930123456@10.0.0.5:5090", why: whyNotAllowed},
		{name: "prefix to carrier", targets: "pbx,+4930123", carrier: "192.0.2.1:5060", target: "sip:+4930123456@evil.example:5060", want: "sip:+4930123456@192.0.2.1:5060;user=phone"},
		{name: "tel URI to carrier", targets: "+4930123", carrier: "192.0.2.1:5060", target: "tel:+4930123456", want: "sip:+4930123456@192.0.2.1:5060;user=phone"},
		{name: "prefix without carrier", targets: "pbx,+4930123", target: "sip:+4930123456@10.0.0.9", why: whyNoCarrier},
		{name: "outside prefix", targets: "+4930123", carrier: "192.0.2.1:5060", target: "sip:+4930999999@x", why: whyNotAllowed},
		{name: "premium number", targets: "+4930123", carrier: "192.0.2.1:5060", target: "sip:+4990012345@x", why: whyNotAllowed},
		{name: "range inside", targets: "+4930123400-+4930123499", carrier: "192.0.2.1:5060", target: "sip:+4930123450@x", want: "sip:+4930123450@192.0.2.1:5060;user=phone"},
		{name: "range longer number", targets: "+4930123400-+4930123499", carrier: "192.0.2.1:5060", target: "sip:+49301234991@x", want: "sip:+49301234991@192.0.2.1:5060;user=phone"},
		{name: "range above", targets: "+4930123400-+4930123499", carrier: "192.0.2.1:5060", target: "sip:+4930123500@x", why: whyNotAllowed},
		{name: "not E.164", targets: "+4930", carrier: "192.0.2.1:5060", target: "sip:4930123@x", why: whyNotAllowed},
		{name: "attended at the PBX", targets: "pbx", target: "sip:202@10.0.0.5:5070?Replaces=abc%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2", want: "sip:202@10.0.0.5:5070", toPBX: true, replaces: "abc@pbx;to-tag=1;from-tag=2"},
		{name: "attended elsewhere", targets: "pbx,+4930", carrier: "192.0.2.1:5060", target: "sip:+4930123@x?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2", why: whyReplaces},
		{name: "bad Replaces", targets: "pbx", target: "sip:202@10.0.0.5:5070?Replaces=abc", why: whyBadReplaces},
		{name: "method BYE", targets: "pbx", target: "sip:202@10.0.0.5:5070;method=BYE", why: whyMethod},
		{name: "embedded headers dropped", targets: "pbx", target: "sip:202@10.0.0.5:5070?X-Evil=1", want: "sip:202@10.0.0.5:5070", toPBX: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := parseTransferPolicy(c.targets, c.carrier, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			pl, why := p.resolve(mustURI(t, c.target), pbx)
			if why != c.why {
				t.Fatalf("why %q, want %q", why, c.why)
			}
			if c.why != "" {
				return
			}
			if got := pl.ruri.String(); got != c.want {
				t.Errorf("placed at %s, want %s", got, c.want)
			}
			if pl.toPBX != c.toPBX || pl.replaces != c.replaces {
				t.Errorf("toPBX %v replaces %q, want %v %q", pl.toPBX, pl.replaces, c.toPBX, c.replaces)
			}
		})
	}
}

func TestTransferPolicyParse(t *testing.T) {
	for _, c := range []struct {
		targets, carrier string
		rate             float64
		bad              string
	}{
		{targets: "pbx", rate: 1},
		{targets: "", rate: 1},
		{targets: "pbx, +4930123, +4930123400-+4930123499", carrier: "192.0.2.1:5060", rate: 2},
		{targets: "sip:anything", rate: 1, bad: "GUARD_TRANSFER_TARGETS"},
		{targets: "+49-+4930", rate: 1, bad: "GUARD_TRANSFER_TARGETS"},
		{targets: "+4930123499-+4930123400", rate: 1, bad: "GUARD_TRANSFER_TARGETS"},
		{targets: "4930", rate: 1, bad: "GUARD_TRANSFER_TARGETS"},
		{targets: "pbx", carrier: "192.0.2.1", rate: 1, bad: "GUARD_CARRIER_OUTBOUND"},
		{targets: "pbx", carrier: "192.0.2.1:99999", rate: 1, bad: "GUARD_CARRIER_OUTBOUND"},
		{targets: "pbx", rate: -1, bad: "GUARD_TRANSFER_RATE"},
	} {
		_, err := parseTransferPolicy(c.targets, c.carrier, c.rate, 1)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%q %q: %v", c.targets, c.carrier, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%q %q: error %v, want one naming %s", c.targets, c.carrier, err, c.bad)
		}
	}
}

func TestTransferRateLimit(t *testing.T) {
	p, err := parseTransferPolicy("pbx", "", 0.001, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if !p.limit.Allow() {
			t.Fatalf("transfer %d of a burst of 2 was not allowed", i+1)
		}
	}
	if p.limit.Allow() {
		t.Fatal("a transfer beyond the burst was allowed")
	}
	none, _ := parseTransferPolicy("pbx", "", 0, 1)
	allowed := 0
	for range 3 {
		if none.limit.Allow() {
			allowed++
		}
	}
	if allowed != 0 {
		t.Fatalf("GUARD_TRANSFER_RATE=0 allowed %d transfers", allowed)
	}
}

func TestParseReplaces(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want replacesID
	}{
		{in: "425928@bobster.example.org;to-tag=7743;from-tag=6472", ok: true, want: replacesID{callID: "425928@bobster.example.org", toTag: "7743", fromTag: "6472"}},
		{in: "abc;from-tag=2;to-tag=1;early-only", ok: true, want: replacesID{callID: "abc", toTag: "1", fromTag: "2", earlyOnly: true}},
		{in: "abc;to-tag=1"},
		{in: ";to-tag=1;from-tag=2"},
		{in: "a b;to-tag=1;from-tag=2"},
		{in: ""},
	} {
		got, err := parseReplaces(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok %v", c.in, err, c.ok)
			continue
		}
		if c.ok && got != c.want {
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
}

// FuzzReferTo runs a Refer-To value through sipgo's parser and the
// guard's checks: no panic, and whatever is allowed goes to the PBX or
// the carrier address, never elsewhere.
func FuzzReferTo(f *testing.F) {
	for _, s := range []string{
		"<sip:201@10.0.0.5:5070>",
		"<sip:202@10.0.0.5:5070?Replaces=abc%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2>",
		"sip:+4930123456@evil.example",
		"<tel:+4930123456>",
		"<sip:202@10.0.0.5:5070;method=INVITE?Replaces=%>",
		"\"x\" <sips:a@b>;p=1",
	} {
		f.Add(s)
	}
	pbx := mustURI(f, "sip:pbx@10.0.0.5:5070")
	p, err := parseTransferPolicy("pbx,+4930123", "192.0.2.1:5060", 1, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		req := sip.NewRequest(sip.REFER, pbx)
		req.AppendHeader(sip.NewHeader("Refer-To", v))
		rt := req.ReferTo()
		if rt == nil {
			return
		}
		pl, why := p.resolve(rt.Address, pbx)
		if why != "" {
			return
		}
		switch {
		case pl.toPBX && (pl.ruri.Host != pbx.Host || pl.ruri.Port != pbx.Port):
			t.Fatalf("%q placed at %s, not the PBX", v, pl.ruri.String())
		case !pl.toPBX && (pl.ruri.Host != "192.0.2.1" || !strings.HasPrefix(pl.ruri.User, "+4930123")):
			t.Fatalf("%q placed at %s", v, pl.ruri.String())
		case !pl.toPBX && pl.replaces != "":
			t.Fatalf("%q: Replaces towards the carrier", v)
		}
		if pl.replaces != "" {
			if _, err := parseReplaces(pl.replaces); err != nil {
				t.Fatalf("%q: Replaces %q accepted but does not parse", v, pl.replaces)
			}
		}
	})
}
