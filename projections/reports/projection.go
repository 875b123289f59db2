package reports

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/runner"
)

// Name is the projection's name in the runner.
const Name = "reports"

// version is the shape of the read model below; the time zone is part of
// the runner's version too.
const version = "4" // 2: busy calls counted; 3: calls counted by action, observe mode's would-be verdicts apart; 4: challenged by the attack rule, attack periods

// Layout of the projection's bucket:
//
//	days      "<YYYY-MM-DD>|<callee>" -> JSON Counters
//	callers   "<YYYY-MM-DD>|<caller>" -> JSON CallerCounters
//	outcomes  "<caller>\x00<call ID>"  -> JSON Call  (challenged calls
//	                                         awaiting their outcome)
//	calls     "<call ID>"              -> JSON Call  (calls between their
//	                                         arrival, CallReceived of the
//	                                         current shape or CallStarted,
//	                                         and CallEnded)
//
// Days sort first in the keys, so a date range is one cursor walk.
// Entries of outcomes and calls are deleted when the call's last event
// arrives; a call whose guard died before writing CallEnded stays in
// calls (a few bytes each).
const (
	bucketDays     = "days"
	bucketCallers  = "callers"
	bucketOutcomes = "outcomes"
	bucketCalls    = "calls"
)

// Projection keeps the reports. It is immutable and safe for concurrent
// use.
type Projection struct {
	rm.Zoned
}

var _ runner.Projection = (*Projection)(nil)

// NewProjection returns the reports projection, counting days and hours
// in loc (nil: UTC).
func NewProjection(loc *time.Location) *Projection {
	return &Projection{rm.NewZoned(loc)}
}

// Name implements runner.Projection.
func (p *Projection) Name() string { return Name }

// Version implements runner.Projection.
func (p *Projection) Version() string { return p.Zoned.Version(version) }

// Begin implements runner.Projection.
func (p *Projection) Begin(root *bolt.Bucket) runner.Batch {
	return &batch{
		p: p, root: root,
		days:     newCache(encodeCounters, decodeCounters),
		callers:  newCache(encodeCallerCounters, decodeCallerCounters),
		outcomes: newCache(encodeCall, decodeCall),
		calls:    newCache(encodeCall, decodeCall),
	}
}

// folds reports whether the reports fold events of type typ.
func folds(typ string) bool {
	switch typ {
	case schema.TypeCallReceived, schema.TypeChallengeOutcome, schema.TypeBlockApplied,
		schema.TypeLineAttackStarted, schema.TypeLineAttackEnded,
		schema.TypeCallStarted, schema.TypeCallDecided, schema.TypeChallengeEnded,
		schema.TypeCallAnswered, schema.TypeCallBridged, schema.TypeCallEnded:
		return true
	}
	return false
}

type batch struct {
	p        *Projection
	root     *bolt.Bucket
	opened   bool
	days     *cache[Counters]
	callers  *cache[CallerCounters]
	outcomes *cache[Call]
	calls    *cache[Call]
}

func (b *batch) open() error {
	if b.opened {
		return nil
	}
	bs, err := rm.Buckets(b.root, bucketDays, bucketCallers, bucketOutcomes, bucketCalls)
	if err != nil {
		return err
	}
	b.days.b, b.callers.b, b.outcomes.b, b.calls.b = bs[0], bs[1], bs[2], bs[3]
	b.opened = true
	return nil
}

func dayKey(day, who string) string { return day + "|" + who }

// The parts of the payloads the reports read. A call stream's call ID is
// its stream name's, so it is not read from the payload.
type (
	receivedSubset struct {
		CallID  string
		Callee  string
		At      time.Time
		Verdict schema.Verdict
		// Action is set in the current shape (schema.CallReceived.Recorded).
		Action schema.Verdict
		Rule   schema.Rule
	}
	outcomeSubset struct {
		CallID  string
		Outcome schema.Outcome
		At      time.Time
	}
	startedSubset struct {
		Caller string
		Callee string
		At     time.Time
	}
	decidedSubset struct {
		Verdict   schema.Verdict
		Action    schema.Verdict
		StoreDown bool
		Busy      bool
	}
	endedSubset struct {
		AnsweredAt *time.Time
		DurationMs int64
		Billed     bool
	}
)

// The readers below take from a payload the members a report uses (see
// rm.Members for why not encoding/json); the JSON names are schema's.

func (b *batch) received(ev events.Event) (e receivedSubset, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "callId":
			e.CallID, err = rm.String(v)
		case "callee":
			e.Callee, err = rm.String(v)
		case "at":
			e.At, err = rm.Time(v)
		case "verdict":
			e.Verdict, err = str[schema.Verdict](v)
		case "action":
			e.Action, err = str[schema.Verdict](v)
		case "rule":
			e.Rule, err = str[schema.Rule](v)
		}
		return err
	})
	return e, err
}

func (b *batch) outcome(ev events.Event) (e outcomeSubset, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "callId":
			e.CallID, err = rm.String(v)
		case "outcome":
			e.Outcome, err = str[schema.Outcome](v)
		case "at":
			e.At, err = rm.Time(v)
		}
		return err
	})
	return e, err
}

func (b *batch) at(ev events.Event) (at time.Time, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		if string(name) == "at" {
			at, err = rm.Time(v)
		}
		return err
	})
	return at, err
}

func (b *batch) started(ev events.Event) (e startedSubset, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "caller":
			e.Caller, err = rm.String(v)
		case "callee":
			e.Callee, err = rm.String(v)
		case "at":
			e.At, err = rm.Time(v)
		}
		return err
	})
	return e, err
}

func (b *batch) decided(ev events.Event) (e decidedSubset, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "verdict":
			e.Verdict, err = str[schema.Verdict](v)
		case "action":
			e.Action, err = str[schema.Verdict](v)
		case "storeDown":
			e.StoreDown, err = rm.Bool(v)
		case "busy":
			e.Busy, err = rm.Bool(v)
		}
		return err
	})
	return e, err
}

// member reads one string member of a payload.
func (b *batch) member(ev events.Event, member string) (s string, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		if string(name) == member {
			s, err = rm.String(v)
		}
		return err
	})
	return s, err
}

func (b *batch) ended(ev events.Event) (e endedSubset, err error) {
	err = rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "answeredAt":
			var t time.Time
			if t, err = rm.Time(v); err == nil && !t.IsZero() {
				e.AnsweredAt = &t
			}
		case "durationMs":
			e.DurationMs, err = rm.Int(v)
		case "billed":
			e.Billed, err = rm.Bool(v)
		}
		return err
	})
	return e, err
}

func str[T ~string](v []byte) (T, error) {
	s, err := rm.String(v)
	return T(s), err
}

func (b *batch) Apply(ev events.Event) error {
	if !folds(ev.Type) {
		return nil
	}
	if err := b.open(); err != nil {
		return err
	}
	if key, ok := schema.CallerKey(ev.Stream); ok {
		return b.applyCaller(ev, key)
	}
	if id, ok := strings.CutPrefix(ev.Stream, schema.CallStreamPrefix); ok && id != "" {
		return b.applyCall(ev, id)
	}
	if line, ok := schema.LineKey(ev.Stream); ok {
		return b.applyLine(ev, line)
	}
	return nil
}

// applyCaller folds an event of the caller stream of key.
func (b *batch) applyCaller(ev events.Event, key string) error {
	switch ev.Type {
	case schema.TypeCallReceived:
		e, err := b.received(ev)
		if err != nil {
			return err
		}
		day, hour := rm.Day(e.At, b.p.Loc), rm.Hour(e.At, b.p.Loc)
		dk, ck := dayKey(day, e.Callee), dayKey(day, key)
		c, err := b.days.get(dk)
		if err != nil {
			return err
		}
		cc, err := b.callers.get(ck)
		if err != nil {
			return err
		}
		rec := schema.CallReceived{CallID: e.CallID, Callee: e.Callee, At: e.At, Verdict: e.Verdict, Action: e.Action, Rule: e.Rule}
		*c, *cc = Received(*c, *cc, rec, hour)
		if Acted(rec) == schema.Challenge {
			b.outcomes.put(key+"\x00"+e.CallID, Call{Day: day, Hour: hour, Callee: e.Callee})
		}
		// The current shape says what the call stream's CallStarted and
		// CallDecided said: a reject carried out ends here, any other call
		// is open until its CallEnded.
		var call Call
		call, *c = Arrived(*c, Call{Day: day, Hour: hour, Callee: e.Callee, Caller: key}, rec)
		if rec.Recorded() && !rec.Complete() {
			b.calls.put(e.CallID, call)
		}
		b.days.touch(dk)
		b.callers.touch(ck)
	case schema.TypeChallengeOutcome:
		e, err := b.outcome(ev)
		if err != nil {
			return err
		}
		ok := key + "\x00" + e.CallID
		call, found, err := b.outcomes.lookup(ok)
		if err != nil {
			return err
		}
		if !found {
			// An outcome without a challenged call before it: count it
			// on its own day, for no callee, rather than lose it.
			call = Call{Day: rm.Day(e.At, b.p.Loc)}
		}
		b.outcomes.remove(ok)
		dk, ck := dayKey(call.Day, call.Callee), dayKey(call.Day, key)
		c, err := b.days.get(dk)
		if err != nil {
			return err
		}
		cc, err := b.callers.get(ck)
		if err != nil {
			return err
		}
		*c, *cc = Outcome(*c, *cc, e.Outcome)
		b.days.touch(dk)
		b.callers.touch(ck)
	case schema.TypeBlockApplied:
		at, err := b.at(ev)
		if err != nil {
			return err
		}
		ck := dayKey(rm.Day(at, b.p.Loc), key)
		cc, err := b.callers.get(ck)
		if err != nil {
			return err
		}
		cc.Blocks++
		b.callers.touch(ck)
	}
	return nil
}

// applyCall folds an event of the call stream of call id.
func (b *batch) applyCall(ev events.Event, id string) error {
	switch ev.Type {
	case schema.TypeCallStarted:
		e, err := b.started(ev)
		if err != nil {
			return err
		}
		b.calls.put(id, Call{Day: rm.Day(e.At, b.p.Loc), Hour: rm.Hour(e.At, b.p.Loc), Callee: e.Callee, Caller: e.Caller})
	case schema.TypeCallDecided:
		e, err := b.decided(ev)
		if err != nil {
			return err
		}
		return b.updateCall(id, func(call Call) (Call, error) {
			dk := dayKey(call.Day, call.Callee)
			c, err := b.days.get(dk)
			if err != nil {
				return call, err
			}
			*c, call = Decided(*c, call, schema.CallDecided{Verdict: e.Verdict, Action: e.Action, StoreDown: e.StoreDown, Busy: e.Busy})
			b.days.touch(dk)
			if (e.StoreDown || e.Busy) && call.Caller != "" {
				// No CallReceived counts this call for its caller.
				ck := dayKey(call.Day, call.Caller)
				cc, err := b.callers.get(ck)
				if err != nil {
					return call, err
				}
				cc.Calls++
				b.callers.touch(ck)
			}
			return call, nil
		})
	case schema.TypeChallengeEnded:
		o, err := b.member(ev, "outcome")
		if err != nil {
			return err
		}
		return b.updateCall(id, func(call Call) (Call, error) {
			return ChallengeEnded(call, schema.ChallengeEnded{Outcome: schema.Outcome(o)}), nil
		})
	case schema.TypeCallAnswered:
		by, err := b.member(ev, "by")
		if err != nil {
			return err
		}
		return b.updateCall(id, func(call Call) (Call, error) { return Answered(call, schema.Party(by)), nil })
	case schema.TypeCallBridged:
		return b.updateCall(id, func(call Call) (Call, error) { return Answered(call, schema.PartyPBX), nil })
	case schema.TypeCallEnded:
		e, err := b.ended(ev)
		if err != nil {
			return err
		}
		call, found, err := b.calls.lookup(id)
		if err != nil || !found {
			return err // an end without a start: nothing to attribute it to
		}
		b.calls.remove(id)
		dk := dayKey(call.Day, call.Callee)
		c, err := b.days.get(dk)
		if err != nil {
			return err
		}
		*c = Ended(*c, call, schema.CallEnded{AnsweredAt: e.AnsweredAt, DurationMs: e.DurationMs, Billed: e.Billed})
		b.days.touch(dk)
	}
	return nil
}

// updateCall applies f to an open call; events of a call whose start the
// reports never saw are ignored.
func (b *batch) updateCall(id string, f func(Call) (Call, error)) error {
	call, found, err := b.calls.lookup(id)
	if err != nil || !found {
		return err
	}
	call, err = f(call)
	if err != nil {
		return err
	}
	b.calls.put(id, call)
	return nil
}

func (b *batch) Flush() error {
	if !b.opened {
		return nil
	}
	for _, c := range []interface{ flush() error }{b.days, b.callers, b.outcomes, b.calls} {
		if err := c.flush(); err != nil {
			return err
		}
	}
	return nil
}

// cache holds the values of one bucket a batch reads and writes, so that
// a thousand calls of one day update its counters once.
type cache[T any] struct {
	b       *bolt.Bucket
	entries map[string]*entry[T]
	enc     func(*rm.Enc, *T)
	dec     func(*rm.Dec, *T)
	buf     rm.Enc
}

type entry[T any] struct {
	v       T
	dirty   bool
	deleted bool
}

func newCache[T any](enc func(*rm.Enc, *T), dec func(*rm.Dec, *T)) *cache[T] {
	return &cache[T]{entries: map[string]*entry[T]{}, enc: enc, dec: dec}
}

func (c *cache[T]) load(key string) (*entry[T], error) {
	if e, ok := c.entries[key]; ok {
		return e, nil
	}
	e := &entry[T]{}
	raw := c.b.Get([]byte(key))
	if raw == nil {
		e.deleted = true // absent: reads as the zero value
	} else {
		v, err := decode(raw, c.dec)
		if err != nil {
			return nil, fmt.Errorf("reports value %q: %w", key, err)
		}
		e.v = v
	}
	c.entries[key] = e
	return e, nil
}

// get returns the value of key to change in place; touch it after.
func (c *cache[T]) get(key string) (*T, error) {
	e, err := c.load(key)
	if err != nil {
		return nil, err
	}
	return &e.v, nil
}

func (c *cache[T]) touch(key string) {
	e := c.entries[key]
	e.dirty, e.deleted = true, false
}

func (c *cache[T]) lookup(key string) (T, bool, error) {
	e, err := c.load(key)
	if err != nil {
		var zero T
		return zero, false, err
	}
	return e.v, !e.deleted, nil
}

func (c *cache[T]) put(key string, v T) {
	c.entries[key] = &entry[T]{v: v, dirty: true}
}

func (c *cache[T]) remove(key string) {
	var zero T
	c.entries[key] = &entry[T]{v: zero, dirty: true, deleted: true}
}

func (c *cache[T]) flush() error {
	keys := make([]string, 0, len(c.entries))
	for k, e := range c.entries {
		if e.dirty {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		e := c.entries[k]
		if e.deleted {
			if err := c.b.Delete([]byte(k)); err != nil {
				return fmt.Errorf("delete %q: %w", k, err)
			}
			continue
		}
		c.buf.B = c.buf.B[:0]
		c.enc(&c.buf, &e.v)
		// bbolt keeps the value slice until the commit: a copy each.
		if err := c.b.Put([]byte(k), append([]byte(nil), c.buf.B...)); err != nil {
			return fmt.Errorf("put %q: %w", k, err)
		}
	}
	return nil
}
