// Package rules keeps the range rules (whitelist and block by E.164 prefix
// or range of numbers) as an immutable table that every node folds from
// the rules stream (schema.RulesStream) and swaps atomically, so that a
// decision looks up the rules matching its caller in memory, in time
// proportional to the number's length, without reading the store.
//
// Range rules are policy data, not one caller's state: a rule about
// +7999123… concerns callers whose grains may not exist yet, so it cannot
// live in a caller's stream. One stream holds them; admin commands append
// to it with the revision they checked (Check, then events.ExactRevision),
// so two admins cannot both add the same rule.
package rules

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

var (
	// ErrExists means the list already has a rule for that range.
	ErrExists = errors.New("range rule exists")
	// ErrNotFound means the list has no rule for that range.
	ErrNotFound = errors.New("no such range rule")
	// ErrInvalid means a command or event is malformed.
	ErrInvalid = errors.New("invalid range rule")
)

// Rule is one range rule in force (or past its expiry, until removed).
type Rule struct {
	Range schema.Range
	List  schema.RangeList
	// Level is the block level (0 on the whitelist).
	Level int
	Since time.Time
	// Until is the rule's expiry (exclusive); zero for none.
	Until     time.Time
	CommandID string
	By, Why   string
}

// ActiveAt reports whether r is in force at t.
func (r Rule) ActiveAt(t time.Time) bool { return r.Until.IsZero() || t.Before(r.Until) }

// Match is r as a decision records it.
func (r Rule) Match() schema.RangeMatch {
	m := schema.RangeMatch{Range: r.Range.String(), List: r.List, Level: r.Level, Since: r.Since, By: r.By, Why: r.Why}
	if !r.Until.IsZero() {
		u := r.Until
		m.Until = &u
	}
	return m
}

type ruleKey struct {
	list schema.RangeList
	rng  string
}

// Table is the range rules at one revision of the rules stream. It is
// immutable: Fold returns a new Table, so readers need no lock.
type Table struct {
	// Revision is the revision of the last event folded, -1 for none.
	revision int64
	rules    map[ruleKey]Rule
	root     *node
	// cmds maps the command IDs folded to their revision, so that a
	// retried command is answered as a repeat.
	cmds map[string]uint64

	// Per-line settings and schedules (settings.go); schedOrder is the
	// schedules by name.
	lines      map[string]LineSettings
	schedules  map[string]Schedule
	schedOrder []Schedule
	// origin are the origin rules (origin.go).
	origin map[originKey]OriginRule
}

// node is a prefix-tree node: child per digit, and the rules whose
// numbers all start with the node's path (schema.Range.Common).
type node struct {
	next  [10]*node
	rules []Rule
}

// Empty is the table before any rule.
func Empty() *Table {
	return &Table{revision: -1, rules: map[ruleKey]Rule{}, root: &node{}, cmds: map[string]uint64{},
		lines: map[string]LineSettings{}, schedules: map[string]Schedule{}}
}

// applied returns the revision of the event command id wrote, if folded.
func (t *Table) applied(id string) (uint64, bool) {
	r, ok := t.cmds[id]
	return r, ok
}

// Revision is the rules stream's revision the table has folded, and false
// when it has folded none (the stream does not exist).
func (t *Table) Revision() (uint64, bool) {
	if t.revision < 0 {
		return 0, false
	}
	return uint64(t.revision), true
}

// Len is the number of rules in the table, expired ones included.
func (t *Table) Len() int { return len(t.rules) }

// Rules lists the rules, whitelist first, then by range.
func (t *Table) Rules() []Rule {
	out := make([]Rule, 0, len(t.rules))
	for _, r := range t.rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].List != out[j].List {
			return out[i].List == schema.RangeWhitelist
		}
		return out[i].Range.String() < out[j].Range.String()
	})
	return out
}

// Get returns the rule of rng on list.
func (t *Table) Get(list schema.RangeList, rng string) (Rule, bool) {
	r, ok := t.rules[ruleKey{list, rng}]
	return r, ok
}

// Lookup returns the rules matching the E.164 key that are in force at
// now: the most specific whitelist rule, then the most specific block
// rule, each when there is one. More specific is fewer numbers of the
// key's length (a longer prefix, a narrower range); between two blocks of
// one size the higher level wins. It walks the key's digits once: its cost
// is the key's length and the few rules kept on that path. A key that is
// not E.164 (the anonymous key) matches nothing.
func (t *Table) Lookup(key string, now time.Time) []schema.RangeMatch {
	if len(t.rules) == 0 || len(key) < 2 || key[0] != '+' {
		return nil
	}
	for i := 1; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return nil
		}
	}
	digits := len(key) - 1
	var wl, bl *Rule
	var wlSize, blSize uint64
	consider := func(n *node) {
		for i := range n.rules {
			r := &n.rules[i]
			if !r.Range.Contains(key) || !r.ActiveAt(now) {
				continue
			}
			size := r.Range.Size(digits)
			switch r.List {
			case schema.RangeWhitelist:
				if wl == nil || size < wlSize {
					wl, wlSize = r, size
				}
			case schema.RangeBlock:
				if bl == nil || size < blSize || (size == blSize && r.Level > bl.Level) {
					bl, blSize = r, size
				}
			}
		}
	}
	n := t.root
	consider(n) // "+" itself
	for i := 1; i < len(key) && n != nil; i++ {
		n = n.next[key[i]-'0']
		if n != nil {
			consider(n)
		}
	}
	var out []schema.RangeMatch
	if wl != nil {
		out = append(out, wl.Match())
	}
	if bl != nil {
		out = append(out, bl.Match())
	}
	return out
}

// Fold returns the table with ev (a payload of the rules stream, value or
// pointer) folded at stream revision rev. The table itself is unchanged.
// An event at or below the table's revision is already folded and gives t
// back, so a catch-up that overlaps what was read needs no care.
func (t *Table) Fold(rev uint64, ev schema.Payload) (*Table, error) {
	if t.revision >= 0 && rev <= uint64(t.revision) {
		return t, nil
	}
	f := t.folder()
	if err := f.fold(rev, ev); err != nil {
		return nil, err
	}
	return f.table(), nil
}

// folder folds events into maps of its own, so that a whole stream is
// folded with one table built at the end (Read), not one per event.
type folder struct {
	rev       int64
	rules     map[ruleKey]Rule
	cmds      map[string]uint64
	lines     map[string]LineSettings
	schedules map[string]Schedule
	origin    map[originKey]OriginRule
}

// folder returns a folder starting from t's rules (copied: t is
// immutable).
func (t *Table) folder() *folder {
	f := &folder{rev: t.revision, rules: make(map[ruleKey]Rule, len(t.rules)+1), cmds: make(map[string]uint64, len(t.cmds)+1)}
	for k, r := range t.rules {
		f.rules[k] = r
	}
	for k, r := range t.cmds {
		f.cmds[k] = r
	}
	f.lines = make(map[string]LineSettings, len(t.lines)+1)
	for k, l := range t.lines {
		f.lines[k] = l
	}
	f.schedules = make(map[string]Schedule, len(t.schedules)+1)
	for k, sc := range t.schedules {
		f.schedules[k] = sc
	}
	f.origin = maps.Clone(t.origin)
	return f
}

func (f *folder) fold(rev uint64, ev schema.Payload) error {
	if f.rev >= 0 && rev <= uint64(f.rev) {
		return nil
	}
	switch e := schema.Value(ev).(type) {
	case schema.RangeWhitelisted:
		r, err := schema.ParseRange(e.Range)
		if err != nil {
			return fmt.Errorf("rules: fold %s at %d: %w: %v", e.EventType(), rev, ErrInvalid, err)
		}
		f.rules[ruleKey{schema.RangeWhitelist, e.Range}] = Rule{
			Range: r, List: schema.RangeWhitelist, Since: e.At, Until: deref(e.Until), CommandID: e.CommandID, By: e.By, Why: e.Why,
		}
		f.cmds[e.CommandID] = rev
	case schema.RangeBlocked:
		r, err := schema.ParseRange(e.Range)
		if err != nil {
			return fmt.Errorf("rules: fold %s at %d: %w: %v", e.EventType(), rev, ErrInvalid, err)
		}
		f.rules[ruleKey{schema.RangeBlock, e.Range}] = Rule{
			Range: r, List: schema.RangeBlock, Level: e.Level, Since: e.At, Until: deref(e.Until), CommandID: e.CommandID, By: e.By, Why: e.Why,
		}
		f.cmds[e.CommandID] = rev
	case schema.RangeRemoved:
		delete(f.rules, ruleKey{e.List, e.Range})
		f.cmds[e.CommandID] = rev
	default:
		known, err := f.foldSettings(rev, schema.Value(ev))
		if err != nil {
			return err
		}
		if known {
			f.cmds[commandID(schema.Value(ev))] = rev
			break
		}
		// An origin rule (origin.go), or a later feature's event in the
		// rules stream: skipped, but the revision counts as folded.
		f.foldOrigin(rev, ev)
	}
	delete(f.cmds, "")
	f.rev = int64(rev)
	return nil
}

func (f *folder) table() *Table {
	t := build(f.rev, f.rules, f.cmds)
	t.lines, t.schedules = f.lines, f.schedules
	for _, sc := range f.schedules {
		t.schedOrder = append(t.schedOrder, sc)
	}
	sort.Slice(t.schedOrder, func(i, j int) bool { return t.schedOrder[i].Name < t.schedOrder[j].Name })
	t.origin = f.origin
	return t
}

func commandID(p schema.Payload) string {
	switch e := p.(type) {
	case schema.LineSettingsSet:
		return e.CommandID
	case schema.LineSettingsCleared:
		return e.CommandID
	case schema.ScheduleAdded:
		return e.CommandID
	case schema.ScheduleRemoved:
		return e.CommandID
	}
	return ""
}

func build(rev int64, rules map[ruleKey]Rule, cmds map[string]uint64) *Table {
	t := &Table{revision: rev, rules: rules, root: &node{}, cmds: cmds}
	for _, r := range rules {
		n := t.root
		for _, c := range r.Range.Common()[1:] {
			d := c - '0'
			if n.next[d] == nil {
				n.next[d] = &node{}
			}
			n = n.next[d]
		}
		n.rules = append(n.rules, r)
	}
	return t
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// Command is an admin's change to the range rules.
type Command struct {
	List schema.RangeList
	// Range is the rule's text in stored form (schema.ParseRange); edges
	// normalise people's spellings first.
	Range string
	// Level is the block level (block list only).
	Level int
	// Until is the rule's expiry; zero for none.
	Until     time.Time
	CommandID string
	By, Why   string
}

// Add checks the command adding cmd's rule to t at now and returns the
// event recording it, or nil when t already holds that very command (a
// retry: nothing to append). A rule of the same range in force on the
// same list is ErrExists: remove it first, so that a rule is never
// replaced by accident. One that has expired may be set again.
func (t *Table) Add(cmd Command, now time.Time) (*schema.Record, error) {
	if err := check(cmd.List, cmd.Range, cmd.By, cmd.Why); err != nil {
		return nil, err
	}
	if cur, ok := t.Get(cmd.List, cmd.Range); ok {
		if cmd.CommandID != "" && cur.CommandID == cmd.CommandID {
			return nil, nil
		}
		if cur.ActiveAt(now) {
			return nil, fmt.Errorf("rules: %s %s: %w (set %s by %s: %s); remove it first", cmd.List, cmd.Range, ErrExists,
				cur.Since.Format(time.RFC3339), cur.By, cur.Why)
		}
	}
	at := schema.UTC(now)
	var until *time.Time
	if !cmd.Until.IsZero() {
		if !cmd.Until.After(now) {
			return nil, fmt.Errorf("rules: %w: until %s is not after now", ErrInvalid, cmd.Until.UTC().Format(time.RFC3339))
		}
		u := schema.UTC(cmd.Until)
		until = &u
	}
	var p schema.Payload
	switch cmd.List {
	case schema.RangeWhitelist:
		if cmd.Level != 0 {
			return nil, fmt.Errorf("rules: %w: a whitelist rule has no level", ErrInvalid)
		}
		p = schema.RangeWhitelisted{Range: cmd.Range, At: at, Until: until, CommandID: cmd.CommandID, By: cmd.By, Why: cmd.Why}
	default:
		if cmd.Level < schema.MinLevel || cmd.Level > schema.MaxLevel {
			return nil, fmt.Errorf("rules: %w: level is %d, want %d to %d", ErrInvalid, cmd.Level, schema.MinLevel, schema.MaxLevel)
		}
		p = schema.RangeBlocked{Range: cmd.Range, Level: cmd.Level, At: at, Until: until, CommandID: cmd.CommandID, By: cmd.By, Why: cmd.Why}
	}
	return &schema.Record{ID: schema.RuleEventID(cmd.CommandID), Payload: p}, nil
}

// Remove checks the command removing the rule of rng from list at now and
// returns the event recording it. A rule that is not there is ErrNotFound.
func (t *Table) Remove(list schema.RangeList, rng, commandID, by, why string, now time.Time) (*schema.Record, error) {
	if err := check(list, rng, by, why); err != nil {
		return nil, err
	}
	if _, ok := t.Get(list, rng); !ok {
		return nil, fmt.Errorf("rules: %s %s: %w", list, rng, ErrNotFound)
	}
	return &schema.Record{ID: schema.RuleEventID(commandID), Payload: schema.RangeRemoved{
		Range: rng, List: list, At: schema.UTC(now), CommandID: commandID, By: by, Why: why,
	}}, nil
}

func check(list schema.RangeList, rng, by, why string) error {
	if !list.Valid() {
		return fmt.Errorf("rules: %w: list %q, want whitelist or block", ErrInvalid, list)
	}
	if _, err := schema.ParseRange(rng); err != nil {
		return fmt.Errorf("rules: %w: %v", ErrInvalid, err)
	}
	for _, f := range []struct{ name, s string }{{"by", by}, {"why", why}} {
		if err := schema.CheckCommandText(f.name, f.s); err != nil {
			return fmt.Errorf("rules: %w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// Expected is what an append of a command checked against t expects of
// the rules stream: the revision t folded, or no stream. A writer whose
// table is stale gets a conflict, reads again and checks again.
func (t *Table) Expected() events.Expected {
	r, ok := t.Revision()
	return events.ExactOrNoStream(r, ok)
}
