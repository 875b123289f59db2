// Package lists is the blacklist and the whitelist: every number with a
// block in force (level, kind, rule, since, expiry, who and why) and every
// whitelisted number (since, expiry, who and why), folded from the caller
// streams, with paging, filters and CSV export. Package importer imports
// a whitelist from CSV through the caller grains.
//
// Fold is the pure core: a caller's Standing and one event in, the new
// Standing out. Projection keeps the Standings in the runner's database
// (package runner) and the queries read them. A block or entry whose
// expiry has passed counts as expired at query time, before the caller's
// grain gets round to writing BlockExpired or WhitelistExpired (it does
// so at the caller's next call, command or expiry timer): lists answer
// what is in force now, by the injected clock.
package lists

import (
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Block is a block on a number, as its events set it.
type Block struct {
	Level int              `json:"level"`
	Kind  schema.BlockKind `json:"kind"`
	Rule  schema.Rule      `json:"rule"`
	// Since is when the block was applied.
	Since time.Time `json:"since"`
	// Until is when it ends by itself (extended by later offending calls
	// for automatic blocks); nil for a block that lasts until lifted.
	Until *time.Time `json:"until,omitempty"`
	// By and Reason are the admin and the reason of a manual block, or
	// "policy" and the broken rule in words for an automatic one.
	By     string `json:"by"`
	Reason string `json:"reason"`
	// CommandID is the admin command of a manual block; CallID the call
	// that set an automatic one.
	CommandID string `json:"commandId,omitempty"`
	CallID    string `json:"callId,omitempty"`
}

// Whitelisting is a number's whitelist entry.
type Whitelisting struct {
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until,omitempty"`
	By        string     `json:"by"`
	Reason    string     `json:"reason"`
	CommandID string     `json:"commandId,omitempty"`
}

// Standing is what the lists know of one number: its block and its
// whitelist entry, either or both nil. A whitelisted number's block stays
// recorded (the policy keeps it, without effect) until it is lifted or
// runs out.
type Standing struct {
	Block     *Block        `json:"block,omitempty"`
	Whitelist *Whitelisting `json:"whitelist,omitempty"`
}

// Empty reports whether the number is on neither list.
func (s Standing) Empty() bool { return s.Block == nil && s.Whitelist == nil }

// Fold returns s after event p of the number's stream. p is a schema
// payload, as a value or as the pointer events.Registry.Decode returns;
// payloads the lists do not fold leave s as it is. Fold never changes
// the Block or Whitelisting s points to: it replaces them.
func Fold(s Standing, p schema.Payload) Standing {
	switch e := schema.Value(p).(type) {
	case schema.BlockApplied:
		s.Block = &Block{
			Level: e.Level, Kind: e.Kind, Rule: e.Rule, Since: e.At, Until: clone(e.Until),
			By: e.By, Reason: e.Why, CommandID: e.CommandID, CallID: e.CallID,
		}
	case schema.CallReceived:
		// An offending call under an automatic block pushes its expiry
		// out; the event carries the new expiry (see policy.Apply).
		if e.BlockUntil != nil && s.Block != nil && s.Block.Kind == schema.Auto {
			b := *s.Block
			b.Until = clone(e.BlockUntil)
			s.Block = &b
		}
	case schema.BlockLifted, schema.BlockExpired:
		s.Block = nil
	case schema.Whitelisted:
		s.Whitelist = &Whitelisting{Since: e.At, Until: clone(e.Until), By: e.By, Reason: e.Why, CommandID: e.CommandID}
	case schema.Unwhitelisted, schema.WhitelistExpired:
		s.Whitelist = nil
	}
	return s
}

// Folds reports whether Fold may change a Standing for an event of type
// typ; the projection skips the others without decoding them.
func Folds(typ string) bool {
	switch typ {
	case schema.TypeBlockApplied, schema.TypeBlockLifted, schema.TypeBlockExpired,
		schema.TypeWhitelisted, schema.TypeUnwhitelisted, schema.TypeWhitelistExpired,
		schema.TypeCallReceived:
		return true
	}
	return false
}

// Expired reports whether an expiry has passed at now: an entry ends at
// its expiry, as the policy's own check (until <= now) has it.
func Expired(until *time.Time, now time.Time) bool {
	return until != nil && !until.After(now)
}

// InForce returns s as it stands at now: a block or whitelist entry whose
// expiry has passed is dropped.
func (s Standing) InForce(now time.Time) Standing {
	if s.Block != nil && Expired(s.Block.Until, now) {
		s.Block = nil
	}
	if s.Whitelist != nil && Expired(s.Whitelist.Until, now) {
		s.Whitelist = nil
	}
	return s
}

func clone(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := *t
	return &u
}
