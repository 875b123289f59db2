package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// table folds cmds (adds) into a table, in order.
func table(t *testing.T, cmds ...Command) *Table {
	t.Helper()
	tb := Empty()
	for i, c := range cmds {
		if c.By == "" {
			c.By, c.Why = "alice", "test"
		}
		if c.CommandID == "" {
			c.CommandID = c.Range + string(c.List)
		}
		rec, err := tb.Add(c, t0)
		if err != nil {
			t.Fatalf("add %+v: %v", c, err)
		}
		if tb, err = tb.Fold(uint64(i), rec.Payload); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func block(rng string, level int) Command {
	return Command{List: schema.RangeBlock, Range: rng, Level: level}
}

func white(rng string) Command { return Command{List: schema.RangeWhitelist, Range: rng} }

func TestLookup(t *testing.T) {
	tb := table(t,
		block("+7999", 3),
		block("+7999123", 7),
		block("+79991230000-+79991230099", 2),
		block("+79991230000-+79991239999", 5), // as many 11-digit numbers as +7999123: the higher level wins the tie
		white("+7999123456"),
		white("+79991230050-+79991230059"),
		block("+44", 9),
	)
	tests := []struct {
		key      string
		wl, bl   string
		blLevel  int
		nMatches int
	}{
		{key: "+79990000000", bl: "+7999", blLevel: 3, nMatches: 1},
		{key: "+79991235555", bl: "+7999123", blLevel: 7, nMatches: 1},
		{key: "+79991230042", bl: "+79991230000-+79991230099", blLevel: 2, nMatches: 1},
		{key: "+79991230055", wl: "+79991230050-+79991230059", bl: "+79991230000-+79991230099", blLevel: 2, nMatches: 2},
		{key: "+79991234567", wl: "+7999123456", bl: "+7999123", blLevel: 7, nMatches: 2},
		{key: "+799912300420", bl: "+7999123", blLevel: 7, nMatches: 1}, // 12 digits: not in the 11-digit ranges
		{key: "+447700900123", bl: "+44", blLevel: 9, nMatches: 1},
		{key: "+78005553535", nMatches: 0},
		{key: "anonymous", nMatches: 0},
		{key: "+7999x", nMatches: 0},
	}
	for _, tt := range tests {
		got := tb.Lookup(tt.key, t0)
		if len(got) != tt.nMatches {
			t.Errorf("Lookup(%s) = %+v, want %d matches", tt.key, got, tt.nMatches)
			continue
		}
		var wl, bl string
		var lvl int
		for _, m := range got {
			if m.List == schema.RangeWhitelist {
				wl = m.Range
			} else {
				bl, lvl = m.Range, m.Level
			}
		}
		if wl != tt.wl || bl != tt.bl || lvl != tt.blLevel {
			t.Errorf("Lookup(%s): whitelist %q block %q level %d; want %q %q %d", tt.key, wl, bl, lvl, tt.wl, tt.bl, tt.blLevel)
		}
	}
}

func TestLookupSkipsExpiredRules(t *testing.T) {
	tb := table(t,
		block("+7999", 3),
		Command{List: schema.RangeBlock, Range: "+7999123", Level: 8, Until: t0.Add(time.Hour)},
	)
	if got := tb.Lookup("+79991234567", t0.Add(time.Hour-time.Nanosecond)); len(got) != 1 || got[0].Level != 8 || got[0].Until == nil {
		t.Fatalf("before expiry: %+v, want the level-8 prefix with its until", got)
	}
	// At the expiry the narrower rule no longer applies: the wider one does.
	if got := tb.Lookup("+79991234567", t0.Add(time.Hour)); len(got) != 1 || got[0].Range != "+7999" {
		t.Fatalf("at expiry: %+v, want +7999", got)
	}
}

func TestFoldIsImmutableAndIdempotent(t *testing.T) {
	a := table(t, block("+7999", 3))
	rec, err := a.Remove(schema.RangeBlock, "+7999", "rm1", "bob", "cleared", t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Fold(1, rec.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 1 || len(a.Lookup("+79990000000", t0)) != 1 {
		t.Error("Fold changed the table it was called on")
	}
	if b.Len() != 0 || b.Lookup("+79990000000", t0) != nil {
		t.Errorf("after removal: %d rules", b.Len())
	}
	if again, _ := b.Fold(1, schema.RangeBlocked{Range: "+7999", Level: 3}); again != b {
		t.Error("an event at a folded revision was folded again")
	}
	if r, ok := b.Revision(); !ok || r != 1 {
		t.Errorf("revision %d %v, want 1", r, ok)
	}
}

func TestCommands(t *testing.T) {
	tb := table(t, block("+7999123", 7), Command{List: schema.RangeWhitelist, Range: "+7495", Until: t0.Add(time.Minute)})
	tests := []struct {
		name    string
		cmd     Command
		now     time.Time
		wantErr error
		say     string
		noop    bool
	}{
		{name: "same block again", cmd: block("+7999123", 5), now: t0, wantErr: ErrExists, say: "remove it first"},
		{name: "same command retried", cmd: Command{List: schema.RangeBlock, Range: "+7999123", Level: 7, CommandID: "+7999123block"}, now: t0, noop: true},
		{name: "whitelist beside a block", cmd: white("+7999123"), now: t0},
		{name: "expired rule set again", cmd: white("+7495"), now: t0.Add(time.Minute)},
		{name: "level 0", cmd: block("+7998", 0), now: t0, wantErr: ErrInvalid, say: "level is 0"},
		{name: "level 10", cmd: block("+7998", 10), now: t0, wantErr: ErrInvalid, say: "want 1 to 9"},
		{name: "whitelist with level", cmd: Command{List: schema.RangeWhitelist, Range: "+7998", Level: 3}, now: t0, wantErr: ErrInvalid},
		{name: "malformed", cmd: block("7998", 3), now: t0, wantErr: ErrInvalid, say: "not a number prefix or range"},
		{name: "until in the past", cmd: Command{List: schema.RangeBlock, Range: "+7998", Level: 3, Until: t0}, now: t0, wantErr: ErrInvalid, say: "not after now"},
		{name: "no list", cmd: Command{Range: "+7998", Level: 3}, now: t0, wantErr: ErrInvalid},
		{name: "why with a newline", cmd: Command{List: schema.RangeBlock, Range: "+7998", Level: 3, Why: "a\nb"}, now: t0, wantErr: ErrInvalid, say: "why must be one line"},
	}
	for _, tt := range tests {
		c := tt.cmd
		if c.By == "" {
			c.By = "alice"
		}
		if c.Why == "" {
			c.Why = "test"
		}
		rec, err := tb.Add(c, tt.now)
		switch {
		case tt.wantErr != nil:
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.say) {
				t.Errorf("%s: err %v, want %v saying %q", tt.name, err, tt.wantErr, tt.say)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.noop != (rec == nil):
			t.Errorf("%s: record %+v, want none: %v", tt.name, rec, tt.noop)
		}
	}
	if _, err := tb.Remove(schema.RangeWhitelist, "+7999123", "k", "bob", "x", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a rule not there: %v", err)
	}
}

func FuzzLookup(f *testing.F) {
	f.Add("+7999123", "+79991230000-+79991239999", "+79991234567")
	f.Fuzz(func(t *testing.T, a, b, key string) {
		tb := Empty()
		rev := uint64(0)
		for _, c := range []Command{block(a, 5), white(b), block(b, 9)} {
			c.By, c.Why, c.CommandID = "f", "f", c.Range+string(c.List)
			rec, err := tb.Add(c, t0)
			if err != nil || rec == nil {
				continue
			}
			if tb, err = tb.Fold(rev, rec.Payload); err != nil {
				t.Fatal(err)
			}
			rev++
		}
		for _, m := range tb.Lookup(key, t0) {
			r, err := schema.ParseRange(m.Range)
			if err != nil || !r.Contains(key) {
				t.Fatalf("Lookup(%q) matched %q, which does not contain it", key, m.Range)
			}
		}
		// Whatever a brute-force scan finds, the walk finds too; keys that
		// are not E.164 (the anonymous key) match nothing.
		if _, err := schema.ParseRange(key); err != nil {
			if got := tb.Lookup(key, t0); got != nil {
				t.Fatalf("Lookup(%q) of a key that is not E.164 matched %+v", key, got)
			}
			return
		}
		for _, r := range tb.Rules() {
			if r.Range.Contains(key) && len(tb.Lookup(key, t0)) == 0 {
				t.Fatalf("Lookup(%q) missed %s", key, r.Range)
			}
		}
	})
}
