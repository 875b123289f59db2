package profiles

import (
	"fmt"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/lists"
)

// recordForm is the version of Record's binary form (see rm.Enc for why
// not JSON); the fields follow in encode's order.
const recordForm = 2

func encode(r *Record) []byte {
	var e rm.Enc
	e.Form(recordForm)
	e.Time(r.FirstSeen)
	e.Time(r.FirstCall)
	e.Time(r.LastCall)
	e.String(string(r.LastVerdict))
	e.String(r.LastCallee)
	e.String(r.LastCallID)
	e.String(r.Day)
	e.String(string(r.LastAction))
	e.Ints(r.Calls, r.DayCalls, r.Passed, r.Challenged, r.Rejected,
		r.ChallengesPassed, r.ChallengesFailed, r.ChallengesAbandoned, r.Blocks, r.Observed)
	e.Time(r.VerifiedUntil)
	b := r.Standing.Block
	e.Bool(b != nil)
	if b != nil {
		e.Ints(b.Level)
		e.String(string(b.Kind))
		e.String(string(b.Rule))
		e.Time(b.Since)
		e.TimePtr(b.Until)
		e.String(b.By)
		e.String(b.Reason)
		e.String(b.CommandID)
		e.String(b.CallID)
	}
	w := r.Standing.Whitelist
	e.Bool(w != nil)
	if w != nil {
		e.Time(w.Since)
		e.TimePtr(w.Until)
		e.String(w.By)
		e.String(w.Reason)
		e.String(w.CommandID)
	}
	return e.B
}

func decode(raw []byte) (Record, error) {
	var r Record
	d := rm.Dec{B: raw}
	d.Form(recordForm)
	r.FirstSeen = d.Time()
	r.FirstCall = d.Time()
	r.LastCall = d.Time()
	r.LastVerdict = schema.Verdict(d.String())
	r.LastCallee = d.String()
	r.LastCallID = d.String()
	r.Day = d.String()
	r.LastAction = schema.Verdict(d.String())
	d.Ints(&r.Calls, &r.DayCalls, &r.Passed, &r.Challenged, &r.Rejected,
		&r.ChallengesPassed, &r.ChallengesFailed, &r.ChallengesAbandoned, &r.Blocks, &r.Observed)
	r.VerifiedUntil = d.Time()
	if d.Bool() {
		b := &lists.Block{}
		d.Ints(&b.Level)
		b.Kind = schema.BlockKind(d.String())
		b.Rule = schema.Rule(d.String())
		b.Since = d.Time()
		b.Until = d.TimePtr()
		b.By = d.String()
		b.Reason = d.String()
		b.CommandID = d.String()
		b.CallID = d.String()
		r.Standing.Block = b
	}
	if d.Bool() {
		w := &lists.Whitelisting{}
		w.Since = d.Time()
		w.Until = d.TimePtr()
		w.By = d.String()
		w.Reason = d.String()
		w.CommandID = d.String()
		r.Standing.Whitelist = w
	}
	if err := d.Err(); err != nil {
		return Record{}, fmt.Errorf("profile record: %w", err)
	}
	return r, nil
}
