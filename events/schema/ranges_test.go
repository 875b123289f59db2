package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{in: "+7999123", want: Range{Lo: "+7999123", Hi: "+7999123", Prefix: true}},
		{in: "+79991230000-+79991239999", want: Range{Lo: "+79991230000", Hi: "+79991239999"}},
		{in: "+79991230000-+79991230000", want: Range{Lo: "+79991230000", Hi: "+79991230000"}},
		{in: "", wantErr: "want + and digits"},
		{in: "7999123", wantErr: "want + and digits"},
		{in: "+", wantErr: "want + and digits"},
		{in: "+0999", wantErr: "country code"},
		{in: "+7999a", wantErr: "want + and digits"},
		{in: "+1234567890123456", wantErr: "more than 15 digits"},
		{in: "+79991239999-+79991230000", wantErr: "low bound first"},
		{in: "+7999123000-+79991239999", wantErr: "one length"},
		{in: "+79991230000-", wantErr: "want + and digits"},
		{in: "+79991230000-+7999123000a", wantErr: "want + and digits"},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in)
		if tt.wantErr != "" {
			if err == nil || !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRange(%q) = %v, %v; want an ErrRange saying %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseRange(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestRangeContainsAndSize(t *testing.T) {
	p, _ := ParseRange("+7999123")
	r, _ := ParseRange("+79991230000-+79991234999")
	tests := []struct {
		r     Range
		key   string
		in    bool
		size  uint64
		commn string
	}{
		{p, "+79991234567", true, 10_000, "+7999123"},
		{p, "+7999123", true, 1, "+7999123"},
		{p, "+79991224567", false, 10_000, "+7999123"},
		{r, "+79991234999", true, 5_000, "+7999123"},
		{r, "+79991235000", false, 5_000, "+7999123"},
		{r, "+7999123000", false, 0, "+7999123"},
		{r, "+799912300000", false, 0, "+7999123"},
	}
	for _, tt := range tests {
		if got := tt.r.Contains(tt.key); got != tt.in {
			t.Errorf("%s contains %s = %v, want %v", tt.r, tt.key, got, tt.in)
		}
		if got := tt.r.Size(len(tt.key) - 1); got != tt.size {
			t.Errorf("%s size for %d digits = %d, want %d", tt.r, len(tt.key)-1, got, tt.size)
		}
		if got := tt.r.Common(); got != tt.commn {
			t.Errorf("%s common = %q, want %q", tt.r, got, tt.commn)
		}
	}
}

func TestRangeWireFormat(t *testing.T) {
	until := at.Add(24 * time.Hour)
	tests := []struct {
		p    Payload
		want string
	}{
		{RangeBlocked{Range: "+7999123", Level: 7, At: at, Until: &until, CommandID: "k1", By: "alice", Why: "fraud"},
			`{"range":"+7999123","level":7,"at":"2025-03-03T10:25:00Z","until":"2025-03-04T10:25:00Z","commandId":"k1","by":"alice","why":"fraud"}`},
		{RangeWhitelisted{Range: "+79991230000-+79991239999", At: at, By: "alice", Why: "bank branch"},
			`{"range":"+79991230000-+79991239999","at":"2025-03-03T10:25:00Z","by":"alice","why":"bank branch"}`},
		{RangeRemoved{Range: "+7999123", List: RangeBlock, At: at, By: "bob", Why: "cleared"},
			`{"range":"+7999123","list":"block","at":"2025-03-03T10:25:00Z","by":"bob","why":"cleared"}`},
		{CallReceived{CallID: "c1", Caller: "+79991234567", At: at, Hour: 1, Day: 1, Verdict: Reject, Level: 7, Rule: RuleRangeBlock,
			Ranges: []RangeMatch{{Range: "+7999123", List: RangeBlock, Level: 7, Since: at, By: "alice", Why: "fraud"}}},
			`{"callId":"c1","caller":"+79991234567","at":"2025-03-03T10:25:00Z","hour":1,"day":1,"verdict":"reject","level":7,"rule":"range-block","ranges":[{"range":"+7999123","list":"block","level":7,"since":"2025-03-03T10:25:00Z","by":"alice","why":"fraud"}]}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.p.EventType(), got, tt.want)
		}
	}
}

func TestRangeMatchExplain(t *testing.T) {
	m := RangeMatch{Range: "+79991230000-+79991239999", List: RangeBlock, Level: 7, By: "alice", Why: "fraud"}
	if got, want := m.Explain(), "blocked by range +79991230000-+79991239999 at level 7"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
	m = RangeMatch{Range: "+7999", List: RangeWhitelist, By: "bob", Why: "branch"}
	if got, want := m.Explain(), "whitelisted by prefix +7999"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"+7999123", "+79991230000-+79991239999", "-", "+-+", "+0", "+1-+2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRange(%q).String() = %q", s, r.String())
		}
		if !r.Contains(r.Lo) || (!r.Prefix && !r.Contains(r.Hi)) {
			t.Fatalf("%s does not contain its bounds", s)
		}
		if r.Size(len(r.Lo)-1) == 0 {
			t.Fatalf("%s has no numbers of its own length", s)
		}
		if !strings.HasPrefix(r.Lo, r.Common()) || !strings.HasPrefix(r.Hi, r.Common()) {
			t.Fatalf("%s: common %q", s, r.Common())
		}
	})
}
