package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// The windows of the limits. They are the seed's "last hour" and "last
// day", fixed rather than configurable, so that "hour" and "day" in events,
// reports and settings mean one thing.
const (
	// Hour is the length of the hourly window. A call exactly Hour old is
	// outside it: the window is the half-open interval (now-Hour, now], so
	// six calls one minute apart starting at 10:00:00 and a seventh at
	// 11:00:00 count 6 in the hour, not 7.
	Hour = time.Hour
	// Day is the length of the daily window, half-open like Hour's. Failed
	// challenges for escalation are counted over the same window.
	Day = 24 * time.Hour
)

// ErrConfig is the sentinel of every Config.Validate error.
var ErrConfig = errors.New("invalid policy config")

// Config is the blocking policy's settings. The zero value is not usable:
// start from DefaultConfig and change fields. Each field's env tag names
// its environment variable under the binary's GUARD_ prefix (for example
// GUARD_LIMIT_HOUR), with the same default as DefaultConfig.
//
// The defaults suit a bank's toll-free line: a customer in trouble (a
// blocked card, a suspicious charge) calls back several times within the
// hour as calls drop or get transferred, so the limits are generous for a
// person and still far below a redial loop or a dialler. A limit sets a
// soft block, a challenge a person answers with two key presses, never a
// rejection; only failing challenges again and again (what a bot does)
// hardens it.
type Config struct {
	// LimitHour: a call that makes the caller's calls in the last hour
	// (itself included) more than LimitHour breaks the hourly limit. 0
	// disables the rule. Default 5: five calls in an hour is a lot for a
	// person with a problem; the sixth is challenged.
	LimitHour int `env:"LIMIT_HOUR" envDefault:"5" desc:"calls in the last hour above which a caller is blocked at GUARD_LIMIT_LEVEL (0 disables)"`

	// LimitDay: the same over the last day. 0 disables the rule. When both
	// limits are set LimitDay must be at least LimitHour, or the hourly
	// rule could never fire first. Default 20: a busy day for a person
	// (or a small business client) is well under it; a caller over it is
	// a nuisance even when spread out to dodge the hourly limit.
	LimitDay int `env:"LIMIT_DAY" envDefault:"20" desc:"calls in the last day above which a caller is blocked at GUARD_LIMIT_LEVEL (0 disables)"`

	// LimitLevel is the block level a broken limit sets, 1 to 9. Default 3,
	// the seed's automatic block: soft, so the caller is challenged.
	LimitLevel int `env:"LIMIT_LEVEL" envDefault:"3" desc:"block level a broken limit sets (1-5 challenge, 6-9 reject)"`

	// BlockFor is how long an automatic block (limits and escalation) lasts
	// after the last offending event: every call that breaks a limit again
	// pushes the expiry out. Must be positive. Default 24h, one daily
	// window: a nuisance caller who stops is still challenged for a day; a
	// person passes the challenge once and is verified (VerifiedFor).
	BlockFor time.Duration `env:"BLOCK_FOR" envDefault:"24h" desc:"how long an automatic block lasts after the last offending call"`

	// EscalateAfter: this many failed challenges within a day (see Day)
	// raise the caller's block to EscalationLevel. 0 disables escalation.
	// Default 3: a person mistypes once, maybe twice; a bot that cannot
	// hear the code fails every time. A passed challenge resets the count.
	EscalateAfter int `env:"ESCALATE_AFTER" envDefault:"3" desc:"failed challenges within a day that raise the block to GUARD_ESCALATION_LEVEL (0 disables)"`

	// EscalationLevel is the level escalation sets, 1 to 9 and above
	// LimitLevel. Default 6, the lowest hard block: the caller's calls are
	// rejected without being answered.
	EscalationLevel int `env:"ESCALATION_LEVEL" envDefault:"6" desc:"level escalation sets (6 = reject)"`

	// CountAbandoned makes a challenge the caller hung up on count as a
	// failure for escalation. Default false: a person who hangs up on an
	// unexpected recording has not shown they are a bot, and an abandoned
	// challenge cost nothing (it ended inside the unbilled interval).
	CountAbandoned bool `env:"COUNT_ABANDONED" envDefault:"false" desc:"count a challenge the caller hung up on as a failure for escalation"`

	// VerifiedFor is how long a passed challenge lets the caller through a
	// soft block without a new challenge. 0 disables verification. Hard
	// blocks are never bypassed. Default 6h, one sitting of a customer
	// sorting out a problem; short enough that a lucky guess (one in a
	// hundred for a two-digit code) buys a bot little.
	VerifiedFor time.Duration `env:"VERIFIED_FOR" envDefault:"6h" desc:"how long a passed challenge lets a soft-blocked caller through without a new challenge (0 disables)"`

	// Anonymous is the verdict for callers without a usable number
	// (withheld or unparsable, phone.AnonymousKey): pass, challenge or
	// reject. They share one key, so they cannot be counted per person and
	// the limits, escalation and verification do not apply to them; an
	// admin can still whitelist or block the "anonymous" key at run time.
	// Default challenge: some customers hide their number, and a challenge
	// costs them two key presses and a bot nothing billable.
	Anonymous schema.Verdict `env:"ANONYMOUS" envDefault:"challenge" desc:"verdict for withheld or unparsable caller IDs: pass, challenge or reject"`

	// MaxConcurrent: a caller with more than this many calls up at once
	// (the new one included) gets ConcurrentVerdict (concurrent.go). 0
	// disables the rule. Default 0: a person holds one call to a line,
	// but a company's switchboard behind one number may hold several;
	// the right limit depends on who calls.
	MaxConcurrent int `env:"MAX_CONCURRENT_PER_CALLER" envDefault:"0" desc:"calls up at once from one caller above which a new call gets GUARD_CONCURRENT_VERDICT (0 disables)"`

	// ConcurrentVerdict is the verdict of a call over MaxConcurrent:
	// challenge or reject. Default challenge: a dialler holding many calls
	// cannot type the codes, and a person on a second phone can.
	ConcurrentVerdict schema.Verdict `env:"CONCURRENT_VERDICT" envDefault:"challenge" desc:"verdict for a call over GUARD_MAX_CONCURRENT_PER_CALLER: challenge or reject"`
}

// MaxEscalateAfter bounds EscalateAfter, and so the failed challenges a
// State keeps: a caller that fails more often than this in a day without
// being escalated costs no more memory.
const MaxEscalateAfter = 50

// DefaultConfig returns the defaults documented on Config's fields.
func DefaultConfig() Config {
	return Config{
		LimitHour:         5,
		LimitDay:          20,
		LimitLevel:        3,
		BlockFor:          24 * time.Hour,
		EscalateAfter:     3,
		EscalationLevel:   6,
		CountAbandoned:    false,
		VerifiedFor:       6 * time.Hour,
		Anonymous:         schema.Challenge,
		ConcurrentVerdict: schema.Challenge,
	}
}

// Validate reports the first thing wrong with c as a *SettingError, which
// names the Config field so that each edge can say it its own way.
func (c Config) Validate() error {
	level := fmt.Sprintf("%d to %d", schema.MinLevel, schema.MaxLevel)
	switch {
	case c.LimitHour < 0:
		return &SettingError{Field: "LimitHour", Value: c.LimitHour, Kind: WantNonNegative, Want: "0 (off) or more"}
	case c.LimitDay < 0:
		return &SettingError{Field: "LimitDay", Value: c.LimitDay, Kind: WantNonNegative, Want: "0 (off) or more"}
	case c.LimitHour > 0 && c.LimitDay > 0 && c.LimitDay < c.LimitHour:
		return &SettingError{Field: "LimitDay", Value: c.LimitDay, Kind: WantAtLeast, Want: "at least", Other: "LimitHour", OtherValue: c.LimitHour,
			Because: "the hourly limit can never fire"}
	case c.LimitLevel < schema.MinLevel || c.LimitLevel > schema.MaxLevel:
		return &SettingError{Field: "LimitLevel", Value: c.LimitLevel, Kind: WantRange, Min: schema.MinLevel, Max: schema.MaxLevel, Want: level}
	case c.BlockFor <= 0:
		return &SettingError{Field: "BlockFor", Value: c.BlockFor, Kind: WantPositive, Want: "a positive duration"}
	case c.EscalateAfter < 0 || c.EscalateAfter > MaxEscalateAfter:
		return &SettingError{Field: "EscalateAfter", Value: c.EscalateAfter, Kind: WantRange, Min: 0, Max: MaxEscalateAfter, Want: fmt.Sprintf("0 (off) to %d", MaxEscalateAfter)}
	case c.EscalateAfter > 0 && (c.EscalationLevel < schema.MinLevel || c.EscalationLevel > schema.MaxLevel):
		return &SettingError{Field: "EscalationLevel", Value: c.EscalationLevel, Kind: WantRange, Min: schema.MinLevel, Max: schema.MaxLevel, Want: level}
	case c.EscalateAfter > 0 && c.EscalationLevel <= c.LimitLevel:
		return &SettingError{Field: "EscalationLevel", Value: c.EscalationLevel, Kind: WantAbove, Want: "above", Other: "LimitLevel", OtherValue: c.LimitLevel,
			Because: "escalation raises nothing"}
	case c.VerifiedFor < 0:
		return &SettingError{Field: "VerifiedFor", Value: c.VerifiedFor, Kind: WantNonNegative, Want: "0 (off) or a positive duration"}
	case !c.Anonymous.Valid():
		return &SettingError{Field: "Anonymous", Value: c.Anonymous, Kind: WantOneOf, Want: "pass, challenge or reject"}
	case c.MaxConcurrent < 0:
		return &SettingError{Field: "MaxConcurrent", Value: c.MaxConcurrent, Kind: WantNonNegative, Want: "0 (off) or more"}
	case c.MaxConcurrent > 0 && c.ConcurrentVerdict != schema.Challenge && c.ConcurrentVerdict != schema.Reject:
		return &SettingError{Field: "ConcurrentVerdict", Value: c.ConcurrentVerdict, Kind: WantOneOf, Want: "challenge or reject"}
	}
	return nil
}

// WantKind is the rule a setting broke.
type WantKind string

// The rules of SettingError.Kind.
const (
	WantNonNegative WantKind = "non-negative" // 0 (off) or more; for a duration, 0 (off) or positive
	WantPositive    WantKind = "positive"     // a positive duration
	WantRange       WantKind = "range"        // Min to Max
	WantOneOf       WantKind = "one-of"       // one of the verdicts Want lists
	WantAtLeast     WantKind = "at-least"     // at least Other
	WantAbove       WantKind = "above"        // above Other
)

// SettingError is the error of Validate: which setting breaks which rule,
// so that each edge can name the setting as its users set it (the
// environment variable, the command-line flag) while the message stays the
// policy's. It wraps ErrConfig.
type SettingError struct {
	// Field is the Config field at fault ("LimitDay"); Value its value.
	Field string
	Value any
	// Want says what Field should be: a range ("0 (off) or more"), or,
	// when Other is set, how it must compare with Other ("at least").
	Want string
	// Kind is the rule Want states, for edges that say it in another
	// language; Min and Max bound a WantRange.
	Kind     WantKind
	Min, Max int
	// Other and OtherValue name the second setting of a rule between two,
	// and Because says what breaking it would mean.
	Other      string
	OtherValue any
	Because    string
}

// Message is the error with each setting named by name (given a Config
// field name).
func (e *SettingError) Message(name func(field string) string) string {
	if e.Other == "" {
		return fmt.Sprintf("%s is %s, want %s", name(e.Field), show(e.Value), e.Want)
	}
	return fmt.Sprintf("%s (%s) must be %s %s (%s), or %s", name(e.Field), show(e.Value), e.Want, name(e.Other), show(e.OtherValue), e.Because)
}

// Error names the settings in kebab case, as the replay settings do
// ("limit-hour").
func (e *SettingError) Error() string {
	return ErrConfig.Error() + ": " + e.Message(SettingName)
}

func (e *SettingError) Unwrap() error { return ErrConfig }

// SettingName is the kebab-case name of Config field field, derived from
// its env tag (LIMIT_HOUR: limit-hour): the name of its command-line flag
// and replay setting. A name that is no field is returned as is.
func SettingName(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// show quotes a text value, so that an empty or odd one is visible.
func show(v any) string {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return strconv.Quote(rv.String())
	}
	return fmt.Sprint(v)
}

// keepIDs is how many of the newest call IDs the state keeps: enough to
// name every call that broke either limit when it first breaks (limit+1).
func (c Config) keepIDs() int { return max(c.LimitHour, c.LimitDay) + 1 }
