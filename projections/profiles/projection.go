package profiles

import (
	"context"
	"errors"
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
const Name = "profiles"

// version is the shape of Record and the layout; the time zone is part
// of the runner's version too, since Day depends on it.
const version = "2" // 2: calls counted by the verdict carried out, observe mode's apart

// Layout of the projection's bucket:
//
//	callers   number -> JSON Record
const bucketCallers = "callers"

// Projection keeps the profiles. It is immutable and safe for concurrent
// use.
type Projection struct {
	rm.Zoned
}

var _ runner.Projection = (*Projection)(nil)

// NewProjection returns the profiles projection, counting days in loc
// (nil: UTC).
func NewProjection(loc *time.Location) *Projection {
	return &Projection{rm.NewZoned(loc)}
}

// Name implements runner.Projection.
func (p *Projection) Name() string { return Name }

// Version implements runner.Projection.
func (p *Projection) Version() string { return p.Zoned.Version(version) }

// Begin implements runner.Projection.
func (p *Projection) Begin(root *bolt.Bucket) runner.Batch {
	return &batch{p: p, root: root, cache: map[string]*cachedRecord{}}
}

type cachedRecord struct {
	r     Record
	dirty bool
}

type batch struct {
	p       *Projection
	root    *bolt.Bucket
	callers *bolt.Bucket
	cache   map[string]*cachedRecord
}

func (b *batch) Apply(ev events.Event) error {
	if !Folds(ev.Type) {
		return nil
	}
	key, ok := schema.CallerKey(ev.Stream)
	if !ok {
		return nil
	}
	pl, err := b.decode(ev)
	if err != nil {
		return err
	}
	c, ok := b.cache[key]
	if !ok {
		if b.callers == nil {
			if b.callers, err = b.root.CreateBucketIfNotExists([]byte(bucketCallers)); err != nil {
				return fmt.Errorf("bucket %s: %w", bucketCallers, err)
			}
		}
		c = &cachedRecord{}
		if raw := b.callers.Get([]byte(key)); raw != nil {
			if c.r, err = decode(raw); err != nil {
				return fmt.Errorf("profile %s: %w", key, err)
			}
		}
		b.cache[key] = c
	}
	if next, changed := Fold(c.r, pl, b.p.Loc); changed {
		c.r, c.dirty = next, true
	}
	return nil
}

// decode reads an event's payload. A CallReceived, the most common
// event, is read member by member (see rm.Members): only what a profile
// uses.
func (b *batch) decode(ev events.Event) (schema.Payload, error) {
	if ev.Type != schema.TypeCallReceived {
		return rm.Decode(b.p.Reg, ev)
	}
	var e schema.CallReceived
	err := rm.Members(b.p.Reg, ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "callId":
			e.CallID, err = rm.String(v)
		case "callee":
			e.Callee, err = rm.String(v)
		case "at":
			e.At, err = rm.Time(v)
		case "verdict":
			var s string
			s, err = rm.String(v)
			e.Verdict = schema.Verdict(s)
		case "action":
			var s string
			s, err = rm.String(v)
			e.Action = schema.Verdict(s)
		case "blockUntil":
			var t time.Time
			if t, err = rm.Time(v); err == nil && !t.IsZero() {
				e.BlockUntil = &t
			}
		}
		return err
	})
	return e, err
}

func (b *batch) Flush() error {
	keys := make([]string, 0, len(b.cache))
	for k, c := range b.cache {
		if c.dirty {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := b.callers.Put([]byte(k), encode(&b.cache[k].r)); err != nil {
			return fmt.Errorf("put profile %s: %w", k, err)
		}
	}
	return nil
}

// Paging limits of Search.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrQuery marks a search the profiles refuse.
var ErrQuery = errors.New("invalid profile query")

// Query selects profiles.
type Query struct {
	// Prefix keeps numbers that start with it.
	Prefix string
	// After starts after this number (the previous page's Next).
	After string
	// Limit is the page size: 0 for DefaultLimit, up to MaxLimit.
	Limit int
}

// Profile is a caller as the search shows it at AsOf.
type Profile struct {
	Number string `json:"number"`
	// Calls in total and today (in the projection's time zone).
	Calls      int        `json:"calls"`
	CallsToday int        `json:"callsToday"`
	FirstSeen  time.Time  `json:"firstSeen"`
	FirstCall  *time.Time `json:"firstCall"`
	LastCall   *time.Time `json:"lastCall"`
	// LastVerdict and LastCallee are the latest call's.
	LastVerdict schema.Verdict `json:"lastVerdict,omitempty"`
	// LastAction is what the guard did with the latest call when observe
	// mode passed it against its verdict.
	LastAction schema.Verdict `json:"lastAction,omitempty"`
	LastCallee string         `json:"lastCallee,omitempty"`
	// Passed, Challenged and Rejected are what the guard did (in observe
	// mode every call is passed); WouldBlock the calls observe mode passed
	// that enforcing would have challenged or rejected.
	Passed     int `json:"passed"`
	Challenged int `json:"challenged"`
	Rejected   int `json:"rejected"`
	WouldBlock int `json:"wouldBlock"`
	// Challenge outcomes.
	ChallengesPassed    int `json:"challengesPassed"`
	ChallengesFailed    int `json:"challengesFailed"`
	ChallengesAbandoned int `json:"challengesAbandoned"`
	// Blocks counts the blocks ever applied.
	Blocks int `json:"blocks"`
	// State is where the number stands at AsOf.
	State State `json:"state"`
}

// State is a number's standing at a moment, with expiries that have
// passed taken into account.
type State struct {
	// Level is the block level in force (0: none), Effect what it does.
	Level  int              `json:"level"`
	Effect schema.Verdict   `json:"effect"`
	Kind   schema.BlockKind `json:"kind,omitempty"`
	Rule   schema.Rule      `json:"rule,omitempty"`
	// Until is the block's expiry (null: none, or until lifted).
	Until *time.Time `json:"until"`
	// Whitelisted, with the entry's expiry.
	Whitelisted    bool       `json:"whitelisted"`
	WhitelistUntil *time.Time `json:"whitelistUntil"`
	// VerifiedUntil is set while a passed challenge lets the caller
	// through a soft block.
	VerifiedUntil *time.Time `json:"verifiedUntil"`
}

// Page is one page of a search.
type Page struct {
	Items []Profile `json:"items"`
	// Next is the After of the next page; empty on the last page.
	Next string    `json:"next,omitempty"`
	AsOf time.Time `json:"asOf"`
}

// Profiles answers searches. It is safe for concurrent use.
type Profiles struct {
	db    runner.Viewer
	loc   *time.Location
	clock func() time.Time
}

// New returns the searches over db (the runner), judging "today" in loc
// (the projection's zone; nil: UTC) and expiries by clock (nil: time.Now).
func New(db runner.Viewer, loc *time.Location, clock func() time.Time) *Profiles {
	if loc == nil {
		loc = time.UTC
	}
	if clock == nil {
		clock = time.Now
	}
	return &Profiles{db: db, loc: loc, clock: clock}
}

// Search returns a page of the profiles whose number starts with
// q.Prefix, in number order.
func (ps *Profiles) Search(ctx context.Context, q Query) (Page, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit < 1 || q.Limit > MaxLimit:
		return Page{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrQuery, q.Limit, MaxLimit)
	}
	now := ps.clock()
	page := Page{Items: []Profile{}, AsOf: now.UTC()}
	err := ps.db.View(Name, func(root *bolt.Bucket) error {
		b := rm.Sub(root, bucketCallers)
		if b == nil {
			return nil
		}
		start := []byte(q.Prefix)
		if q.After != "" && q.After >= q.Prefix {
			start = append([]byte(q.After), 0)
		}
		c := b.Cursor()
		for k, v := c.Seek(start); k != nil && strings.HasPrefix(string(k), q.Prefix); k, v = c.Next() {
			if len(page.Items) == q.Limit {
				page.Next = page.Items[len(page.Items)-1].Number
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := decode(v)
			if err != nil {
				return fmt.Errorf("profile %s: %w", k, err)
			}
			page.Items = append(page.Items, View(string(k), r, now, ps.loc))
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("search profiles: %w", err)
	}
	return page, nil
}

// Get returns number's profile, and false when the guard never saw it.
func (ps *Profiles) Get(ctx context.Context, number string) (Profile, bool, error) {
	if err := ctx.Err(); err != nil {
		return Profile{}, false, err
	}
	var (
		r     Record
		found bool
	)
	err := ps.db.View(Name, func(root *bolt.Bucket) error {
		b := rm.Sub(root, bucketCallers)
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(number))
		if raw == nil {
			return nil
		}
		var err error
		r, err = decode(raw)
		found = err == nil
		return err
	})
	if err != nil || !found {
		return Profile{}, false, err
	}
	return View(number, r, ps.clock(), ps.loc), true, nil
}

// View is r as it stands at now: today's calls counted in loc, expiries
// that have passed applied.
func View(number string, r Record, now time.Time, loc *time.Location) Profile {
	p := Profile{
		Number: number, Calls: r.Calls, FirstSeen: r.FirstSeen,
		FirstCall: timePtr(r.FirstCall), LastCall: timePtr(r.LastCall),
		LastVerdict: r.LastVerdict, LastAction: r.LastAction, LastCallee: r.LastCallee,
		Passed: r.Passed, Challenged: r.Challenged, Rejected: r.Rejected, WouldBlock: r.Observed,
		ChallengesPassed: r.ChallengesPassed, ChallengesFailed: r.ChallengesFailed, ChallengesAbandoned: r.ChallengesAbandoned,
		Blocks: r.Blocks,
	}
	if r.Day != "" && r.Day == rm.Day(now, loc) {
		p.CallsToday = r.DayCalls
	}
	s := r.Standing.InForce(now)
	p.State.Effect = schema.Pass
	if b := s.Block; b != nil {
		p.State.Level, p.State.Effect, p.State.Kind, p.State.Rule, p.State.Until = b.Level, schema.LevelVerdict(b.Level), b.Kind, b.Rule, b.Until
	}
	if w := s.Whitelist; w != nil {
		p.State.Whitelisted, p.State.WhitelistUntil = true, w.Until
		p.State.Effect = schema.Pass
	}
	if r.VerifiedUntil.After(now) {
		p.State.VerifiedUntil = timePtr(r.VerifiedUntil)
	}
	return p
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
