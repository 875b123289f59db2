package guard

import (
	"strings"

	"github.com/callguard/callguard/actors/crm"
)

// CustomerHeader is the header on the INVITE to the PBX that says what the
// bank's CRM knows of the caller, for the PBX to show its agents:
//
//	X-Callguard-Customer: name="Ivan Petrov"; segment="private"; vip=1
//
// Each part is present only when the CRM gave it; the values are RFC 3261
// quoted strings of at most crm.MaxName / crm.MaxSegment characters
// without control characters (crm.Clean). The guard sets it only from the
// CRM's answer: a carrier's header of that name is never relayed.
const CustomerHeader = "X-Callguard-Customer"

// customerValue is c as CustomerHeader's value; "" when there is nothing
// to say.
func customerValue(c crm.Customer) string {
	var parts []string
	if n := crm.Clean(c.Name, crm.MaxName); n != "" {
		parts = append(parts, "name="+quote(n))
	}
	if s := crm.Clean(c.Segment, crm.MaxSegment); s != "" {
		parts = append(parts, "segment="+quote(s))
	}
	if c.VIP {
		parts = append(parts, "vip=1")
	}
	return strings.Join(parts, "; ")
}

// quote makes s an RFC 3261 quoted-string (s has no control characters).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// ShowCustomer implements call.CustomerShower: the PBX INVITE of this call
// carries CustomerHeader.
func (s *session) ShowCustomer(c crm.Customer) {
	v := customerValue(c)
	s.post(func() { s.customer = v })
}
