package policy

import (
	"errors"
	"fmt"
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
}

// MaxEscalateAfter bounds EscalateAfter, and so the failed challenges a
// State keeps: a caller that fails more often than this in a day without
// being escalated costs no more memory.
const MaxEscalateAfter = 50

// DefaultConfig returns the defaults documented on Config's fields.
func DefaultConfig() Config {
	return Config{
		LimitHour:       5,
		LimitDay:        20,
		LimitLevel:      3,
		BlockFor:        24 * time.Hour,
		EscalateAfter:   3,
		EscalationLevel: 6,
		CountAbandoned:  false,
		VerifiedFor:     6 * time.Hour,
		Anonymous:       schema.Challenge,
	}
}

// Validate reports the first thing wrong with c, naming the field the way
// its environment variable does.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.LimitHour < 0:
		return bad("limit-hour is %d, want 0 (off) or more", c.LimitHour)
	case c.LimitDay < 0:
		return bad("limit-day is %d, want 0 (off) or more", c.LimitDay)
	case c.LimitHour > 0 && c.LimitDay > 0 && c.LimitDay < c.LimitHour:
		return bad("limit-day (%d) must be at least limit-hour (%d), or the hourly limit can never fire", c.LimitDay, c.LimitHour)
	case c.LimitLevel < schema.MinLevel || c.LimitLevel > schema.MaxLevel:
		return bad("limit-level is %d, want %d to %d", c.LimitLevel, schema.MinLevel, schema.MaxLevel)
	case c.BlockFor <= 0:
		return bad("block-for is %v, want a positive duration", c.BlockFor)
	case c.EscalateAfter < 0 || c.EscalateAfter > MaxEscalateAfter:
		return bad("escalate-after is %d, want 0 (off) to %d", c.EscalateAfter, MaxEscalateAfter)
	case c.EscalateAfter > 0 && (c.EscalationLevel < schema.MinLevel || c.EscalationLevel > schema.MaxLevel):
		return bad("escalation-level is %d, want %d to %d", c.EscalationLevel, schema.MinLevel, schema.MaxLevel)
	case c.EscalateAfter > 0 && c.EscalationLevel <= c.LimitLevel:
		return bad("escalation-level (%d) must be above limit-level (%d), or escalation raises nothing", c.EscalationLevel, c.LimitLevel)
	case c.VerifiedFor < 0:
		return bad("verified-for is %v, want 0 (off) or a positive duration", c.VerifiedFor)
	case !c.Anonymous.Valid():
		return bad("anonymous is %q, want pass, challenge or reject", c.Anonymous)
	}
	return nil
}

// keepIDs is how many of the newest call IDs the state keeps: enough to
// name every call that broke either limit when it first breaks (limit+1).
func (c Config) keepIDs() int { return max(c.LimitHour, c.LimitDay) + 1 }
