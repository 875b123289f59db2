package rm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The records a rebuild rewrites most (a caller's profile, a day's
// counters) are stored in a compact binary form rather than JSON: a
// rebuild reads and writes each of them thousands of times, and
// encoding/json's reflection cost a quarter of the rebuild. The form is
// a sequence of varints and length-prefixed strings in a fixed order,
// the order of the type's Encode; a change of fields is a change of the
// projection's Version, which rebuilds the read model.

// ErrCorrupt means a stored record does not decode.
var ErrCorrupt = errors.New("corrupt read model record")

// Enc appends values to a record.
type Enc struct{ B []byte }

// Form appends the form byte that starts a record.
func (e *Enc) Form(f byte) { e.B = append(e.B, f) }

// Int appends a signed integer.
func (e *Enc) Int(v int64) { e.B = binary.AppendVarint(e.B, v) }

// Ints appends signed integers.
func (e *Enc) Ints(vs ...int) {
	for _, v := range vs {
		e.B = binary.AppendVarint(e.B, int64(v))
	}
}

// Bool appends a boolean.
func (e *Enc) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// String appends a string.
func (e *Enc) String(s string) {
	e.B = binary.AppendUvarint(e.B, uint64(len(s)))
	e.B = append(e.B, s...)
}

// Time appends a time, exact to the nanosecond; the zero time is kept
// apart from the Unix epoch.
func (e *Enc) Time(t time.Time) {
	if t.IsZero() {
		e.B = append(e.B, 0)
		return
	}
	e.B = append(e.B, 1)
	e.B = binary.AppendVarint(e.B, t.UnixNano())
}

// TimePtr appends an optional time (nil as the zero time).
func (e *Enc) TimePtr(t *time.Time) {
	if t == nil {
		e.Time(time.Time{})
		return
	}
	e.Time(*t)
}

// Dec reads values back in the order they were appended. The first error
// sticks: check Err once at the end.
type Dec struct {
	B   []byte
	err error
}

// Err returns the first error, or one for bytes left over.
func (d *Dec) Err() error {
	if d.err == nil && len(d.B) > 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", ErrCorrupt, len(d.B))
	}
	return d.err
}

func (d *Dec) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
	d.B = nil
}

// Form reads a record's form byte and fails unless it is f.
func (d *Dec) Form(f byte) {
	if d.err != nil {
		return
	}
	if len(d.B) == 0 || d.B[0] != f {
		d.err = fmt.Errorf("%w: not form %d", ErrCorrupt, f)
		d.B = nil
		return
	}
	d.B = d.B[1:]
}

// Int reads a signed integer.
func (d *Dec) Int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Ints reads signed integers into ps.
func (d *Dec) Ints(ps ...*int) {
	for _, p := range ps {
		*p = int(d.Int())
	}
}

// Bool reads a boolean.
func (d *Dec) Bool() bool {
	if d.err != nil || len(d.B) == 0 || d.B[0] > 1 {
		d.fail()
		return false
	}
	v := d.B[0] == 1
	d.B = d.B[1:]
	return v
}

// String reads a string.
func (d *Dec) String() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.B)
	if k <= 0 || uint64(len(d.B)-k) < n {
		d.fail()
		return ""
	}
	s := string(d.B[k : k+int(n)])
	d.B = d.B[k+int(n):]
	return s
}

// Time reads a time, in UTC.
func (d *Dec) Time() time.Time {
	if !d.Bool() {
		return time.Time{}
	}
	return time.Unix(0, d.Int()).UTC()
}

// TimePtr reads an optional time.
func (d *Dec) TimePtr() *time.Time {
	t := d.Time()
	if t.IsZero() {
		return nil
	}
	return &t
}
