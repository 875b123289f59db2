// Package rm holds what the read models of package projections share:
// decoding an event's payload, JSON values in bbolt buckets, and the days
// and hours of a time zone.
package rm

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Decode returns ev's payload at its current schema version.
func Decode(reg *events.Registry, ev events.Event) (schema.Payload, error) {
	v, err := reg.Decode(ev)
	if err != nil {
		return nil, err
	}
	p, ok := v.(schema.Payload)
	if !ok {
		return nil, fmt.Errorf("decode %s@%d: %T is not a schema payload", ev.Stream, ev.Revision, v)
	}
	return p, nil
}

// Get decodes the JSON value of key in b into v and reports whether it
// was there.
func Get(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("read model value %q: %w", key, err)
	}
	return true, nil
}

// Put stores v as JSON under key in b.
func Put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("read model value %q: %w", key, err)
	}
	return b.Put(key, raw)
}

// Buckets returns the named sub-buckets of root, creating them (root is
// the projection's bucket in a write transaction).
func Buckets(root *bolt.Bucket, names ...string) ([]*bolt.Bucket, error) {
	out := make([]*bolt.Bucket, len(names))
	for i, n := range names {
		b, err := root.CreateBucketIfNotExists([]byte(n))
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", n, err)
		}
		out[i] = b
	}
	return out, nil
}

// Sub returns the named sub-bucket of root, or nil when root or it does
// not exist (a projection that has applied nothing yet).
func Sub(root *bolt.Bucket, name string) *bolt.Bucket {
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(name))
}

// DayLayout is how days are written: keys, query parameters, CSV.
const DayLayout = "2006-01-02"

// Day returns the calendar day of t in loc.
func Day(t time.Time, loc *time.Location) string { return t.In(loc).Format(DayLayout) }

// Hour returns the hour of day (0–23) of t in loc.
func Hour(t time.Time, loc *time.Location) int { return t.In(loc).Hour() }

// ZoneVersion names loc for a projection's Version: its name and its
// offsets in January and July of a reference year. "Local" names
// whatever zone the machine has, so the offsets make a move of the
// machine to another zone (or a zone's new rules) rebuild the read models
// whose days depend on it.
func ZoneVersion(loc *time.Location) string {
	_, jan := time.Date(2026, 1, 15, 12, 0, 0, 0, loc).Zone()
	_, jul := time.Date(2026, 7, 15, 12, 0, 0, 0, loc).Zone()
	return fmt.Sprintf("%s%+d%+d", loc.String(), jan, jul)
}

// Zoned is what every projection that counts days shares: the registry it
// decodes payloads with and the time zone its days are in. The zone is
// part of its version, so changing it rebuilds the projection.
type Zoned struct {
	Reg *events.Registry
	Loc *time.Location
}

// NewZoned returns a Zoned for loc (nil: UTC).
func NewZoned(loc *time.Location) Zoned {
	if loc == nil {
		loc = time.UTC
	}
	return Zoned{Reg: schema.NewRegistry(), Loc: loc}
}

// Version returns the projection version v with the zone appended.
func (z Zoned) Version(v string) string { return v + " tz=" + ZoneVersion(z.Loc) }
