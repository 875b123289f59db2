package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/schema"
)

// A replay tries a range rule before it is enforced: the calls it covers
// would be decided by it, the numbers it covers would stand differently,
// and the report says which rule it tried.
func TestReplayTriesARangeRule(t *testing.T) {
	store := openStore(t)
	in, out := newWriter(t, store, "+79991234567"), newWriter(t, store, "+79990000001")
	for i := range 3 {
		in.call("in-"+string(rune('a'+i)), at(time.Duration(i)*time.Minute))
		out.call("out-"+string(rune('a'+i)), at(time.Duration(i)*time.Minute))
	}
	try := schema.RangeMatch{Range: "+7999123", List: schema.RangeBlock, Level: 7}
	rep, err := Run(context.Background(), store, policy.DefaultConfig(), Try(try))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls != 6 || rep.CallsChanged != 3 || rep.CallersChanged != 1 || rep.NumbersChanged != 1 || rep.Numbers[0].Key != "+79991234567" {
		t.Fatalf("report %+v, want the 3 calls of the number in the range changed", rep)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b, time.UTC); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Trying range rule: block +7999123 at level 7") || !strings.Contains(b.String(), "pass -> reject") ||
		!strings.Contains(b.String(), "next call pass -> reject (range-block)") {
		t.Fatalf("report text:\n%s", b.String())
	}
	if _, err := Run(context.Background(), store, policy.DefaultConfig(), Try(schema.RangeMatch{Range: "7999", List: schema.RangeBlock, Level: 7})); err == nil {
		t.Fatal("a malformed tried rule was accepted")
	}
}
