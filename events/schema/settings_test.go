package schema

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	tests := []struct {
		days, from, to string
		want           []string
		wantErr        string
	}{
		{days: "", from: "22:00", to: "07:00"},
		{days: "mon-fri", from: "09:00", to: "18:00", want: []string{"mon", "tue", "wed", "thu", "fri"}},
		{days: "sat,sun", from: "00:00", to: "00:00", want: []string{"sat", "sun"}},
		{days: "fri-mon", from: "00:00", to: "24:00", want: []string{"mon", "fri", "sat", "sun"}},
		{days: "mon-sun", from: "01:00", to: "02:00"},
		{days: "Sun,MON", from: "01:00", to: "02:00", want: []string{"mon", "sun"}},
		{days: "", from: "24:00", to: "07:00", wantErr: "from"},
		{days: "", from: "7:00", to: "08:00", wantErr: "want HH:MM"},
		{days: "", from: "07:00", to: "08:60", wantErr: "to"},
		{days: "weekend", from: "07:00", to: "08:00", wantErr: "days"},
		{days: "mon-", from: "07:00", to: "08:00", wantErr: "days"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.days, tt.from, tt.to)
		if tt.wantErr != "" {
			if !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseWindow(%q, %q, %q) = %v, %v; want an error about %s", tt.days, tt.from, tt.to, w, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(w.Days, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParseWindow(%q, %q, %q) = %v, %v; want days %v", tt.days, tt.from, tt.to, w, err, tt.want)
		}
		if err := w.Check(); err != nil {
			t.Errorf("%v.Check() = %v", w, err)
		}
	}
}

func TestWindowContains(t *testing.T) {
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	ber, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// 2025-03-07 is a Friday.
	at := func(loc *time.Location, day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, loc) }
	tests := []struct {
		name string
		days string
		from string
		to   string
		loc  *time.Location
		t    time.Time
		want bool
	}{
		{"night, before", "", "22:00", "07:00", msk, at(msk, 7, 21, 59), false},
		{"night, start", "", "22:00", "07:00", msk, at(msk, 7, 22, 0), true},
		{"night, after midnight", "", "22:00", "07:00", msk, at(msk, 8, 3, 0), true},
		{"night, end exclusive", "", "22:00", "07:00", msk, at(msk, 8, 7, 0), false},
		{"friday night holds saturday 03:00", "fri", "22:00", "07:00", msk, at(msk, 8, 3, 0), true},
		{"friday night not thursday's", "fri", "22:00", "07:00", msk, at(msk, 7, 3, 0), false},
		{"whole day", "sat,sun", "00:00", "00:00", msk, at(msk, 8, 12, 0), true},
		{"whole day ends", "sat,sun", "00:00", "00:00", msk, at(msk, 10, 0, 0), false},
		{"to 24:00", "", "18:00", "24:00", msk, at(msk, 7, 23, 59), true},
		{"to 24:00 ends", "", "18:00", "24:00", msk, at(msk, 8, 0, 0), false},
		{"zone, not UTC", "", "09:00", "10:00", msk, time.Date(2025, 3, 7, 6, 30, 0, 0, time.UTC), true},
		// 2025-03-30 02:00 CET jumps to 03:00 CEST: 01:00-04:00 is two hours.
		{"dst, before", "sun", "01:00", "04:00", ber, time.Date(2025, 3, 29, 23, 59, 0, 0, time.UTC), false},
		{"dst, in", "sun", "01:00", "04:00", ber, time.Date(2025, 3, 30, 1, 59, 0, 0, time.UTC), true},
		{"dst, out after two hours", "sun", "01:00", "04:00", ber, time.Date(2025, 3, 30, 2, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.days, tt.from, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Contains(tt.t, tt.loc); got != tt.want {
			t.Errorf("%s: %v.Contains(%s) = %t, want %t", tt.name, w, tt.t.In(tt.loc), got, tt.want)
		}
	}
}

func TestSettingsCheck(t *testing.T) {
	neg, lvl, zero := -1, 10, time.Duration(0)
	bad := Verdict("maybe")
	negRate, nan, huge := -0.5, math.NaN(), 2e6
	for _, s := range []Settings{{}, {LimitHour: &neg}, {LimitDay: &neg}, {LimitLevel: &lvl}, {BlockFor: &zero}, {Anonymous: &bad},
		{AttackRate: &negRate}, {AttackRate: &nan}, {AttackRate: &huge}} {
		if err := s.Check(); !errors.Is(err, ErrSettings) {
			t.Errorf("%+v.Check() = %v, want ErrSettings", s, err)
		}
	}
	two, five := 2, 5
	a := Settings{LimitHour: &two}.Merge(Settings{LimitDay: &five})
	if err := a.Check(); err != nil || a.String() != "limit-hour=2 limit-day=5" {
		t.Errorf("merged %q, %v", a.String(), err)
	}
	// The attack rate: 0 switches detection off on the line; a later
	// override's rate wins; an event without it reads as no override.
	off, thirty := 0.0, 30.0
	r := Settings{AttackRate: &off}.Merge(Settings{LimitHour: &two}).Merge(Settings{AttackRate: &thirty})
	if err := r.Check(); err != nil || r.String() != "limit-hour=2 attack-rate=30" {
		t.Errorf("merged %q, %v", r.String(), err)
	}
	if err := (Settings{AttackRate: &off}).Check(); err != nil {
		t.Errorf("attack-rate 0: %v", err)
	}
	var old Settings
	if err := json.Unmarshal([]byte(`{"limitHour":2}`), &old); err != nil || old.AttackRate != nil {
		t.Errorf("old settings read as %+v, %v", old, err)
	}
}

// FuzzParseWindow: windows come from admins' commands; no input panics,
// and what parses is contained consistently.
func FuzzParseWindow(f *testing.F) {
	f.Add("mon-fri", "22:00", "07:00", int64(0))
	f.Add("sat,sun", "00:00", "24:00", int64(1e9))
	f.Add("", "7:0", "x", int64(-5))
	f.Fuzz(func(t *testing.T, days, from, to string, sec int64) {
		w, err := ParseWindow(days, from, to)
		if err != nil {
			return
		}
		if err := w.Check(); err != nil {
			t.Fatalf("%v parsed but does not check: %v", w, err)
		}
		_ = w.Contains(time.Unix(sec, 0), time.UTC)
		_ = w.String()
	})
}
