package schema_test

import (
	"testing"

	"github.com/callguard/callguard/events/schema"
)

func TestActionWith(t *testing.T) {
	const why = "late offer"
	for _, tc := range []struct {
		mode     schema.Mode
		v        schema.Verdict
		fallback string
		action   schema.Verdict
		reason   string
	}{
		{schema.Enforce, schema.Challenge, "", schema.Challenge, ""},
		{schema.Enforce, schema.Challenge, why, schema.Pass, why},
		{schema.Enforce, schema.Reject, why, schema.Reject, ""},
		{schema.Enforce, schema.Pass, why, schema.Pass, ""},
		{schema.Observe, schema.Challenge, why, schema.Pass, ""}, // observe mode passes it anyway
	} {
		a, r := schema.ActionWith(tc.mode, tc.v, tc.fallback)
		if a != tc.action || r != tc.reason {
			t.Errorf("ActionWith(%s, %s, %q) = %s, %q; want %s, %q", tc.mode, tc.v, tc.fallback, a, r, tc.action, tc.reason)
		}
	}
}
