// Package simtest writes realistic event logs for the projections' tests
// and benchmarks: callers decided by the real policy, as the caller grain
// does it (decide, append with the expected revision, then fold), admin
// commands, expiries, and the call streams the call actor writes, on a
// simulated clock. It writes the current shape (events/schema/calls.go,
// "What a call writes") or, with Sim.Shape Legacy, the shape of logs
// written before (a call stream from CallStarted to CallEnded for every
// call), so that tests can hold the read models of both to each other.
//
// It sits beside the policy, under actors/policy, because it drives the
// real policy. It is a test kit: the projections' tests use it (a test may
// reach across layers to set its scene), their production code never does.
package simtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Grace is the carrier's unbilled interval the simulated guard uses.
const Grace = 3 * time.Second

// PBX says what the PBX does with a call sent to it.
type PBX int

const (
	// PBXAnswers: an operator answers; the call lasts Talk.
	PBXAnswers PBX = iota
	// PBXNoAnswer: it rings until the PBX gives up.
	PBXNoAnswer
	// PBXBusy: the PBX refuses it (486).
	PBXBusy
	// CallerGivesUp: the caller hangs up while it rings.
	CallerGivesUp
)

// Call says how a simulated call goes beyond its verdict.
type Call struct {
	Caller, Callee string
	At             time.Time
	// Outcome is how a challenge ends, should the verdict be challenge
	// (default failed).
	Outcome schema.Outcome
	// PBX is what the PBX does with a passed call, and Talk how long an
	// answered call lasts.
	PBX  PBX
	Talk time.Duration
	// NoCallStream leaves out the call stream (logs of a build before
	// the call actor wrote one).
	NoCallStream bool
	// StoreDown: the grain could not decide; the call stream records the
	// store-down policy's Action and the caller stream nothing.
	StoreDown bool
	Action    schema.Verdict
	// Mode is the guard's mode (Enforce when empty): in Observe mode every
	// decided call is passed, whatever its verdict.
	Mode schema.Mode
}

// Shape is the shape of the log a Sim writes.
type Shape int

const (
	// Current: what the guard writes now. CallReceived carries the call
	// as it arrived and the action; a reject carried out writes no call
	// stream, any other decided call a stream without CallStarted and
	// CallDecided.
	Current Shape = iota
	// Legacy: what the guard wrote before. CallReceived without the call
	// on the wire, and a call stream from CallStarted to CallEnded for
	// every call.
	Legacy
)

type caller struct {
	key   string
	st    policy.State
	rev   uint64
	exist bool
}

// Sim writes events into a store. It is not safe for concurrent use.
type Sim struct {
	t       testing.TB
	store   events.Store
	pol     *policy.Policy
	callers map[string]*caller
	calls   int
	// Buffered appends, when Buffer > 0: flushed concurrently.
	Buffer  int
	pending []pendingAppend
	npend   int
	// Events counts the events written (or buffered).
	Events int
	// Shape is the shape of the log written (Current by default).
	Shape Shape
}

type pendingAppend struct {
	stream   string
	expected events.Expected
	props    []events.Proposed
}

// New returns a simulation writing to store under the policy cfg.
func New(t testing.TB, store events.Store, cfg policy.Config) *Sim {
	t.Helper()
	pol, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Sim{t: t, store: store, pol: pol, callers: map[string]*caller{}}
}

func (s *Sim) caller(key string) *caller {
	c, ok := s.callers[key]
	if !ok {
		c = &caller{key: key}
		s.callers[key] = c
	}
	return c
}

// appendCaller appends recs to the caller's stream and folds them.
func (s *Sim) appendCaller(c *caller, recs []schema.Record, actor, corr string) events.AppendResult {
	s.t.Helper()
	if len(recs) == 0 {
		return events.AppendResult{}
	}
	props, err := schema.Proposals(recs, events.Metadata{Node: "sim", Actor: actor, CorrelationID: corr})
	if err != nil {
		s.t.Fatal(err)
	}
	res := s.append(schema.CallerStream(c.key), events.ExactOrNoStream(c.rev, c.exist), props)
	c.rev += uint64(len(props))
	if !c.exist {
		c.rev--
	}
	c.exist = true
	for _, r := range recs {
		if err := s.pol.Apply(&c.st, r.Payload); err != nil {
			s.t.Fatal(err)
		}
	}
	return res
}

func (s *Sim) append(stream string, exp events.Expected, props []events.Proposed) events.AppendResult {
	s.t.Helper()
	s.Events += len(props)
	if s.Buffer > 0 {
		s.pending = append(s.pending, pendingAppend{stream, exp, props})
		if s.npend += len(props); s.npend >= s.Buffer {
			s.Flush()
		}
		return events.AppendResult{}
	}
	res, err := s.store.Append(context.Background(), stream, exp, props...)
	if err != nil {
		s.t.Fatalf("append %s: %v", stream, err)
	}
	return res
}

// Flush appends what is buffered, many streams at once (the store's
// group commit makes that fast); each stream's appends stay in order.
func (s *Sim) Flush() {
	s.t.Helper()
	if len(s.pending) == 0 {
		return
	}
	byStream := map[string][]pendingAppend{}
	var order []string
	for _, p := range s.pending {
		if _, ok := byStream[p.stream]; !ok {
			order = append(order, p.stream)
		}
		byStream[p.stream] = append(byStream[p.stream], p)
	}
	s.pending, s.npend = nil, 0
	// Caller streams first: the guard appends a call's stream only once
	// its CallReceived is durable, so the global log has them in that
	// order, and the folds of the current shape rely on it.
	var callerStreams, others []string
	for _, st := range order {
		if _, ok := schema.CallerKey(st); ok {
			callerStreams = append(callerStreams, st)
		} else {
			others = append(others, st)
		}
	}
	s.appendAll(byStream, callerStreams)
	s.appendAll(byStream, others)
}

// appendAll appends the buffered appends of streams, many at once.
func (s *Sim) appendAll(byStream map[string][]pendingAppend, order []string) {
	s.t.Helper()
	work := make(chan string)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stream := range work {
				ps := byStream[stream]
				// One append per stream: the expectation of the first.
				var all []events.Proposed
				for _, p := range ps {
					all = append(all, p.props...)
				}
				if _, err := s.store.Append(context.Background(), stream, ps[0].expected, all...); err != nil {
					select {
					case errs <- fmt.Errorf("append %s: %w", stream, err):
					default:
					}
				}
			}
		}()
	}
	for _, st := range order {
		work <- st
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		s.t.Fatal(err)
	default:
	}
}

// Place makes a call and writes everything it causes. It returns the
// verdict (empty for a store-down call).
func (s *Sim) Place(c Call) schema.Verdict {
	s.t.Helper()
	s.calls++
	id := fmt.Sprintf("c%07d", s.calls)
	cl := s.caller(c.Caller)
	mode := c.Mode
	if mode == "" {
		mode = schema.Enforce
	}
	var (
		verdict schema.Verdict
		dec     policy.Decision
		rev     *uint64
	)
	if !c.StoreDown {
		number := phone.Number{Key: c.Caller}
		if c.Caller == phone.AnonymousKey {
			number.Kind = phone.KindAnonymous
		}
		var err error
		pc := policy.Call{ID: id, Caller: number, Callee: c.Callee, Source: "trunk"}
		if s.Shape == Current && !c.NoCallStream {
			pc.Wire = policy.Wire{SIPCallID: id + "@trunk", CallerKind: number.Kind.String(), IdentityFrom: "pai", Transport: "UDP", Mode: mode}
		}
		dec, err = s.pol.Decide(&cl.st, pc, c.At)
		if err != nil {
			s.t.Fatal(err)
		}
		s.appendCaller(cl, dec.Records, "grain", id)
		verdict = dec.Verdict
		r := cl.rev
		rev = &r
	}
	action := schema.ActionFor(mode, verdict)
	if c.StoreDown {
		action = c.Action
		if action == "" {
			action = schema.Pass
		}
	}
	outcome := c.Outcome
	if outcome == "" {
		outcome = schema.Failed
	}
	report := func(o schema.Outcome, at time.Time) {
		if !c.StoreDown { // the grain never recorded a store-down call
			s.outcome(cl, id, o, at)
		}
	}
	var cs []schema.Payload
	t := c.At
	at := func(d time.Duration) time.Time { t = t.Add(d); return schema.UTC(t) }
	cs = append(cs, schema.CallStarted{CallID: id, SIPCallID: id + "@trunk", Caller: c.Caller, CallerKind: "e164",
		IdentityFrom: "pai", Callee: c.Callee, Source: "10.0.0.1:5060", Transport: "UDP", Mode: mode, At: schema.UTC(c.At)})
	decided := schema.CallDecided{CallID: id, Verdict: verdict, Level: dec.Level, Rule: dec.Rule, Reason: dec.Reason,
		Action: action, Mode: mode, CallerRevision: rev, At: at(5 * time.Millisecond)}
	if c.StoreDown {
		decided.StoreDown, decided.Error = true, "store unavailable"
	}
	cs = append(cs, decided)
	if s.Shape == Current && !c.StoreDown {
		// The grain's CallReceived says both.
		cs = cs[:0]
	}
	pass := func() {
		switch c.PBX {
		case PBXAnswers:
			ans := at(4 * time.Second)
			cs = append(cs, schema.CallAnswered{CallID: id, By: schema.PartyPBX, At: ans})
			end := at(c.Talk)
			cs = append(cs, ended(id, schema.EndCallerHangup, schema.PartyCaller, 0, &ans, end))
		case PBXNoAnswer:
			cs = append(cs, ended(id, schema.EndPBXNoAnswer, schema.PartyPBX, 480, nil, at(30*time.Second)))
		case PBXBusy:
			cs = append(cs, ended(id, schema.EndPBXRefused, schema.PartyPBX, 486, nil, at(time.Second)))
		case CallerGivesUp:
			cs = append(cs, ended(id, schema.EndCallerCancelled, schema.PartyCaller, 487, nil, at(12*time.Second)))
		}
	}
	switch action {
	case schema.Reject:
		cs = append(cs, ended(id, schema.EndRejected, schema.PartyGuard, 603, nil, at(time.Millisecond)))
	case schema.Pass:
		pass()
	case schema.Challenge:
		cs = append(cs, schema.ChallengeStarted{CallID: id, Digits: 2, Codec: "PCMA", TelephoneEvent: true, At: at(10 * time.Millisecond)})
		ans := at(3 * time.Second)
		cs = append(cs, schema.CallAnswered{CallID: id, By: schema.PartyGuard, At: ans})
		switch outcome {
		case schema.Passed:
			cs = append(cs, schema.CodeEntered{CallID: id, Correct: true, Digits: 2, Methods: []string{"rfc4733"}, At: at(time.Second)})
			cs = append(cs, schema.ChallengeEnded{CallID: id, Outcome: schema.Passed, Cause: "code-correct", At: t})
			report(schema.Passed, t)
			switch c.PBX {
			case PBXAnswers:
				cs = append(cs, schema.CallBridged{CallID: id, At: at(3 * time.Second)})
				end := at(c.Talk)
				cs = append(cs, ended(id, schema.EndCallerHangup, schema.PartyCaller, 0, &ans, end))
			default:
				cs = append(cs, ended(id, schema.EndPBXNoAnswer, schema.PartyPBX, 0, &ans, at(20*time.Second)))
			}
		case schema.Failed:
			cs = append(cs, schema.ChallengeEnded{CallID: id, Outcome: schema.Failed, Cause: "no-code", At: at(Grace - time.Second)})
			report(schema.Failed, t)
			cs = append(cs, ended(id, schema.EndChallengeFailed, schema.PartyGuard, 0, &ans, t))
		case schema.Abandoned:
			end := at(time.Second)
			cs = append(cs, schema.ChallengeEnded{CallID: id, Outcome: schema.Abandoned, Cause: "caller-left", At: end})
			report(schema.Abandoned, end)
			cs = append(cs, ended(id, schema.EndCallerHangup, schema.PartyCaller, 0, &ans, end))
		}
	}
	if s.Shape == Current && !c.StoreDown && action == schema.Reject {
		cs = nil // CallReceived is the whole record of a reject
	}
	if !c.NoCallStream && len(cs) > 0 {
		props := make([]events.Proposed, len(cs))
		for i, p := range cs {
			prop, err := schema.Record{ID: schema.CallStreamEventID(id, p.EventType()), Payload: p}.Proposed(
				events.Metadata{Node: "sim", Actor: "call", CorrelationID: id})
			if err != nil {
				s.t.Fatal(err)
			}
			props[i] = prop
		}
		s.append(schema.CallStream(id), events.NoStream, props)
	}
	return verdict
}

func ended(id string, cause schema.EndCause, by schema.Party, status int, answered *time.Time, at time.Time) schema.CallEnded {
	e := schema.CallEnded{CallID: id, Cause: cause, By: by, Status: status, At: schema.UTC(at), GraceMs: Grace.Milliseconds()}
	if answered != nil {
		a := *answered
		e.AnsweredAt = &a
		e.Status = 0
		e.DurationMs = max(0, at.Sub(a).Milliseconds())
		e.Billed = e.DurationMs >= Grace.Milliseconds()
	}
	return e
}

func (s *Sim) outcome(cl *caller, id string, o schema.Outcome, at time.Time) {
	s.t.Helper()
	recs, err := s.pol.Outcome(&cl.st, cl.key, id, o, at)
	if err != nil {
		s.t.Fatal(err)
	}
	s.appendCaller(cl, recs, "call", id)
}

// Command applies an admin command (verb as in caller.Verb*) to key at
// at, as the grain does. A command the policy refuses for the caller's
// state returns its error and writes nothing.
func (s *Sim) Command(verb, key string, cmd policy.Command, at time.Time) error {
	cl := s.caller(key)
	var (
		recs []schema.Record
		err  error
	)
	switch verb {
	case "whitelist":
		recs, err = s.pol.Whitelist(&cl.st, key, cmd, at)
	case "unwhitelist":
		recs, err = s.pol.Unwhitelist(&cl.st, key, cmd, at)
	case "block":
		recs, err = s.pol.Block(&cl.st, key, cmd, at)
	case "unblock":
		recs, err = s.pol.Unblock(&cl.st, key, cmd, at)
	default:
		err = fmt.Errorf("unknown verb %q", verb)
	}
	if err != nil {
		return err
	}
	s.appendCaller(cl, recs, "admin:"+cmd.By, cmd.ID)
	return nil
}

// Expire writes the expiries due at now for every caller, as the grains'
// expiry timers do.
func (s *Sim) Expire(now time.Time) {
	s.t.Helper()
	var due []string
	for k, cl := range s.callers {
		if next, ok := policy.NextExpiry(&cl.st); ok && !next.After(now) {
			due = append(due, k)
		}
	}
	sort.Strings(due) // the same log for the same seed
	for _, k := range due {
		cl := s.callers[k]
		s.appendCaller(cl, s.pol.Expire(&cl.st, k, now), "grain", "expiry")
	}
}

// Status returns a caller's standing by the policy at now: what the
// lists and profiles must agree with.
func (s *Sim) Status(key string, now time.Time) policy.Status {
	return s.pol.Status(&s.caller(key).st, key, now)
}

// Keys returns the keys of every caller written, sorted.
func (s *Sim) Keys() []string {
	keys := make([]string, 0, len(s.callers))
	for k := range s.callers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Callees are the toll-free lines of the simulated company.
var Callees = []string{"+78005553535", "+78002000600"}

// Mixed writes a mixed run: callers (people who call now and then,
// diallers that flood and fail challenges, whitelisted clients), admin
// commands with and without expiries, and expiry timers, over days
// starting at start. It returns the end of the run.
func (s *Sim) Mixed(rng *rand.Rand, callers, calls int, start time.Time, days int) time.Time {
	s.t.Helper()
	span := time.Duration(days) * 24 * time.Hour
	step := span / time.Duration(calls)
	now := start
	number := func(i int) string { return fmt.Sprintf("+7999%07d", i) }
	cmd := 0
	newCmd := func(by, why string) policy.Command {
		cmd++
		return policy.Command{ID: fmt.Sprintf("k%d", cmd), By: by, Why: why}
	}
	diallers := max(1, callers/20)
	for i := range calls {
		now = now.Add(step/2 + time.Duration(rng.Int64N(int64(step))))
		var key string
		switch r := rng.IntN(100); {
		case r < 30: // a dialler: many calls from few numbers
			key = number(rng.IntN(diallers))
		case r < 32:
			key = phone.AnonymousKey
		default:
			key = number(diallers + rng.IntN(callers-diallers))
		}
		c := Call{Caller: key, Callee: Callees[rng.IntN(len(Callees))], At: now, Talk: time.Duration(5+rng.IntN(600)) * time.Second}
		switch r := rng.IntN(100); {
		case key < number(diallers) && r < 85:
			c.Outcome = schema.Failed
		case r < 60:
			c.Outcome = schema.Passed
		case r < 80:
			c.Outcome = schema.Failed
		default:
			c.Outcome = schema.Abandoned
		}
		switch r := rng.IntN(100); {
		case r < 70:
			c.PBX = PBXAnswers
		case r < 80:
			c.PBX = PBXNoAnswer
		case r < 90:
			c.PBX = PBXBusy
		default:
			c.PBX = CallerGivesUp
		}
		if rng.IntN(200) == 0 {
			c.StoreDown, c.Action = true, schema.Pass
		}
		if rng.IntN(10) == 0 && !c.StoreDown {
			c.NoCallStream = true // a store-down call is only in its call stream
		}
		s.Place(c)
		if i%50 == 0 {
			target := number(rng.IntN(callers))
			var until time.Time
			if rng.IntN(2) == 0 {
				until = now.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
			}
			switch rng.IntN(4) {
			case 0:
				c := newCmd("alice", "corporate client")
				c.Until = until
				_ = s.Command("whitelist", target, c, now)
			case 1:
				_ = s.Command("unwhitelist", target, newCmd("bob", "contract ended"), now)
			case 2:
				c := newCmd("carol", "fraud reported")
				c.Level, c.Until = 1+rng.IntN(9), until
				_ = s.Command("block", target, c, now)
			case 3:
				_ = s.Command("unblock", target, newCmd("dave", "customer called in"), now)
			}
		}
		if i%200 == 0 {
			s.Expire(now)
		}
	}
	s.Flush()
	return now
}
