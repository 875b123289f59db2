package audit

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// sim plays one caller's history through the real policy, as the caller
// grain does (decide, record, fold), and keeps the events it would have
// appended, so that the audit's inputs are what production writes.
type sim struct {
	t    testing.TB
	pol  *policy.Policy
	key  string
	st   policy.State
	evs  []events.Event
	node string
}

func newSim(t testing.TB, key string) *sim {
	t.Helper()
	pol, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, pol: pol, key: key, node: "guard-1"}
}

// record turns what the policy produced into stored events and folds them.
func (s *sim) record(recs []schema.Record, meta events.Metadata, now time.Time) {
	s.t.Helper()
	meta.Node = s.node
	for _, r := range recs {
		p, err := r.Proposed(meta)
		if err != nil {
			s.t.Fatal(err)
		}
		s.raw(p, now)
		if err := s.pol.Apply(&s.st, r.Payload); err != nil {
			s.t.Fatal(err)
		}
	}
}

// raw stores p as the next event without folding it (for events the
// policy does not know).
func (s *sim) raw(p events.Proposed, now time.Time) {
	n := uint64(len(s.evs))
	s.evs = append(s.evs, events.Event{
		ID: p.ID, Stream: schema.CallerStream(s.key), Type: p.Type, Version: p.Version,
		Revision: n, Position: events.Position{Commit: n + 1, Prepare: n + 1},
		Recorded: now, Meta: p.Meta, Data: p.Data,
	})
}

func (s *sim) call(id string, at time.Time) policy.Decision {
	return s.callAs(id, "", at)
}

func (s *sim) callAs(id, presented string, at time.Time) policy.Decision {
	return s.callWire(id, presented, policy.Wire{}, at)
}

// callIn is a call recorded in the current shape by a guard in mode.
func (s *sim) callIn(id string, mode schema.Mode, at time.Time) policy.Decision {
	return s.callWire(id, "", policy.Wire{SIPCallID: id + "@trunk-a", CallerKind: "e164", IdentityFrom: "pai", Transport: "UDP", Mode: mode}, at)
}

func (s *sim) callWire(id, presented string, w policy.Wire, at time.Time) policy.Decision {
	s.t.Helper()
	n := phone.Number{Key: s.key}
	if s.key == phone.AnonymousKey {
		n.Kind = phone.KindAnonymous
	}
	d, err := s.pol.Decide(&s.st, policy.Call{ID: id, Caller: n, Presented: presented, Callee: "+78005553535", Source: "trunk-a", Wire: w}, at)
	if err != nil {
		s.t.Fatal(err)
	}
	s.record(d.Records, events.Metadata{Actor: "grain", CorrelationID: id}, at)
	return d
}

func (s *sim) outcome(id string, o schema.Outcome, at time.Time) {
	s.t.Helper()
	recs, err := s.pol.Outcome(&s.st, s.key, id, o, at)
	if err != nil {
		s.t.Fatal(err)
	}
	s.record(recs, events.Metadata{Actor: "call", CorrelationID: id}, at)
}

type commandFunc func(*policy.Policy, *policy.State, string, policy.Command, time.Time) ([]schema.Record, error)

func (s *sim) command(do commandFunc, cmd policy.Command, at time.Time) {
	s.t.Helper()
	recs, err := do(s.pol, &s.st, s.key, cmd, at)
	if err != nil {
		s.t.Fatal(err)
	}
	s.record(recs, events.Metadata{Actor: "admin:" + cmd.By, CorrelationID: cmd.ID}, at)
}

func (s *sim) expire(at time.Time) {
	s.record(s.pol.Expire(&s.st, s.key, at), events.Metadata{Actor: "grain"}, at)
}

// scenario is one caller's history for the golden tests.
type scenario struct {
	name string
	key  string
	play func(s *sim)
}

// day0 is the scenarios' first day, 10:00 in Moscow (the golden text is
// rendered in msk); every time is given as an offset from it.
var (
	day0 = time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC)
	msk  = time.FixedZone("MSK", 3*60*60)
)

func at(d time.Duration) time.Time { return day0.Add(d) }

const (
	sec    = time.Second
	minute = time.Minute
	hr     = time.Hour
	dy     = 24 * time.Hour
)

var scenarios = []scenario{
	{
		// The seed's automatic block: the sixth call within the hour is
		// challenged and sets level 3; a passed challenge verifies the
		// caller; the block runs out a day after the last offending call.
		name: "hourly_limit", key: "+79990001122",
		play: func(s *sim) {
			for i, id := range []string{"c1", "c2", "c3", "c4", "c5", "c6"} {
				s.call(id, at(time.Duration(i)*minute))
			}
			s.outcome("c6", schema.Passed, at(5*minute+14*sec))
			s.call("c7", at(20*minute))
			s.call("c8", at(3*hr))
			s.call("c9", at(dy+2*hr))
		},
	},
	{
		// A dialler: it breaks the hourly limit, then fails the challenges
		// (one abandoned, which does not count by default) until the block
		// escalates to a hard one and its calls are rejected.
		name: "escalation", key: "+79990003344",
		play: func(s *sim) {
			for i := range 6 {
				s.call(fmt.Sprintf("d%d", i+1), at(time.Duration(i)*minute))
			}
			s.outcome("d6", schema.Failed, at(5*minute+9*sec))
			s.call("d7", at(6*minute))
			s.outcome("d7", schema.Abandoned, at(6*minute+3*sec))
			s.call("d8", at(7*minute))
			s.outcome("d8", schema.Failed, at(7*minute+9*sec))
			s.call("d9", at(8*minute))
			s.outcome("d9", schema.Failed, at(8*minute+9*sec))
			s.call("d10", at(9*minute))
			s.expire(at(dy + 12*minute))
		},
	},
	{
		// Admins at work: a whitelisted number is never blocked, a manual
		// block is lifted, a whitelist entry with an expiry runs out.
		name: "admin_commands", key: "+79990005566",
		play: func(s *sim) {
			s.command((*policy.Policy).Whitelist, policy.Command{ID: "k1", By: "alice", Why: "corporate client, calls in bursts"}, at(0))
			for i := range 7 {
				s.call(fmt.Sprintf("w%d", i+1), at(time.Duration(i+1)*minute))
			}
			s.command((*policy.Policy).Unwhitelist, policy.Command{ID: "k2", By: "alice", Why: "contract ended"}, at(hr))
			s.command((*policy.Policy).Block, policy.Command{ID: "k3", By: "bob", Why: "fraud reports from the branch", Level: 7}, at(hr+5*minute))
			s.call("w8", at(hr+10*minute))
			s.command((*policy.Policy).Unblock, policy.Command{ID: "k4", By: "bob", Why: "customer identified at the branch"}, at(2*hr))
			s.command((*policy.Policy).Whitelist, policy.Command{ID: "k5", By: "alice", Why: "trial week", Until: at(2 * dy)}, at(2*hr+minute))
			s.call("w9", at(3*dy))
		},
	},
	{
		// Callers without a number share one key and get the anonymous
		// policy (challenge by default) until an admin blocks the key.
		name: "anonymous", key: phone.AnonymousKey,
		play: func(s *sim) {
			s.callAs("a1", "Restricted", at(0))
			s.outcome("a1", schema.Passed, at(8*sec))
			s.callAs("a2", "sip:unknown@trunk-a", at(minute))
			s.command((*policy.Policy).Block, policy.Command{ID: "k9", By: "carol", Why: "night flood of withheld numbers", Level: 6, Until: at(12 * hr)}, at(2*minute))
			s.callAs("a3", "Restricted", at(3*minute))
		},
	},
	{
		// A week of observing: the sixth call in the hour would have been
		// challenged and the block it set would have challenged the next;
		// observe mode passed both and runs no challenge. An admin's hard
		// block is observed too. Once the guard enforces, the blocks
		// earned while observing apply.
		name: "observe_mode", key: "+79990009900",
		play: func(s *sim) {
			for i := range 7 {
				s.callIn(fmt.Sprintf("o%d", i+1), schema.Observe, at(time.Duration(i)*minute))
			}
			s.command((*policy.Policy).Block, policy.Command{ID: "k7", By: "bob", Why: "fraud reports", Level: 7}, at(hr))
			s.callIn("o8", schema.Observe, at(hr+minute))
			s.callIn("e1", schema.Enforce, at(2*hr))
		},
	},
	{
		// A stream that carries events of a later build: listed, not
		// dropped, and the rest of the timeline still explained.
		name: "future_events", key: "+79990007788",
		play: func(s *sim) {
			s.call("f1", at(0))
			s.raw(events.Proposed{
				ID: events.DeriveID("test", "f1", "recording"), Type: "CallRecorded", Version: 1,
				Meta: events.Metadata{Node: "guard-2", Actor: "recorder"},
				Data: json.RawMessage(`{"callId":"f1","file":"f1.wav"}`),
			}, at(30*sec))
			s.raw(events.Proposed{
				ID: events.DeriveID("test", "f2", "received"), Type: schema.TypeCallReceived, Version: 2,
				Meta: events.Metadata{Node: "guard-2", Actor: "grain"},
				Data: json.RawMessage(`{"callId":"f2","caller":"+79990007788","at":"2026-11-02T07:01:00Z","counts":{"hour":2}}`),
			}, at(minute))
			s.call("f3", at(2*minute))
		},
	},
}

func (sc scenario) events(t testing.TB) []events.Event {
	s := newSim(t, sc.key)
	sc.play(s)
	return s.evs
}
