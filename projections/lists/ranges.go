package lists

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
)

// RangeRule is a range rule (whitelist or block by number prefix or
// range) as the rules stream set it.
type RangeRule struct {
	Range string           `json:"range"`
	List  schema.RangeList `json:"list"`
	// Level is the block level; 0 on the whitelist.
	Level     int        `json:"level,omitempty"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until,omitempty"`
	By        string     `json:"by"`
	Reason    string     `json:"reason"`
	CommandID string     `json:"commandId,omitempty"`
}

// FoldRange returns the rule an event of the rules stream sets (list and
// range name it; rule nil: removed), and false for an event that sets no
// rule.
func FoldRange(p schema.Payload) (list schema.RangeList, rng string, rule *RangeRule, ok bool) {
	switch e := schema.Value(p).(type) {
	case schema.RangeWhitelisted:
		return schema.RangeWhitelist, e.Range, &RangeRule{Range: e.Range, List: schema.RangeWhitelist, Since: e.At, Until: clone(e.Until),
			By: e.By, Reason: e.Why, CommandID: e.CommandID}, true
	case schema.RangeBlocked:
		return schema.RangeBlock, e.Range, &RangeRule{Range: e.Range, List: schema.RangeBlock, Level: e.Level, Since: e.At, Until: clone(e.Until),
			By: e.By, Reason: e.Why, CommandID: e.CommandID}, true
	case schema.RangeRemoved:
		return e.List, e.Range, nil, true
	}
	return "", "", nil, false
}

func rangeKey(list schema.RangeList, rng string) string { return string(list) + "/" + rng }

func (b *batch) applyRange(ev events.Event) error {
	pl, err := rm.Decode(b.p.reg, ev)
	if err != nil {
		return err
	}
	list, rng, rule, ok := FoldRange(pl)
	if !ok {
		return nil
	}
	if b.ranges == nil {
		b.ranges = map[string]*RangeRule{}
	}
	b.ranges[rangeKey(list, rng)] = rule
	return nil
}

func (b *batch) flushRanges() error {
	if len(b.ranges) == 0 {
		return nil
	}
	bs, err := rm.Buckets(b.root, bucketRange)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(b.ranges))
	for k := range b.ranges {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := putOrDelete(bs[0], k, b.ranges[k]); err != nil {
			return err
		}
	}
	clear(b.ranges)
	return nil
}

// RangeQuery selects and pages range rules.
type RangeQuery struct {
	// List keeps the rules of one list ("": both).
	List schema.RangeList
	// Prefix keeps the rules whose range starts with it ("+7999").
	Prefix string
	// After starts the page after this entry: the Next of the previous
	// page.
	After string
	// Limit is the page size: 0 for DefaultLimit, 1 to MaxLimit, or
	// Unlimited.
	Limit int
	// IncludeExpired also lists rules past their expiry, marked Expired.
	IncludeExpired bool
}

// RangeEntry is a range rule in a list.
type RangeEntry struct {
	RangeRule
	// Effect is what the rule does: pass (whitelist), challenge (levels
	// 1–5) or reject (6–9).
	Effect  schema.Verdict `json:"effect"`
	Expired bool           `json:"expired,omitempty"`
	// Key is the entry's place in the list: After for the next page.
	Key string `json:"-"`
}

// Ranges returns a page of the range rules, block rules first, each list
// in range order. Rules past their expiry are left out unless asked for:
// they stop applying at their expiry without an event.
func (l *Lists) Ranges(ctx context.Context, q RangeQuery) (Page[RangeEntry], error) {
	now := l.clock()
	switch {
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit == Unlimited:
	case q.Limit < 1 || q.Limit > MaxLimit:
		return Page[RangeEntry]{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrQuery, q.Limit, MaxLimit)
	}
	if q.List != "" && !q.List.Valid() {
		return Page[RangeEntry]{}, fmt.Errorf("%w: list %q, want whitelist or block", ErrQuery, q.List)
	}
	page := Page[RangeEntry]{Items: []RangeEntry{}, AsOf: now.UTC()}
	err := l.db.View(Name, func(root *bolt.Bucket) error {
		b := rm.Sub(root, bucketRange)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, raw := c.First(); k != nil; k, raw = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var r RangeRule
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("range %s: %w", k, err)
			}
			e := RangeEntry{RangeRule: r, Effect: schema.LevelVerdict(r.Level), Expired: Expired(r.Until, now), Key: string(k)}
			if (q.List != "" && r.List != q.List) || !strings.HasPrefix(r.Range, q.Prefix) || (e.Expired && !q.IncludeExpired) {
				continue
			}
			page.Total++
			switch {
			case q.After != "" && string(k) <= q.After:
			case q.Limit == Unlimited || len(page.Items) < q.Limit:
				page.Items = append(page.Items, e)
			case page.Next == "":
				page.Next = page.Items[len(page.Items)-1].Key
			}
		}
		return nil
	})
	if err != nil {
		return Page[RangeEntry]{}, fmt.Errorf("ranges: %w", err)
	}
	return page, nil
}

// WriteRangesText writes a page of range rules as a table, times in loc.
func WriteRangesText(w io.Writer, p Page[RangeEntry], loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tRANGE\tLEVEL\tEFFECT\tSINCE\tUNTIL\tBY\tREASON")
	for _, e := range p.Items {
		level, until := "-", textTime(e.Until, loc)
		if e.Level > 0 {
			level = strconv.Itoa(e.Level)
		}
		if e.Expired {
			until += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.List, e.Range, level, e.Effect,
			textTime(&e.Since, loc), until, e.By, e.Reason)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("ranges: %w", err)
	}
	var err error
	if p.Next != "" {
		_, err = fmt.Fprintf(w, "\n%d of %d shown; next page: --after %s\n", len(p.Items), p.Total, p.Next)
	} else if p.Total == 1 {
		_, err = fmt.Fprintln(w, "\n1 rule")
	} else {
		_, err = fmt.Fprintf(w, "\n%d rules\n", p.Total)
	}
	return err
}
