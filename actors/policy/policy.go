// Package policy is callguard's blocking policy: a pure function of a
// caller's folded state, an input (a call, a challenge outcome, an admin
// command) and the time, returning a verdict and the events that record it.
//
// Nothing here reads the clock, keeps mutable globals or does I/O. The
// caller grain is a thin shell around it:
//
//	d, err := pol.Decide(&st, call, clock.Now()) // st is not changed
//	props, err := schema.Proposals(d.Records, meta)
//	_, err = store.Append(ctx, stream, events.ExactOrNoStream(rev, exists), props...)
//	for _, r := range d.Records { pol.Apply(&st, r.Payload) } // only once appended
//	return d.Verdict
//
// and on activation folds its stream with Apply. Because windows are
// computed from the times in the events, replaying a stream gives the same
// state, and Replay re-decides a stream under other settings.
//
// The rules, in the order they are checked (see Decide):
//
//   - Blocks and whitelist entries past their expiry end first, with a
//     BlockExpired or WhitelistExpired event dated at the expiry.
//   - A whitelisted caller always passes and is never blocked
//     automatically; the call is still counted.
//   - Range rules (whitelist or block by number prefix or range, given in
//     Call.Ranges) come next: a whitelist range passes, a block range
//     decides unless the number's own manual block or a stronger automatic
//     one does (see ranges.go).
//   - A caller without a usable number (phone.AnonymousKey) gets
//     Config.Anonymous, unless an admin blocked the anonymous key; limits,
//     escalation and verification do not apply to that shared key.
//   - A call that makes the calls in the last hour more than LimitHour, or
//     in the last day more than LimitDay, breaks a limit. Without a block it
//     sets one at LimitLevel (BlockApplied with the rule, limit, count and
//     the calls that counted), and the call itself gets that block's
//     verdict: the call that crosses the limit is challenged. With an
//     automatic block in force it pushes the block's expiry to BlockFor
//     from now. A manual block is an admin's decision and the rules leave
//     it alone.
//   - Level 0 passes; 1–5 challenges, unless the caller passed a challenge
//     less than VerifiedFor ago; 6–9 rejects.
//   - EscalateAfter failed challenges within a day set an automatic block at
//     EscalationLevel (see Outcome).
//   - Origin rules (a level for calls from a country or a type of number,
//     Call.Origin) act as range blocks do (country.go).
//   - A caller with more than MaxConcurrent calls up at once gets
//     ConcurrentVerdict unless whitelisted or rejected anyway
//     (concurrent.go).
//   - While the called line is under attack (Call.Attack), a call that would
//     pass is challenged (RuleAttack) unless whitelisted or verified
//     (attack.go); other verdicts stand.
//   - A caller the CRM marks VIP (Call.CRM) passes, like a whitelisted
//     one, whatever else would have decided (vip.go).
package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

var (
	// ErrUnknownEvent means Apply was given a payload it does not fold.
	ErrUnknownEvent = errors.New("event not folded by the policy")
	// ErrInvalid means a call, outcome or command is malformed; nothing
	// was produced.
	ErrInvalid = errors.New("invalid input")
)

// AutoBy is BlockApplied.By for blocks the rules set.
const AutoBy = "policy"

// Policy applies one Config. It is immutable and safe for concurrent use;
// the States it works on are not.
type Policy struct {
	cfg Config
	// src is set on the copy Decide makes for a call with overrides
	// (lines.go): which override set which setting.
	src *sources
}

// New returns the policy of cfg, or cfg's Validate error.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Policy{cfg: cfg}, nil
}

// Config returns the settings p applies.
func (p *Policy) Config() Config { return p.cfg }

// Call is what Decide needs to know about a call.
type Call struct {
	// ID is the call's ID (required); event IDs derive from it, so a
	// retried decision proposes the same events.
	ID string
	// Caller is the normalised caller (required).
	Caller phone.Number
	// Presented is the caller identity as the trunk sent it; recorded only
	// for callers that did not normalise to a number.
	Presented string
	// Callee and Source (the trunk) are recorded as they are.
	Callee string
	Source string
	// Attack is the called line's under-attack mode as the node knew it
	// (nil: not under attack); see attack.go.
	Attack *schema.LineAttack
	// Wire is the call as it arrived, recorded in CallReceived as given
	// (see schema.CallReceived). A zero Wire (Mode empty) records a
	// CallReceived of the old shape, as replays and tests of a log
	// written before do.
	Wire Wire
	// Ranges are the range rules matching the caller (the most specific
	// whitelist and block rule of the rule table); see ranges.go.
	Ranges []schema.RangeMatch
	// Overrides are the per-line settings and schedules in force for the
	// call's line at its time, in the order they apply (lines.go).
	Overrides []schema.Override
	// Concurrent is how many other calls of the caller were up when this
	// one was decided, as the caller's grain counted them (concurrent.go).
	Concurrent int
	// Origin is the caller number's country and type with the origin
	// rules matching them (nil: none); see country.go.
	Origin *schema.Origin
	// CRM is the CRM's answer about the caller (nil: not asked); see
	// vip.go.
	CRM *schema.CRMAnswer
}

// Wire is what the SIP side knows of a call beyond what the policy
// decides on, and what the guard does with the verdict (Mode).
type Wire struct {
	SIPCallID    string
	CallerKind   string
	Identity     string
	IdentityFrom string
	Transport    string
	Mode         schema.Mode
	// ChallengeFallback, when set, says why a challenge cannot be carried
	// out on this call: a challenge is then passed (schema.ActionWith).
	ChallengeFallback string
}

// Decision is Decide's answer.
type Decision struct {
	Verdict schema.Verdict
	// Level is the block level the verdict came from: 0 when whitelisted
	// or not blocked.
	Level int
	// Rule is what decided; empty for an ordinary pass.
	Rule schema.Rule
	// Reason says it in words, for logs and the audit.
	Reason string
	// Hour and Day are the caller's calls in the windows, this one included.
	Hour, Day int
	// New says the caller counts towards the line's attack detection:
	// not whitelisted, not verified, no call in the last day (attack.go).
	New bool
	// At is the time of the decision: max(now, the latest event folded).
	At time.Time
	// Records are the events to append, in order: expiries that came due,
	// then CallReceived, then a BlockApplied if the call set a block.
	Records []schema.Record
}

// Decide decides call at now for a caller in state st and returns the
// events that record it. It does not change st: the grain folds the
// records with Apply once they are appended, so a failed append leaves the
// state as it was. It fails only on malformed input (ErrInvalid).
func (p *Policy) Decide(st *State, call Call, now time.Time) (Decision, error) {
	key := call.Caller.Key
	switch {
	case call.ID == "":
		return Decision{}, fmt.Errorf("policy: decide: %w: call has no ID", ErrInvalid)
	case !phone.IsKey(key):
		return Decision{}, fmt.Errorf("policy: decide call %s: %w: caller key %q is not E.164 or %q", call.ID, ErrInvalid, key, phone.AnonymousKey)
	}
	at := max(unix(now), st.Last)
	p, overrides := p.withOverrides(call.Overrides, at)
	v := p.view(st)
	recs := p.expiries(&v, key, at)

	edgeHour, edgeDay := at-int64(Hour), at-int64(Day)
	hour, day := v.count(edgeHour)+1, v.count(edgeDay)+1
	d := Decision{Hour: hour, Day: day, At: tm(at)}
	ev := schema.CallReceived{
		CallID: call.ID, Caller: key, Callee: call.Callee, Source: call.Source,
		At: d.At, Hour: hour, Day: day, Overrides: overrides,
	}
	if call.Caller.Anonymous() && call.Presented != key {
		ev.Presented = call.Presented
	}
	var block *schema.BlockApplied

	switch {
	case v.whitelisted:
		d.Verdict, d.Rule, d.Reason = schema.Pass, schema.RuleWhitelist, "whitelisted"
	case key == phone.AnonymousKey && v.level == 0:
		d.Verdict, d.Rule, d.Reason = p.cfg.Anonymous, schema.RuleAnonymous, p.anonymousReason()
	case key == phone.AnonymousKey:
		// An admin blocked the anonymous key: the block decides, without
		// verification (one caller's pass must not let the others through).
		d.Verdict, d.Level, d.Rule, d.Reason = schema.LevelVerdict(v.level), v.level, v.rule, blockReason(v)
	default:
		rule, limit, count := p.offence(hour, day)
		switch {
		case rule == "" || v.kind == schema.Manual:
			// Nothing broken, or an admin's block that the rules leave alone.
		case v.level == 0 || v.level < p.cfg.LimitLevel:
			// A new block (or a weaker one left by other settings, seen in
			// a replay) at the limit level.
			until := at + int64(p.cfg.BlockFor)
			block = &schema.BlockApplied{
				Level: p.cfg.LimitLevel, Kind: schema.Auto, Rule: rule, At: d.At, Until: tmPtr(until),
				Limit: limit, Count: count, Calls: v.evidence(call.ID, at, rule),
				CallID: call.ID, By: AutoBy, Why: p.offenceReason(rule, count, limit),
			}
			v.level, v.kind, v.rule, v.until = block.Level, block.Kind, rule, until
		default:
			// Still offending under an automatic block: it lasts BlockFor
			// from this call.
			v.until = at + int64(p.cfg.BlockFor)
			ev.BlockUntil = tmPtr(v.until)
		}
		d.Level, d.Verdict, d.Rule = v.level, schema.LevelVerdict(v.level), v.rule
		switch {
		case d.Verdict == schema.Pass:
			d.Level, d.Rule = 0, ""
		case d.Verdict == schema.Challenge && v.verifiedUntil > at:
			d.Verdict, d.Rule = schema.Pass, schema.RuleVerified
			d.Reason = "verified until " + tm(v.verifiedUntil).Format(time.RFC3339)
		case rule != "" && rule == v.rule:
			d.Reason = p.offenceReason(rule, count, limit)
		default:
			d.Reason = blockReason(v)
		}
	}
	// Range rules first: a whitelist range passes even a line under
	// attack, and a block range rejects there as anywhere.
	block = applyRanges(&d, &ev, v, block, call, at)
	applyOrigin(&d, &ev, v, call, at)
	p.overConcurrent(&d, &ev, call, v)
	underAttack(&d, &ev, call, v, at)
	block = applyVIP(&d, &ev, block, call) // the CRM's whitelist, last: it beats blocks and attack
	d.New = v.isNew(key, at) && d.Rule != schema.RuleRangeWhitelist && d.Rule != schema.RuleVIP
	ev.Verdict, ev.Level, ev.Rule, ev.Reason = d.Verdict, d.Level, d.Rule, d.Reason
	if w := call.Wire; w.Mode != "" {
		ev.SIPCallID, ev.CallerKind, ev.Identity, ev.IdentityFrom, ev.Transport = w.SIPCallID, w.CallerKind, w.Identity, w.IdentityFrom, w.Transport
		ev.Mode = w.Mode
		ev.Action, ev.ActionReason = schema.ActionWith(w.Mode, d.Verdict, w.ChallengeFallback)
	}
	recs = append(recs, schema.Record{ID: schema.CallEventID(key, call.ID, schema.RoleReceived), Payload: ev})
	if block != nil {
		// After CallReceived, so that the block's evidence (this call
		// included) is already in the stream when the block is.
		recs = append(recs, schema.Record{ID: schema.CallEventID(key, call.ID, schema.RoleBlock), Payload: *block})
	}
	d.Records = recs
	return d, nil
}

// offence returns the limit a call breaks with hour and day calls, if any.
// The hourly rule is checked first: it is the one a flood breaks.
func (p *Policy) offence(hour, day int) (schema.Rule, int, int) {
	switch {
	case p.cfg.LimitHour > 0 && hour > p.cfg.LimitHour:
		return schema.RuleHourlyLimit, p.cfg.LimitHour, hour
	case p.cfg.LimitDay > 0 && day > p.cfg.LimitDay:
		return schema.RuleDailyLimit, p.cfg.LimitDay, day
	}
	return "", 0, 0
}

func offenceReason(rule schema.Rule, count, limit int) string {
	window := "hour"
	if rule == schema.RuleDailyLimit {
		window = "day"
	}
	return fmt.Sprintf("%d calls in the last %s, limit %d", count, window, limit)
}

func blockReason(v view) string {
	return fmt.Sprintf("%s block at level %d (%s)", v.kind, v.level, v.rule)
}

// Outcome records how the challenge of call callID ended at now, for the
// caller key in state st, and returns the events to append: expiries that
// came due, ChallengeOutcome, and a BlockApplied when the failure
// escalates. A pass verifies the caller for VerifiedFor. Neither happens
// for the anonymous key (shared by everyone without a number) or a
// whitelisted caller; escalation leaves a manual block alone. It does not
// change st.
func (p *Policy) Outcome(st *State, key, callID string, outcome schema.Outcome, now time.Time) ([]schema.Record, error) {
	switch {
	case callID == "":
		return nil, fmt.Errorf("policy: outcome: %w: no call ID", ErrInvalid)
	case !phone.IsKey(key):
		return nil, fmt.Errorf("policy: outcome of call %s: %w: caller key %q is not E.164 or %q", callID, ErrInvalid, key, phone.AnonymousKey)
	case !outcome.Valid():
		return nil, fmt.Errorf("policy: outcome of call %s: %w: outcome %q, want passed, failed or abandoned", callID, ErrInvalid, outcome)
	}
	at := max(unix(now), st.Last)
	v := p.view(st)
	recs := p.expiries(&v, key, at)
	shared := key == phone.AnonymousKey
	ev := schema.ChallengeOutcome{CallID: callID, Outcome: outcome, At: tm(at)}
	if outcome == schema.Passed && p.cfg.VerifiedFor > 0 && !shared && !v.whitelisted {
		ev.VerifiedUntil = tmPtr(at + int64(p.cfg.VerifiedFor))
	}
	recs = append(recs, schema.Record{ID: schema.CallEventID(key, callID, schema.RoleOutcome), Payload: ev})

	counts := outcome == schema.Failed || (outcome == schema.Abandoned && p.cfg.CountAbandoned)
	if !counts || p.cfg.EscalateAfter == 0 || shared || v.whitelisted ||
		v.kind == schema.Manual || v.level >= p.cfg.EscalationLevel {
		return recs, nil
	}
	edge := at - int64(Day)
	var calls []string
	for _, f := range st.Failures {
		if f.At > edge && (!f.Abandoned || p.cfg.CountAbandoned) {
			calls = append(calls, f.ID)
		}
	}
	calls = append(calls, callID)
	if len(calls) < p.cfg.EscalateAfter {
		return recs, nil
	}
	recs = append(recs, schema.Record{ID: schema.CallEventID(key, callID, schema.RoleEscalation), Payload: schema.BlockApplied{
		Level: p.cfg.EscalationLevel, Kind: schema.Auto, Rule: schema.RuleEscalation, At: tm(at),
		Until: tmPtr(at + int64(p.cfg.BlockFor)), Limit: p.cfg.EscalateAfter, Count: len(calls), Calls: calls,
		CallID: callID, By: AutoBy, Why: fmt.Sprintf("%d failed challenges in the last day, limit %d", len(calls), p.cfg.EscalateAfter),
	}})
	return recs, nil
}

// Expire returns the expiry events due at now for the caller key in state
// st (BlockExpired, WhitelistExpired), without changing st. Decide, Outcome
// and the commands include them anyway; a grain calls Expire from a timer
// (see NextExpiry) so that lists built from the log drop an entry on time
// even when the caller never calls again.
func (p *Policy) Expire(st *State, key string, now time.Time) []schema.Record {
	v := p.view(st)
	return p.expiries(&v, key, max(unix(now), st.Last))
}

// NextExpiry returns when the next block or whitelist expiry of st falls
// due, and false when none is pending.
func NextExpiry(st *State) (time.Time, bool) {
	var next int64
	if st.Level > 0 && st.BlockUntil != 0 {
		next = st.BlockUntil
	}
	if st.Whitelisted && st.WhitelistUntil != 0 && (next == 0 || st.WhitelistUntil < next) {
		next = st.WhitelistUntil
	}
	if next == 0 {
		return time.Time{}, false
	}
	return tm(next), true
}

// view is the scalar part of a State that a decision may change before its
// events are folded: Decide works on a view so that st stays untouched.
type view struct {
	*State // read-only here: Calls, CallIDs, Failures

	level            int
	kind             schema.BlockKind
	rule             schema.Rule
	since, until     int64
	whitelisted      bool
	wlSince, wlUntil int64
	verifiedUntil    int64
}

func (p *Policy) view(st *State) view {
	return view{
		State: st, level: st.Level, kind: st.Kind, rule: st.Rule, since: st.BlockSince, until: st.BlockUntil,
		whitelisted: st.Whitelisted, wlSince: st.WhitelistSince, wlUntil: st.WhitelistUntil,
		verifiedUntil: st.VerifiedUntil,
	}
}

// expiries ends, in v, the block and whitelist entry whose expiry is at or
// before at, and returns the events recording it, dated at the expiry and
// in time order.
func (p *Policy) expiries(v *view, key string, at int64) []schema.Record {
	var wl, bl *schema.Record
	wlUntil, blUntil := v.wlUntil, v.until
	if v.whitelisted && wlUntil != 0 && wlUntil <= at {
		since, until := tm(v.wlSince), tm(wlUntil)
		wl = &schema.Record{
			ID:      schema.ExpiryEventID(key, schema.TypeWhitelistExpired, since, until),
			Payload: schema.WhitelistExpired{Since: since, At: until},
		}
		v.whitelisted, v.wlSince, v.wlUntil = false, 0, 0
	}
	if v.level > 0 && blUntil != 0 && blUntil <= at {
		since, until := tm(v.since), tm(blUntil)
		bl = &schema.Record{
			ID:      schema.ExpiryEventID(key, schema.TypeBlockExpired, since, until),
			Payload: schema.BlockExpired{Level: v.level, Kind: v.kind, Rule: v.rule, Since: since, At: until},
		}
		v.level, v.kind, v.rule, v.since, v.until = 0, "", "", 0, 0
	}
	switch {
	case wl != nil && bl != nil && blUntil < wlUntil:
		return []schema.Record{*bl, *wl}
	case wl != nil && bl != nil:
		return []schema.Record{*wl, *bl}
	case wl != nil:
		return []schema.Record{*wl}
	case bl != nil:
		return []schema.Record{*bl}
	}
	return nil
}

// evidence returns the IDs of the calls that count for rule at at, oldest
// first, this call (id) last. Only the IDs the state still holds can be
// named; the BlockApplied's Count carries the full count.
func (v view) evidence(id string, at int64, rule schema.Rule) []string {
	edge := at - int64(Hour)
	if rule == schema.RuleDailyLimit {
		edge = at - int64(Day)
	}
	n := v.count(edge)
	ids := v.CallIDs
	if len(ids) > n {
		ids = ids[len(ids)-n:]
	}
	out := make([]string, 0, len(ids)+1)
	out = append(out, ids...)
	return append(out, id)
}
