package lists

import (
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

var at = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func tp(d time.Duration) *time.Time {
	t := at.Add(d)
	return &t
}

func TestFold(t *testing.T) {
	auto := schema.BlockApplied{Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, At: at, Until: tp(24 * time.Hour),
		CallID: "c6", By: "policy", Why: "6 calls in the last hour, limit 5"}
	manual := schema.BlockApplied{Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, At: at, CommandID: "k1", By: "bob", Why: "fraud"}
	wl := schema.Whitelisted{At: at, Until: tp(time.Hour), CommandID: "k2", By: "alice", Why: "VIP"}
	extend := schema.CallReceived{CallID: "c7", At: at.Add(time.Minute), Verdict: schema.Challenge, Level: 3, BlockUntil: tp(25 * time.Hour)}

	tests := []struct {
		name   string
		events []schema.Payload
		want   Standing
	}{
		{"nothing", nil, Standing{}},
		{"an automatic block", []schema.Payload{auto},
			Standing{Block: &Block{Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, Since: at, Until: tp(24 * time.Hour),
				By: "policy", Reason: "6 calls in the last hour, limit 5", CallID: "c6"}}},
		{"an offending call extends an automatic block", []schema.Payload{&auto, &extend},
			Standing{Block: &Block{Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, Since: at, Until: tp(25 * time.Hour),
				By: "policy", Reason: "6 calls in the last hour, limit 5", CallID: "c6"}}},
		{"but not a manual one", []schema.Payload{manual, extend},
			Standing{Block: &Block{Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, Since: at, By: "bob", Reason: "fraud", CommandID: "k1"}}},
		{"a manual block replaces an automatic one", []schema.Payload{auto, manual},
			Standing{Block: &Block{Level: 7, Kind: schema.Manual, Rule: schema.RuleManual, Since: at, By: "bob", Reason: "fraud", CommandID: "k1"}}},
		{"lifted", []schema.Payload{auto, schema.BlockLifted{Level: 3, Kind: schema.Auto, At: at, By: "bob", Why: "ok"}}, Standing{}},
		{"expired", []schema.Payload{auto, schema.BlockExpired{Level: 3, Kind: schema.Auto, Since: at, At: at.Add(24 * time.Hour)}}, Standing{}},
		{"whitelisted", []schema.Payload{wl},
			Standing{Whitelist: &Whitelisting{Since: at, Until: tp(time.Hour), By: "alice", Reason: "VIP", CommandID: "k2"}}},
		{"whitelisting keeps the block recorded", []schema.Payload{auto, wl},
			Standing{Block: &Block{Level: 3, Kind: schema.Auto, Rule: schema.RuleHourlyLimit, Since: at, Until: tp(24 * time.Hour),
				By: "policy", Reason: "6 calls in the last hour, limit 5", CallID: "c6"},
				Whitelist: &Whitelisting{Since: at, Until: tp(time.Hour), By: "alice", Reason: "VIP", CommandID: "k2"}}},
		{"unwhitelisted", []schema.Payload{wl, schema.Unwhitelisted{At: at, By: "bob", Why: "left"}}, Standing{}},
		{"whitelist expired", []schema.Payload{wl, schema.WhitelistExpired{Since: at, At: at.Add(time.Hour)}}, Standing{}},
		{"events the lists do not fold", []schema.Payload{schema.ChallengeOutcome{CallID: "c1", Outcome: schema.Passed, At: at}}, Standing{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Standing
			for _, e := range tt.events {
				s = Fold(s, e)
				if !Folds(e.EventType()) && s != (Standing{}) {
					t.Fatalf("Folds(%s) is false but Fold changed the standing", e.EventType())
				}
			}
			if !equalStanding(s, tt.want) {
				t.Fatalf("got %s, want %s", show(s), show(tt.want))
			}
		})
	}
}

func TestFoldDoesNotShareState(t *testing.T) {
	auto := schema.BlockApplied{Level: 3, Kind: schema.Auto, At: at, Until: tp(time.Hour)}
	before := Fold(Standing{}, auto)
	after := Fold(before, schema.CallReceived{At: at, BlockUntil: tp(2 * time.Hour)})
	if !before.Block.Until.Equal(at.Add(time.Hour)) || !after.Block.Until.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("Fold changed the block it was given: before %v, after %v", before.Block.Until, after.Block.Until)
	}
}

func TestInForce(t *testing.T) {
	s := Standing{
		Block:     &Block{Level: 3, Until: tp(time.Hour)},
		Whitelist: &Whitelisting{Until: tp(2 * time.Hour)},
	}
	if got := s.InForce(at.Add(59 * time.Minute)); got.Block == nil || got.Whitelist == nil {
		t.Fatal("expired early")
	}
	// An entry ends at its expiry exactly, as the policy has it.
	if got := s.InForce(at.Add(time.Hour)); got.Block != nil || got.Whitelist == nil {
		t.Fatalf("at the block's expiry: %s", show(got))
	}
	if got := s.InForce(at.Add(3 * time.Hour)); !got.Empty() {
		t.Fatalf("after both: %s", show(got))
	}
	if Expired(nil, at.Add(1000*time.Hour)) {
		t.Fatal("an entry without expiry expired")
	}
}

func equalStanding(a, b Standing) bool {
	return show(a) == show(b)
}

func show(s Standing) string {
	out := "{"
	if b := s.Block; b != nil {
		out += "block " + b.Since.String() + " " + string(b.Kind) + " " + string(b.Rule) + " " + b.By + " " + b.Reason + " " + b.CommandID + " " + b.CallID
		out += " level " + string(rune('0'+b.Level)) + " until " + ptime(b.Until)
	}
	if w := s.Whitelist; w != nil {
		out += " whitelist " + w.Since.String() + " " + w.By + " " + w.Reason + " " + w.CommandID + " until " + ptime(w.Until)
	}
	return out + "}"
}

func ptime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.String()
}
