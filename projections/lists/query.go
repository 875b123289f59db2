package lists

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/runner"
)

// Paging limits.
const (
	// DefaultLimit is the page size when a query names none.
	DefaultLimit = 100
	// MaxLimit bounds a page; exports use Unlimited.
	MaxLimit = 1000
	// Unlimited as Query.Limit returns every matching entry (CSV export).
	// It is no number a person would type: a limit of -1 is refused like
	// any other out of range.
	Unlimited = math.MinInt
)

// ErrQuery marks a query the lists refuse (a limit out of range, an
// unknown kind); the message says which.
var ErrQuery = errors.New("invalid list query")

// Query selects and pages list entries. The zero value is the first page
// of everything in force.
type Query struct {
	// Prefix keeps numbers that start with it ("+7999").
	Prefix string
	// Level keeps blocks at this level (blacklist only; 0: any).
	Level int
	// Kind keeps auto or manual blocks (blacklist only; "": any).
	Kind schema.BlockKind
	// Rule keeps blocks set by this rule (blacklist only; "": any).
	Rule schema.Rule
	// After starts the page after this number: the Next of the previous
	// page (keyset paging, stable while entries come and go).
	After string
	// Limit is the page size: 0 for DefaultLimit, 1 to MaxLimit, or
	// Unlimited.
	Limit int
	// IncludeExpired also lists entries whose expiry has passed but whose
	// expiry event has not been written yet, marked Expired.
	IncludeExpired bool
}

func (q Query) validate(black bool) (Query, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit == Unlimited:
	case q.Limit < 1 || q.Limit > MaxLimit:
		return q, fmt.Errorf("%w: limit %d, want 1 to %d", ErrQuery, q.Limit, MaxLimit)
	}
	if !black && (q.Level != 0 || q.Kind != "" || q.Rule != "") {
		return q, fmt.Errorf("%w: the whitelist has no level, kind or rule", ErrQuery)
	}
	switch {
	case q.Level != 0 && (q.Level < schema.MinLevel || q.Level > schema.MaxLevel):
		return q, fmt.Errorf("%w: level %d, want %d to %d", ErrQuery, q.Level, schema.MinLevel, schema.MaxLevel)
	case q.Kind != "" && q.Kind != schema.Auto && q.Kind != schema.Manual:
		return q, fmt.Errorf("%w: kind %q, want auto or manual", ErrQuery, q.Kind)
	}
	return q, nil
}

// BlacklistEntry is a number with a block recorded.
type BlacklistEntry struct {
	Number string `json:"number"`
	Level  int    `json:"level"`
	// Effect is what the level does: challenge (1–5) or reject (6–9).
	Effect schema.Verdict   `json:"effect"`
	Kind   schema.BlockKind `json:"kind"`
	Rule   schema.Rule      `json:"rule"`
	Since  time.Time        `json:"since"`
	// Until is the expiry; null for a block that lasts until lifted.
	Until     *time.Time `json:"until"`
	By        string     `json:"by"`
	Reason    string     `json:"reason"`
	CommandID string     `json:"commandId,omitempty"`
	CallID    string     `json:"callId,omitempty"`
	// Whitelisted: the number is whitelisted too, so the block has no
	// effect until the entry ends.
	Whitelisted bool `json:"whitelisted,omitempty"`
	// Expired: the expiry has passed (only with IncludeExpired).
	Expired bool `json:"expired,omitempty"`
}

// WhitelistEntry is a whitelisted number.
type WhitelistEntry struct {
	Number    string     `json:"number"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until"`
	By        string     `json:"by"`
	Reason    string     `json:"reason"`
	CommandID string     `json:"commandId,omitempty"`
	Expired   bool       `json:"expired,omitempty"`
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the After of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
	// Total counts every entry the query matches, on all pages.
	Total int `json:"total"`
	// AsOf is the moment expiries were judged at.
	AsOf time.Time `json:"asOf"`
}

// Lists answers list queries from the projection's read model, judging
// expiries by its clock. It is safe for concurrent use.
type Lists struct {
	db    runner.Viewer
	clock func() time.Time
}

// New returns the queries over db (the runner); clock nil means time.Now.
func New(db runner.Viewer, clock func() time.Time) *Lists {
	if clock == nil {
		clock = time.Now
	}
	return &Lists{db: db, clock: clock}
}

// Blacklist returns a page of the numbers with a block, in number order.
func (l *Lists) Blacklist(ctx context.Context, q Query) (Page[BlacklistEntry], error) {
	now := l.clock()
	q, err := q.validate(true)
	if err != nil {
		return Page[BlacklistEntry]{}, err
	}
	page := Page[BlacklistEntry]{Items: []BlacklistEntry{}, AsOf: now.UTC()}
	err = l.db.View(Name, func(root *bolt.Bucket) error {
		white := rm.Sub(root, bucketWhite)
		return scan(ctx, rm.Sub(root, bucketBlack), q, &page, func(number string, b Block) (BlacklistEntry, bool) {
			e := BlacklistEntry{
				Number: number, Level: b.Level, Effect: schema.LevelVerdict(b.Level), Kind: b.Kind, Rule: b.Rule,
				Since: b.Since, Until: b.Until, By: b.By, Reason: b.Reason, CommandID: b.CommandID, CallID: b.CallID,
				Expired: Expired(b.Until, now),
			}
			if white != nil {
				var wl Whitelisting
				if ok, _ := rm.Get(white, []byte(number), &wl); ok && !Expired(wl.Until, now) {
					e.Whitelisted = true
				}
			}
			keep := (q.Level == 0 || b.Level == q.Level) && (q.Kind == "" || b.Kind == q.Kind) &&
				(q.Rule == "" || b.Rule == q.Rule) && (q.IncludeExpired || !e.Expired)
			return e, keep
		})
	})
	if err != nil {
		return Page[BlacklistEntry]{}, fmt.Errorf("blacklist: %w", err)
	}
	return page, nil
}

// Whitelist returns a page of the whitelisted numbers, in number order.
func (l *Lists) Whitelist(ctx context.Context, q Query) (Page[WhitelistEntry], error) {
	now := l.clock()
	q, err := q.validate(false)
	if err != nil {
		return Page[WhitelistEntry]{}, err
	}
	page := Page[WhitelistEntry]{Items: []WhitelistEntry{}, AsOf: now.UTC()}
	err = l.db.View(Name, func(root *bolt.Bucket) error {
		return scan(ctx, rm.Sub(root, bucketWhite), q, &page, func(number string, w Whitelisting) (WhitelistEntry, bool) {
			e := WhitelistEntry{
				Number: number, Since: w.Since, Until: w.Until, By: w.By, Reason: w.Reason,
				CommandID: w.CommandID, Expired: Expired(w.Until, now),
			}
			return e, q.IncludeExpired || !e.Expired
		})
	})
	if err != nil {
		return Page[WhitelistEntry]{}, fmt.Errorf("whitelist: %w", err)
	}
	return page, nil
}

// Standing returns what the lists hold for number, as in force now.
func (l *Lists) Standing(number string) (Standing, error) {
	var s Standing
	now := l.clock()
	err := l.db.View(Name, func(root *bolt.Bucket) error {
		var err error
		s, err = ReadStanding(root, number)
		return err
	})
	if err != nil {
		return Standing{}, fmt.Errorf("standing of %s: %w", number, err)
	}
	return s.InForce(now), nil
}

// ReadStanding reads number's Standing from the projection's bucket
// (nil: none), as recorded.
func ReadStanding(root *bolt.Bucket, number string) (Standing, error) {
	var s Standing
	if b := rm.Sub(root, bucketBlack); b != nil {
		var blk Block
		if ok, err := rm.Get(b, []byte(number), &blk); err != nil {
			return s, err
		} else if ok {
			s.Block = &blk
		}
	}
	if b := rm.Sub(root, bucketWhite); b != nil {
		var wl Whitelisting
		if ok, err := rm.Get(b, []byte(number), &wl); err != nil {
			return s, err
		} else if ok {
			s.Whitelist = &wl
		}
	}
	return s, nil
}

// scan walks bucket b from the query's start in number order, keeping the
// entries entry accepts: the first Limit of them in page.Items, all of
// them in page.Total.
func scan[V, E any](ctx context.Context, b *bolt.Bucket, q Query, page *Page[E], entry func(string, V) (E, bool)) error {
	if b == nil {
		return nil
	}
	prefix := []byte(q.Prefix)
	start := prefix
	if q.After != "" && q.After >= q.Prefix {
		start = append([]byte(q.After), 0) // the first key after After
	}
	c := b.Cursor()
	n := 0
	for k, raw := c.Seek(start); k != nil && strings.HasPrefix(string(k), q.Prefix); k, raw = c.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("entry %s: %w", k, err)
		}
		e, keep := entry(string(k), v)
		if !keep {
			continue
		}
		page.Total++
		if q.Limit == Unlimited || len(page.Items) < q.Limit {
			page.Items = append(page.Items, e)
		} else if page.Next == "" {
			page.Next = numberOf(page.Items[len(page.Items)-1])
		}
	}
	if q.After != "" && q.After >= q.Prefix {
		// Total counts the whole query, not only what follows After.
		total, err := countBefore(b, q, start, entry)
		if err != nil {
			return err
		}
		page.Total += total
	}
	return nil
}

// countBefore counts the matching entries from the query's prefix up to
// (not including) end.
func countBefore[V, E any](b *bolt.Bucket, q Query, end []byte, entry func(string, V) (E, bool)) (int, error) {
	c := b.Cursor()
	n := 0
	for k, raw := c.Seek([]byte(q.Prefix)); k != nil && string(k) < string(end) && strings.HasPrefix(string(k), q.Prefix); k, raw = c.Next() {
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, fmt.Errorf("entry %s: %w", k, err)
		}
		if _, keep := entry(string(k), v); keep {
			n++
		}
	}
	return n, nil
}

// numberOf returns an entry's number, for the Next cursor.
func numberOf(e any) string {
	switch e := e.(type) {
	case BlacklistEntry:
		return e.Number
	case WhitelistEntry:
		return e.Number
	}
	return ""
}
