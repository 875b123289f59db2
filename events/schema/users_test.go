package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/callguard/callguard/events"
)

const testHash = "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

func TestCheckUserName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a", true},
		{"ivan.petrov_2-x", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"Alice", false},
		{"al ice", false},
		{"alice@bank", false},
		{"алиса", false},
		{"al/ice", false},
	}
	for _, tt := range tests {
		err := CheckUserName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckUserName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUserName) {
			t.Errorf("CheckUserName(%q): %v is not ErrUserName", tt.name, err)
		}
	}
}

func TestUserRoles(t *testing.T) {
	for _, r := range []UserRole{RoleViewer, RoleOperator, RoleAdmin} {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	for _, r := range []UserRole{"", "root", "Admin"} {
		if r.Valid() {
			t.Errorf("%q valid", r)
		}
	}
}

// TestUserWireFormat pins the users stream's JSON, hash included: the
// store is the one place the hash is written.
func TestUserWireFormat(t *testing.T) {
	tests := []struct {
		p    Payload
		want string
	}{
		{UserCreated{Name: "alice", Role: RoleAdmin, PasswordHash: testHash, At: at, CommandID: "k1", By: "root", Why: "first admin"},
			`{"name":"alice","role":"admin","passwordHash":"` + testHash + `","at":"2025-03-03T10:25:00Z","commandId":"k1","by":"root","why":"first admin"}`},
		{UserRoleChanged{Name: "alice", Role: RoleViewer, At: at, By: "bob"},
			`{"name":"alice","role":"viewer","at":"2025-03-03T10:25:00Z","by":"bob"}`},
		{UserPasswordChanged{Name: "alice", PasswordHash: testHash, At: at, By: "alice"},
			`{"name":"alice","passwordHash":"` + testHash + `","at":"2025-03-03T10:25:00Z","by":"alice"}`},
		{UserDisabled{Name: "alice", At: at, By: "bob", Why: "left the bank"},
			`{"name":"alice","at":"2025-03-03T10:25:00Z","by":"bob","why":"left the bank"}`},
		{UserEnabled{Name: "alice", At: at, By: "bob"},
			`{"name":"alice","at":"2025-03-03T10:25:00Z","by":"bob"}`},
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
		prop, err := Record{ID: UserEventID("k1"), Payload: tt.p}.Proposed(events.Metadata{Actor: "admin:root"})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := reg.Decode(events.Event{Type: prop.Type, Version: prop.Version, Data: prop.Data})
		if err != nil {
			t.Fatal(err)
		}
		if back := Value(dec.(Payload)); back != tt.p {
			t.Errorf("%s: round trip gave %+v", tt.p.EventType(), back)
		}
	}
}

// TestSecretNeverPrinted shows the events that carry a hash every way a
// program prints things: fmt's verbs, slog's text and JSON handlers, an
// error wrapping them. None may contain the hash.
func TestSecretNeverPrinted(t *testing.T) {
	created := UserCreated{Name: "alice", Role: RoleAdmin, PasswordHash: testHash, At: at, By: "root"}
	changed := UserPasswordChanged{Name: "alice", PasswordHash: testHash, At: at, By: "alice"}
	secret := "c2FsdHNhbHRzYWx0c2FsdA" // the salt part alone must not show either
	var outs []string
	for _, v := range []any{created, &created, changed, &changed, created.PasswordHash} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v), fmt.Errorf("append %v: %w", v, errors.New("boom")).Error())
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("event", "ev", created, "ptr", &changed, "hash", created.PasswordHash)
		log.Info("event", slog.Any("ev", changed))
	}
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, secret) || strings.Contains(o, "argon2id") {
			t.Errorf("the hash shows: %s", o)
		}
	}
	if !strings.Contains(buf.String(), Redacted) || !strings.Contains(buf.String(), "alice") {
		t.Errorf("the log lines say nothing useful:\n%s", buf.String())
	}
	if created.PasswordHash.Reveal() != testHash {
		t.Error("Reveal does not give the hash back")
	}
}
