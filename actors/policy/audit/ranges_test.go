package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// A call decided by a range rule explains itself by the rule, who set it
// and why, from what its CallReceived recorded.
func TestRangeVerdictExplained(t *testing.T) {
	ranges := []schema.RangeMatch{
		{Range: "+79991230000-+79991230099", List: schema.RangeWhitelist, By: "bob", Why: "branch lines"},
		{Range: "+7999123", List: schema.RangeBlock, Level: 7, By: "alice", Why: "fraud reports"},
	}
	tests := []struct {
		c    Call
		want string
	}{
		{Call{CallID: "c1", Verdict: schema.Reject, Level: 7, Rule: schema.RuleRangeBlock, Reason: "blocked by prefix +7999123 at level 7", Ranges: ranges[1:]},
			"REJECT level 7 (range-block: blocked by prefix +7999123 at level 7, set by alice: fraud reports)"},
		{Call{CallID: "c2", Verdict: schema.Pass, Rule: schema.RuleRangeWhitelist, Reason: "whitelisted by range +79991230000-+79991230099", Ranges: ranges},
			"PASS (range-whitelist: whitelisted by range +79991230000-+79991230099, set by bob: branch lines)"},
		{Call{CallID: "c3", Verdict: schema.Challenge, Level: 2, Rule: schema.RuleManual, Reason: "manual block at level 2 (manual)", Ranges: ranges[1:]},
			"CHALLENGE level 2 (manual block at level 2 (manual))"},
	}
	for _, tt := range tests {
		if got := tt.c.line(time.UTC, widths{}); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%s: %q, want it to end %q", tt.c.CallID, got, tt.want)
		}
	}
}
