package caller

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

var wireAt = time.Date(2026, 12, 3, 17, 4, 5, 123456789, time.UTC)

// Every field of Admit and Verdict survives pack and unpack, zero values
// and extremes included, and a message packed as JSON (by a node before
// the wire format) still unpacks.
func TestWireRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  any
	}{
		{"admit full", &Admit{
			CallID: "c-1", Kind: phone.KindUnparsable, Presented: "Иван <sip:x@y>", Callee: "+78005553535",
			Source: "10.0.0.1:5060", SIPCallID: "abc@host", Identity: "+79990001122",
			IdentityFrom: "pai", Transport: "TCP", Mode: schema.Mode("observe"),
			ChallengeFallback: "passed: late offer without 100rel",
			Attack:            &schema.LineAttack{Since: wireAt, Manual: true},
			CRM:               &schema.CRMAnswer{Status: schema.CRMHit, VIP: true, Segment: "private"},
		}},
		{"admit crm timeout", &Admit{CallID: "c-4", CRM: &schema.CRMAnswer{Status: schema.CRMTimeout}}},
		{"admit attack auto", &Admit{CallID: "c-3", Attack: &schema.LineAttack{Since: wireAt}}},
		{"admit empty", &Admit{}},
		{"verdict full", &Verdict{
			CallID: "c-2", Verdict: schema.Reject, Level: 9, Rule: schema.Rule("manual"), Reason: "fraud, says the bank",
			Hour: 2147483647, Day: -3, At: wireAt, Revision: 1<<64 - 1, Repeated: true, New: true,
		}},
		{"verdict zero", &Verdict{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := pack(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if isJSON(a.GetValue()) {
				t.Fatalf("packed as JSON: %s", a.GetValue())
			}
			got, err := unpack(a)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Fatalf("round trip:\n got  %+v\n want %+v", got, tc.msg)
			}
			old, err := json.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON, err := unpack(&anypb.Any{TypeUrl: a.GetTypeUrl(), Value: old})
			if err != nil {
				t.Fatalf("unpack JSON: %v", err)
			}
			// JSON keeps the zone of At as an offset; the instant is what counts.
			if v, ok := fromJSON.(*Verdict); ok {
				v.At = v.At.UTC()
				if v.At.Equal(time.Time{}) {
					v.At = time.Time{}
				}
			}
			if !reflect.DeepEqual(fromJSON, tc.msg) {
				t.Fatalf("from JSON:\n got  %+v\n want %+v", fromJSON, tc.msg)
			}
		})
	}
}

// Malformed values are errors, not panics or silent garbage.
func TestWireRejectsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated string", []byte{0x0a, 0x05, 'a', 'b'}},
		{"string as varint", []byte{0x08, 0x01}},
		{"kind out of range", []byte{0x10, 0xac, 0x02}},
		{"bad tag", []byte{0x00}},
		{"truncated varint", []byte{0x10, 0x80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := unpack(&anypb.Any{TypeUrl: typeURLPrefix + "Admit", Value: tc.b}); err == nil {
				t.Fatalf("unpack % x: no error", tc.b)
			}
		})
	}
}

// FuzzWire: any bytes from another node either fail to decode or decode
// to a message that encodes and decodes to itself.
func FuzzWire(f *testing.F) {
	for _, m := range []any{
		&Admit{CallID: "c", Kind: phone.KindAnonymous, Mode: "enforce"},
		&Admit{CallID: "c", Attack: &schema.LineAttack{Since: wireAt, Manual: true}},
		&Admit{CallID: "c", CRM: &schema.CRMAnswer{Status: schema.CRMHit, VIP: true, Segment: "gold"}},
		&Verdict{CallID: "c", Level: 7, At: wireAt, Repeated: true, New: true},
	} {
		a, err := pack(m)
		if err != nil {
			f.Fatal(err)
		}
		_, verdict := m.(*Verdict)
		f.Add(a.GetValue(), verdict)
	}
	f.Add([]byte{0x0a, 0x05, 'a'}, true)
	f.Fuzz(func(t *testing.T, b []byte, verdict bool) {
		name := "Admit"
		if verdict {
			name = "Verdict"
		}
		msg, err := unpack(&anypb.Any{TypeUrl: typeURLPrefix + name, Value: b})
		if err != nil {
			return
		}
		if isJSON(b) {
			return // the JSON path is encoding/json's
		}
		a, err := pack(msg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := unpack(a)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, msg) {
			t.Fatalf("re-encoding changed the message:\n %+v\n %+v", msg, again)
		}
	})
}
