// Package replay answers the ops question "what if the limits had been
// different?": it re-decides every caller's recorded history under other
// policy settings and reports which calls would have been decided
// differently and which numbers would stand differently today.
//
// The re-deciding is policy.Policy.Replay's (recorded calls and admin
// commands are the facts; the rules' blocks and expiries are produced
// again). This package finds the callers in the store, feeds each one's
// stream to Replay, folds the same stream as recorded (policy.Policy.Apply)
// for where the number stands today, and compares the two with
// policy.Policy.Status at one moment.
//
// Run only reads: it never appends, never saves a snapshot, and the store
// is left exactly as it was.
//
// It sits beside the policy, under actors/policy, because it is the
// policy's fold and rules run again over the store; the CLI's replay
// command and the admin API's GET /v1/replay (both in cmd) call it.
package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// MaxChanges is how many of a number's changed calls its report entry
// lists; CallsChanged always has the full count. A number called thousands
// of times would otherwise make the report as long as the log.
const MaxChanges = 20

// defaultPage is how many events one ReadAll returns while Run looks for
// caller streams.
const defaultPage = 1024

// Option configures Run.
type Option func(*options)

type options struct {
	asOf time.Time
	page int
	try  []schema.RangeMatch
	// tryOv are hypothetical per-line settings (see TryOverrides).
	tryOv []schema.Override
}

// Try adds hypothetical range rules, tried beside the ones each call
// recorded as if they had been in force all along (see
// policy.ReplayWith): what a rule would change before it is enforced.
func Try(rules ...schema.RangeMatch) Option {
	return func(o *options) { o.try = append(o.try, rules...) }
}

// TryOverrides adds hypothetical per-line settings or schedules, applied
// after the ones each call recorded (policy.Try): what a line's settings
// would change before they are set.
func TryOverrides(os ...schema.Override) Option {
	return func(o *options) { o.tryOv = append(o.tryOv, os...) }
}

// AsOf compares where each number stands at t (typically the injected
// clock's now), with blocks, whitelist entries and verifications due by
// then expired on both sides. Without it each number is compared right
// after its last event, which makes the report a function of the log alone.
// A t before a number's last event counts as that event's time.
func AsOf(t time.Time) Option { return func(o *options) { o.asOf = t } }

// PageSize sets how many events each read of the global log returns
// (default 1024). Tests use small pages to cross page boundaries.
func PageSize(n int) Option { return func(o *options) { o.page = n } }

// Report is what Run found.
type Report struct {
	// Settings are the policy settings the log was replayed under.
	Settings Settings `json:"settings"`
	// Through is the position of the last event of the global log taken
	// into account: the head when Run started. Later events are ignored,
	// so the report is of one consistent cut of the log.
	Through string `json:"through"`
	// AsOf is the moment numbers were compared at, when given (see AsOf).
	AsOf time.Time `json:"asOf,omitzero"`
	// Tried are the hypothetical range rules of the replay (see Try).
	Tried []schema.RangeMatch `json:"tried,omitempty"`
	// TriedOverrides are the hypothetical per-line settings (TryOverrides).
	TriedOverrides []schema.Override `json:"triedOverrides,omitempty"`

	// Callers is how many caller streams were replayed; Calls how many
	// calls they hold.
	Callers int `json:"callers"`
	Calls   int `json:"calls"`
	// CallsChanged counts the calls that would get another verdict or
	// level; CallersChanged the callers with at least one such call.
	CallsChanged   int `json:"callsChanged"`
	CallersChanged int `json:"callersChanged"`
	// Transitions breaks CallsChanged down by recorded verdict → replayed
	// verdict (a level change within one verdict shows as e.g. reject →
	// reject), in a fixed order.
	Transitions []Transition `json:"transitions"`
	// Unresolved counts calls challenged only under these settings: the
	// log has no outcome for them, so the replay cannot tell how they
	// would have ended (see policy.ReplayResult.Unresolved).
	Unresolved int `json:"unresolved"`
	// Skipped counts events the policy does not fold, including event
	// types this build does not know.
	Skipped int `json:"skipped"`

	// NumbersChanged is len(Numbers): the numbers that would end in a
	// different state.
	NumbersChanged int `json:"numbersChanged"`
	// Numbers lists them, by key; empty (not null) when none would.
	Numbers []Number `json:"numbers"`
}

// Settings is policy.Config as the report shows it, named like the
// configuration's environment variables.
type Settings struct {
	LimitHour       int            `json:"limitHour"`
	LimitDay        int            `json:"limitDay"`
	LimitLevel      int            `json:"limitLevel"`
	BlockFor        string         `json:"blockFor"`
	EscalateAfter   int            `json:"escalateAfter"`
	EscalationLevel int            `json:"escalationLevel"`
	CountAbandoned  bool           `json:"countAbandoned"`
	VerifiedFor     string         `json:"verifiedFor"`
	Anonymous       schema.Verdict `json:"anonymous"`
	// The concurrency limit, when on.
	MaxConcurrent     int            `json:"maxConcurrentPerCaller,omitempty"`
	ConcurrentVerdict schema.Verdict `json:"concurrentVerdict,omitempty"`
}

func settingsOf(c policy.Config) Settings {
	s := Settings{
		LimitHour: c.LimitHour, LimitDay: c.LimitDay, LimitLevel: c.LimitLevel,
		BlockFor: duration(c.BlockFor), EscalateAfter: c.EscalateAfter, EscalationLevel: c.EscalationLevel,
		CountAbandoned: c.CountAbandoned, VerifiedFor: duration(c.VerifiedFor), Anonymous: c.Anonymous,
	}
	if c.MaxConcurrent > 0 {
		s.MaxConcurrent, s.ConcurrentVerdict = c.MaxConcurrent, c.ConcurrentVerdict
	}
	return s
}

// Transition counts the changed calls that went From one verdict To another.
type Transition struct {
	From  schema.Verdict `json:"from"`
	To    schema.Verdict `json:"to"`
	Calls int            `json:"calls"`
}

// Number is a caller that would end in a different state.
type Number struct {
	Key string `json:"key"`
	// Now is where the number stands as recorded; WouldBe where it would
	// stand had the settings been in force. Both are read at the same
	// moment by the replayed policy, so Now.Next is the verdict these
	// settings would give the number's next call from today's state.
	Now     policy.Status `json:"now"`
	WouldBe policy.Status `json:"wouldBe"`
	// Differs names the fields of the standing that differ: level, kind,
	// rule, until, whitelisted, whitelistUntil, verifiedUntil; and next
	// when a tried range rule changes the next call's verdict (see Try).
	Differs []string `json:"differs"`
	// Calls is the number's calls; CallsChanged those decided differently.
	Calls        int `json:"calls"`
	CallsChanged int `json:"callsChanged"`
	// Changes are the first MaxChanges of them, in stream order;
	// MoreChanges counts the rest.
	Changes     []CallChange `json:"changes,omitempty"`
	MoreChanges int          `json:"moreChanges,omitempty"`
}

// CallChange is a call the settings would decide differently.
type CallChange struct {
	CallID   string         `json:"callId"`
	At       time.Time      `json:"at"`
	Was      schema.Verdict `json:"was"`
	WasLevel int            `json:"wasLevel"`
	Now      schema.Verdict `json:"now"`
	NowLevel int            `json:"nowLevel"`
	NowRule  schema.Rule    `json:"nowRule,omitempty"`
}

// Run replays every caller stream of store, up to the head of the global
// log when it starts, under cfg, and reports the differences. It fails
// with cfg's validation error (policy.ErrConfig), a read error of the
// store, or an event of a known type that does not decode; events of
// unknown types are skipped and counted.
//
// Memory: Run first reads the global log page by page and keeps only the
// names of the caller streams in it, then reads and replays one caller
// stream at a time. It holds the stream names, one caller's events and the
// report, never the whole log. The log is read twice (once through the
// global log, once stream by stream), which is the price of that bound.
func Run(ctx context.Context, store events.Store, cfg policy.Config, opts ...Option) (Report, error) {
	o := options{page: defaultPage}
	for _, opt := range opts {
		opt(&o)
	}
	if o.page <= 0 {
		return Report{}, fmt.Errorf("replay: %w: page size %d", events.ErrInvalid, o.page)
	}
	pol, err := policy.New(cfg)
	if err != nil {
		return Report{}, fmt.Errorf("replay: %w", err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("replay: head of the log: %w", err)
	}
	keys, err := callerKeys(ctx, store, head, o.page)
	if err != nil {
		return Report{}, err
	}
	for _, m := range o.try {
		if _, err := schema.ParseRange(m.Range); err != nil || !m.List.Valid() {
			return Report{}, fmt.Errorf("replay: %w: tried rule %s %q", events.ErrInvalid, m.List, m.Range)
		}
	}
	r := Report{Settings: settingsOf(cfg), Through: head.String(), AsOf: o.asOf, Tried: o.try, TriedOverrides: o.tryOv, Numbers: []Number{}}
	trans := map[[2]schema.Verdict]int{}
	reg := schema.NewRegistry()
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return Report{}, fmt.Errorf("replay: %w", err)
		}
		c, err := replayCaller(ctx, store, reg, pol, key, head, o.asOf, policy.Try{Ranges: o.try, Overrides: o.tryOv})
		if err != nil {
			return Report{}, fmt.Errorf("replay %s: %w", key, err)
		}
		r.Callers++
		r.Calls += c.res.Calls
		r.CallsChanged += c.res.Changed
		r.Unresolved += c.res.Unresolved
		r.Skipped += c.res.Skipped + c.unknown
		if c.res.Changed > 0 {
			r.CallersChanged++
		}
		for _, ch := range c.res.Changes {
			trans[[2]schema.Verdict{ch.Was, ch.Now}]++
		}
		if len(c.differs) > 0 {
			r.Numbers = append(r.Numbers, c.number(key))
		}
	}
	r.NumbersChanged = len(r.Numbers)
	r.Transitions = transitions(trans)
	return r, nil
}

// callerKeys returns the keys of the caller streams with events at or
// before head, sorted, reading the global log in pages.
func callerKeys(ctx context.Context, store events.Store, head events.Position, page int) ([]string, error) {
	seen := map[string]struct{}{}
	for from := events.Start; from.Less(head); {
		batch, err := store.ReadAll(ctx, from, page)
		if err != nil {
			return nil, fmt.Errorf("replay: read the log after %v: %w", from, err)
		}
		if len(batch) == 0 {
			break
		}
		for _, ev := range batch {
			if head.Less(ev.Position) {
				break
			}
			if key, ok := schema.CallerKey(ev.Stream); ok {
				if _, dup := seen[key]; !dup {
					// Clone: the key is a slice of the event's stream name,
					// and the whole page would stay in memory behind it.
					seen[strings.Clone(key)] = struct{}{}
				}
			}
		}
		from = batch[len(batch)-1].Position
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// caller is one caller's replay and comparison.
type caller struct {
	res          policy.ReplayResult
	unknown      int
	now, wouldBe policy.Status
	differs      []string
}

func replayCaller(ctx context.Context, store events.Store, reg *events.Registry, pol *policy.Policy, key string, head events.Position, asOf time.Time, try policy.Try) (caller, error) {
	var c caller
	stream := schema.CallerStream(key)
	evs, err := events.ReadWholeStream(ctx, store, stream, 0)
	if err != nil {
		return c, fmt.Errorf("read %s: %w", stream, err)
	}
	payloads := make([]schema.Payload, 0, len(evs))
	for _, ev := range evs {
		if head.Less(ev.Position) {
			break // appended after Run started: not part of this cut
		}
		dec, err := reg.Decode(ev)
		if errors.Is(err, events.ErrUnknownType) {
			c.unknown++
			continue
		}
		if err != nil {
			return c, err
		}
		p, ok := dec.(schema.Payload)
		if !ok {
			return c, fmt.Errorf("event %s@%d: %T is not a schema payload", ev.Stream, ev.Revision, dec)
		}
		payloads = append(payloads, p)
	}

	// Today: the stream folded as recorded. Apply's only dependence on the
	// settings is how many call IDs the state keeps, which Status ignores.
	var today policy.State
	for _, p := range payloads {
		if err := pol.Apply(&today, p); err != nil && !errors.Is(err, policy.ErrUnknownEvent) {
			return c, fmt.Errorf("fold as recorded: %w", err)
		}
	}
	if c.res, err = pol.ReplayTry(key, payloads, try); err != nil {
		return c, err
	}
	// One moment for both sides: the replay drops recorded expiries (it
	// produces its own), so its state can end earlier than today's, and a
	// block that ran out at the last event would look still in force.
	at := max(today.Last, c.res.State.Last)
	if !asOf.IsZero() {
		at = max(at, asOf.UnixNano())
	}
	moment := time.Unix(0, at).UTC()
	c.now = pol.Status(&today, key, moment)
	c.wouldBe = pol.StatusWith(&c.res.State, key, moment, policy.Matching(try.Ranges, key))
	c.differs = differs(c.now, c.wouldBe)
	if len(try.Ranges) > 0 && (c.now.Next != c.wouldBe.Next || c.now.NextRule != c.wouldBe.NextRule) {
		// A range rule is no state of the number's: what it changes is
		// the verdict its next call would get.
		c.differs = append(c.differs, "next")
	}
	return c, nil
}

func (c caller) number(key string) Number {
	n := Number{
		Key: key, Now: c.now, WouldBe: c.wouldBe, Differs: c.differs,
		Calls: c.res.Calls, CallsChanged: c.res.Changed,
	}
	for i, ch := range c.res.Changes {
		if i == MaxChanges {
			n.MoreChanges = len(c.res.Changes) - MaxChanges
			break
		}
		n.Changes = append(n.Changes, CallChange{
			CallID: ch.CallID, At: ch.At, Was: ch.Was, WasLevel: ch.WasLevel,
			Now: ch.Now, NowLevel: ch.NowLevel, NowRule: ch.NowRule,
		})
	}
	return n
}

// differs names the fields of a caller's standing that differ between a
// and b. The counts (hour, day) are the same on both sides, the failed
// challenges and the next verdict follow from the rest, and Since is left
// out: a block set a few calls earlier under other limits is the same
// block if it stands at the same level until the same time.
func differs(a, b policy.Status) []string {
	var out []string
	add := func(name string, same bool) {
		if !same {
			out = append(out, name)
		}
	}
	add("level", a.Level == b.Level)
	add("kind", a.Kind == b.Kind)
	add("rule", a.Rule == b.Rule)
	add("until", a.Until.Equal(b.Until))
	add("whitelisted", a.Whitelisted == b.Whitelisted)
	add("whitelistUntil", a.WhitelistUntil.Equal(b.WhitelistUntil))
	add("verifiedUntil", a.VerifiedUntil.Equal(b.VerifiedUntil))
	return out
}

var verdictOrder = []schema.Verdict{schema.Pass, schema.Challenge, schema.Reject}

func transitions(m map[[2]schema.Verdict]int) []Transition {
	out := make([]Transition, 0, len(m))
	for k, n := range m {
		out = append(out, Transition{From: k[0], To: k[1], Calls: n})
	}
	rank := func(v schema.Verdict) int {
		if i := slices.Index(verdictOrder, v); i >= 0 {
			return i
		}
		return len(verdictOrder) // a verdict of a later build: last
	}
	slices.SortFunc(out, func(a, b Transition) int {
		return cmp.Or(
			cmp.Compare(rank(a.From), rank(b.From)), cmp.Compare(rank(a.To), rank(b.To)),
			strings.Compare(string(a.From), string(b.From)), strings.Compare(string(a.To), string(b.To)))
	})
	return out
}

// duration renders d without the zero minutes and seconds time.Duration
// prints ("24h", not "24h0m0s"), as a person writes the setting.
func duration(d time.Duration) string {
	s := d.String()
	for _, suffix := range []string{"0s", "0m"} {
		if len(s) > len(suffix)+1 && s[len(s)-len(suffix):] == suffix && !isDigit(s[len(s)-len(suffix)-1]) {
			s = s[:len(s)-len(suffix)]
		}
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
