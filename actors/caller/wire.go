package caller

import (
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// Admit and Verdict go with every call, so they travel in protobuf's wire
// format, encoded by hand with protowire (no code generator in the build),
// rather than as JSON: encoding/json spent ~7 % of the guard's CPU and ~40
// allocations per rejected call on them. The schema, for a packet capture
// or another implementation (proto3; unknown fields are skipped, so fields
// can be added):
//
//	message Admit {
//	  string call_id = 1; uint32 kind = 2; string presented = 3;
//	  string callee = 4; string source = 5; string sip_call_id = 6;
//	  string identity = 7; string identity_from = 8;
//	  string transport = 9; string mode = 10;
//	  string challenge_fallback = 11;
//	  // the line under attack since then (absent: not under attack)
//	  sfixed64 attack_since_unix_nano = 12;
//	  bool attack_manual = 13; // only with attack_since_unix_nano
//	  // the CRM's answer (absent: not asked); the others only with it
//	  string crm_status = 14; bool crm_vip = 15; string crm_segment = 16;
//	}
//	message Verdict {
//	  string call_id = 1; string verdict = 2; int64 level = 3;
//	  string rule = 4; string reason = 5; int64 hour = 6; int64 day = 7;
//	  sfixed64 at_unix_nano = 8; uint64 revision = 9; bool repeated = 10;
//	  bool new = 11;
//	}
//
// The rarer messages (admin commands, status) stay JSON. unpack tells the
// two apart by the first byte: JSON starts with '{', these with a tag.

// appendWire appends a's encoding to b.
func (a *Admit) appendWire(b []byte) []byte {
	b = appendString(b, 1, a.CallID)
	b = appendVarint(b, 2, uint64(a.Kind))
	b = appendString(b, 3, a.Presented)
	b = appendString(b, 4, a.Callee)
	b = appendString(b, 5, a.Source)
	b = appendString(b, 6, a.SIPCallID)
	b = appendString(b, 7, a.Identity)
	b = appendString(b, 8, a.IdentityFrom)
	b = appendString(b, 9, a.Transport)
	b = appendString(b, 10, string(a.Mode))
	b = appendString(b, 11, a.ChallengeFallback)
	if a.Attack != nil {
		b = protowire.AppendTag(b, 12, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(a.Attack.Since.UnixNano()))
		if a.Attack.Manual {
			b = appendVarint(b, 13, 1)
		}
	}
	if c := a.CRM; c != nil && c.Status != "" {
		b = appendString(b, 14, string(c.Status))
		if c.VIP {
			b = appendVarint(b, 15, 1)
		}
		b = appendString(b, 16, c.Segment)
	}
	return b
}

// readWire decodes b into a.
func (a *Admit) readWire(b []byte) error {
	*a = Admit{}
	manual := false
	var crm schema.CRMAnswer
	defer func() {
		// attack_manual means nothing without attack_since_unix_nano,
		// crm_vip and crm_segment nothing without crm_status.
		if a.Attack != nil {
			a.Attack.Manual = manual
		}
		if crm.Status != "" {
			a.CRM = &crm
		}
	}()
	return readFields(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&a.CallID)
		case 2:
			v, err := f.varint()
			if err != nil {
				return err
			}
			if v > math.MaxUint8 {
				return fmt.Errorf("kind %d out of range", v)
			}
			a.Kind = phone.Kind(v)
		case 3:
			return f.str(&a.Presented)
		case 4:
			return f.str(&a.Callee)
		case 5:
			return f.str(&a.Source)
		case 6:
			return f.str(&a.SIPCallID)
		case 7:
			return f.str(&a.Identity)
		case 8:
			return f.str(&a.IdentityFrom)
		case 9:
			return f.str(&a.Transport)
		case 10:
			var s string
			err := f.str(&s)
			a.Mode = schema.Mode(s)
			return err
		case 11:
			return f.str(&a.ChallengeFallback)
		case 12:
			if f.typ != protowire.Fixed64Type {
				return errWireType
			}
			n, _ := protowire.ConsumeFixed64(f.b)
			a.Attack = &schema.LineAttack{Since: time.Unix(0, int64(n)).UTC()}
		case 13:
			n, err := f.varint()
			manual = n != 0
			return err
		case 14:
			var s string
			err := f.str(&s)
			crm.Status = schema.CRMStatus(s)
			return err
		case 15:
			n, err := f.varint()
			crm.VIP = n != 0
			return err
		case 16:
			return f.str(&crm.Segment)
		}
		return nil
	})
}

// appendWire appends v's encoding to b.
func (v *Verdict) appendWire(b []byte) []byte {
	b = appendString(b, 1, v.CallID)
	b = appendString(b, 2, string(v.Verdict))
	b = appendVarint(b, 3, uint64(int64(v.Level)))
	b = appendString(b, 4, string(v.Rule))
	b = appendString(b, 5, v.Reason)
	b = appendVarint(b, 6, uint64(int64(v.Hour)))
	b = appendVarint(b, 7, uint64(int64(v.Day)))
	if !v.At.IsZero() {
		b = protowire.AppendTag(b, 8, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(v.At.UnixNano()))
	}
	b = appendVarint(b, 9, v.Revision)
	if v.Repeated {
		b = appendVarint(b, 10, 1)
	}
	if v.New {
		b = appendVarint(b, 11, 1)
	}
	return b
}

// readWire decodes b into v.
func (v *Verdict) readWire(b []byte) error {
	*v = Verdict{}
	return readFields(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&v.CallID)
		case 2:
			var s string
			err := f.str(&s)
			v.Verdict = schema.Verdict(s)
			return err
		case 3:
			return f.int(&v.Level)
		case 4:
			var s string
			err := f.str(&s)
			v.Rule = schema.Rule(s)
			return err
		case 5:
			return f.str(&v.Reason)
		case 6:
			return f.int(&v.Hour)
		case 7:
			return f.int(&v.Day)
		case 8:
			if f.typ != protowire.Fixed64Type {
				return errWireType
			}
			n, _ := protowire.ConsumeFixed64(f.b)
			v.At = time.Unix(0, int64(n)).UTC()
		case 9:
			n, err := f.varint()
			v.Revision = n
			return err
		case 10:
			n, err := f.varint()
			v.Repeated = n != 0
			return err
		case 11:
			n, err := f.varint()
			v.New = n != 0
			return err
		}
		return nil
	})
}

// appendString appends a non-empty string field (proto3 leaves out the
// zero value).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

var errWireType = errors.New("wrong wire type")

// field is one field's value as it lies in the message.
type field struct {
	typ protowire.Type
	b   []byte // the value's bytes, from its start to the message's end
}

func (f field) str(dst *string) error {
	if f.typ != protowire.BytesType {
		return errWireType
	}
	v, n := protowire.ConsumeBytes(f.b)
	if n < 0 {
		return protowire.ParseError(n)
	}
	*dst = string(v)
	return nil
}

func (f field) varint() (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, errWireType
	}
	v, n := protowire.ConsumeVarint(f.b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	return v, nil
}

func (f field) int(dst *int) error {
	v, err := f.varint()
	if err != nil {
		return err
	}
	i := int64(v)
	if i < math.MinInt32 || i > math.MaxInt32 {
		return fmt.Errorf("%d out of range", i)
	}
	*dst = int(i)
	return nil
}

// readFields walks b's fields, calling fn with each; fields fn does not
// know are skipped.
func readFields(b []byte, fn func(protowire.Number, field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		if err := fn(num, field{typ: typ, b: b[:m]}); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
		b = b[m:]
	}
	return nil
}
