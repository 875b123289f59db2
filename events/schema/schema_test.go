package schema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/callguard/callguard/events"
)

var at = time.Date(2025, 3, 3, 10, 25, 0, 0, time.UTC)

func TestRegistryKnowsEveryPayload(t *testing.T) {
	r := NewRegistry()
	for _, p := range All() {
		v, ok := r.Version(p.EventType())
		if !ok || v != p.EventVersion() {
			t.Errorf("%s: registry has version %d (%v), payload says %d", p.EventType(), v, ok, p.EventVersion())
		}
	}
}

// TestWireFormat pins the JSON of the payloads: what EventStoreDB's UI
// shows and what every stored event will be decoded from. A change here is
// a schema change: add an optional field, or bump the version and register
// an upcaster.
func TestWireFormat(t *testing.T) {
	until := at.Add(24 * time.Hour)
	tests := []struct {
		p    Payload
		want string
	}{
		{CallReceived{CallID: "c6", Caller: "+79990001122", Callee: "+78005553535", Source: "trunk-a", At: at, Hour: 6, Day: 6,
			Verdict: Challenge, Level: 3, Rule: RuleHourlyLimit, Reason: "6 calls in the last hour, limit 5"},
			`{"callId":"c6","caller":"+79990001122","callee":"+78005553535","source":"trunk-a","at":"2025-03-03T10:25:00Z","hour":6,"day":6,"verdict":"challenge","level":3,"rule":"hourly-limit","reason":"6 calls in the last hour, limit 5"}`},
		{CallReceived{CallID: "c1", Caller: "+79990001122", At: at, Hour: 1, Day: 1, Verdict: Pass},
			`{"callId":"c1","caller":"+79990001122","at":"2025-03-03T10:25:00Z","hour":1,"day":1,"verdict":"pass","level":0}`},
		{BlockApplied{Level: 3, Kind: Auto, Rule: RuleHourlyLimit, At: at, Until: &until, Limit: 5, Count: 6,
			Calls: []string{"c1", "c6"}, CallID: "c6", By: "policy", Why: "6 calls in the last hour, limit 5"},
			`{"level":3,"kind":"auto","rule":"hourly-limit","at":"2025-03-03T10:25:00Z","until":"2025-03-04T10:25:00Z","limit":5,"count":6,"calls":["c1","c6"],"callId":"c6","by":"policy","why":"6 calls in the last hour, limit 5"}`},
		{BlockApplied{Level: 7, Kind: Manual, Rule: RuleManual, At: at, CommandID: "k1", By: "admin:bob", Why: "fraud"},
			`{"level":7,"kind":"manual","rule":"manual","at":"2025-03-03T10:25:00Z","commandId":"k1","by":"admin:bob","why":"fraud"}`},
		{ChallengeOutcome{CallID: "c6", Outcome: Passed, At: at, VerifiedUntil: &until},
			`{"callId":"c6","outcome":"passed","at":"2025-03-03T10:25:00Z","verifiedUntil":"2025-03-04T10:25:00Z"}`},
		{BlockExpired{Level: 3, Kind: Auto, Rule: RuleHourlyLimit, Since: at, At: until},
			`{"level":3,"kind":"auto","rule":"hourly-limit","since":"2025-03-03T10:25:00Z","at":"2025-03-04T10:25:00Z"}`},
		{Whitelisted{At: at, By: "alice", Why: "VIP"}, `{"at":"2025-03-03T10:25:00Z","by":"alice","why":"VIP"}`},
	}
	reg := NewRegistry()
	for _, tt := range tests {
		got, err := json.Marshal(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.p.EventType(), got, tt.want)
		}
		// And back, through the registry, as a store would return it.
		rec := Record{ID: CallEventID("+79990001122", "c6", RoleReceived), Payload: tt.p}
		prop, err := rec.Proposed(events.Metadata{Actor: "grain"})
		if err != nil {
			t.Fatal(err)
		}
		if err := prop.Validate(); err != nil {
			t.Fatal(err)
		}
		dec, err := reg.Decode(events.Event{Type: prop.Type, Version: prop.Version, Data: prop.Data})
		if err != nil {
			t.Fatal(err)
		}
		if back := reflect.ValueOf(dec).Elem().Interface(); !reflect.DeepEqual(back, tt.p) {
			t.Errorf("%s: round trip gave %+v", tt.p.EventType(), back)
		}
	}
}

// TestFieldsAreCamelCase checks every JSON name of every payload.
func TestFieldsAreCamelCase(t *testing.T) {
	for _, p := range All() {
		typ := reflect.TypeOf(p)
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || !unicode.IsLower(rune(name[0])) || strings.ContainsAny(name, "_-") {
				t.Errorf("%s.%s: JSON name %q is not camelCase", typ.Name(), f.Name, name)
			}
		}
	}
}

func TestIDsAreDistinct(t *testing.T) {
	ids := map[string]string{}
	add := func(name string, id interface{ String() string }) {
		if prev, dup := ids[id.String()]; dup {
			t.Errorf("%s and %s share an ID", name, prev)
		}
		ids[id.String()] = name
	}
	for _, role := range []string{RoleReceived, RoleBlock, RoleOutcome, RoleEscalation} {
		add("call c1 "+role, CallEventID("+79990001122", "c1", role))
		add("call c1 other caller "+role, CallEventID("+79990003344", "c1", role))
	}
	add("command k1", CommandEventID("+79990001122", "k1"))
	add("command c1", CommandEventID("+79990001122", "c1"))
	add("block expiry", ExpiryEventID("+79990001122", TypeBlockExpired, at, at.Add(time.Hour)))
	add("whitelist expiry", ExpiryEventID("+79990001122", TypeWhitelistExpired, at, at.Add(time.Hour)))
	add("later block expiry", ExpiryEventID("+79990001122", TypeBlockExpired, at, at.Add(2*time.Hour)))
	first, again := CallEventID("+7999", "c1", RoleReceived), CallEventID("+7999", "c1", RoleReceived)
	if first != again {
		t.Fatal("CallEventID is not deterministic")
	}
}

func TestCallerStream(t *testing.T) {
	s := CallerStream("+78005553535")
	if s != "caller-+78005553535" {
		t.Fatalf("CallerStream = %q", s)
	}
	if k, ok := CallerKey(s); !ok || k != "+78005553535" {
		t.Fatalf("CallerKey(%q) = %q, %v", s, k, ok)
	}
	for _, s := range []string{"caller-", "call-1", "", "callers-x"} {
		if _, ok := CallerKey(s); ok {
			t.Errorf("CallerKey(%q) accepted", s)
		}
	}
}

func TestEnums(t *testing.T) {
	for _, v := range []Verdict{Pass, Challenge, Reject} {
		if !v.Valid() {
			t.Errorf("%s not valid", v)
		}
	}
	if Verdict("drop").Valid() || Outcome("timeout").Valid() {
		t.Error("unknown enum value accepted")
	}
	for _, o := range []Outcome{Passed, Failed, Abandoned} {
		if !o.Valid() {
			t.Errorf("%s not valid", o)
		}
	}
}

func TestValueCoversEveryPayload(t *testing.T) {
	for _, v := range All() {
		ptr := reflect.New(reflect.TypeOf(v))
		ptr.Elem().Set(reflect.ValueOf(v))
		p := ptr.Interface().(Payload)
		if got := Value(p); reflect.TypeOf(got) != reflect.TypeOf(v) || !reflect.DeepEqual(got, v) {
			t.Errorf("Value(*%s) = %T, want %T", v.EventType(), got, v)
		}
		if got := Value(v); !reflect.DeepEqual(got, v) {
			t.Errorf("Value(%s) = %#v, want it unchanged", v.EventType(), got)
		}
		nilPtr := reflect.Zero(ptr.Type()).Interface().(Payload)
		if got := Value(nilPtr); got != nil {
			t.Errorf("Value((*%s)(nil)) = %#v, want nil", v.EventType(), got)
		}
	}
}
