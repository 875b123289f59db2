// Package audit builds the audit timeline of one caller: the caller's whole
// stream read back as a list of entries a person can follow, each saying
// what happened, when, and why.
//
// The timeline answers the questions ops ask about a number: which calls it
// made and what each was told (with the counts the decision saw), why a
// block was set (the rule, the limit, the count, and the calls that made it
// fire, with their times), how each challenge ended, which admin did what
// and why, and when blocks and whitelist entries ran out. It is built from
// the recorded events alone, never from the current settings, so it says
// what the guard decided at the time, not what it would decide today (that
// is package replay's question).
//
// FromEvents is pure; Build reads the stream from a store and calls it.
// A Timeline marshals to JSON (the admin API serves it) and renders as text
// (WriteText, for the CLI).
//
// It sits beside the policy, under actors/policy, because it re-runs the
// policy's fold (policy.Policy.Apply) over the stream to show the counts
// each decision saw; it reads events and imports nothing above them.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Kind says what an entry of the timeline is.
type Kind string

const (
	// KindCall is a call and the verdict it got (CallReceived).
	KindCall Kind = "call"
	// KindChallenge is how a challenge ended (ChallengeOutcome).
	KindChallenge Kind = "challenge"
	// KindBlock is a block set by the rules or by an admin (BlockApplied).
	KindBlock Kind = "block"
	// KindUnblock is an admin lifting a block (BlockLifted).
	KindUnblock Kind = "unblock"
	// KindExpiry is a block or a whitelist entry running out (BlockExpired,
	// WhitelistExpired); Expiry.Of says which.
	KindExpiry Kind = "expiry"
	// KindWhitelist is an admin whitelisting the caller (Whitelisted).
	KindWhitelist Kind = "whitelist"
	// KindUnwhitelist is an admin removing the caller from the whitelist
	// (Unwhitelisted).
	KindUnwhitelist Kind = "unwhitelist"
	// KindOther is an event this build does not know (a later feature's);
	// it is listed rather than dropped, so the timeline never hides a fact.
	KindOther Kind = "other"
)

// Timeline is the audit of one caller: every event of its stream, in
// stream order, and a summary.
type Timeline struct {
	// Key is the caller's normalised number (E.164 or "anonymous").
	Key string `json:"key"`
	// Stream is the caller's stream in the event store.
	Stream string `json:"stream"`
	// Entries are the stream's events in order; empty (not null) for a
	// number the guard never saw.
	Entries []Entry `json:"entries"`
	// Summary counts the entries and says where the caller stands after
	// the last of them.
	Summary Summary `json:"summary"`
}

// Entry is one event of the caller's stream, explained. Exactly one of the
// detail fields is set, the one Kind names.
type Entry struct {
	// At is the event's domain time (when the guard decided, the admin
	// commanded, the block ran out), not when the store committed it.
	At time.Time `json:"at"`
	// Revision is the event's index in the caller's stream.
	Revision uint64 `json:"revision"`
	Kind     Kind   `json:"kind"`
	// Summary is the entry in one line, times in UTC; WriteText renders
	// the same line in the reader's time zone.
	Summary string `json:"summary"`
	// EventID and Type identify the stored event, for looking it up in
	// the store's own tools.
	EventID uuid.UUID `json:"eventId"`
	Type    string    `json:"type"`
	// Actor is who wrote the event (Metadata.Actor): "grain", "call",
	// "admin:alice", ...
	Actor string `json:"actor,omitempty"`

	Call      *Call      `json:"call,omitempty"`
	Challenge *Challenge `json:"challenge,omitempty"`
	Block     *Block     `json:"block,omitempty"`
	Unblock   *Unblock   `json:"unblock,omitempty"`
	Expiry    *Expiry    `json:"expiry,omitempty"`
	Whitelist *Whitelist `json:"whitelist,omitempty"`
	Other     *Other     `json:"other,omitempty"`
}

// Call is a call and its verdict, with the counts the verdict was based on.
type Call struct {
	CallID string `json:"callId"`
	// Presented is what the trunk presented when it did not normalise to
	// a number (anonymous callers only).
	Presented string `json:"presented,omitempty"`
	Callee    string `json:"callee,omitempty"`
	Source    string `json:"source,omitempty"`
	// Hour and Day are the caller's calls in the last hour and day at that
	// moment, this one included.
	Hour int `json:"hour"`
	Day  int `json:"day"`
	// Verdict, Level, Rule and Reason are the decision as recorded.
	Verdict schema.Verdict `json:"verdict"`
	Level   int            `json:"level"`
	Rule    schema.Rule    `json:"rule,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	// BlockUntil is set when the call broke a limit again under an
	// automatic block and pushed its expiry out to this time.
	BlockUntil time.Time `json:"blockUntil,omitzero"`
	// VerifiedUntil is set when the call passed a soft block because the
	// caller had passed a challenge (rule "verified"): until when that
	// pass counted, as the stream says.
	VerifiedUntil time.Time `json:"verifiedUntil,omitzero"`
	// The call on the wire and what the guard did, as recorded since the
	// call's own stream stopped repeating them (absent in older logs):
	// the INVITE's Call-ID, the header the caller was read from and its
	// value, the transport, the guard's mode and the action taken (in
	// observe mode a pass whatever the verdict).
	SIPCallID    string         `json:"sipCallId,omitempty"`
	Identity     string         `json:"identity,omitempty"`
	IdentityFrom string         `json:"identityFrom,omitempty"`
	Transport    string         `json:"transport,omitempty"`
	Mode         schema.Mode    `json:"mode,omitempty"`
	Action       schema.Verdict `json:"action,omitempty"`
	// ActionReason says why Action is not what Mode makes of Verdict: a
	// challenge that could not be carried out and was passed.
	ActionReason string `json:"actionReason,omitempty"`
	// Ranges are the range rules that matched the caller when the call
	// was decided (rule range-whitelist or range-block names the one that
	// decided; the others were overruled).
	Ranges []schema.RangeMatch `json:"ranges,omitempty"`
	// Overrides are the per-line settings and schedules in force for the
	// call's line when it was decided, in the order they applied.
	Overrides []schema.Override `json:"overrides,omitempty"`
	// Concurrent is the caller's calls up at once, this one included,
	// when above 1 (rule concurrent compares it with the limit).
	Concurrent int `json:"concurrent,omitempty"`
	// Origin is the caller number's country and type and the origin
	// rules that matched it (rule country or number-type names the one
	// that decided).
	Origin *schema.Origin `json:"origin,omitempty"`
	// CRM is the CRM's answer the decision used (nil: not asked).
	CRM *schema.CRMAnswer `json:"crm,omitempty"`
}

// Challenge is how the challenge of a call ended.
type Challenge struct {
	CallID  string         `json:"callId"`
	Outcome schema.Outcome `json:"outcome"`
	// CalledAt is when the challenged call was received (zero if the call
	// is not in the stream), so that the time the caller took shows.
	CalledAt time.Time `json:"calledAt,omitzero"`
	// VerifiedUntil is set on a pass that verified the caller.
	VerifiedUntil time.Time `json:"verifiedUntil,omitzero"`
}

// Block is a block being set, with the evidence for it.
type Block struct {
	Level int              `json:"level"`
	Kind  schema.BlockKind `json:"kind"`
	Rule  schema.Rule      `json:"rule"`
	// Limit and Count are the rule's threshold and the count that broke
	// it: calls for the limits, failed challenges for escalation. Zero for
	// a manual block.
	Limit int `json:"limit,omitempty"`
	Count int `json:"count,omitempty"`
	// Counted are the calls (for escalation: the failed challenges) that
	// made the rule fire, oldest first, with their times looked up in the
	// stream.
	Counted []Counted `json:"counted,omitempty"`
	// Unnamed is how many of Count the event does not name: the policy
	// keeps the IDs of the newest calls only.
	Unnamed int `json:"unnamed,omitempty"`
	// CallID is the call whose decision or challenge set the block.
	CallID string `json:"callId,omitempty"`
	// Observed is set when that call was decided in observe mode: the
	// block was not carried out while observing, and is in force once the
	// guard enforces (until it runs out or is lifted).
	Observed bool `json:"observed,omitempty"`
	// Until is when the block ends by itself; zero for none.
	Until time.Time `json:"until,omitzero"`
	// By and Why: "policy" and the rule's words for an automatic block,
	// the admin and their reason for a manual one.
	By        string `json:"by"`
	Why       string `json:"why"`
	CommandID string `json:"commandId,omitempty"`
}

// Counted is one call that counted towards a block.
type Counted struct {
	CallID string `json:"callId"`
	// At is when the call was received, or for escalation when its
	// challenge failed; zero when the stream does not hold it.
	At time.Time `json:"at,omitzero"`
	// Outcome is the challenge's outcome, for escalation blocks.
	Outcome schema.Outcome `json:"outcome,omitempty"`
}

// Unblock is an admin lifting a block.
type Unblock struct {
	Level     int              `json:"level"`
	Kind      schema.BlockKind `json:"kind"`
	By        string           `json:"by"`
	Why       string           `json:"why"`
	CommandID string           `json:"commandId,omitempty"`
}

// Expiry is a block or a whitelist entry running out at its expiry.
type Expiry struct {
	// Of is "block" or "whitelist".
	Of string `json:"of"`
	// Level, Kind and Rule describe the block that ended (blocks only).
	Level int              `json:"level,omitempty"`
	Kind  schema.BlockKind `json:"kind,omitempty"`
	Rule  schema.Rule      `json:"rule,omitempty"`
	// Since is when the block or entry began.
	Since time.Time `json:"since"`
}

// What an Expiry is of.
const (
	ExpiryOfBlock     = "block"
	ExpiryOfWhitelist = "whitelist"
)

// Whitelist is an admin adding the caller to the whitelist or removing it.
type Whitelist struct {
	// Until is the entry's expiry; zero for none (and for a removal).
	Until     time.Time `json:"until,omitzero"`
	By        string    `json:"by"`
	Why       string    `json:"why"`
	CommandID string    `json:"commandId,omitempty"`
}

// Other is an event this build cannot read, kept as it is stored.
type Other struct {
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Summary counts a timeline's entries and says where the caller stands
// after the last one.
type Summary struct {
	// Calls counts the calls; Pass, Challenge and Reject what the guard
	// did with them (in observe mode every call is passed), and
	// WouldChallenge and WouldReject the calls observe mode passed that
	// enforcing would have challenged or rejected. A call recorded before
	// the action was (no Action) counts by its verdict, as enforced.
	Calls          int `json:"calls"`
	Pass           int `json:"pass"`
	Challenge      int `json:"challenge"`
	Reject         int `json:"reject"`
	WouldChallenge int `json:"wouldChallenge,omitempty"`
	WouldReject    int `json:"wouldReject,omitempty"`
	// Challenge outcomes; Pending counts challenged calls with no outcome
	// in the stream (still in progress, or the guard went down mid-call).
	Passed    int `json:"passed"`
	Failed    int `json:"failed"`
	Abandoned int `json:"abandoned"`
	Pending   int `json:"pending"`
	// Blocks applied, split by who set them, and how they ended.
	AutoBlocks    int `json:"autoBlocks"`
	ManualBlocks  int `json:"manualBlocks"`
	Unblocks      int `json:"unblocks"`
	BlocksExpired int `json:"blocksExpired"`
	// Whitelist changes.
	Whitelisted      int `json:"whitelisted"`
	Unwhitelisted    int `json:"unwhitelisted"`
	WhitelistExpired int `json:"whitelistExpired"`
	// Other counts events this build could not read.
	Other int `json:"other,omitempty"`
	// State is where the caller stands after the last event.
	State State `json:"state"`
}

// State is a caller's standing right after the last event of its stream,
// as policy.Policy.Status computes it from the folded events: a block or
// whitelist entry whose expiry had passed by then counts as ended even if
// no expiry event says so yet. It is not the standing at the reader's now:
// a block may have run out since the last event.
type State struct {
	// AsOf is the time of the last event; zero for an empty stream.
	AsOf time.Time `json:"asOf,omitzero"`
	// The block in force (Level 0: none).
	Level int              `json:"level"`
	Kind  schema.BlockKind `json:"kind,omitempty"`
	Rule  schema.Rule      `json:"rule,omitempty"`
	Since time.Time        `json:"since,omitzero"`
	Until time.Time        `json:"until,omitzero"`
	// The whitelist entry.
	Whitelisted    bool      `json:"whitelisted"`
	WhitelistUntil time.Time `json:"whitelistUntil,omitzero"`
	// VerifiedUntil is when the last passed challenge stops counting;
	// zero when it had stopped by AsOf.
	VerifiedUntil time.Time `json:"verifiedUntil,omitzero"`
}

// Build reads the whole stream of caller key from store and returns its
// timeline. A number with no stream gives a timeline with no entries, not
// an error: "never called" is an answer.
func Build(ctx context.Context, store events.Store, key string) (Timeline, error) {
	stream := schema.CallerStream(key)
	evs, err := events.ReadWholeStream(ctx, store, stream, 0)
	if err != nil {
		return Timeline{}, fmt.Errorf("audit %s: read %s: %w", key, stream, err)
	}
	return FromEvents(key, evs)
}

// FromEvents builds the timeline of caller key from the events of its
// stream, in stream order. Events of another stream are an error wrapping
// events.ErrInvalid: mixed into an audit they would say false things.
// Events of a type this build does not know become KindOther entries; a
// known event whose payload does not decode is an error.
func FromEvents(key string, evs []events.Event) (Timeline, error) {
	b := newBuilder(key)
	for _, ev := range evs {
		if err := b.add(ev); err != nil {
			return Timeline{}, fmt.Errorf("audit %s: %w", key, err)
		}
	}
	return b.finish(), nil
}

// builder holds what later entries need from earlier ones: when each call
// came in and when each challenge failed, so that a block can name its
// evidence with times. The maps grow with the stream, as the timeline does.
type builder struct {
	tl       Timeline
	reg      *events.Registry
	pol      *policy.Policy
	st       policy.State
	calledAt map[string]time.Time
	observed map[string]bool // calls observe mode passed whatever the verdict
	failed   map[string]Counted
	pending  map[string]bool // challenged calls without an outcome yet
}

// foldPolicy folds the stream for the summary's State. Apply depends on the
// settings only for how many call IDs it keeps (see policy.Policy.Apply),
// which the State here does not show, so the defaults serve any stream.
var foldPolicy = func() *policy.Policy {
	p, err := policy.New(policy.DefaultConfig())
	if err != nil {
		panic(fmt.Sprintf("audit: default policy config: %v", err))
	}
	return p
}()

func newBuilder(key string) *builder {
	return &builder{
		tl:       Timeline{Key: key, Stream: schema.CallerStream(key), Entries: []Entry{}},
		reg:      schema.NewRegistry(),
		pol:      foldPolicy,
		calledAt: map[string]time.Time{},
		observed: map[string]bool{},
		failed:   map[string]Counted{},
		pending:  map[string]bool{},
	}
}

func (b *builder) add(ev events.Event) error {
	if ev.Stream != "" && ev.Stream != b.tl.Stream {
		return fmt.Errorf("%w: event %s@%d is not in stream %s", events.ErrInvalid, ev.Stream, ev.Revision, b.tl.Stream)
	}
	e := Entry{Revision: ev.Revision, EventID: ev.ID, Type: ev.Type, Actor: ev.Meta.Actor}
	decoded, err := b.reg.Decode(ev)
	switch {
	case errors.Is(err, events.ErrUnknownType):
		b.other(&e, ev)
		b.tl.Entries = append(b.tl.Entries, e)
		return nil
	case err != nil:
		return err
	}
	payload, ok := decoded.(schema.Payload)
	if !ok {
		return fmt.Errorf("event %s@%d: %T is not a schema payload", ev.Stream, ev.Revision, decoded)
	}
	s := &b.tl.Summary
	switch p := payload.(type) {
	case *schema.CallReceived:
		b.call(&e, p)
	case *schema.ChallengeOutcome:
		b.challenge(&e, p)
	case *schema.BlockApplied:
		b.block(&e, p)
	case *schema.BlockLifted:
		e.At, e.Kind = p.At, KindUnblock
		e.Unblock = &Unblock{Level: p.Level, Kind: p.Kind, By: p.By, Why: p.Why, CommandID: p.CommandID}
		s.Unblocks++
	case *schema.BlockExpired:
		e.At, e.Kind = p.At, KindExpiry
		e.Expiry = &Expiry{Of: ExpiryOfBlock, Level: p.Level, Kind: p.Kind, Rule: p.Rule, Since: p.Since}
		s.BlocksExpired++
	case *schema.Whitelisted:
		e.At, e.Kind = p.At, KindWhitelist
		e.Whitelist = &Whitelist{By: p.By, Why: p.Why, CommandID: p.CommandID}
		if p.Until != nil {
			e.Whitelist.Until = *p.Until
		}
		s.Whitelisted++
	case *schema.Unwhitelisted:
		e.At, e.Kind = p.At, KindUnwhitelist
		e.Whitelist = &Whitelist{By: p.By, Why: p.Why, CommandID: p.CommandID}
		s.Unwhitelisted++
	case *schema.WhitelistExpired:
		e.At, e.Kind = p.At, KindExpiry
		e.Expiry = &Expiry{Of: ExpiryOfWhitelist, Since: p.Since}
		s.WhitelistExpired++
	default:
		// Registered in schema but not explained here yet: list it as is.
		b.other(&e, ev)
		b.tl.Entries = append(b.tl.Entries, e)
		return nil
	}
	if err := b.pol.Apply(&b.st, payload); err != nil && !errors.Is(err, policy.ErrUnknownEvent) {
		return fmt.Errorf("fold %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	e.Summary = e.line(time.UTC, widths{})
	b.tl.Entries = append(b.tl.Entries, e)
	return nil
}

func (b *builder) other(e *Entry, ev events.Event) {
	e.Kind = KindOther
	// The envelope's commit time is the only time an unknown payload has.
	e.At = ev.Recorded
	e.Other = &Other{Type: ev.Type, Version: ev.Version, Data: ev.Data}
	e.Summary = e.line(time.UTC, widths{})
	b.tl.Summary.Other++
}

func (b *builder) call(e *Entry, p *schema.CallReceived) {
	e.At, e.Kind = p.At, KindCall
	e.Call = &Call{
		CallID: p.CallID, Presented: p.Presented, Callee: p.Callee, Source: p.Source,
		Hour: p.Hour, Day: p.Day, Verdict: p.Verdict, Level: p.Level, Rule: p.Rule, Reason: p.Reason,
		SIPCallID: p.SIPCallID, Identity: p.Identity, IdentityFrom: p.IdentityFrom, Transport: p.Transport,
		Mode: p.Mode, Action: p.Action, ActionReason: p.ActionReason, Ranges: p.Ranges,
		Overrides: p.Overrides, Concurrent: p.Concurrent, Origin: p.Origin, CRM: p.CRM,
	}
	if p.BlockUntil != nil {
		e.Call.BlockUntil = *p.BlockUntil
	}
	if p.Rule == schema.RuleVerified && b.st.VerifiedUntil != 0 {
		// The reason says the same in RFC 3339 UTC; the time kept apart
		// lets WriteText show it in the reader's zone.
		e.Call.VerifiedUntil = unixTime(b.st.VerifiedUntil)
	}
	b.calledAt[p.CallID] = p.At
	s := &b.tl.Summary
	s.Calls++
	acted := e.Call.Acted()
	switch acted {
	case schema.Pass:
		s.Pass++
	case schema.Challenge:
		s.Challenge++
		b.pending[p.CallID] = true
	case schema.Reject:
		s.Reject++
	}
	if p.Mode == schema.Observe {
		b.observed[p.CallID] = true
		switch {
		case acted == schema.Pass && p.Verdict == schema.Challenge:
			s.WouldChallenge++
		case acted == schema.Pass && p.Verdict == schema.Reject:
			s.WouldReject++
		}
	}
}

// Acted is what the guard did with the call: its Action, or for a call
// recorded before the action was, its verdict.
func (c *Call) Acted() schema.Verdict {
	if c.Action != "" {
		return c.Action
	}
	return c.Verdict
}

// Observed reports whether observe mode passed the call although its
// verdict was to challenge or reject it.
func (c *Call) Observed() bool {
	return c.Action != "" && c.Action != c.Verdict && c.ActionReason == ""
}

func (b *builder) challenge(e *Entry, p *schema.ChallengeOutcome) {
	e.At, e.Kind = p.At, KindChallenge
	e.Challenge = &Challenge{CallID: p.CallID, Outcome: p.Outcome, CalledAt: b.calledAt[p.CallID]}
	if p.VerifiedUntil != nil {
		e.Challenge.VerifiedUntil = *p.VerifiedUntil
	}
	delete(b.pending, p.CallID)
	s := &b.tl.Summary
	switch p.Outcome {
	case schema.Passed:
		s.Passed++
	case schema.Failed:
		s.Failed++
		b.failed[p.CallID] = Counted{CallID: p.CallID, At: p.At, Outcome: p.Outcome}
	case schema.Abandoned:
		s.Abandoned++
		b.failed[p.CallID] = Counted{CallID: p.CallID, At: p.At, Outcome: p.Outcome}
	}
}

func (b *builder) block(e *Entry, p *schema.BlockApplied) {
	e.At, e.Kind = p.At, KindBlock
	blk := &Block{
		Level: p.Level, Kind: p.Kind, Rule: p.Rule, Limit: p.Limit, Count: p.Count,
		CallID: p.CallID, By: p.By, Why: p.Why, CommandID: p.CommandID, Observed: b.observed[p.CallID],
	}
	if p.Until != nil {
		blk.Until = *p.Until
	}
	for _, id := range p.Calls {
		if p.Rule == schema.RuleEscalation {
			// Escalation counts failed challenges: their time is when
			// they failed, which is what the daily window was measured on.
			c, ok := b.failed[id]
			if !ok {
				c = Counted{CallID: id}
			}
			blk.Counted = append(blk.Counted, c)
			continue
		}
		blk.Counted = append(blk.Counted, Counted{CallID: id, At: b.calledAt[id]})
	}
	blk.Unnamed = max(0, p.Count-len(p.Calls))
	e.Block = blk
	if p.Kind == schema.Manual {
		b.tl.Summary.ManualBlocks++
	} else {
		b.tl.Summary.AutoBlocks++
	}
}

func (b *builder) finish() Timeline {
	s := &b.tl.Summary
	s.Pending = len(b.pending)
	if len(b.tl.Entries) == 0 {
		return b.tl
	}
	// The fold's clock (policy.State.Last) is the latest event time and
	// never goes back, even when a writer's clock lagged.
	asOf := unixTime(b.st.Last)
	if asOf.IsZero() {
		asOf = b.tl.Entries[len(b.tl.Entries)-1].At
	}
	// Status is the policy's own reading of a state at a moment, expiries
	// included; the fields taken here do not depend on its settings.
	st := b.pol.Status(&b.st, b.tl.Key, asOf)
	s.State = State{
		AsOf:  asOf,
		Level: st.Level, Kind: st.Kind, Rule: st.Rule, Since: st.Since, Until: st.Until,
		Whitelisted: st.Whitelisted, WhitelistUntil: st.WhitelistUntil,
		VerifiedUntil: st.VerifiedUntil,
	}
	return b.tl
}

// unixTime turns policy.State's Unix nanoseconds back into a time in UTC;
// 0 means none.
func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
