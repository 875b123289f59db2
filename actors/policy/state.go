package policy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Snapshot naming of State, for events.Snapshot.Type and Version. Bump the
// version when State's JSON changes shape; an older snapshot is then
// ignored and the state rebuilt from the stream.
const (
	SnapshotType    = "CallerState"
	SnapshotVersion = 1
)

// State is one caller's folded state: what the policy needs to decide the
// next call. It is owned by the caller's grain (one goroutine); nothing in
// this package keeps a reference to it between calls. Change it only
// through Policy.Apply; read it directly or through Policy.Status.
//
// Times are Unix nanoseconds: exact (window edges are compared to the
// nanosecond, as the events record them), eight bytes each, and equal
// after a JSON round trip, so a snapshot folds on exactly like the state it
// was taken of. Empty slices are nil, so that a state and its snapshot
// compare equal with reflect.DeepEqual.
type State struct {
	// Calls holds the time of each call in the last day, oldest first,
	// relative to the latest event folded.
	Calls []int64 `json:"calls,omitempty"`
	// CallIDs holds the IDs of the newest calls (at most
	// max(LimitHour, LimitDay)+1): CallIDs[i] is the call at
	// Calls[len(Calls)-len(CallIDs)+i]. They are the evidence a block
	// names; older calls keep only their time, which is all counting needs.
	CallIDs []string `json:"callIds,omitempty"`
	// Failures are the failed and abandoned challenges of the last day
	// since the last pass, oldest first, at most MaxEscalateAfter of them.
	Failures []Mark `json:"failures,omitempty"`
	// Last is the time of the latest event folded. Time never goes back
	// for a caller: a decision is made at max(now, Last).
	Last int64 `json:"last,omitempty"`

	// Block in force: Level 0 means none.
	Level      int              `json:"level,omitempty"`
	Kind       schema.BlockKind `json:"kind,omitempty"`
	Rule       schema.Rule      `json:"rule,omitempty"`
	BlockSince int64            `json:"blockSince,omitempty"`
	// BlockUntil is the block's expiry (exclusive); 0 for none.
	BlockUntil int64 `json:"blockUntil,omitempty"`

	// Whitelist entry.
	Whitelisted    bool  `json:"whitelisted,omitempty"`
	WhitelistSince int64 `json:"whitelistSince,omitempty"`
	// WhitelistUntil is the entry's expiry (exclusive); 0 for none.
	WhitelistUntil int64 `json:"whitelistUntil,omitempty"`

	// VerifiedUntil is when the last passed challenge stops counting
	// (exclusive); 0 or past for not verified.
	VerifiedUntil int64 `json:"verifiedUntil,omitempty"`
}

// Mark is a failed or abandoned challenge.
type Mark struct {
	At        int64  `json:"at"`
	ID        string `json:"id"`
	Abandoned bool   `json:"abandoned,omitempty"`
}

// Apply folds one event into st. ev is a payload of package schema, as a
// value or as the pointer events.Registry.Decode returns. Apply is what the
// grain runs on activation over the stream, and after each append over
// what it appended; the same events under the same Config always give the
// same State. An event type the policy does not know is an error the
// caller may skip: the stream can carry events of later features.
//
// The State depends on the Config in one detail only: how many call IDs it
// keeps as evidence (max(LimitHour, LimitDay)+1). Decisions never depend on
// that, so a snapshot taken under other limits folds on correctly; the next
// block it sets may name fewer calls than its count.
func (p *Policy) Apply(st *State, ev schema.Payload) error {
	switch e := schema.Value(ev).(type) {
	case schema.CallReceived:
		p.applyCall(st, e.CallID, unix(e.At))
		if e.BlockUntil != nil && st.Level > 0 && st.Kind == schema.Auto {
			st.BlockUntil = unix(*e.BlockUntil)
		}
	case schema.ChallengeOutcome:
		at := p.advance(st, unix(e.At))
		switch {
		case e.Outcome == schema.Passed:
			// A pass proves a person is on the line: earlier failures
			// were typos, not a bot.
			st.Failures = nil
			if e.VerifiedUntil != nil {
				st.VerifiedUntil = unix(*e.VerifiedUntil)
			}
		case e.Outcome == schema.Failed || e.Outcome == schema.Abandoned:
			// Kept whatever the settings (abandoned ones marked), so that
			// CountAbandoned and EscalateAfter can change without the
			// state depending on them.
			st.Failures = append(st.Failures, Mark{At: at, ID: strings.Clone(e.CallID), Abandoned: e.Outcome == schema.Abandoned})
			if over := len(st.Failures) - MaxEscalateAfter; over > 0 {
				st.Failures = shiftMarks(st.Failures, over)
			}
		}
	case schema.BlockApplied:
		at := p.advance(st, unix(e.At))
		st.Level, st.Kind, st.Rule = e.Level, e.Kind, e.Rule
		st.BlockSince, st.BlockUntil = at, unixPtr(e.Until)
		if e.Rule == schema.RuleEscalation {
			// The failures are spent: they made this block.
			st.Failures = nil
		}
	case schema.BlockLifted:
		p.advance(st, unix(e.At))
		st.clearBlock()
		// A fresh start: with the old calls still counted, the next call
		// would break the same limit and block the number again.
		st.Calls, st.CallIDs, st.Failures = nil, nil, nil
	case schema.BlockExpired:
		p.advance(st, unix(e.At))
		st.clearBlock()
	case schema.Whitelisted:
		at := p.advance(st, unix(e.At))
		st.Whitelisted, st.WhitelistSince, st.WhitelistUntil = true, at, unixPtr(e.Until)
	case schema.Unwhitelisted:
		p.advance(st, unix(e.At))
		st.clearWhitelist()
	case schema.WhitelistExpired:
		p.advance(st, unix(e.At))
		st.clearWhitelist()
	default:
		return fmt.Errorf("policy: apply %T: %w", ev, ErrUnknownEvent)
	}
	return nil
}

// ApplyAll folds evs in order, stopping at the first error.
func (p *Policy) ApplyAll(st *State, evs ...schema.Payload) error {
	for i, ev := range evs {
		if err := p.Apply(st, ev); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}

// applyRecords folds what Decide, Outcome or a command produced.
func (p *Policy) applyRecords(st *State, recs []schema.Record) error {
	for _, r := range recs {
		if err := p.Apply(st, r.Payload); err != nil {
			return err
		}
	}
	return nil
}

// applyCall adds a call to the windows.
func (p *Policy) applyCall(st *State, id string, at int64) {
	at = p.advance(st, at)
	st.Calls = appendLean(st.Calls, at)
	// Clone: the ID may be a slice of a whole SIP message or JSON document
	// that would otherwise stay in memory as long as the grain does.
	st.CallIDs = appendLean(st.CallIDs, strings.Clone(id))
	if over := len(st.CallIDs) - p.cfg.keepIDs(); over > 0 {
		st.CallIDs = shiftStrings(st.CallIDs, over)
	}
}

// advance moves st's clock to at (never back), drops calls and failures
// that left the daily window, and returns the time the event counts at.
// An event dated before Last (a writer with a lagging clock) counts at
// Last, so the windows stay sorted without reordering.
func (p *Policy) advance(st *State, at int64) int64 {
	at = max(at, st.Last)
	st.Last = at
	edge := at - int64(Day)
	if n := sort.Search(len(st.Calls), func(i int) bool { return st.Calls[i] > edge }); n > 0 {
		st.Calls = shiftInts(st.Calls, n)
		if keep := len(st.Calls); len(st.CallIDs) > keep {
			st.CallIDs = shiftStrings(st.CallIDs, len(st.CallIDs)-keep)
		}
	}
	n := 0
	for n < len(st.Failures) && st.Failures[n].At <= edge {
		n++
	}
	if n > 0 {
		st.Failures = shiftMarks(st.Failures, n)
	}
	return at
}

func (st *State) clearBlock() {
	st.Level, st.Kind, st.Rule, st.BlockSince, st.BlockUntil = 0, "", "", 0, 0
}

func (st *State) clearWhitelist() {
	st.Whitelisted, st.WhitelistSince, st.WhitelistUntil = false, 0, 0
}

// count returns the calls in st.Calls after edge: a binary search, since
// Calls is sorted.
func (st *State) count(edge int64) int {
	return len(st.Calls) - sort.Search(len(st.Calls), func(i int) bool { return st.Calls[i] > edge })
}

// shiftInts drops the first n elements in place, so that a long-lived
// grain's slice does not creep forward through ever new backing arrays, and
// gives memory back when most of the array is unused.
func shiftInts(s []int64, n int) []int64 {
	if n >= len(s) {
		return nil
	}
	m := copy(s, s[n:])
	return shrink(s[:m])
}

func shiftStrings(s []string, n int) []string {
	if n >= len(s) {
		return nil
	}
	m := copy(s, s[n:])
	clear(s[m:]) // let the dropped strings be collected
	return shrink(s[:m])
}

func shiftMarks(s []Mark, n int) []Mark {
	if n >= len(s) {
		return nil
	}
	m := copy(s, s[n:])
	clear(s[m:])
	return shrink(s[:m])
}

// appendLean appends v, growing a full slice by a quarter (at least 4)
// rather than append's doubling: states are many and long-lived, and a
// caller's windows grow one call at a time.
func appendLean[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		grown := make([]T, len(s), len(s)+max(4, len(s)/4))
		copy(grown, s)
		s = grown
	}
	return append(s, v)
}

// shrink reallocates s when it uses less than a quarter of its array: a
// burst of calls should not pin its peak memory for the grain's lifetime.
func shrink[T any](s []T) []T {
	if cap(s) > 16 && len(s) < cap(s)/4 {
		return append(make([]T, 0, len(s)*2), s...)
	}
	return s
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unixPtr(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return unix(*t)
}

// tm turns a Unix-nanosecond time back into a time.Time in UTC.
func tm(n int64) time.Time { return time.Unix(0, n).UTC() }

func tmPtr(n int64) *time.Time {
	t := tm(n)
	return &t
}
