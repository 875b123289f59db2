package schema

import (
	"fmt"
	"time"
)

// Origin rules: verdicts by where a caller's number is from (its country,
// the ISO 3166 region libphonenumber gives it) and what kind of number it
// is (premium rate, VoIP, invalid, ...). Like range rules they are policy
// data about callers whose grains may not exist yet, so they live in the
// rules stream (RulesStream), set and removed by admin commands.

// Event types of origin rules in the rules stream.
const (
	TypeOriginRuleSet     = "OriginRuleSet"
	TypeOriginRuleRemoved = "OriginRuleRemoved"
)

// OriginKind says what an origin rule matches.
type OriginKind string

const (
	// OriginCountry matches the caller number's region ("AZ", "GB").
	OriginCountry OriginKind = "country"
	// OriginNumberType matches the number's type ("premium-rate").
	OriginNumberType OriginKind = "numtype"
)

// Valid reports whether k is a known kind.
func (k OriginKind) Valid() bool { return k == OriginCountry || k == OriginNumberType }

// Rules of verdicts made by origin rules.
const (
	// RuleCountry: a rule on the caller number's country decided.
	RuleCountry Rule = "country"
	// RuleNumberType: a rule on the caller number's type decided.
	RuleNumberType Rule = "number-type"
)

// OriginRuleSet records an admin setting the rule of Kind and Value
// (replacing any rule of the same Kind and Value): calls from such numbers
// are treated as blocked at Level.
type OriginRuleSet struct {
	Kind  OriginKind `json:"kind"`
	Value string     `json:"value"`
	Level int        `json:"level"`
	At    time.Time  `json:"at"`
	// Until is when the rule ends by itself; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// OriginRuleRemoved records an admin removing the rule of Kind and Value.
type OriginRuleRemoved struct {
	Kind      OriginKind `json:"kind"`
	Value     string     `json:"value"`
	At        time.Time  `json:"at"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// Origin is what a decision knew of the caller's number and the origin
// rules that matched it: CallReceived.Origin records it, so that the
// audit explains and a replay reproduces the verdict without the rules.
type Origin struct {
	// Country is the number's region ("AZ"), empty when it has none.
	Country string `json:"country,omitempty"`
	// Type is the number's type ("mobile", "premium-rate", "invalid").
	Type string `json:"type,omitempty"`
	// Rules are the rules in force that matched (at most one per kind).
	Rules []OriginMatch `json:"rules,omitempty"`
}

// OriginMatch is an origin rule as a decision saw it.
type OriginMatch struct {
	Kind  OriginKind `json:"kind"`
	Value string     `json:"value"`
	Level int        `json:"level"`
	Since time.Time  `json:"since"`
	// Until is the rule's expiry; nil for none.
	Until *time.Time `json:"until,omitempty"`
	By    string     `json:"by"`
	Why   string     `json:"why"`
}

// ActiveAt reports whether m is in force at t (Until is exclusive).
func (m OriginMatch) ActiveAt(t time.Time) bool { return m.Until == nil || t.Before(*m.Until) }

// Rule is the verdict rule m makes.
func (m OriginMatch) Rule() Rule {
	if m.Kind == OriginCountry {
		return RuleCountry
	}
	return RuleNumberType
}

// Explain says m in words, for a verdict's reason.
func (m OriginMatch) Explain() string {
	if m.Kind == OriginCountry {
		return fmt.Sprintf("calls from country %s at level %d", m.Value, m.Level)
	}
	return fmt.Sprintf("%s numbers at level %d", m.Value, m.Level)
}

func (OriginRuleSet) EventType() string     { return TypeOriginRuleSet }
func (OriginRuleRemoved) EventType() string { return TypeOriginRuleRemoved }

func (OriginRuleSet) EventVersion() int     { return 1 }
func (OriginRuleRemoved) EventVersion() int { return 1 }

func originPayloads() []Payload { return []Payload{OriginRuleSet{}, OriginRuleRemoved{}} }
