package callerid

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/events/phone"
)

func normalizer(t testing.TB) *phone.Normalizer {
	t.Helper()
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// invite builds an INVITE the way the trunk sends it, headers in order,
// and parses it with sipgo.
func invite(t *testing.T, requestURI string, headers ...string) *sip.Request {
	t.Helper()
	body := "v=0\r\no=- 1 1 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
	var b strings.Builder
	b.WriteString("INVITE " + requestURI + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---0d1b2c3a\r\n")
	b.WriteString("Max-Forwards: 69\r\n")
	b.WriteString("Call-ID: 4c0a1b2c3d4e5f60@198.51.100.10\r\n")
	b.WriteString("CSeq: 102 INVITE\r\n")
	b.WriteString("Contact: <sip:198.51.100.10:5060>\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Type: application/sdp\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	msg, err := sip.ParseMessage([]byte(b.String()))
	if err != nil {
		t.Fatalf("sipgo cannot parse the INVITE: %v\n%s", err, b.String())
	}
	return msg.(*sip.Request)
}

// TestCallerRussianTrunks reads the caller of INVITEs shaped like those of
// Russian carriers' trunks (addresses and hosts are documentation ones).
func TestCallerRussianTrunks(t *testing.T) {
	n := normalizer(t)
	tests := []struct {
		name       string
		trusted    bool
		headers    []string
		key        string
		kind       phone.Kind
		source     Source
		display    string
		withheld   bool
		ignoredPAI bool
		badPAI     bool
		scheme     string // of the chosen URI, "" not checked
	}{
		{
			name:    "fixed-line trunk: national From, PAI with +7 and user=phone",
			trusted: true,
			headers: []string{
				`From: "74951234567" <sip:74951234567@198.51.100.10>;tag=as6d7f8e9`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <sip:+74951234567@198.51.100.10;user=phone>`,
			},
			key: "+74951234567", kind: phone.KindE164, source: SourcePAI, display: "",
		},
		{
			name:    "mobile IMS: sip and tel in one PAI header, tel preferred",
			trusted: true,
			headers: []string{
				`From: <sip:89101234567@ims.mnc001.mcc250.3gppnetwork.org>;tag=p65545t1700000000m123456c1s1_1234-5678`,
				`To: <sip:88005553535@ims.mnc001.mcc250.3gppnetwork.org;user=phone>`,
				`P-Asserted-Identity: <sip:+79101234567@ims.mnc001.mcc250.3gppnetwork.org;user=phone>, <tel:+79101234567>`,
			},
			key: "+79101234567", kind: phone.KindE164, source: SourcePAI, scheme: "tel",
		},
		{
			name:    "CLIR: anonymous From, PAI tel, Privacy id",
			trusted: true,
			headers: []string{
				`From: "Anonymous" <sip:anonymous@anonymous.invalid>;tag=1928301774`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <tel:+79261234567>`,
				`Privacy: id`,
			},
			key: "+79261234567", kind: phone.KindE164, source: SourcePAI, withheld: true,
		},
		{
			name:    "two PAI headers, display name, tel params",
			trusted: true,
			headers: []string{
				`From: "Beeline" <sip:+79031234567@sbc.example.ru>;tag=abc`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: "Иванов И.И." <sip:+79031234567@ims.example.ru;user=phone>`,
				`P-Asserted-Identity: <tel:+7-903-123-45-67;cpc=ordinary>`,
			},
			key: "+79031234567", kind: phone.KindE164, source: SourcePAI, scheme: "tel",
		},
		{
			name:    "tel PAI without a number: the sip value's number wins",
			trusted: true,
			headers: []string{
				`From: <sip:anonymous@anonymous.invalid>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <tel:unavailable>, <sip:+79161234567@ims.example.ru;user=phone>`,
			},
			key: "+79161234567", kind: phone.KindE164, source: SourcePAI, scheme: "sip",
		},
		{
			name:    "sip PAI only, with npdi in the user part",
			trusted: true,
			headers: []string{
				`From: <sip:anonymous@192.0.2.1>;tag=x1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <sip:+79161234567;npdi;rn=+79160000000@trunk.example.ru;user=phone>`,
			},
			key: "+79161234567", kind: phone.KindE164, source: SourcePAI,
		},
		{
			name:    "untrusted source: PAI ignored, From used",
			trusted: false,
			headers: []string{
				`From: "Bot" <sip:84951112233@203.0.113.66>;tag=deadbeef`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <tel:+79991234567>`,
			},
			key: "+74951112233", kind: phone.KindE164, source: SourceFrom, display: "Bot", ignoredPAI: true,
		},
		{
			name:    "untrusted anonymous caller stays anonymous",
			trusted: false,
			headers: []string{
				`From: "Anonymous" <sip:anonymous@anonymous.invalid>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <tel:+79261234567>`,
				`Privacy: id`,
			},
			key: phone.AnonymousKey, kind: phone.KindAnonymous, source: SourceFrom, display: "Anonymous", withheld: true, ignoredPAI: true,
		},
		{
			name:    "trusted, no PAI: From with Cyrillic display name",
			trusted: true,
			headers: []string{
				`From: "Петров Пётр" <sip:8-916-765-43-21@198.51.100.10;user=phone>;tag=zz`,
				`To: <sip:88005553535@192.0.2.50>`,
			},
			key: "+79167654321", kind: phone.KindE164, source: SourceFrom, display: "Петров Пётр",
		},
		{
			name:    "anonymous.invalid host with a number in the user part",
			trusted: true,
			headers: []string{
				`From: <sip:+79161234567@anonymous.invalid>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
			},
			key: phone.AnonymousKey, kind: phone.KindAnonymous, source: SourceFrom,
		},
		{
			name:    "PAI login, not a number: asserted value still wins over From",
			trusted: true,
			headers: []string{
				`From: <sip:79161234567@198.51.100.10>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <sip:office-pbx@trunk.example.ru>`,
			},
			key: phone.AnonymousKey, kind: phone.KindUnparsable, source: SourcePAI,
		},
		{
			name:    "PAI unusable: From used and the reason kept",
			trusted: true,
			headers: []string{
				`From: <sip:79161234567@198.51.100.10>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`P-Asserted-Identity: <sip:+79161234567@trunk.example.ru`,
			},
			key: "+79161234567", kind: phone.KindE164, source: SourceFrom, badPAI: true,
		},
		{
			name:    "Privacy user;critical with a restricted From",
			trusted: true,
			headers: []string{
				`From: "Restricted" <sip:restricted@198.51.100.10>;tag=1`,
				`To: <sip:88005553535@192.0.2.50>`,
				`Privacy: user;critical`,
			},
			key: phone.AnonymousKey, kind: phone.KindAnonymous, source: SourceFrom, display: "Restricted", withheld: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := invite(t, "sip:88005553535@192.0.2.50:5060", tt.headers...)
			c, err := CallerOf(req, tt.trusted, n)
			if err != nil {
				t.Fatal(err)
			}
			if c.Number.Key != tt.key || c.Number.Kind != tt.kind {
				t.Errorf("number %q %v, want %q %v", c.Number.Key, c.Number.Kind, tt.key, tt.kind)
			}
			if c.Source != tt.source {
				t.Errorf("source %v, want %v", c.Source, tt.source)
			}
			if tt.display != "" && c.Display != tt.display {
				t.Errorf("display %q, want %q", c.Display, tt.display)
			}
			if c.Privacy.Withheld() != tt.withheld {
				t.Errorf("withheld %v, want %v (%+v)", c.Privacy.Withheld(), tt.withheld, c.Privacy)
			}
			if c.IgnoredPAI != tt.ignoredPAI {
				t.Errorf("IgnoredPAI %v, want %v", c.IgnoredPAI, tt.ignoredPAI)
			}
			if (c.BadPAI != "") != tt.badPAI {
				t.Errorf("BadPAI %q, want set=%v", c.BadPAI, tt.badPAI)
			}
			if tt.scheme != "" && c.URI.Scheme != tt.scheme {
				t.Errorf("chose %s, want a %s URI", c.URI, tt.scheme)
			}
			if c.Raw == "" {
				t.Error("no raw presented value")
			}
		})
	}
}

func TestCallee(t *testing.T) {
	n := normalizer(t)
	tests := []struct {
		name   string
		ruri   string
		to     string
		key    string
		source Source
	}{
		{"national 8-800", "sip:88005553535@192.0.2.50:5060", "<sip:88005553535@192.0.2.50>", "+78005553535", SourceRequestURI},
		{"E.164 with user=phone", "sip:+78005553535@192.0.2.50;user=phone", "<sip:+78005553535@192.0.2.50;user=phone>", "+78005553535", SourceRequestURI},
		{"ten digits", "sip:8005553535@192.0.2.50", "<sip:8005553535@192.0.2.50>", "+78005553535", SourceRequestURI},
		{"seven prefix", "sip:78005553535@192.0.2.50;transport=udp", "<sip:78005553535@192.0.2.50>", "+78005553535", SourceRequestURI},
		{"escaped plus", "sip:%2B78005553535@192.0.2.50", "<sip:x@192.0.2.50>", "+78005553535", SourceRequestURI},
		{"host-only Request-URI falls back to To", "sip:guard.example.ru", `"8-800" <sip:88005553535@guard.example.ru>`, "+78005553535", SourceTo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := invite(t, tt.ruri, "From: <sip:79161234567@198.51.100.10>;tag=1", "To: "+tt.to)
			id, err := CalleeOf(req, n)
			if err != nil {
				t.Fatal(err)
			}
			if id.Number.Key != tt.key || id.Source != tt.source {
				t.Errorf("callee %q from %v, want %q from %v", id.Number.Key, id.Source, tt.key, tt.source)
			}
		})
	}

	// Pure form: tel Request-URI, and the failures.
	if id, err := ReadCallee("tel:+78005553535", "", n); err != nil || id.Number.Key != "+78005553535" {
		t.Errorf("tel Request-URI: %+v, %v", id, err)
	}
	if _, err := ReadCallee("sip:guard.example.ru", "", n); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no user anywhere: %v", err)
	}
	if _, err := ReadCallee("sip:guard.example.ru", "<sip:guard.example.ru>", n); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no user in To either: %v", err)
	}
	if _, err := ReadCallee("sip:guard.example.ru", "<sip:88005553535@x", n); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad To: %v", err)
	}
	if _, err := ReadCallee("not a uri", "", n); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad Request-URI: %v", err)
	}
}

func TestReadCallerErrors(t *testing.T) {
	n := normalizer(t)
	if _, err := ReadCaller(Headers{}, true, n); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no headers: %v", err)
	}
	if _, err := ReadCaller(Headers{From: `"unterminated <sip:1@x>`}, false, n); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad From: %v", err)
	}
	// A trusted request with only a broken PAI and no From.
	c, err := ReadCaller(Headers{PAI: []string{"<http://example.com/>"}}, true, n)
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(c.BadPAI, "not sip, sips or tel") {
		t.Errorf("http PAI: %+v, %v", c, err)
	}
	// More values than RFC 3325 allows: only MaxAssertedValues are read.
	many := strings.Repeat("<sip:office@x>, ", 10) + "<tel:+79161234567>"
	c, err = ReadCaller(Headers{PAI: []string{many}, From: "<sip:1@x>"}, true, n)
	if err != nil || c.Source != SourcePAI || c.Number.Kind != phone.KindUnparsable {
		t.Errorf("many PAI values: %+v, %v", c, err)
	}
}

func TestParseNameAddr(t *testing.T) {
	tests := []struct {
		in      string
		display string
		uri     string
		user    string
		host    string
		params  string
		phone   bool
		err     bool
	}{
		{in: `"Alice" <sip:alice@example.com>;tag=1`, display: "Alice", uri: "sip:alice@example.com", user: "alice", host: "example.com", params: "tag=1"},
		{in: `Alice Smith <sip:alice@example.com>`, display: "Alice Smith", uri: "sip:alice@example.com", user: "alice", host: "example.com"},
		{in: `caller<sip:caller@example.com>;tag=323`, display: "caller", uri: "sip:caller@example.com", user: "caller", host: "example.com", params: "tag=323"},
		{in: `<sip:+79161234567@trunk.example.ru:5060;user=phone>`, uri: "sip:+79161234567@trunk.example.ru;user=phone", user: "+79161234567", host: "trunk.example.ru", phone: true},
		{in: `sip:+79161234567@trunk.example.ru;user=phone;tag=9`, uri: "sip:+79161234567@trunk.example.ru", user: "+79161234567", host: "trunk.example.ru", params: "user=phone;tag=9"},
		{in: `"J Rosenberg \\\"" <sip:jdrosen@example.com>`, display: `J Rosenberg \"`, uri: "sip:jdrosen@example.com", user: "jdrosen", host: "example.com"},
		{in: `"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue`, display: `Quoted string ""`, uri: "sip:jdrosen@example.com", user: "jdrosen", host: "example.com", params: " newparam = newvalue"},
		{in: `<tel:+7-495-123-45-67;phone-context=+7>`, uri: "tel:+7-495-123-45-67;phone-context=+7", user: "+7-495-123-45-67"},
		{in: `<sips:%2B79161234567@[2001:db8::1]:5061>`, uri: "sips:+79161234567@[2001:db8::1]", user: "+79161234567", host: "[2001:db8::1]"},
		{in: `<SIP:User@Example.COM>`, uri: "sip:User@example.com", user: "User", host: "example.com"},
		{in: `<sip:user:secret@example.com>`, uri: "sip:user@example.com", user: "user", host: "example.com"},
		{in: `<sip:example.com>`, uri: "sip:example.com", host: "example.com"},
		{in: `<urn:service:sos>`, uri: "urn:service:sos"},
		{in: `"Anonymous" <sip:anonymous@anonymous.invalid>`, display: "Anonymous", uri: "sip:anonymous@anonymous.invalid", user: "anonymous", host: "anonymous.invalid"},
		{in: ``, err: true},
		{in: `"unterminated <sip:a@b>`, err: true},
		{in: `"name" sip:a@b`, err: true},
		{in: `<sip:a@b`, err: true},
		{in: `<sip:a@b> junk`, err: true},
		{in: `< sip:a@b >`, uri: "sip:a@b", user: "a", host: "b"},
		{in: `<sip:a b@c>`, err: true},
		{in: `<sip:user@:5060>`, err: true},
		{in: `<>`, err: true},
		{in: `<sip:@example.com>`, err: true},
		{in: `<sip:user@>`, err: true},
		{in: `<tel:>`, err: true},
		{in: `Bad "name" <sip:a@b>`, err: true},
		{in: "\"ctl\x01\" <sip:a@b>;p=\x02", err: true},
		{in: `no scheme`, err: true},
		{in: `<1sip:a@b>`, err: true},
	}
	for _, tt := range tests {
		n, err := ParseNameAddr(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseNameAddr(%q) = %+v, want error", tt.in, n)
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseNameAddr(%q) error %v does not wrap ErrMalformed", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNameAddr(%q): %v", tt.in, err)
			continue
		}
		if n.Display != tt.display || n.URI.String() != tt.uri || n.URI.User != tt.user || n.URI.Host != tt.host || n.Params != tt.params || n.URI.UserPhone() != tt.phone {
			t.Errorf("ParseNameAddr(%q) = display %q uri %q user %q host %q params %q phone %v", tt.in, n.Display, n.URI.String(), n.URI.User, n.URI.Host, n.Params, n.URI.UserPhone())
		}
	}
	if got := (NameAddr{Display: `a "b" \c`, URI: URI{Scheme: "tel", User: "+7"}, Params: "x=1"}).String(); got != `"a \"b\" \\c" <tel:+7>;x=1` {
		t.Errorf("NameAddr.String() = %s", got)
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want []string
	}{
		{`<sip:+7916@ims;user=phone>, <tel:+7916>`, 0, []string{`<sip:+7916@ims;user=phone>`, `<tel:+7916>`}},
		{`"Doe, John" <sip:j@x>, <tel:+1>`, 0, []string{`"Doe, John" <sip:j@x>`, `<tel:+1>`}},
		{`"a \", b" <sip:a@x>,<sip:b@x>`, 0, []string{`"a \", b" <sip:a@x>`, `<sip:b@x>`}},
		{`<sip:a,b@x>`, 0, []string{`<sip:a,b@x>`}},
		{` , ,<tel:+1>,, `, 0, []string{`<tel:+1>`}},
		{`<tel:1>,<tel:2>,<tel:3>`, 2, []string{`<tel:1>`, `<tel:2>`}},
		{``, 0, nil},
	}
	for _, tt := range tests {
		got := SplitList(tt.in, tt.max)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("SplitList(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestParsePrivacy(t *testing.T) {
	tests := []struct {
		in       []string
		want     string
		withheld bool
	}{
		{nil, "", false},
		{[]string{"id"}, "id", true},
		{[]string{"ID; Critical"}, "id;critical", true},
		{[]string{"user, header"}, "user;header", true},
		{[]string{"session"}, "session", false},
		{[]string{"none"}, "none", false},
		{[]string{"id", "none"}, "id;none", false},
		{[]string{"history;foo"}, "", false},
	}
	for _, tt := range tests {
		p := ParsePrivacy(tt.in...)
		if p.String() != tt.want || p.Withheld() != tt.withheld {
			t.Errorf("ParsePrivacy(%q) = %q withheld %v, want %q %v", tt.in, p.String(), p.Withheld(), tt.want, tt.withheld)
		}
	}
}

func TestSourceString(t *testing.T) {
	for s, want := range map[Source]string{SourceNone: "none", SourcePAI: "p-asserted-identity", SourceFrom: "from", SourceRequestURI: "request-uri", SourceTo: "to"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

func BenchmarkCallerOf(b *testing.B) {
	n := normalizer(b)
	h := Headers{
		PAI:  []string{`<sip:+79101234567@ims.mnc001.mcc250.3gppnetwork.org;user=phone>, <tel:+79101234567>`},
		From: `<sip:89101234567@ims.mnc001.mcc250.3gppnetwork.org>;tag=p65545t1700000000m123456c1s1`,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadCaller(h, true, n); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTortureMessages reads caller and callee from every RFC 4475 request
// sipgo parses: no panic, and errors wrap the sentinels.
func TestTortureMessages(t *testing.T) {
	n := normalizer(t)
	files, err := filepath.Glob("../validate/testdata/torture/*.dat")
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture messages: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := sip.ParseMessage(data)
		if err != nil {
			continue
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			continue
		}
		for _, trusted := range []bool{false, true} {
			c, err := CallerOf(req, trusted, n)
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoIdentity) {
				t.Errorf("%s: caller error %v", filepath.Base(f), err)
			}
			if err == nil && !phone.IsKey(c.Number.Key) {
				t.Errorf("%s: caller key %q", filepath.Base(f), c.Number.Key)
			}
		}
		id, err := CalleeOf(req, n)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: callee error %v", filepath.Base(f), err)
		}
		if err == nil && !phone.IsKey(id.Number.Key) {
			t.Errorf("%s: callee key %q", filepath.Base(f), id.Number.Key)
		}
	}
	// Spot checks: wsinv's From is a quoted name with escapes; esc01's
	// Request-URI user is an escaped SIPS URI, not a number.
	data, err := os.ReadFile("../validate/testdata/torture/wsinv.dat")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sip.ParseMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := CallerOf(msg.(*sip.Request), false, n)
	if err != nil || c.Display != `J Rosenberg \"` || c.URI.User != "jdrosen" {
		t.Errorf("wsinv caller: %+v, %v", c, err)
	}
}
