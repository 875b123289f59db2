package events

import (
	"encoding/json"
	"errors"
	"testing"
)

// greetingV2 renamed v1's "name" to "caller" and added "lang".
type greetingV2 struct {
	Caller string `json:"caller"`
	Lang   string `json:"lang"`
}

func newGreetingRegistry() *Registry {
	r := NewRegistry()
	r.Register("Greeting", 2, greetingV2{})
	r.Upcast("Greeting", 1, func(data json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(greetingV2{Caller: v1.Name, Lang: "ru"})
	})
	return r
}

func TestRegistryDecode(t *testing.T) {
	r := newGreetingRegistry()
	tests := []struct {
		name    string
		ev      Event
		want    greetingV2
		wantErr error
	}{
		{"current version", Event{Type: "Greeting", Version: 2, Data: json.RawMessage(`{"caller":"+7999","lang":"en"}`)}, greetingV2{"+7999", "en"}, nil},
		{"older version is upcast", Event{Type: "Greeting", Version: 1, Data: json.RawMessage(`{"name":"+7999"}`)}, greetingV2{"+7999", "ru"}, nil},
		{"unknown type", Event{Type: "Nope", Version: 1, Data: json.RawMessage(`{}`)}, greetingV2{}, ErrUnknownType},
		{"newer than the code", Event{Type: "Greeting", Version: 3, Data: json.RawMessage(`{}`)}, greetingV2{}, ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Decode(tt.ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if g := *got.(*greetingV2); g != tt.want {
				t.Fatalf("Decode = %+v, want %+v", g, tt.want)
			}
		})
	}
}

func TestDeriveIDIsDeterministicAndSeparated(t *testing.T) {
	a, b := DeriveID("call-1", "received"), DeriveID("call-1", "received")
	if a != b {
		t.Fatal("same parts gave different IDs")
	}
	if DeriveID("ab", "c") == DeriveID("a", "bc") {
		t.Fatal("parts are not separated")
	}
}

func TestExpectedCheck(t *testing.T) {
	tests := []struct {
		exp    Expected
		last   uint64
		exists bool
		want   bool
	}{
		{Any, 0, false, true},
		{Any, 5, true, true},
		{NoStream, 0, false, true},
		{NoStream, 0, true, false},
		{StreamExists, 0, false, false},
		{StreamExists, 3, true, true},
		{Exact(3), 3, true, true},
		{Exact(3), 4, true, false},
		{Exact(0), 0, false, false},
	}
	for _, tt := range tests {
		if got := tt.exp.Check(tt.last, tt.exists); got != tt.want {
			t.Errorf("%v.Check(%d, %v) = %v, want %v", tt.exp, tt.last, tt.exists, got, tt.want)
		}
	}
}
