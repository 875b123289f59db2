package importer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrUntil marks an expiry that ParseUntil cannot read.
var ErrUntil = errors.New("not an expiry")

// ParseUntil reads an expiry as a person writes it, the same in the
// whitelist CSV's until column and in the CLI's --until:
//
//   - a duration from now: 720h, 90m, or whole days such as 30d;
//   - a date, 2026-12-31: the entry lasts through that day in loc (it
//     ends at the midnight that follows it);
//   - an RFC 3339 time with its offset, 2026-12-31T23:59:59+03:00.
//
// It does not check that the time is in the future; the caller says so
// in its own words.
func ParseUntil(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if loc == nil {
		loc = time.UTC
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 100*366 {
			return now.AddDate(0, 0, n), nil
		}
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is %w: want a duration (720h, 30d), a date (2026-12-31, through that day in %s) or an RFC 3339 time (2026-12-31T23:59:59+03:00)", clip(s), ErrUntil, loc)
}
