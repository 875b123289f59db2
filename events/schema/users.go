package schema

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// Console users: the named people who sign in to the operator console,
// each with a role. They are not a caller's state, so they live in a
// stream of their own, UsersStream, written by admin commands and folded
// by every node (actors/users), so that a user created or disabled on one
// node signs in or is out on every node.

// UsersStream is the stream of the console users' commands.
const UsersStream = "users"

// Event types of the users stream.
const (
	TypeUserCreated         = "UserCreated"
	TypeUserRoleChanged     = "UserRoleChanged"
	TypeUserPasswordChanged = "UserPasswordChanged"
	TypeUserDisabled        = "UserDisabled"
	TypeUserEnabled         = "UserEnabled"
)

// UserRole says what a console user may do.
type UserRole string

const (
	// RoleViewer reads every page and changes nothing (the call centre).
	RoleViewer UserRole = "viewer"
	// RoleOperator may also whitelist, block, unblock, import and use
	// what-if (the fraud team).
	RoleOperator UserRole = "operator"
	// RoleAdmin may also manage the console's users.
	RoleAdmin UserRole = "admin"
)

// Valid reports whether r is a known role.
func (r UserRole) Valid() bool { return r == RoleViewer || r == RoleOperator || r == RoleAdmin }

// MaxUserName bounds a console user's name.
const MaxUserName = 64

// ErrUserName marks a user name that breaks the rule of CheckUserName.
var ErrUserName = errors.New("invalid user name")

// CheckUserName checks a console user's name: 1 to 64 of a-z, 0-9, '.',
// '_' and '-'. Lower case only, so that "Alice" and "alice" cannot be two
// people, and nothing that needs escaping in a URL, a log line or a page.
func CheckUserName(name string) error {
	if name == "" || len(name) > MaxUserName {
		return fmt.Errorf("%w: %d characters, want 1 to %d", ErrUserName, len(name), MaxUserName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: %q, want only a-z, 0-9, '.', '_' and '-'", ErrUserName, name)
		}
	}
	return nil
}

// Secret is a password hash as stored in an event. It is written to the
// store as it is (JSON), but every other way of showing it — fmt's verbs,
// slog, an error — prints "[redacted]": a hash that leaks into a log or an
// answer can be attacked offline.
type Secret string

// Redacted is what a Secret shows instead of itself.
const Redacted = "[redacted]"

func (Secret) String() string             { return Redacted }
func (Secret) GoString() string           { return `"` + Redacted + `"` }
func (Secret) LogValue() slog.Value       { return slog.StringValue(Redacted) }
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// Reveal returns the hash itself, for the one reader that needs it: the
// password check.
func (s Secret) Reveal() string { return string(s) }

// UserCreated records an admin creating a console user.
type UserCreated struct {
	Name string   `json:"name"`
	Role UserRole `json:"role"`
	// PasswordHash is the password's argon2id hash in PHC string form.
	PasswordHash Secret    `json:"passwordHash"`
	At           time.Time `json:"at"`
	CommandID    string    `json:"commandId,omitempty"`
	By           string    `json:"by"`
	Why          string    `json:"why,omitempty"`
}

// UserRoleChanged records an admin giving a user another role.
type UserRoleChanged struct {
	Name      string    `json:"name"`
	Role      UserRole  `json:"role"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why,omitempty"`
}

// UserPasswordChanged records a user's new password (its hash).
type UserPasswordChanged struct {
	Name         string    `json:"name"`
	PasswordHash Secret    `json:"passwordHash"`
	At           time.Time `json:"at"`
	CommandID    string    `json:"commandId,omitempty"`
	By           string    `json:"by"`
	Why          string    `json:"why,omitempty"`
}

// UserDisabled records an admin disabling a user: it can no longer sign
// in, and its sessions end at their next request.
type UserDisabled struct {
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why,omitempty"`
}

// UserEnabled records an admin enabling a disabled user again.
type UserEnabled struct {
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
	CommandID string    `json:"commandId,omitempty"`
	By        string    `json:"by"`
	Why       string    `json:"why,omitempty"`
}

// LogValue shows the event without its hash (slog's JSON handler would
// otherwise marshal it whole).
func (e UserCreated) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", e.Name), slog.String("role", string(e.Role)),
		slog.String("passwordHash", Redacted), slog.Time("at", e.At), slog.String("by", e.By), slog.String("why", e.Why))
}

// LogValue shows the event without its hash.
func (e UserPasswordChanged) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", e.Name), slog.String("passwordHash", Redacted),
		slog.Time("at", e.At), slog.String("by", e.By), slog.String("why", e.Why))
}

// UserEventID is the ID of the event the admin command commandID caused
// in the users stream: a retried request writes once.
func UserEventID(commandID string) uuid.UUID {
	return events.DeriveID(UsersStream, "command", commandID, RoleCommand)
}

func (UserCreated) EventType() string         { return TypeUserCreated }
func (UserRoleChanged) EventType() string     { return TypeUserRoleChanged }
func (UserPasswordChanged) EventType() string { return TypeUserPasswordChanged }
func (UserDisabled) EventType() string        { return TypeUserDisabled }
func (UserEnabled) EventType() string         { return TypeUserEnabled }

func (UserCreated) EventVersion() int         { return 1 }
func (UserRoleChanged) EventVersion() int     { return 1 }
func (UserPasswordChanged) EventVersion() int { return 1 }
func (UserDisabled) EventVersion() int        { return 1 }
func (UserEnabled) EventVersion() int         { return 1 }

func userPayloads() []Payload {
	return []Payload{UserCreated{}, UserRoleChanged{}, UserPasswordChanged{}, UserDisabled{}, UserEnabled{}}
}
