package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Errors of admin commands that are well formed but do not apply to the
// caller's state. Like ErrInvalid, they produce nothing.
var (
	// ErrWhitelisted: a whitelisted caller cannot be blocked (the whitelist
	// would win anyway); unwhitelist it first.
	ErrWhitelisted = errors.New("caller is whitelisted")
	// ErrNotWhitelisted: unwhitelist of a caller not on the whitelist.
	ErrNotWhitelisted = errors.New("caller is not whitelisted")
	// ErrNotBlocked: unblock of a caller with no block in force.
	ErrNotBlocked = errors.New("caller is not blocked")
)

// MaxText bounds By and Why (see schema.CheckCommandText).
const MaxText = schema.MaxText

// Command is an admin's order about one caller.
type Command struct {
	// ID identifies the command (required). The event's ID derives from
	// it, so a retried request is written once.
	ID string `json:"id"`
	// By names the admin (required), Why says why (required): every change
	// to a caller's standing must be explainable in the audit. Each is one
	// line of at most MaxText characters (schema.CheckCommandText).
	By  string `json:"by"`
	Why string `json:"why"`
	// Until is the optional expiry of a whitelist entry or a block; zero
	// for none. It must be after now.
	Until time.Time `json:"until,omitzero"`
	// Level is the block level, 1 to 9 (Block only).
	Level int `json:"level,omitempty"`
}

// Whitelist puts caller key on the whitelist (or replaces its entry) at
// now. The caller then always passes; its calls are still counted, and a
// block it had stays recorded but has no effect until the entry ends.
func (p *Policy) Whitelist(st *State, key string, cmd Command, now time.Time) ([]schema.Record, error) {
	at, err := p.checkCommand("whitelist", st, key, cmd, now, true)
	if err != nil {
		return nil, err
	}
	v := p.view(st)
	recs := p.expiries(&v, key, at)
	return append(recs, schema.Record{ID: schema.CommandEventID(key, cmd.ID), Payload: schema.Whitelisted{
		At: tm(at), Until: untilPtr(cmd.Until), CommandID: cmd.ID, By: cmd.By, Why: cmd.Why,
	}}), nil
}

// Unwhitelist removes caller key from the whitelist at now. It returns
// ErrNotWhitelisted when the caller is not on it (or its entry ran out).
func (p *Policy) Unwhitelist(st *State, key string, cmd Command, now time.Time) ([]schema.Record, error) {
	at, err := p.checkCommand("unwhitelist", st, key, cmd, now, false)
	if err != nil {
		return nil, err
	}
	v := p.view(st)
	recs := p.expiries(&v, key, at)
	if !v.whitelisted {
		return nil, fmt.Errorf("policy: unwhitelist %s: %w", key, ErrNotWhitelisted)
	}
	return append(recs, schema.Record{ID: schema.CommandEventID(key, cmd.ID), Payload: schema.Unwhitelisted{
		At: tm(at), CommandID: cmd.ID, By: cmd.By, Why: cmd.Why,
	}}), nil
}

// Block sets a manual block at cmd.Level on caller key at now, replacing any
// block in force. Levels 1–5 challenge, 6–9 reject. The block lasts until
// Unblock or cmd.Until; the rules neither raise, extend nor expire it. A
// whitelisted caller gives ErrWhitelisted.
func (p *Policy) Block(st *State, key string, cmd Command, now time.Time) ([]schema.Record, error) {
	if cmd.Level < schema.MinLevel || cmd.Level > schema.MaxLevel {
		return nil, fmt.Errorf("policy: block %s: %w: level %d, want %d to %d (1-5 challenge, 6-9 reject)", key, ErrInvalid, cmd.Level, schema.MinLevel, schema.MaxLevel)
	}
	at, err := p.checkCommand("block", st, key, cmd, now, true)
	if err != nil {
		return nil, err
	}
	v := p.view(st)
	recs := p.expiries(&v, key, at)
	if v.whitelisted {
		return nil, fmt.Errorf("policy: block %s: %w; unwhitelist it first", key, ErrWhitelisted)
	}
	return append(recs, schema.Record{ID: schema.CommandEventID(key, cmd.ID), Payload: schema.BlockApplied{
		Level: cmd.Level, Kind: schema.Manual, Rule: schema.RuleManual, At: tm(at), Until: untilPtr(cmd.Until),
		CommandID: cmd.ID, By: cmd.By, Why: cmd.Why,
	}}), nil
}

// Unblock lifts the block of caller key at now, manual or automatic, and
// gives the caller a fresh start (see schema.BlockLifted). It returns
// ErrNotBlocked when no block is in force.
func (p *Policy) Unblock(st *State, key string, cmd Command, now time.Time) ([]schema.Record, error) {
	at, err := p.checkCommand("unblock", st, key, cmd, now, false)
	if err != nil {
		return nil, err
	}
	v := p.view(st)
	recs := p.expiries(&v, key, at)
	if v.level == 0 {
		return nil, fmt.Errorf("policy: unblock %s: %w", key, ErrNotBlocked)
	}
	return append(recs, schema.Record{ID: schema.CommandEventID(key, cmd.ID), Payload: schema.BlockLifted{
		Level: v.level, Kind: v.kind, At: tm(at), CommandID: cmd.ID, By: cmd.By, Why: cmd.Why,
	}}), nil
}

// checkCommand validates what every command needs and returns the time it
// takes effect: max(now, the latest event folded).
func (p *Policy) checkCommand(verb string, st *State, key string, cmd Command, now time.Time, expiry bool) (int64, error) {
	bad := func(format string, args ...any) (int64, error) {
		return 0, fmt.Errorf("policy: %s %s: %w: %s", verb, key, ErrInvalid, fmt.Sprintf(format, args...))
	}
	at := max(unix(now), st.Last)
	switch {
	case !phone.IsKey(key):
		return 0, fmt.Errorf("policy: %s: %w: caller key %q is not a normalised number (E.164 such as +78005553535, or %q)", verb, ErrInvalid, key, phone.AnonymousKey)
	case cmd.ID == "":
		return bad("command has no ID")
	}
	// The edges check the texts first with the same function, to answer
	// per field; the policy decides, whatever the edge.
	for _, f := range [...]struct{ name, text string }{{"by", cmd.By}, {"why", cmd.Why}} {
		if err := schema.CheckCommandText(f.name, f.text); err != nil {
			return 0, fmt.Errorf("policy: %s %s: %w: %w", verb, key, ErrInvalid, err)
		}
	}
	switch {
	case !expiry && !cmd.Until.IsZero():
		return bad("takes no expiry")
	case !cmd.Until.IsZero() && unix(cmd.Until) <= at:
		return bad("expiry %s is not after now (%s)", schema.UTC(cmd.Until).Format(time.RFC3339), tm(at).Format(time.RFC3339))
	}
	return at, nil
}

func untilPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := schema.UTC(t)
	return &u
}
