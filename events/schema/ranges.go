package schema

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// Range rules whitelist or block every caller number that starts with a
// prefix ("+7999123") or lies in a range of numbers of one length
// ("+79991230000-+79991239999"). They are not one caller's state, so they
// live in a stream of their own, RulesStream, written by admin commands
// and folded by every node into its rule table.

// RulesStream is the stream of the range rules' admin commands.
const RulesStream = "rules"

// Event types of the rules stream.
const (
	TypeRangeWhitelisted = "RangeWhitelisted"
	TypeRangeBlocked     = "RangeBlocked"
	TypeRangeRemoved     = "RangeRemoved"
)

// Rules a range decided by.
const (
	// RuleRangeWhitelist: the caller's number is in a whitelisted range.
	RuleRangeWhitelist Rule = "range-whitelist"
	// RuleRangeBlock: the caller's number is in a blocked range.
	RuleRangeBlock Rule = "range-block"
)

// RangeList says which list a range rule is on.
type RangeList string

const (
	// RangeWhitelist: numbers in the range pass, whatever blocks them.
	RangeWhitelist RangeList = "whitelist"
	// RangeBlock: numbers in the range get the rule's block level.
	RangeBlock RangeList = "block"
)

// Valid reports whether l is one of the two lists.
func (l RangeList) Valid() bool { return l == RangeWhitelist || l == RangeBlock }

// MaxRangeDigits is the most digits of an E.164 number, country code
// included, and so of a prefix or a range bound.
const MaxRangeDigits = 15

// ErrRange marks a range rule's text that is neither an E.164 prefix nor a
// range of two E.164 numbers.
var ErrRange = errors.New("not a number prefix or range")

// Range is a parsed range rule's text: the numbers starting with Lo when
// Prefix, else the numbers of Lo's length from Lo to Hi inclusive. Lo and
// Hi are E.164 ("+" and digits).
type Range struct {
	Lo, Hi string
	Prefix bool
}

// ParseRange reads a range rule's text in its stored form: "+7999123" (a
// prefix) or "+79991230000-+79991239999" (a range of numbers of the same
// length, low bound first). People's spellings are normalised by the edges
// (phone.Normalizer.Prefix) before they get here.
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if err := checkBound(lo); err != nil {
		return Range{}, fmt.Errorf("%q is %w: %v", s, ErrRange, err)
	}
	if !isRange {
		return Range{Lo: lo, Hi: lo, Prefix: true}, nil
	}
	if err := checkBound(hi); err != nil {
		return Range{}, fmt.Errorf("%q is %w: %v", s, ErrRange, err)
	}
	switch {
	case len(lo) != len(hi):
		return Range{}, fmt.Errorf("%q is %w: the bounds have %d and %d digits, want numbers of one length", s, ErrRange, len(lo)-1, len(hi)-1)
	case lo > hi:
		return Range{}, fmt.Errorf("%q is %w: %s comes after %s, give the low bound first", s, ErrRange, lo, hi)
	}
	return Range{Lo: lo, Hi: hi}, nil
}

func checkBound(s string) error {
	switch {
	case len(s) < 2 || s[0] != '+':
		return errors.New("want + and digits")
	case len(s)-1 > MaxRangeDigits:
		return fmt.Errorf("more than %d digits", MaxRangeDigits)
	case s[1] == '0':
		return errors.New("no country code starts with 0")
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return errors.New("want + and digits")
		}
	}
	return nil
}

// String is the stored form ParseRange reads.
func (r Range) String() string {
	if r.Prefix {
		return r.Lo
	}
	return r.Lo + "-" + r.Hi
}

// Contains reports whether the E.164 key is in r.
func (r Range) Contains(key string) bool {
	if r.Prefix {
		return strings.HasPrefix(key, r.Lo)
	}
	return len(key) == len(r.Lo) && key >= r.Lo && key <= r.Hi
}

// Size is how many numbers of digits digits (country code included) r
// holds, saturated at 10^15: what "more specific" compares. It is 0 when
// r holds no number of that length.
func (r Range) Size(digits int) uint64 {
	if r.Prefix {
		free := digits - (len(r.Lo) - 1)
		if free < 0 {
			return 0
		}
		n := uint64(1)
		for range free {
			n *= 10
		}
		return n
	}
	if digits != len(r.Lo)-1 {
		return 0
	}
	return atou(r.Hi[1:]) - atou(r.Lo[1:]) + 1
}

func atou(s string) uint64 {
	var n uint64
	for i := 0; i < len(s); i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n
}

// Common is the longest prefix every number of r starts with: where a
// prefix tree keeps r.
func (r Range) Common() string {
	n := 0
	for n < len(r.Lo) && r.Lo[n] == r.Hi[n] {
		n++
	}
	return r.Lo[:n]
}

// RangeWhitelisted records an admin whitelisting every number of Range.
type RangeWhitelisted struct {
	Range string    `json:"range"`
	At    time.Time `json:"at"`
	// Until is when the rule ends by itself; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// RangeBlocked records an admin blocking every number of Range at Level.
type RangeBlocked struct {
	Range string    `json:"range"`
	Level int       `json:"level"`
	At    time.Time `json:"at"`
	// Until is when the rule ends by itself; nil for no expiry.
	Until     *time.Time `json:"until,omitempty"`
	CommandID string     `json:"commandId,omitempty"`
	By        string     `json:"by"`
	Why       string     `json:"why"`
}

// RangeRemoved records an admin removing the rule of Range from List.
type RangeRemoved struct {
	Range     string    `json:"range"`
	List      RangeList `json:"list"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
}

// RangeMatch is a range rule as a decision saw it: CallReceived.Ranges
// records the rules that matched the caller, so that the audit and a
// replay explain and reproduce the verdict without the rule table.
type RangeMatch struct {
	Range string    `json:"range"`
	List  RangeList `json:"list"`
	// Level is the block level (0 for a whitelist rule).
	Level int       `json:"level,omitempty"`
	Since time.Time `json:"since"`
	// Until is the rule's expiry; nil for none.
	Until *time.Time `json:"until,omitempty"`
	By    string     `json:"by"`
	Why   string     `json:"why"`
}

// ActiveAt reports whether m is in force at t (Until is exclusive).
func (m RangeMatch) ActiveAt(t time.Time) bool { return m.Until == nil || t.Before(*m.Until) }

// Explain says m in words, for a verdict's reason: which rule, not who
// set it or why (a reject's reason reaches the carrier in a SIP Reason
// header; the audit adds By and Why from the recorded match).
func (m RangeMatch) Explain() string {
	what := "prefix"
	if r, err := ParseRange(m.Range); err == nil && !r.Prefix {
		what = "range"
	}
	if m.List == RangeWhitelist {
		return fmt.Sprintf("whitelisted by %s %s", what, m.Range)
	}
	return fmt.Sprintf("blocked by %s %s at level %d", what, m.Range, m.Level)
}

// RuleEventID is the ID of the event the admin command commandID caused in
// the rules stream: a retried request writes once.
func RuleEventID(commandID string) uuid.UUID {
	return events.DeriveID(RulesStream, "command", commandID, RoleCommand)
}

func (RangeWhitelisted) EventType() string { return TypeRangeWhitelisted }
func (RangeBlocked) EventType() string     { return TypeRangeBlocked }
func (RangeRemoved) EventType() string     { return TypeRangeRemoved }

func (RangeWhitelisted) EventVersion() int { return 1 }
func (RangeBlocked) EventVersion() int     { return 1 }
func (RangeRemoved) EventVersion() int     { return 1 }

func rangePayloads() []Payload {
	return []Payload{RangeWhitelisted{}, RangeBlocked{}, RangeRemoved{}}
}
