package policy

import (
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Per-line settings and schedules (schema.Override) are policy data kept
// outside the caller's state (package actors/rules): the grain looks up
// the overrides in force for the call's line at the call's time and
// passes them in Call.Overrides, in the order they apply. Decide uses the
// settings they make effective for this call — the limits, the limit's
// block level and duration, the verdict for callers without a number —
// records them in CallReceived.Overrides, and names the override in the
// reason when one set the limit that decided. Verification, escalation
// and the IDs the state keeps stay global: they concern the caller across
// lines, not one call.

// sources says which override set each setting of an effective Config
// (nil: the global setting).
type sources struct {
	hour, day, level, anonymous *schema.Override
}

// WithOverrides returns c with os applied in order, the later winning
// setting by setting.
func (c Config) WithOverrides(os ...schema.Settings) Config {
	for _, o := range os {
		if o.LimitHour != nil {
			c.LimitHour = *o.LimitHour
		}
		if o.LimitDay != nil {
			c.LimitDay = *o.LimitDay
		}
		if o.LimitLevel != nil {
			c.LimitLevel = *o.LimitLevel
		}
		if o.BlockFor != nil {
			c.BlockFor = *o.BlockFor
		}
		if o.Anonymous != nil {
			c.Anonymous = *o.Anonymous
		}
	}
	return c
}

// withOverrides returns the policy of a call with overrides os at at (p
// itself when none is in force) and the overrides it applied, expired
// ones left out. Settings that together would be invalid (say an hour
// limit above the day limit, which the commands refuse against the
// global settings of their node) are applied as they are: the limits
// still work, one of them only never fires.
func (p *Policy) withOverrides(os []schema.Override, at int64) (*Policy, []schema.Override) {
	if len(os) == 0 {
		return p, nil
	}
	q := &Policy{cfg: p.cfg, src: &sources{}}
	var applied []schema.Override
	for i := range os {
		o := &os[i]
		if o.Until != nil && !tm(at).Before(*o.Until) {
			continue
		}
		applied = append(applied, *o)
		q.cfg = q.cfg.WithOverrides(o.Settings)
		s := o.Settings
		if s.LimitHour != nil {
			q.src.hour = o
		}
		if s.LimitDay != nil {
			q.src.day = o
		}
		if s.LimitLevel != nil {
			q.src.level = o
		}
		if s.Anonymous != nil {
			q.src.anonymous = o
		}
	}
	if len(applied) == 0 {
		return p, nil
	}
	return q, applied
}

// offenceReason says why a call broke a limit, naming the override that
// set the limit.
func (p *Policy) offenceReason(rule schema.Rule, count, limit int) string {
	r := offenceReason(rule, count, limit)
	if p.src == nil {
		return r
	}
	o := p.src.hour
	if rule == schema.RuleDailyLimit {
		o = p.src.day
	}
	if o != nil {
		r += ", set by " + o.Explain()
	}
	return r
}

// anonymousReason says why a caller without a number got its verdict.
func (p *Policy) anonymousReason() string {
	if p.src != nil && p.src.anonymous != nil {
		return "no caller number; " + string(p.cfg.Anonymous) + " set by " + p.src.anonymous.Explain()
	}
	return "no caller number"
}

// ActiveOverrides returns the overrides of os in force at t: not expired
// and, for a schedule, t inside its window on its zone's wall clock (a
// zone that does not load leaves the schedule out). A replay uses it for
// the overrides it tries; a live call gets them resolved by its rule
// table.
func ActiveOverrides(os []schema.Override, t time.Time) []schema.Override {
	var out []schema.Override
	for _, o := range os {
		if o.Until != nil && !t.Before(*o.Until) {
			continue
		}
		if o.Window != nil {
			loc, err := time.LoadLocation(o.Zone)
			if err != nil || !o.Window.Contains(t, loc) {
				continue
			}
		}
		out = append(out, o)
	}
	return out
}
