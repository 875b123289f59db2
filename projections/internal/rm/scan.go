package rm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/callguard/callguard/events"
)

// A rebuild decodes every payload of the log, and encoding/json spends
// most of that time validating the whole document, then setting fields by
// reflection and allocating every string, including the many fields a
// read model never looks at. The events' payloads are flat JSON objects
// that the store checked with json.Valid on append, so the read models
// walk their top-level members instead and convert only the values they
// use. Anything unexpected is an error, never a guess: a projection that
// cannot read an event stops on it.

// errScan is the sentinel of malformed payloads.
var errScan = errors.New("malformed JSON payload")

// Members walks ev's payload at the current version of its type (older
// versions are upcast by reg first) and calls f with the name and raw
// value of each top-level member, in order, until f fails.
//
// name is only valid during the call: switch on string(name), which
// does not allocate.
func Members(reg *events.Registry, ev events.Event, f func(name, value []byte) error) error {
	current, ok := reg.Version(ev.Type)
	if !ok {
		return fmt.Errorf("decode %s@%d: %w %q", ev.Stream, ev.Revision, events.ErrUnknownType, ev.Type)
	}
	data := ev.Data
	if max(ev.Version, 1) != current {
		full, err := reg.Decode(ev)
		if err != nil {
			return err
		}
		if data, err = json.Marshal(full); err != nil {
			return fmt.Errorf("decode %s@%d: %w", ev.Stream, ev.Revision, err)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := members(data, f); err != nil {
		return fmt.Errorf("decode %s@%d %s: %w", ev.Stream, ev.Revision, ev.Type, err)
	}
	return nil
}

// members walks the top-level members of the JSON object data.
func members(data []byte, f func(name, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: not an object", errScan)
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return fmt.Errorf("%w: member name expected at byte %d", errScan, i)
		}
		end, err := stringEnd(data, i)
		if err != nil {
			return err
		}
		name := data[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			s, err := String(data[i:end])
			if err != nil {
				return err
			}
			name = []byte(s)
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return fmt.Errorf("%w: ':' expected at byte %d", errScan, i)
		}
		i = skipSpace(data, i+1)
		vend, err := valueEnd(data, i)
		if err != nil {
			return err
		}
		if err := f(name, data[i:vend]); err != nil {
			return fmt.Errorf("member %q: %w", name, err)
		}
		i = skipSpace(data, vend)
		switch {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == '}':
			return nil
		default:
			return fmt.Errorf("%w: ',' or '}' expected at byte %d", errScan, i)
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at data[i] == '"'.
func stringEnd(data []byte, i int) (int, error) {
	for k := i + 1; k < len(data); k++ {
		switch data[k] {
		case '\\':
			k++ // the escaped byte is never the closing quote
		case '"':
			return k + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated string at byte %d", errScan, i)
}

// valueEnd returns the index after the value starting at data[i].
func valueEnd(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, fmt.Errorf("%w: value expected at the end", errScan)
	}
	switch c := data[i]; {
	case c == '"':
		return stringEnd(data, i)
	case c == '{' || c == '[':
		depth := 0
		for k := i; k < len(data); k++ {
			switch data[k] {
			case '"':
				end, err := stringEnd(data, k)
				if err != nil {
					return 0, err
				}
				k = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return k + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unterminated %c at byte %d", errScan, c, i)
	default:
		k := i
		for k < len(data) && (data[k] >= 'a' && data[k] <= 'z' || data[k] >= '0' && data[k] <= '9' ||
			data[k] == '-' || data[k] == '+' || data[k] == '.' || data[k] == 'E') {
			k++
		}
		if k == i {
			return 0, fmt.Errorf("%w: unexpected %q at byte %d", errScan, c, i)
		}
		return k, nil
	}
}

// String converts a raw JSON string (or null, as "").
func String(v []byte) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		inner := v[1 : len(v)-1]
		// Escapes and invalid UTF-8 (which encoding/json turns into
		// U+FFFD) take the slow path.
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%w: %v", errScan, err)
		}
		return s, nil
	}
	if string(v) == "null" {
		return "", nil
	}
	return "", fmt.Errorf("%w: %.20q is not a string", errScan, v)
}

// Int converts a raw JSON integer (or null, as 0).
func Int(v []byte) (int64, error) {
	if string(v) == "null" {
		return 0, nil
	}
	neg := len(v) > 0 && v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, fmt.Errorf("%w: %.20q is not an integer of callguard's", errScan, v)
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %.20q is not an integer", errScan, v)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// Bool converts a raw JSON boolean (or null, as false).
func Bool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	return false, fmt.Errorf("%w: %.20q is not a boolean", errScan, v)
}

// Time converts a raw JSON RFC 3339 time, as time.Time's UnmarshalJSON
// does (null is the zero time).
func Time(v []byte) (time.Time, error) {
	s, err := String(v)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %v", errScan, err)
	}
	return t, nil
}
