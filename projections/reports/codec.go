package reports

import (
	"fmt"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
)

// Binary forms of the stored records (see rm.Enc for why not JSON). The
// first byte is the form's version; the fields follow in this order.
const recordForm = 4

func encodeCounters(e *rm.Enc, c *Counters) {
	e.Form(recordForm)
	e.Ints(c.CallsIn, c.Passed, c.Challenged, c.Rejected, c.ChallengesPassed, c.ChallengesFailed,
		c.ChallengesAbandoned, c.StoreDown, c.Tracked, c.Unbilled, c.AnsweredUnbilled, c.Offered,
		c.Connected, c.Unanswered, c.ConnectedBilled, c.BilledCalls, c.Busy,
		c.WouldChallenge, c.WouldReject, c.WouldRejectBilledCalls, c.WouldChallengeBilledCalls, c.ChallengedByAttack)
	for _, v := range []int64{c.ConnectedMs, c.ConnectedMinutes, c.BilledMs, c.BilledMinutes, c.BlockedBilledMs, c.BlockedBilledMinutes,
		c.WouldRejectBilledMs, c.WouldRejectBilledMinutes, c.WouldChallengeBilledMs, c.WouldChallengeBilledMinutes} {
		e.Int(v)
	}
	e.Ints(c.Hours[:]...)
}

func decodeCounters(d *rm.Dec, c *Counters) {
	d.Form(recordForm)
	d.Ints(&c.CallsIn, &c.Passed, &c.Challenged, &c.Rejected, &c.ChallengesPassed, &c.ChallengesFailed,
		&c.ChallengesAbandoned, &c.StoreDown, &c.Tracked, &c.Unbilled, &c.AnsweredUnbilled, &c.Offered,
		&c.Connected, &c.Unanswered, &c.ConnectedBilled, &c.BilledCalls, &c.Busy,
		&c.WouldChallenge, &c.WouldReject, &c.WouldRejectBilledCalls, &c.WouldChallengeBilledCalls, &c.ChallengedByAttack)
	for _, p := range []*int64{&c.ConnectedMs, &c.ConnectedMinutes, &c.BilledMs, &c.BilledMinutes, &c.BlockedBilledMs, &c.BlockedBilledMinutes,
		&c.WouldRejectBilledMs, &c.WouldRejectBilledMinutes, &c.WouldChallengeBilledMs, &c.WouldChallengeBilledMinutes} {
		*p = d.Int()
	}
	for h := range c.Hours {
		d.Ints(&c.Hours[h])
	}
}

func encodeCallerCounters(e *rm.Enc, c *CallerCounters) {
	e.Form(recordForm)
	e.Ints(c.Calls, c.Passed, c.Challenged, c.Rejected, c.Failed, c.Blocks, c.Observed)
}

func decodeCallerCounters(d *rm.Dec, c *CallerCounters) {
	d.Form(recordForm)
	d.Ints(&c.Calls, &c.Passed, &c.Challenged, &c.Rejected, &c.Failed, &c.Blocks, &c.Observed)
}

func encodeCall(e *rm.Enc, c *Call) {
	e.Form(recordForm)
	e.String(c.Day)
	e.Ints(c.Hour)
	e.String(c.Callee)
	e.String(c.Caller)
	e.String(string(c.Action))
	e.String(string(c.Verdict))
	e.String(string(c.Outcome))
	e.Bool(c.Offered)
	e.Bool(c.Connected)
}

func decodeCall(d *rm.Dec, c *Call) {
	d.Form(recordForm)
	c.Day = d.String()
	d.Ints(&c.Hour)
	c.Callee = d.String()
	c.Caller = d.String()
	c.Action = schema.Verdict(d.String())
	c.Verdict = schema.Verdict(d.String())
	c.Outcome = schema.Outcome(d.String())
	c.Offered = d.Bool()
	c.Connected = d.Bool()
}

// decode runs dec over a stored value.
func decode[T any](raw []byte, dec func(*rm.Dec, *T)) (T, error) {
	var v T
	d := rm.Dec{B: raw}
	dec(&d, &v)
	if err := d.Err(); err != nil {
		return v, fmt.Errorf("reports record: %w", err)
	}
	return v, nil
}
