package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

var t0 = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

func mustPolicy(t testing.TB, edit func(*Config)) *Policy {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func num(key string) phone.Number {
	if key == phone.AnonymousKey {
		return phone.Number{Key: key, Kind: phone.KindAnonymous}
	}
	return phone.Number{Key: key, Kind: phone.KindE164}
}

// decideApply decides a call and folds its records, as the grain does
// after a successful append.
func decideApply(t testing.TB, p *Policy, st *State, key, id string, at time.Time) Decision {
	t.Helper()
	d, err := p.Decide(st, Call{ID: id, Caller: num(key)}, at)
	if err != nil {
		t.Fatalf("Decide %s: %v", id, err)
	}
	if err := p.applyRecords(st, d.Records); err != nil {
		t.Fatalf("Apply %s: %v", id, err)
	}
	return d
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestEnvDefaultsMatchDefaultConfig keeps the env tags (read by the binary's
// configuration loader) and DefaultConfig from drifting apart.
func TestEnvDefaultsMatchDefaultConfig(t *testing.T) {
	def := reflect.ValueOf(DefaultConfig())
	typ := def.Type()
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, tag := f.Tag.Get("env"), f.Tag.Get("envDefault")
		if name == "" || tag == "" {
			t.Errorf("field %s has no env or envDefault tag", f.Name)
			continue
		}
		var got any
		var err error
		switch f.Type {
		case reflect.TypeOf(time.Duration(0)):
			got, err = time.ParseDuration(tag)
		case reflect.TypeOf(0):
			got, err = strconv.Atoi(tag)
		case reflect.TypeOf(false):
			got, err = strconv.ParseBool(tag)
		case reflect.TypeOf(schema.Verdict("")):
			got = schema.Verdict(tag)
		default:
			t.Fatalf("field %s: type %v not handled by this test", f.Name, f.Type)
		}
		if err != nil {
			t.Errorf("field %s: envDefault %q: %v", f.Name, tag, err)
			continue
		}
		if want := def.Field(i).Interface(); got != want {
			t.Errorf("field %s: envDefault %q, DefaultConfig has %v", f.Name, tag, want)
		}
	}
}

func TestValidateWrapsErrConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LimitLevel = 0
	if _, err := New(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("New error = %v, want ErrConfig", err)
	}
}

func TestLevelVerdict(t *testing.T) {
	want := map[int]schema.Verdict{-1: schema.Pass, 0: schema.Pass, 1: schema.Challenge, 5: schema.Challenge, 6: schema.Reject, 9: schema.Reject, 10: schema.Reject}
	for level, v := range want {
		if got := schema.LevelVerdict(level); got != v {
			t.Errorf("schema.LevelVerdict(%d) = %s, want %s", level, got, v)
		}
	}
}

// TestManualLevels checks every level an admin can set, through Decide.
func TestManualLevels(t *testing.T) {
	p := mustPolicy(t, nil)
	for level := schema.MinLevel; level <= schema.MaxLevel; level++ {
		var st State
		recs, err := p.Block(&st, "+79990001122", Command{ID: "b", By: "bob", Why: "test", Level: level}, t0)
		if err != nil {
			t.Fatalf("Block level %d: %v", level, err)
		}
		if err := p.applyRecords(&st, recs); err != nil {
			t.Fatal(err)
		}
		d := decideApply(t, p, &st, "+79990001122", "c", t0.Add(time.Minute))
		want := schema.Challenge
		if level >= schema.HardMin {
			want = schema.Reject
		}
		if d.Verdict != want || d.Level != level || d.Rule != schema.RuleManual {
			t.Errorf("level %d: got %s level %d rule %s, want %s", level, d.Verdict, d.Level, d.Rule, want)
		}
	}
}

func TestInvalidInputProducesNothing(t *testing.T) {
	p := mustPolicy(t, nil)
	var st State
	key := "+79990001122"
	ok := Command{ID: "x", By: "alice", Why: "test", Level: 3}
	tests := []struct {
		name string
		run  func() ([]schema.Record, error)
		want error
	}{
		{"call without ID", func() ([]schema.Record, error) {
			d, err := p.Decide(&st, Call{Caller: num(key)}, t0)
			return d.Records, err
		}, ErrInvalid},
		{"call with raw number", func() ([]schema.Record, error) {
			d, err := p.Decide(&st, Call{ID: "c", Caller: phone.Number{Key: "88005553535"}}, t0)
			return d.Records, err
		}, ErrInvalid},
		{"outcome without call", func() ([]schema.Record, error) { return p.Outcome(&st, key, "", schema.Passed, t0) }, ErrInvalid},
		{"unknown outcome", func() ([]schema.Record, error) { return p.Outcome(&st, key, "c", "maybe", t0) }, ErrInvalid},
		{"outcome for bad key", func() ([]schema.Record, error) { return p.Outcome(&st, "x", "c", schema.Failed, t0) }, ErrInvalid},
		{"block level 0", func() ([]schema.Record, error) {
			c := ok
			c.Level = 0
			return p.Block(&st, key, c, t0)
		}, ErrInvalid},
		{"block without ID", func() ([]schema.Record, error) {
			c := ok
			c.ID = ""
			return p.Block(&st, key, c, t0)
		}, ErrInvalid},
		{"reason too long", func() ([]schema.Record, error) {
			c := ok
			c.Why = string(make([]byte, MaxText+1))
			return p.Whitelist(&st, key, c, t0)
		}, ErrInvalid},
		{"unblock with expiry", func() ([]schema.Record, error) {
			c := ok
			c.Until = t0.Add(time.Hour)
			return p.Unblock(&st, key, c, t0)
		}, ErrInvalid},
		{"unblock when not blocked", func() ([]schema.Record, error) { return p.Unblock(&st, key, ok, t0) }, ErrNotBlocked},
		{"unwhitelist when not listed", func() ([]schema.Record, error) { return p.Unwhitelist(&st, key, ok, t0) }, ErrNotWhitelisted},
	}
	for _, tt := range tests {
		recs, err := tt.run()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
		if len(recs) != 0 {
			t.Errorf("%s: produced %d records", tt.name, len(recs))
		}
	}
	if !reflect.DeepEqual(st, State{}) {
		t.Fatalf("state changed: %+v", st)
	}
}

func TestApplyAcceptsPointersAndRejectsUnknown(t *testing.T) {
	p := mustPolicy(t, nil)
	var byValue, byPointer State
	ev := schema.CallReceived{CallID: "c1", Caller: "+79990001122", At: t0}
	if err := p.Apply(&byValue, ev); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(&byPointer, &ev); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byValue, byPointer) {
		t.Fatalf("value and pointer fold differently: %+v vs %+v", byValue, byPointer)
	}
	var nilCall *schema.CallReceived
	if err := p.Apply(&byValue, nilCall); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("Apply(nil pointer) = %v, want ErrUnknownEvent", err)
	}
	if err := p.Apply(&byValue, otherEvent{}); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("Apply(other) = %v, want ErrUnknownEvent", err)
	}
}

type otherEvent struct{}

func (otherEvent) EventType() string { return "Other" }
func (otherEvent) EventVersion() int { return 1 }

func TestEventIDsAreDeterministic(t *testing.T) {
	p := mustPolicy(t, func(c *Config) { c.LimitHour = 1 })
	var st State
	decideApply(t, p, &st, "+79990001122", "c1", t0)
	a, err := p.Decide(&st, Call{ID: "c2", Caller: num("+79990001122")}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Decide(&st, Call{ID: "c2", Caller: num("+79990001122")}, t0.Add(time.Second))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same decision twice differs")
	}
	if len(a.Records) != 2 || a.Records[0].ID == a.Records[1].ID {
		t.Fatalf("want CallReceived and BlockApplied with distinct IDs, got %+v", a.Records)
	}
	if a.Records[0].ID != schema.CallEventID("+79990001122", "c2", schema.RoleReceived) {
		t.Fatal("CallReceived ID is not derived from the call")
	}
}

// TestEvidenceIsCapped: a window holding more calls than the state keeps
// IDs for names the newest ones and the full count.
func TestEvidenceIsCapped(t *testing.T) {
	p := mustPolicy(t, func(c *Config) { c.LimitHour = 2; c.LimitDay = 4 })
	var st State
	key := "+79990001122"
	wl, _ := p.Whitelist(&st, key, Command{ID: "w", By: "a", Why: "b"}, t0)
	_ = p.applyRecords(&st, wl)
	for i := range 8 {
		decideApply(t, p, &st, key, fmt.Sprintf("c%d", i+1), t0.Add(time.Duration(i)*time.Second))
	}
	if got := len(st.CallIDs); got != 5 {
		t.Fatalf("kept %d IDs, want max(LimitHour, LimitDay)+1 = 5", got)
	}
	un, _ := p.Unwhitelist(&st, key, Command{ID: "u", By: "a", Why: "b"}, t0.Add(time.Minute))
	_ = p.applyRecords(&st, un)
	d := decideApply(t, p, &st, key, "c9", t0.Add(2*time.Minute))
	block := d.Records[len(d.Records)-1].Payload.(schema.BlockApplied)
	if block.Count != 9 || len(block.Calls) != 6 || block.Calls[5] != "c9" || block.Calls[0] != "c4" {
		t.Fatalf("block count %d calls %v, want 9 and c4..c9", block.Count, block.Calls)
	}
}

// TestFoldIsDeterministic drives random traffic, outcomes and commands
// through the policy and checks, at every step, what the grain relies on:
// Decide and friends do not change the state; folding their records gives
// the counts and level the decision assumed; folding the same history twice
// gives equal states; and replaying the history under the same settings
// changes no decision and ends in the same standing.
func TestFoldIsDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			p := mustPolicy(t, func(c *Config) {
				c.LimitHour, c.LimitDay = 1+rng.IntN(6), 6+rng.IntN(20)
				c.BlockFor = time.Duration(1+rng.IntN(30)) * time.Hour
				c.EscalateAfter = rng.IntN(4)
				c.CountAbandoned = rng.IntN(2) == 0
				c.VerifiedFor = time.Duration(rng.IntN(3)) * time.Hour
			})
			key := "+79990001122"
			var st State
			var history []schema.Payload
			now := t0
			lastCall, lastVerdict := "", schema.Pass
			for step := range 400 {
				now = now.Add(time.Duration(rng.ExpFloat64() * float64(20*time.Minute)))
				before := clone(&st)
				var recs []schema.Record
				var err error
				cmd := Command{ID: fmt.Sprintf("cmd%d", step), By: "admin", Why: "test"}
				switch r := rng.IntN(100); {
				case r < 70:
					id := fmt.Sprintf("c%d", step)
					var d Decision
					d, err = p.Decide(&st, Call{ID: id, Caller: num(key)}, now)
					recs = d.Records
					lastCall, lastVerdict = id, d.Verdict
					if err == nil {
						checkAssumed(t, p, &st, d)
					}
				case r < 85 && lastVerdict == schema.Challenge:
					outcomes := []schema.Outcome{schema.Passed, schema.Failed, schema.Failed, schema.Abandoned}
					recs, err = p.Outcome(&st, key, lastCall, outcomes[rng.IntN(4)], now)
					lastVerdict = schema.Pass
				case r < 88:
					cmd.Level = 1 + rng.IntN(9)
					if rng.IntN(2) == 0 {
						cmd.Until = now.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
					}
					recs, err = p.Block(&st, key, cmd, now)
				case r < 92:
					recs, err = p.Unblock(&st, key, cmd, now)
				case r < 95:
					if rng.IntN(2) == 0 {
						cmd.Until = now.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
					}
					recs, err = p.Whitelist(&st, key, cmd, now)
				case r < 97:
					recs, err = p.Unwhitelist(&st, key, cmd, now)
				default:
					recs = p.Expire(&st, key, now)
				}
				if !reflect.DeepEqual(before, &st) {
					t.Fatalf("step %d changed the state before its records were folded", step)
				}
				if err != nil {
					if len(recs) != 0 {
						t.Fatalf("step %d: error %v with %d records", step, err, len(recs))
					}
					continue
				}
				if err := p.applyRecords(&st, recs); err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					history = append(history, r.Payload)
				}
			}
			var a, b State
			if err := p.ApplyAll(&a, history...); err != nil {
				t.Fatal(err)
			}
			if err := p.ApplyAll(&b, history...); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, st) {
				t.Fatalf("folds differ:\nlive %+v\nA    %+v\nB    %+v", st, a, b)
			}
			res, err := p.Replay(key, history)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed != 0 || res.Unresolved != 0 {
				t.Fatalf("replay under the same settings changed %d calls (%d unresolved): %+v", res.Changed, res.Unresolved, res.Changes)
			}
			if got, want := p.Status(&res.State, key, now), p.Status(&st, key, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("replay ends at\n%+v\nlive at\n%+v", got, want)
			}
		})
	}
}

// checkAssumed folds d's records into a copy of st and checks the result
// counts the call as d did and stands at the level d decided on.
func checkAssumed(t *testing.T, p *Policy, st *State, d Decision) {
	t.Helper()
	after := clone(st)
	if err := p.applyRecords(after, d.Records); err != nil {
		t.Fatal(err)
	}
	s := p.Status(after, "+79990001122", d.At)
	if s.Hour != d.Hour || s.Day != d.Day {
		t.Fatalf("decision counted %d/%d, folded state %d/%d", d.Hour, d.Day, s.Hour, s.Day)
	}
	switch {
	case d.Rule == schema.RuleWhitelist:
		if !s.Whitelisted {
			t.Fatal("decided as whitelisted, folded state is not")
		}
	case d.Verdict != schema.Pass || d.Rule == schema.RuleVerified:
		if s.Level != d.Level {
			t.Fatalf("decided at level %d, folded state is at %d", d.Level, s.Level)
		}
	default:
		if s.Level != 0 {
			t.Fatalf("passed at level 0, folded state is at %d", s.Level)
		}
	}
}

func TestNextExpiry(t *testing.T) {
	var st State
	if _, ok := NextExpiry(&st); ok {
		t.Fatal("empty state has an expiry")
	}
	st = State{Level: 3, BlockUntil: 200, Whitelisted: true, WhitelistUntil: 100}
	if got, _ := NextExpiry(&st); got.UnixNano() != 100 {
		t.Fatalf("NextExpiry = %v, want the whitelist's", got)
	}
	st.WhitelistUntil = 0
	if got, _ := NextExpiry(&st); got.UnixNano() != 200 {
		t.Fatalf("NextExpiry = %v, want the block's", got)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	tests := []struct {
		change   func(*Config)
		kind     WantKind
		min, max int
		want     string
	}{
		{func(c *Config) { c.LimitHour = -1 }, WantNonNegative, 0, 0, "invalid policy config: limit-hour is -1, want 0 (off) or more"},
		{func(c *Config) { c.LimitDay = 4 }, WantAtLeast, 0, 0, "invalid policy config: limit-day (4) must be at least limit-hour (5), or the hourly limit can never fire"},
		{func(c *Config) { c.LimitLevel = 0 }, WantRange, 1, 9, "invalid policy config: limit-level is 0, want 1 to 9"},
		{func(c *Config) { c.BlockFor = 0 }, WantPositive, 0, 0, "invalid policy config: block-for is 0s, want a positive duration"},
		{func(c *Config) { c.EscalateAfter = -1 }, WantRange, 0, 50, "invalid policy config: escalate-after is -1, want 0 (off) to 50"},
		{func(c *Config) { c.EscalationLevel = 3 }, WantAbove, 0, 0, "invalid policy config: escalation-level (3) must be above limit-level (3), or escalation raises nothing"},
		{func(c *Config) { c.VerifiedFor = -time.Second }, WantNonNegative, 0, 0, "invalid policy config: verified-for is -1s, want 0 (off) or a positive duration"},
		{func(c *Config) { c.Anonymous = "" }, WantOneOf, 0, 0, `invalid policy config: anonymous is "", want pass, challenge or reject`},
		{func(c *Config) { c.MaxConcurrent = -2 }, WantNonNegative, 0, 0, "invalid policy config: max-concurrent-per-caller is -2, want 0 (off) or more"},
		{func(c *Config) { c.MaxConcurrent, c.ConcurrentVerdict = 2, schema.Pass }, WantOneOf, 0, 0, `invalid policy config: concurrent-verdict is "pass", want challenge or reject`},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.change(&cfg)
		err := cfg.Validate()
		var se *SettingError
		if !errors.As(err, &se) || !errors.Is(err, ErrConfig) {
			t.Errorf("Validate = %v, want a *SettingError wrapping ErrConfig", err)
			continue
		}
		for _, f := range []string{se.Field, se.Other} {
			if _, ok := reflect.TypeFor[Config]().FieldByName(f); f != "" && !ok {
				t.Errorf("%v: %q is not a Config field", err, f)
			}
		}
		if err.Error() != tt.want {
			t.Errorf("Validate = %q, want %q", err, tt.want)
		}
		if se.Kind != tt.kind || se.Min != tt.min || se.Max != tt.max {
			t.Errorf("%v: kind %s %d..%d, want %s %d..%d", err, se.Kind, se.Min, se.Max, tt.kind, tt.min, tt.max)
		}
	}
}

// TestChallengeFallbackIsRecorded: a call on which a challenge cannot be
// carried out records its challenge verdict with action pass and the
// reason; a reject stays a reject, and the caller is not verified.
func TestChallengeFallbackIsRecorded(t *testing.T) {
	const why = "passed: late offer without 100rel"
	p := mustPolicy(t, nil)
	for _, level := range []int{3, schema.HardMin} {
		var st State
		recs, err := p.Block(&st, "+79990001122", Command{ID: "b", By: "bob", Why: "test", Level: level}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.applyRecords(&st, recs); err != nil {
			t.Fatal(err)
		}
		d, err := p.Decide(&st, Call{ID: "c", Caller: num("+79990001122"), Wire: Wire{Mode: schema.Enforce, ChallengeFallback: why}}, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var rec *schema.CallReceived
		for _, r := range d.Records {
			if cr, ok := r.Payload.(schema.CallReceived); ok {
				rec = &cr
			}
		}
		if rec == nil {
			t.Fatalf("level %d: no CallReceived", level)
		}
		wantAction, wantWhy := schema.Pass, why
		if level >= schema.HardMin {
			wantAction, wantWhy = schema.Reject, ""
		}
		if rec.Action != wantAction || rec.ActionReason != wantWhy || rec.Verdict != d.Verdict {
			t.Errorf("level %d: CallReceived verdict %s action %s reason %q, want action %s reason %q", level, rec.Verdict, rec.Action, rec.ActionReason, wantAction, wantWhy)
		}
		if err := p.applyRecords(&st, d.Records); err != nil {
			t.Fatal(err)
		}
		if st.VerifiedUntil != 0 {
			t.Errorf("level %d: the caller is verified after a call it passed unchallenged", level)
		}
	}
}
