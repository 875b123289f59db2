package guard

import (
	"strings"
	"testing"

	"github.com/callguard/callguard/actors/crm"
)

func TestCustomerValue(t *testing.T) {
	for _, tc := range []struct {
		c    crm.Customer
		want string
	}{
		{crm.Customer{}, ""},
		{crm.Customer{VIP: true, Name: "Ivan Petrov", Segment: "private"}, `name="Ivan Petrov"; segment="private"; vip=1`},
		{crm.Customer{Segment: "retail"}, `segment="retail"`},
		{crm.Customer{Name: "Ivan\r\nX-Evil: 1"}, `name="Ivan X-Evil: 1"`},
		{crm.Customer{Name: `say "hi" \o/`}, `name="say \"hi\" \\o/"`},
		{crm.Customer{Name: strings.Repeat("a", 500)}, `name="` + strings.Repeat("a", crm.MaxName) + `"`},
	} {
		if got := customerValue(tc.c); got != tc.want {
			t.Errorf("customerValue(%+v) = %s, want %s", tc.c, got, tc.want)
		}
	}
}

// FuzzCustomerValue: whatever the CRM says, the header value is one line
// of printable characters, bounded, with balanced quotes.
func FuzzCustomerValue(f *testing.F) {
	f.Add("Ivan", "gold", true)
	f.Add("a\r\nb\"c\\", "\x00\u202e", false)
	f.Fuzz(func(t *testing.T, name, segment string, vip bool) {
		v := customerValue(crm.Customer{Name: name, Segment: segment, VIP: vip})
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("control character in %q", v)
		}
		if n := len([]rune(v)); n > 2*(crm.MaxName+crm.MaxSegment)+40 {
			t.Fatalf("value of %d runes", n)
		}
		// Outside the escapes, quotes come in pairs.
		q, esc := 0, false
		for _, r := range v {
			switch {
			case esc:
				esc = false
			case r == '\\':
				esc = true
			case r == '"':
				q++
			}
		}
		if q%2 != 0 || esc {
			t.Fatalf("unbalanced quoting in %q", v)
		}
	})
}
