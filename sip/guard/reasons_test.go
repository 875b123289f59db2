package guard

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/schema"
)

// reasonSyntax is RFC 3326 §2 as the guard writes it: protocol, cause, and
// a quoted-string text (RFC 3261 §25.1).
var reasonSyntax = regexp.MustCompile(`^(SIP|Q\.850);cause=([0-9]+);text="((?:[^"\\\x00-\x1f\x7f]|\\.)*)"$`)

// siteStatus are the entries whose status the refusing code supplies.
var siteStatus = map[refusalID]bool{refBadOffer: true, refRejected: true, refChallengeFailed: true, refPBXRefused: true, refCallEnded: true}

// refusalNames reads the entries' names from the const block in
// reasons.go, in iota order, so that the doc table can be checked against
// the catalogue.
func refusalNames(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || len(g.Specs) == 0 {
			continue
		}
		first := g.Specs[0].(*ast.ValueSpec)
		if id, ok := first.Type.(*ast.Ident); !ok || id.Name != "refusalID" {
			continue
		}
		for _, s := range g.Specs {
			names = append(names, s.(*ast.ValueSpec).Names[0].Name)
		}
	}
	if len(names) != int(refusalCount)+1 {
		t.Fatalf("found %d names in the refusalID block, want %d entries and refusalCount", len(names), refusalCount)
	}
	return names[:refusalCount]
}

func TestRefusalCatalogue(t *testing.T) {
	src, err := os.ReadFile("reasons.go")
	if err != nil {
		t.Fatal(err)
	}
	names := refusalNames(t)
	for id := refusalID(0); id < refusalCount; id++ {
		name := names[id]
		t.Run(name, func(t *testing.T) {
			r := refusalOf(id)
			if siteStatus[id] {
				if r.status != 0 {
					t.Errorf("status %d, but the site is meant to supply it", r.status)
				}
				r = r.withStatus(603)
			}
			if id != refCallEnded && (r.status < 400 || r.status > 699) {
				t.Errorf("status %d is not a final error status (RFC 3261 §21.4-21.6)", r.status)
			}
			if r.status != 0 {
				if p := phrase(r.status); p == "" || p == "Request Failure" || p == "Server Error" || p == "Global Failure" {
					t.Errorf("status %d has only the class phrase %q", r.status, p)
				}
			}
			if !strings.Contains(r.rfc, "RFC") && !strings.Contains(r.rfc, "REJECT_STATUS") {
				t.Errorf("rfc %q names no section", r.rfc)
			}
			if r.q850 < 0 || r.q850 > 127 {
				t.Errorf("Q.850 cause %d out of 1-127 (ITU-T Q.850 §2.2.7)", r.q850)
			}
			text := r.text
			if text == "" {
				text = "site text"
			}
			if r.status != 0 {
				checkReason(t, reasonHeader("SIP", r.status, text), "SIP", r.status)
			}
			if r.q850 != 0 {
				checkReason(t, reasonHeader("Q.850", r.q850, text), "Q.850", r.q850)
			}
			row := regexp.MustCompile(`(?m)^//\t` + name + `\s+(\S+)\s+(\S+)\s`).FindSubmatch(src)
			if row == nil {
				t.Fatalf("no row for %s in the table of reasons.go", name)
			}
			if r.status != 0 && !siteStatus[id] && !strings.HasPrefix(string(row[1]), strconv.Itoa(r.status)) {
				t.Errorf("table says status %s, catalogue %d", row[1], r.status)
			}
			if ra := strings.HasSuffix(string(row[1]), "+RA"); ra != r.retryAfter {
				t.Errorf("table says status %s, catalogue retryAfter %v", row[1], r.retryAfter)
			}
			if r.q850 != 0 && string(row[2]) != strconv.Itoa(r.q850) && string(row[2]) != "site" {
				t.Errorf("table says Q.850 %s, catalogue %d", row[2], r.q850)
			}
		})
	}
}

func checkReason(t *testing.T, h sip.Header, protocol string, cause int) {
	t.Helper()
	m := reasonSyntax.FindStringSubmatch(h.Value())
	if h.Name() != "Reason" || m == nil {
		t.Fatalf("%s: %s does not parse as RFC 3326", h.Name(), h.Value())
	}
	if m[1] != protocol || m[2] != strconv.Itoa(cause) || !strings.HasPrefix(m[3], "callguard: ") {
		t.Errorf("Reason %q, want protocol %s cause %d text callguard: ...", h.Value(), protocol, cause)
	}
}

func TestReasonQuotesText(t *testing.T) {
	h := reasonHeader("SIP", 603, "policy: manual, level 7: \"spam\\\" \r\nX-Injected: 1")
	if !reasonSyntax.MatchString(h.Value()) {
		t.Fatalf("Reason %s does not parse", h.Value())
	}
	if strings.ContainsAny(h.Value(), "\r\n") {
		t.Errorf("Reason %q carries a line break", h.Value())
	}
}

func TestSiteRefusals(t *testing.T) {
	res := func(status int, phrase string) *sip.Response {
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "88001234567", Host: "pbx.invalid"})
		return sip.NewResponseFromRequest(req, status, phrase, nil)
	}
	tests := []struct {
		name   string
		got    refusal
		status int
		q850   int
		text   string
	}{
		{"reject", rejection(call.Rejection{Rule: "hourly limit", Level: 3}, 603), 603, 21, "policy: hourly limit, level 3"},
		{"store down", rejection(call.Rejection{StoreDown: true}, 603), 503, 21, "decision unavailable"},
		{"busy", rejection(call.Rejection{Busy: true, Error: "node busy"}, 603), 503, 41, "busy"},
		{"wrong code", hangupRefusal(call.Hangup{Cause: schema.EndChallengeFailed, Detail: "wrong code"}, 486), 486, 21, "challenge failed: wrong code"},
		{"shutdown", hangupRefusal(call.Hangup{Cause: schema.EndShutdown, Detail: textShutdown}, 603), 503, 41, "shutting down"},
		{"media", hangupRefusal(call.Hangup{Cause: schema.EndMediaFailed, Detail: "x"}, 603), 488, 41, "x"},
		{"no code", hangupRefusal(call.Hangup{Cause: schema.EndError, Detail: "no code"}, 603), 500, 41, "no code"},
		{"PBX busy", pbxRefusal(res(486, "Busy Here")), 486, 17, "PBX: SIP/2.0 486 Busy Here"},
		{"PBX redirect", pbxRefusal(res(302, "Moved Temporarily")), 480, 31, "PBX: SIP/2.0 302 Moved Temporarily"},
		{"PBX wants credentials", pbxRefusal(res(407, "Proxy Authentication Required")), 503, 31, "PBX: SIP/2.0 407 Proxy Authentication Required"},
		{"PBX declines", pbxRefusal(res(603, "Decline")), 603, 21, "PBX: SIP/2.0 603 Decline"},
	}
	for _, tt := range tests {
		if tt.got.status != tt.status || tt.got.q850 != tt.q850 || tt.got.text != tt.text {
			t.Errorf("%s: got %d Q.850 %d %q, want %d Q.850 %d %q", tt.name, tt.got.status, tt.got.q850, tt.got.text, tt.status, tt.q850, tt.text)
		}
	}
}
