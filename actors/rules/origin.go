package rules

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Origin rules: a level for calls from a country (the region of the
// caller's number) or from a type of number (premium rate, invalid, ...),
// kept in the table beside the range rules and folded from the same
// stream. One rule per kind and value: setting it again replaces it.

// OriginRule is one origin rule.
type OriginRule struct {
	Kind  schema.OriginKind
	Value string
	Level int
	Since time.Time
	// Until is the rule's expiry (exclusive); zero for none.
	Until     time.Time
	CommandID string
	By, Why   string
}

// ActiveAt reports whether r is in force at t.
func (r OriginRule) ActiveAt(t time.Time) bool { return r.Until.IsZero() || t.Before(r.Until) }

// Match is r as a decision records it.
func (r OriginRule) Match() schema.OriginMatch {
	m := schema.OriginMatch{Kind: r.Kind, Value: r.Value, Level: r.Level, Since: r.Since, By: r.By, Why: r.Why}
	if !r.Until.IsZero() {
		u := r.Until
		m.Until = &u
	}
	return m
}

type originKey struct {
	kind  schema.OriginKind
	value string
}

// OriginRules lists the origin rules, countries first, then by value.
func (t *Table) OriginRules() []OriginRule {
	out := slices.Collect(maps.Values(t.origin))
	slices.SortFunc(out, func(a, b OriginRule) int {
		if a.Kind != b.Kind {
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// Origin returns the caller key's country and type and the origin rules
// in force at now that match them, or nil when none does (or the table
// has no origin rules: then the number is not even parsed).
func (t *Table) Origin(key string, now time.Time) *schema.Origin {
	if len(t.origin) == 0 {
		return nil
	}
	region, typ := phone.Origin(key)
	if region == "" && typ == "" {
		return nil
	}
	o := &schema.Origin{Country: region, Type: typ}
	for _, k := range []originKey{{schema.OriginCountry, region}, {schema.OriginNumberType, typ}} {
		if r, ok := t.origin[k]; ok && k.value != "" && r.ActiveAt(now) {
			o.Rules = append(o.Rules, r.Match())
		}
	}
	if len(o.Rules) == 0 {
		return nil
	}
	return o
}

func (f *folder) foldOrigin(rev uint64, ev schema.Payload) {
	switch e := schema.Value(ev).(type) {
	case schema.OriginRuleSet:
		if f.origin == nil {
			f.origin = map[originKey]OriginRule{}
		}
		f.origin[originKey{e.Kind, e.Value}] = OriginRule{
			Kind: e.Kind, Value: e.Value, Level: e.Level, Since: e.At, Until: deref(e.Until), CommandID: e.CommandID, By: e.By, Why: e.Why,
		}
		f.cmds[e.CommandID] = rev
	case schema.OriginRuleRemoved:
		delete(f.origin, originKey{e.Kind, e.Value})
		f.cmds[e.CommandID] = rev
	}
}

// OriginCommand is an admin's setting of an origin rule.
type OriginCommand struct {
	Kind schema.OriginKind
	// Value is a region ("AZ", upper case) or a number type
	// ("premium-rate", phone.NumberTypes).
	Value string
	Level int
	// Until is the rule's expiry; zero for none.
	Until     time.Time
	CommandID string
	By, Why   string
}

// CheckOrigin reports what is wrong with an origin rule's kind and value
// (ErrInvalid), naming the values allowed.
func CheckOrigin(kind schema.OriginKind, value string) error {
	switch {
	case kind == schema.OriginCountry && !phone.IsRegion(value):
		return fmt.Errorf("rules: %w: %q is no ISO 3166 region code libphonenumber knows (two capital letters, such as GB or AZ)", ErrInvalid, value)
	case kind == schema.OriginNumberType && !phone.IsNumberType(value):
		return fmt.Errorf("rules: %w: %q is no number type; want one of %s", ErrInvalid, value, strings.Join(phone.NumberTypes(), ", "))
	case !kind.Valid():
		return fmt.Errorf("rules: %w: kind %q, want country or numtype", ErrInvalid, kind)
	}
	return nil
}

// SetOrigin checks cmd against t at now and returns the event recording
// it, or nil for a retry of the command already folded.
func (t *Table) SetOrigin(cmd OriginCommand, now time.Time) (*schema.Record, error) {
	if err := CheckOrigin(cmd.Kind, cmd.Value); err != nil {
		return nil, err
	}
	if err := checkText(cmd.By, cmd.Why); err != nil {
		return nil, err
	}
	if cur, ok := t.origin[originKey{cmd.Kind, cmd.Value}]; ok && cmd.CommandID != "" && cur.CommandID == cmd.CommandID {
		return nil, nil
	}
	if cmd.Level < schema.MinLevel || cmd.Level > schema.MaxLevel {
		return nil, fmt.Errorf("rules: %w: level is %d, want %d to %d", ErrInvalid, cmd.Level, schema.MinLevel, schema.MaxLevel)
	}
	var until *time.Time
	if !cmd.Until.IsZero() {
		if !cmd.Until.After(now) {
			return nil, fmt.Errorf("rules: %w: until %s is not after now", ErrInvalid, cmd.Until.UTC().Format(time.RFC3339))
		}
		u := schema.UTC(cmd.Until)
		until = &u
	}
	return &schema.Record{ID: schema.RuleEventID(cmd.CommandID), Payload: schema.OriginRuleSet{
		Kind: cmd.Kind, Value: cmd.Value, Level: cmd.Level, At: schema.UTC(now), Until: until, CommandID: cmd.CommandID, By: cmd.By, Why: cmd.Why,
	}}, nil
}

// RemoveOrigin checks the removal of the rule of kind and value; a rule
// that is not there is ErrNotFound.
func (t *Table) RemoveOrigin(kind schema.OriginKind, value, commandID, by, why string, now time.Time) (*schema.Record, error) {
	if err := CheckOrigin(kind, value); err != nil {
		return nil, err
	}
	if err := checkText(by, why); err != nil {
		return nil, err
	}
	if _, ok := t.origin[originKey{kind, value}]; !ok {
		return nil, fmt.Errorf("rules: %s %s: %w", kind, value, ErrNotFound)
	}
	return &schema.Record{ID: schema.RuleEventID(commandID), Payload: schema.OriginRuleRemoved{
		Kind: kind, Value: value, At: schema.UTC(now), CommandID: commandID, By: by, Why: why,
	}}, nil
}

// SetOrigin applies cmd (see Table.SetOrigin).
func (w *Writer) SetOrigin(ctx context.Context, cmd OriginCommand) (Applied, error) {
	return w.apply(ctx, cmd.CommandID, func(t *Table, now time.Time) (*schema.Record, error) { return t.SetOrigin(cmd, now) })
}

// RemoveOrigin removes the origin rule of kind and value (see
// Table.RemoveOrigin).
func (w *Writer) RemoveOrigin(ctx context.Context, kind schema.OriginKind, value, commandID, by, why string) (Applied, error) {
	return w.apply(ctx, commandID, func(t *Table, now time.Time) (*schema.Record, error) {
		return t.RemoveOrigin(kind, value, commandID, by, why, now)
	})
}

// Origin is the node's table's Table.Origin.
func (l *Live) Origin(key string, now time.Time) *schema.Origin {
	return l.s.Current().Origin(key, now)
}

// OriginRules lists the node's table's origin rules.
func (l *Live) OriginRules() []OriginRule { return l.s.Current().OriginRules() }
