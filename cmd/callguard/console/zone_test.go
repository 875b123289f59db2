package console

import (
	"strings"
	"testing"
	"time"
)

// Pages that show times name the zone they are in (GUARD_TIMEZONE), as
// the reports do, and show them in it.
func TestPagesNameTheirTimeZone(t *testing.T) {
	moscow := time.FixedZone("Europe/Moscow", 3*3600)
	r := newRig(t, func(d *Deps) { fullDeps(d); d.Zone = moscow })
	r.users.set("anna", RoleAdmin, false)
	b := r.browser()
	b.signIn("anna")
	for _, tc := range []struct{ path, when string }{
		// fakeHistory's first entry is at 09:00 UTC.
		{"/console/numbers/+79161234567", "2026-12-03 12:00:00"},
		// fakeLists' blacklist entry is since midnight UTC, the whitelist's too.
		{"/console/lists/blacklist", "2026-12-01 03:00:00"},
		{"/console/lists/whitelist", "2026-12-02 03:00:00"},
		// fakeProfiles' last call is at 09:00 UTC.
		{"/console/numbers?q=%2B7916", "2026-12-03 12:00:00"},
		// fakeLines' attack began at 09:30 UTC.
		{"/console/", "2026-12-03 12:30:00"},
		{"/console/users", ""},
	} {
		for _, lang := range []string{"en", "ru"} {
			b.lang = lang
			p := b.get(tc.path)
			if p.status != 200 {
				t.Fatalf("GET %s: %d", tc.path, p.status)
			}
			if !strings.Contains(p.body, tc.when) {
				t.Errorf("%s (%s): no time %q in the zone", tc.path, lang, tc.when)
			}
			note := byID(parse(t, p.body), "timezone")
			if note == nil || !strings.Contains(text(note), "Europe/Moscow") {
				t.Errorf("%s (%s): the zone of its times is not named: %v", tc.path, lang, note)
			}
		}
	}
}
