package policy

import (
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// update regenerates the expected output of testdata/*.txt, as -update
// does for the golden files of audit and replay:
//
//	go test ./actors/policy -run TestScenarios -update
//
// Commit the result only once the diff is understood.
var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt scenario scripts")

// TestScenarios runs the scenario scripts in testdata. A script is a
// sequence of cases in the style of cockroachdb/datadriven:
//
//	# comment
//	command args...
//	----
//	expected output
//	<blank line>
//
// Commands (times are "10:00:01", "10:00:01.5", "day2/10:00:01" on a fixed
// calendar starting on 2025-03-03 UTC, or "+90s" after the script's clock;
// numbers are in any spelling phone.Normalize accepts, quoted if they have
// spaces; values with spaces are quoted, as Go string literals:
// why="VIP client", why="two\nlines"):
//
//	config [limit-hour=N] [limit-day=N] [limit-level=N] [block-for=D]
//	       [escalate-after=N] [escalation-level=N] [count-abandoned=B]
//	       [verified-for=D] [anonymous=pass|challenge|reject]
//	       [max-concurrent-per-caller=N] [concurrent-verdict=challenge|reject]
//	    defaults plus the overrides; states are kept (a settings change).
//	call NUMBER [at T] [id=ID] [callee=N] [source=S] [attack=T|manual/T|off] [up=N] [crm=...]
//	    prints "verdict level=N rule=R hour=N day=N" and the events other
//	    than CallReceived as "+ Type field=value..." lines. Call IDs are
//	    c1, c2, ... unless given. With attack= (the line under attack
//	    since T, switched on by an admin with manual/, or not: off) it
//	    also prints whether the caller counts as new and the reason.
//	    With up=N (N other calls of the caller up, as the grain counts
//	    them) it prints the recorded concurrent count and the reason.
//	calls NUMBER n=N [from=T] every=D
//	    N calls, one line each, prefixed with the call ID.
//	outcome passed|failed|abandoned [call=ID] [at T]
//	    for the last call unless given.
//	    A NUMBER written key:TEXT is given to the policy as the key TEXT,
//	    without normalisation.
//	whitelist|unwhitelist|block|unblock NUMBER by=WHO why=WHY [level=N]
//	    [until=T] [at T] [id=ID]
//	tick NUMBER [at T]      expiries due
//	state NUMBER [at T]     the caller's Status
//	replay NUMBER [config overrides] [try-block=RANGE:LEVEL] [try-whitelist=RANGE]
//	    re-decides the number's events so far under other settings, with
//	    a hypothetical range rule tried beside the recorded ones.
//
// After every command the runner checks the invariants the grain relies
// on: Decide and the commands do not change the state they are given, and
// folding the caller's whole history afresh, through JSON and the schema
// registry as the store would return it, gives exactly the live state.
func TestScenarios(t *testing.T) {
	scripttest.Run(t, "testdata/*.txt", *update, func(t *testing.T) func(string, *scripttest.Command) string {
		return newRunner(t).run
	})
}

// epoch is day 1, 00:00 of the scripts' calendar.
var epoch = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

type runner struct {
	t        *testing.T
	pol      *Policy
	norm     *phone.Normalizer
	reg      *events.Registry
	clock    time.Time
	states   map[string]*State
	history  map[string][]folded // every record folded, per caller key
	nextCall int
	lastCall string // ID of the last call
	lastKey  string // its caller
	nextCmd  int
	rules    *rules.Table // the range rules, as a node's table holds them
	rulesRev uint64
	zone     string // the zone schedules are added in
}

func newRunner(t *testing.T) *runner {
	pol, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	norm, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return &runner{t: t, pol: pol, norm: norm, reg: schema.NewRegistry(), clock: epoch,
		states: map[string]*State{}, history: map[string][]folded{}, rules: rules.Empty(), zone: "UTC"}
}

// folded is a record and the policy that folded it: a script may change
// settings midway, as an operator may between two activations.
type folded struct {
	pol *Policy
	rec schema.Record
}

func (r *runner) run(pos string, a *scripttest.Command) string {
	out, err := r.exec(a.Name, a)
	if err != nil {
		r.t.Fatalf("%s: %v", pos, err)
	}
	if out == "" {
		r.t.Fatalf("%s: %s printed nothing", pos, a.Name)
	}
	r.checkInvariants(pos)
	return out
}

func (r *runner) exec(cmd string, a *scripttest.Command) (string, error) {
	if at, ok := a.Opt("at"); ok {
		t, err := r.parseTime(at)
		if err != nil {
			return "", err
		}
		r.clock = t
	}
	switch cmd {
	case "config":
		cfg, err := parseConfig(a)
		if err != nil {
			return "", err
		}
		pol, err := New(cfg)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		r.pol = pol
		return "ok", nil
	case "call":
		key, err := r.number(a)
		if err != nil {
			return "", err
		}
		return r.call(key, a, "")
	case "calls":
		n, err := strconv.Atoi(a.Value("n"))
		if err != nil {
			return "", fmt.Errorf("calls: n=: %w", err)
		}
		every, err := time.ParseDuration(a.Value("every"))
		if err != nil {
			return "", fmt.Errorf("calls: every=: %w", err)
		}
		if from, ok := a.Opt("from"); ok {
			if r.clock, err = r.parseTime(from); err != nil {
				return "", err
			}
		}
		var lines []string
		for i := 0; i < n; i++ {
			if i > 0 {
				r.clock = r.clock.Add(every)
			}
			key, err := r.number(a)
			if err != nil {
				return "", err
			}
			line, err := r.call(key, a, fmt.Sprintf("c%d ", r.nextCall+1))
			if err != nil {
				return "", err
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n"), nil
	case "outcome":
		if len(a.Args) != 1 {
			return "", fmt.Errorf("outcome: want passed, failed or abandoned")
		}
		id, key := r.lastCall, r.lastKey
		if v, ok := a.Opt("call"); ok {
			id = v
		}
		st := r.state(key)
		before := clone(st)
		recs, err := r.pol.Outcome(st, key, id, schema.Outcome(a.Args[0]), r.clock)
		r.unchanged(before, st, "Outcome")
		if err != nil {
			return "error: " + err.Error(), nil
		}
		return r.fold(key, recs, nil), nil
	case "whitelist", "unwhitelist", "block", "unblock":
		key, err := r.number(a)
		if err != nil {
			return "", err
		}
		c, err := r.command(a)
		if err != nil {
			return "", err
		}
		st := r.state(key)
		before := clone(st)
		fn := map[string]func(*State, string, Command, time.Time) ([]schema.Record, error){
			"whitelist": r.pol.Whitelist, "unwhitelist": r.pol.Unwhitelist, "block": r.pol.Block, "unblock": r.pol.Unblock,
		}[cmd]
		recs, err := fn(st, key, c, r.clock)
		r.unchanged(before, st, cmd)
		if err != nil {
			if len(recs) != 0 {
				r.t.Errorf("%s failed with %v but produced %d events", cmd, err, len(recs))
			}
			return "error: " + err.Error(), nil
		}
		return r.fold(key, recs, nil), nil
	case "range-block", "range-whitelist", "range-remove":
		return r.rangeCommand(cmd, a)
	case "zone", "line-set", "line-clear", "schedule-add", "schedule-remove":
		return r.settingsCommand(cmd, a)
	case "origin-set", "origin-remove":
		return r.originCommand(cmd, a)
	case "tick":
		key, err := r.number(a)
		if err != nil {
			return "", err
		}
		if out := r.fold(key, r.pol.Expire(r.state(key), key, r.clock), nil); out != "" {
			return out, nil
		}
		if next, ok := NextExpiry(r.state(key)); ok {
			return "nothing due; next at " + r.fmtTime(next), nil
		}
		return "nothing due", nil
	case "state":
		key, err := r.number(a)
		if err != nil {
			return "", err
		}
		return r.fmtStatus(r.pol.Status(r.state(key), key, r.clock)), nil
	case "replay":
		key, err := r.number(a)
		if err != nil {
			return "", err
		}
		cfg, err := parseConfig(a)
		if err != nil {
			return "", err
		}
		pol, err := New(cfg)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		var evs []schema.Payload
		for _, f := range r.history[key] {
			evs = append(evs, f.rec.Payload)
		}
		try, err := r.tried(a)
		if err != nil {
			return "", err
		}
		tryOv, err := r.triedOverrides(a)
		if err != nil {
			return "", err
		}
		res, err := pol.ReplayTry(key, evs, Try{Ranges: try, Overrides: tryOv})
		if err != nil {
			return "error: " + err.Error(), nil
		}
		lines := []string{fmt.Sprintf("calls=%d changed=%d unresolved=%d", res.Calls, res.Changed, res.Unresolved)}
		for _, c := range res.Changes {
			line := fmt.Sprintf("  %s %s: %s level=%d -> %s level=%d", c.CallID, r.fmtTime(c.At), c.Was, c.WasLevel, c.Now, c.NowLevel)
			if c.NowRule != "" {
				line += " rule=" + string(c.NowRule)
			}
			lines = append(lines, line)
		}
		lines = append(lines, "  then: "+r.fmtStatus(pol.Status(&res.State, key, r.clock)))
		return strings.Join(lines, "\n"), nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

func (r *runner) call(key string, a *scripttest.Command, prefix string) (string, error) {
	r.nextCall++
	id := fmt.Sprintf("c%d", r.nextCall)
	if v, ok := a.Opt("id"); ok {
		id = v
	}
	callee, _ := a.Opt("callee")
	source, _ := a.Opt("source")
	presented := a.Args[0]
	attack, showAttack := a.Opt("attack")
	var la *schema.LineAttack
	if showAttack && attack != "off" {
		manual := strings.HasPrefix(attack, "manual/")
		since, err := r.parseTime(strings.TrimPrefix(attack, "manual/"))
		if err != nil {
			return "", err
		}
		la = &schema.LineAttack{Since: since, Manual: manual}
	}
	up := 0
	if v, ok := a.Opt("up"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", fmt.Errorf("up=%q: %w", v, err)
		}
		up = n
	}
	crm, err := crmOpt(a)
	if err != nil {
		return "", err
	}
	st := r.state(key)
	before := clone(st)
	d, err := r.pol.Decide(st, Call{ID: id, Caller: r.norm.Normalize(presented), Presented: presented, Callee: callee, Source: source,
		Attack: la, Ranges: r.rules.Lookup(key, r.clock), Overrides: r.rules.Overrides(callee, r.clock),
		Concurrent: up, Origin: r.rules.Origin(key, r.clock), CRM: crm}, r.clock)
	r.unchanged(before, st, "Decide")
	if err != nil {
		return "error: " + err.Error(), nil
	}
	r.lastCall, r.lastKey = id, key
	head := fmt.Sprintf("%s%s level=%d", prefix, d.Verdict, d.Level)
	if d.Rule != "" {
		head += " rule=" + string(d.Rule)
	}
	head += fmt.Sprintf(" hour=%d day=%d", d.Hour, d.Day)
	if !d.At.Equal(r.clock) {
		head += " at=" + r.fmtTime(d.At)
	}
	if up > 0 {
		head += fmt.Sprintf(" concurrent=%d", got(d).Concurrent)
		if d.Reason != "" && !showAttack {
			head += fmt.Sprintf(" reason=%q", d.Reason)
		}
	}
	if showAttack {
		head += fmt.Sprintf(" new=%t", d.New)
		if d.Reason != "" {
			head += fmt.Sprintf(" reason=%q", d.Reason)
		}
	}
	// The decision must be what its CallReceived records.
	var got schema.CallReceived
	for _, rec := range d.Records {
		if e, ok := rec.Payload.(schema.CallReceived); ok {
			got = e
		}
	}
	if (got.Attack == nil) != (la == nil) || (la != nil && !got.Attack.Since.Equal(la.Since)) {
		r.t.Errorf("CallReceived records the line's mode %+v, the call had %+v", got.Attack, la)
	}
	if got.CallID != id || got.Verdict != d.Verdict || got.Level != d.Level || got.Hour != d.Hour || got.Day != d.Day || got.Rule != d.Rule {
		r.t.Errorf("decision %+v disagrees with its CallReceived %+v", d, got)
	}
	out := r.fold(key, d.Records, &head)
	if ranges := r.fmtRanges(d); ranges != "" {
		out += "\n" + ranges
	}
	if ov := fmtOverrides(d); ov != "" {
		out += "\n" + ov
	}
	if origin := fmtOrigin(d); origin != "" {
		out += "\n" + origin
	}
	if c := fmtCRM(d); c != "" {
		out += "\n" + c
	}
	// After folding, the state counts the call as the decision did.
	if s := r.pol.Status(st, key, d.At); s.Hour != d.Hour || s.Day != d.Day {
		r.t.Errorf("after folding %s the state counts hour=%d day=%d, the decision %d/%d", id, s.Hour, s.Day, d.Hour, d.Day)
	}
	return out, nil
}

// fold applies recs to the caller's live state, records them in its
// history and prints them; head, if given, is printed first and gets the
// CallReceived's block extension.
func (r *runner) fold(key string, recs []schema.Record, head *string) string {
	st := r.state(key)
	if err := r.pol.applyRecords(st, recs); err != nil {
		r.t.Fatalf("apply: %v", err)
	}
	for _, rec := range recs {
		r.history[key] = append(r.history[key], folded{r.pol, rec})
	}
	var lines []string
	if head != nil {
		lines = append(lines, *head)
	}
	for _, rec := range recs {
		switch e := rec.Payload.(type) {
		case schema.CallReceived:
			if e.BlockUntil != nil {
				lines[0] += " block-until=" + r.fmtTime(*e.BlockUntil)
			}
		default:
			lines = append(lines, "+ "+r.fmtEvent(rec.Payload))
		}
	}
	return strings.Join(lines, "\n")
}

func (r *runner) fmtEvent(p schema.Payload) string {
	var f []string
	add := func(k string, v any) { f = append(f, fmt.Sprintf("%s=%v", k, v)) }
	addText := func(k, v string) {
		if strings.ContainsAny(v, " \"") {
			v = strconv.Quote(v)
		}
		add(k, v)
	}
	until := func(t *time.Time) {
		if t != nil {
			add("until", r.fmtTime(*t))
		}
	}
	switch e := p.(type) {
	case schema.BlockApplied:
		add("level", e.Level)
		add("kind", e.Kind)
		add("rule", e.Rule)
		if e.Kind == schema.Auto {
			add("limit", e.Limit)
			add("count", e.Count)
			add("calls", strings.Join(e.Calls, ","))
		}
		until(e.Until)
		if e.Kind == schema.Manual {
			addText("by", e.By)
			addText("why", e.Why)
		}
	case schema.BlockLifted:
		add("level", e.Level)
		add("kind", e.Kind)
		addText("by", e.By)
		addText("why", e.Why)
	case schema.BlockExpired:
		add("level", e.Level)
		add("kind", e.Kind)
		add("rule", e.Rule)
		add("at", r.fmtTime(e.At))
	case schema.Whitelisted:
		addText("by", e.By)
		addText("why", e.Why)
		until(e.Until)
	case schema.Unwhitelisted:
		addText("by", e.By)
		addText("why", e.Why)
	case schema.WhitelistExpired:
		add("at", r.fmtTime(e.At))
	case schema.ChallengeOutcome:
		add("call", e.CallID)
		add("outcome", e.Outcome)
		if e.VerifiedUntil != nil {
			add("verified-until", r.fmtTime(*e.VerifiedUntil))
		}
	}
	return p.EventType() + " " + strings.Join(f, " ")
}

func (r *runner) fmtStatus(s Status) string {
	var f []string
	if s.Level > 0 {
		f = append(f, fmt.Sprintf("level=%d kind=%s rule=%s since=%s", s.Level, s.Kind, s.Rule, r.fmtTime(s.Since)))
		if !s.Until.IsZero() {
			f = append(f, "until="+r.fmtTime(s.Until))
		}
	} else {
		f = append(f, "level=0")
	}
	if s.Whitelisted {
		f = append(f, "whitelisted")
		if !s.WhitelistUntil.IsZero() {
			f = append(f, "whitelist-until="+r.fmtTime(s.WhitelistUntil))
		}
	}
	if !s.VerifiedUntil.IsZero() {
		f = append(f, "verified-until="+r.fmtTime(s.VerifiedUntil))
	}
	f = append(f, fmt.Sprintf("hour=%d day=%d failures=%d next=%s", s.Hour, s.Day, s.FailedChallenges, s.Next))
	if s.NextRule != "" {
		f = append(f, "next-rule="+string(s.NextRule))
	}
	return strings.Join(f, " ")
}

func (r *runner) state(key string) *State {
	st, ok := r.states[key]
	if !ok {
		st = &State{}
		r.states[key] = st
	}
	return st
}

func (r *runner) number(a *scripttest.Command) (string, error) {
	if len(a.Args) != 1 {
		return "", fmt.Errorf("want one number, got %q", a.Args)
	}
	if raw, ok := strings.CutPrefix(a.Args[0], "key:"); ok {
		return raw, nil // as the policy would get it from a careless caller
	}
	return r.norm.Normalize(a.Args[0]).Key, nil
}

func (r *runner) command(a *scripttest.Command) (Command, error) {
	r.nextCmd++
	c := Command{ID: fmt.Sprintf("cmd%d", r.nextCmd)}
	if v, ok := a.Opt("id"); ok {
		c.ID = v
	}
	c.By, _ = a.Opt("by")
	c.Why, _ = a.Opt("why")
	if v, ok := a.Opt("level"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("level=: %w", err)
		}
		c.Level = n
	}
	if v, ok := a.Opt("until"); ok {
		t, err := r.parseTime(v)
		if err != nil {
			return c, err
		}
		c.Until = t
	}
	return c, nil
}

// unchanged fails the test if a function that must not change the state
// did.
func (r *runner) unchanged(before, after *State, fn string) {
	if !reflect.DeepEqual(before, after) {
		r.t.Errorf("%s changed the state it was given:\nbefore %+v\nafter  %+v", fn, before, after)
	}
}

// checkInvariants refolds every caller's history from scratch, through JSON
// and the registry, and compares it with the live state; and round-trips
// the live state through its JSON snapshot.
func (r *runner) checkInvariants(pos string) {
	for key, recs := range r.history {
		var fresh State
		for i, f := range recs {
			prop, err := f.rec.Proposed(events.Metadata{Actor: "test"})
			if err != nil {
				r.t.Fatalf("%s: %v", pos, err)
			}
			dec, err := r.reg.Decode(events.Event{Stream: schema.CallerStream(key), Type: prop.Type, Version: prop.Version, Revision: uint64(i), Data: prop.Data})
			if err != nil {
				r.t.Fatalf("%s: %v", pos, err)
			}
			if err := f.pol.Apply(&fresh, dec.(schema.Payload)); err != nil {
				r.t.Fatalf("%s: %v", pos, err)
			}
		}
		if live := r.states[key]; !reflect.DeepEqual(&fresh, live) {
			r.t.Fatalf("%s: %s: refolded state differs from the live one:\nrefolded %+v\nlive     %+v", pos, key, fresh, *live)
		}
		snap, err := json.Marshal(r.states[key])
		if err != nil {
			r.t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(snap, &back); err != nil {
			r.t.Fatal(err)
		}
		if !reflect.DeepEqual(&back, r.states[key]) {
			r.t.Fatalf("%s: %s: state differs after a snapshot round trip:\n%s", pos, key, snap)
		}
	}
}

func clone(st *State) *State {
	c := *st
	c.Calls = append([]int64(nil), st.Calls...)
	c.CallIDs = append([]string(nil), st.CallIDs...)
	c.Failures = append([]Mark(nil), st.Failures...)
	if st.Calls == nil {
		c.Calls = nil
	}
	if st.CallIDs == nil {
		c.CallIDs = nil
	}
	if st.Failures == nil {
		c.Failures = nil
	}
	return &c
}

func parseConfig(a *scripttest.Command) (Config, error) {
	cfg := DefaultConfig()
	for k, v := range a.Options() {
		if k == "at" || strings.HasPrefix(k, "try-") {
			continue
		}
		a.Opt(k)
		var err error
		switch k {
		case "limit-hour":
			cfg.LimitHour, err = strconv.Atoi(v)
		case "limit-day":
			cfg.LimitDay, err = strconv.Atoi(v)
		case "limit-level":
			cfg.LimitLevel, err = strconv.Atoi(v)
		case "block-for":
			cfg.BlockFor, err = time.ParseDuration(v)
		case "escalate-after":
			cfg.EscalateAfter, err = strconv.Atoi(v)
		case "escalation-level":
			cfg.EscalationLevel, err = strconv.Atoi(v)
		case "count-abandoned":
			cfg.CountAbandoned, err = strconv.ParseBool(v)
		case "verified-for":
			cfg.VerifiedFor, err = time.ParseDuration(v)
		case "anonymous":
			cfg.Anonymous = schema.Verdict(v)
		case "max-concurrent-per-caller":
			cfg.MaxConcurrent, err = strconv.Atoi(v)
		case "concurrent-verdict":
			cfg.ConcurrentVerdict = schema.Verdict(v)
		default:
			return cfg, fmt.Errorf("unknown config key %q", k)
		}
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", k, err)
		}
	}
	return cfg, nil
}

// parseTime reads "HH:MM[:SS[.frac]]" (day 1), "dayN/HH:MM[:SS]" or
// "+duration" after the script's clock.
func (r *runner) parseTime(s string) (time.Time, error) {
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		return r.clock.Add(dur), nil
	}
	day := 1
	if rest, ok := strings.CutPrefix(s, "day"); ok {
		n, clock, found := strings.Cut(rest, "/")
		if !found {
			return time.Time{}, fmt.Errorf("time %q: want dayN/HH:MM:SS", s)
		}
		var err error
		if day, err = strconv.Atoi(n); err != nil || day < 1 {
			return time.Time{}, fmt.Errorf("time %q: bad day", s)
		}
		s = clock
	}
	layout := "15:04:05"
	if strings.Count(s, ":") == 1 {
		layout = "15:04"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return epoch.AddDate(0, 0, day-1).Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond())), nil
}

func (r *runner) fmtTime(t time.Time) string {
	d := t.Sub(epoch)
	day := int(d / (24 * time.Hour))
	s := t.Format("15:04:05.999999999")
	if day != 0 {
		s = fmt.Sprintf("day%d/%s", day+1, s)
	}
	return s
}

// got is the CallReceived among d's records.
func got(d Decision) schema.CallReceived {
	for _, rec := range d.Records {
		if e, ok := rec.Payload.(schema.CallReceived); ok {
			return e
		}
	}
	return schema.CallReceived{}
}
