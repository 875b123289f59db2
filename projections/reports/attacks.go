package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
)

// Attack periods of the lines (actors/line): when each called number was
// under attack, from its line stream's LineAttackStarted and
// LineAttackEnded. A line has a few periods a day at most, so they are
// kept as JSON, one record per period:
//
//	attacks  "<line>|<since, Unix ns, 20 digits>" -> JSON Attack
const bucketAttacks = "attacks"

// Attack is one period of a line under attack.
type Attack struct {
	Line  string    `json:"line"`
	Since time.Time `json:"since"`
	// Until is when it ended; nil while it lasts.
	Until *time.Time `json:"until,omitempty"`
	// Manual: switched on by an admin (By, Why); otherwise by the
	// detector, at Rate new callers a second over Threshold.
	Manual    bool    `json:"manual,omitempty"`
	By        string  `json:"by"`
	Why       string  `json:"why"`
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	// Peak is the highest rate of the period the grain saw; EndedBy and
	// EndWhy say how it ended (policy: calm).
	Peak    float64 `json:"peak,omitempty"`
	EndedBy string  `json:"endedBy,omitempty"`
	EndWhy  string  `json:"endWhy,omitempty"`
}

func attackKey(line string, since time.Time) string {
	return fmt.Sprintf("%s|%020d", line, since.UnixNano())
}

// applyLine folds an event of the stream of line.
func (b *batch) applyLine(ev events.Event, line string) error {
	p, err := b.p.Reg.Decode(ev)
	if err != nil {
		return err
	}
	bk, err := b.root.CreateBucketIfNotExists([]byte(bucketAttacks))
	if err != nil {
		return err
	}
	put := func(a Attack) error {
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return bk.Put([]byte(attackKey(line, a.Since)), v)
	}
	switch e := schema.Value(p.(schema.Payload)).(type) {
	case schema.LineAttackStarted:
		return put(Attack{Line: line, Since: e.At, Manual: e.Manual, By: e.By, Why: e.Why, Rate: e.Rate, Threshold: e.Threshold})
	case schema.LineAttackEnded:
		a := Attack{Line: line, Since: e.Since, By: "?", Threshold: e.Threshold}
		if v := bk.Get([]byte(attackKey(line, e.Since))); v != nil {
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("attack %s since %v: %w", line, e.Since, err)
			}
		}
		until := e.At
		a.Until, a.Peak, a.EndedBy, a.EndWhy = &until, e.Peak, e.By, e.Why
		return put(a)
	}
	return nil
}

// attacks returns the periods of line (every line when empty) that
// overlap [from, to).
func (r *Reports) attacks(ctx context.Context, root *bolt.Bucket, line string, from, to time.Time) ([]Attack, error) {
	out := []Attack{}
	b := rm.Sub(root, bucketAttacks)
	if b == nil {
		return out, nil
	}
	c := b.Cursor()
	k, v := c.First()
	if line != "" {
		k, v = c.Seek([]byte(line + "|"))
	}
	for ; k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l, ns, _ := strings.Cut(string(k), "|")
		if line != "" && l != line {
			break
		}
		if n, err := strconv.ParseInt(ns, 10, 64); err != nil || !time.Unix(0, n).Before(to) {
			continue
		}
		var a Attack
		if err := json.Unmarshal(v, &a); err != nil {
			return nil, fmt.Errorf("attack %s: %w", k, err)
		}
		if a.Until != nil && a.Until.Before(from) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
