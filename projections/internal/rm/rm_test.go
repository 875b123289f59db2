package rm

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zone must not depend on the machine

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

func TestMembersReadsWhatEncodingJSONReads(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 123456789, time.UTC)
	until := at.Add(time.Hour)
	p := schema.CallReceived{CallID: `c"1\u2028`, Caller: "+79990001122", Presented: "Ольга <sip:x>", Callee: "+78005553535",
		At: at, Hour: 6, Day: -1, Verdict: schema.Challenge, Level: 3, Rule: schema.RuleHourlyLimit, Reason: "a\\b\n", BlockUntil: &until}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.Event{Stream: "caller-+79990001122", Type: schema.TypeCallReceived, Version: 1, Data: data}
	var got schema.CallReceived
	err = Members(schema.NewRegistry(), ev, func(name, v []byte) (err error) {
		switch string(name) {
		case "callId":
			got.CallID, err = String(v)
		case "caller":
			got.Caller, err = String(v)
		case "presented":
			got.Presented, err = String(v)
		case "callee":
			got.Callee, err = String(v)
		case "at":
			got.At, err = Time(v)
		case "hour":
			var n int64
			n, err = Int(v)
			got.Hour = int(n)
		case "day":
			var n int64
			n, err = Int(v)
			got.Day = int(n)
		case "verdict":
			var s string
			s, err = String(v)
			got.Verdict = schema.Verdict(s)
		case "level":
			var n int64
			n, err = Int(v)
			got.Level = int(n)
		case "rule":
			var s string
			s, err = String(v)
			got.Rule = schema.Rule(s)
		case "reason":
			got.Reason, err = String(v)
		case "blockUntil":
			var u time.Time
			u, err = Time(v)
			got.BlockUntil = &u
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v\nwant %+v", got, p)
	}
}

func TestMembersOfNestedAndOdd(t *testing.T) {
	var names []string
	var values []string
	err := members([]byte(` { "a" : [1, {"x":"]}"}, "\"q\""], "b\u0022":{"c":{}} ,"d":null,"e":true,"f":-1.5e3 } `), func(name, v []byte) error {
		names = append(names, string(name))
		values = append(values, string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`[1, {"x":"]}"}, "\"q\""]`, `{"c":{}}`, `null`, `true`, `-1.5e3`}
	if !reflect.DeepEqual(values, want) || !reflect.DeepEqual(names, []string{"a", `b"`, "d", "e", "f"}) {
		t.Fatalf("names %q values %q", names, values)
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":1,}`, `{"a":"x`, `{"a":[1}`, `{"a":1 "b":2}`, `{a:1}`} {
		if err := members([]byte(bad), func([]byte, []byte) error { return nil }); !errors.Is(err, errScan) {
			t.Errorf("members(%q) = %v, want errScan", bad, err)
		}
	}
	if _, err := Int([]byte(`1.5`)); err == nil {
		t.Error("Int accepted 1.5")
	}
	if _, err := String([]byte(`12`)); err == nil {
		t.Error("String accepted a number")
	}
}

// FuzzMembers checks the walk against encoding/json on any valid object:
// every member it reports is a valid JSON value, there are as many as
// encoding/json finds, and strings read the same.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, `{"a":[1,2,{"b":"\"}"}],"c":null}`, `{"\u00e9":"\ud83d\ude00","x":-0.5e-3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil || obj == nil {
			return
		}
		n := 0
		last := map[string][]byte{}
		err := members(data, func(name, v []byte) error {
			n++
			if !json.Valid(v) {
				t.Fatalf("member %q: invalid value %q", name, v)
			}
			last[string(name)] = append([]byte(nil), v...)
			return nil
		})
		if err != nil {
			t.Fatalf("members(%q): %v", data, err)
		}
		if len(last) != len(obj) || n < len(obj) {
			t.Fatalf("%d members (%d names), encoding/json found %d", n, len(last), len(obj))
		}
		for name, v := range last {
			var want string
			if json.Unmarshal(v, &want) != nil {
				continue
			}
			got, err := String(v)
			if err != nil || got != want {
				t.Fatalf("member %q: String = %q, %v; encoding/json %q", name, got, err, want)
			}
		}
	})
}

func TestCodec(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 7, time.UTC)
	var e Enc
	e.Form(3)
	e.Ints(0, -5, 1<<40)
	e.String("")
	e.String("Ольга")
	e.Bool(true)
	e.Time(time.Time{})
	e.Time(time.Unix(0, 0))
	e.Time(at)
	e.TimePtr(nil)
	d := Dec{B: e.B}
	d.Form(3)
	var a, b, c int
	d.Ints(&a, &b, &c)
	s1, s2, ok := d.String(), d.String(), d.Bool()
	t1, t2, t3, t4 := d.Time(), d.Time(), d.Time(), d.TimePtr()
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if a != 0 || b != -5 || c != 1<<40 || s1 != "" || s2 != "Ольга" || !ok || !t1.IsZero() || !t2.Equal(time.Unix(0, 0)) || t2.IsZero() || !t3.Equal(at) || t4 != nil {
		t.Fatalf("decoded %d %d %d %q %q %v %v %v %v %v", a, b, c, s1, s2, ok, t1, t2, t3, t4)
	}
	for _, bad := range [][]byte{nil, {4}, append(append([]byte(nil), e.B...), 0), e.B[:len(e.B)-3]} {
		d := Dec{B: bad}
		d.Form(3)
		d.Ints(&a, &b, &c)
		_, _, _ = d.String(), d.String(), d.Bool()
		_, _, _, _ = d.Time(), d.Time(), d.Time(), d.TimePtr()
		if !errors.Is(d.Err(), ErrCorrupt) {
			t.Errorf("Dec of %x: %v, want ErrCorrupt", bad, d.Err())
		}
	}
}

func TestDaysAndZones(t *testing.T) {
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 21, 30, 0, 0, time.UTC)
	if Day(at, msk) != "2026-11-03" || Hour(at, msk) != 0 || Day(at, time.UTC) != "2026-11-02" {
		t.Fatal("Day/Hour")
	}
	if ZoneVersion(msk) != "Europe/Moscow+10800+10800" || ZoneVersion(time.UTC) != "UTC+0+0" {
		t.Fatalf("ZoneVersion %s %s", ZoneVersion(msk), ZoneVersion(time.UTC))
	}
}
