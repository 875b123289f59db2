// Package users keeps the operator console's named users: who may sign
// in, with which role. They are recorded as events in the users stream
// (schema.UsersStream) by admin commands (Writer) and folded by every
// node into its Book, which checks passwords (argon2id) and answers who a
// signed-in name is now.
package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/follow"
	"github.com/callguard/callguard/events/schema"
)

// Role is a console user's role (viewer, operator, admin).
type Role = schema.UserRole

// The roles.
const (
	Viewer   = schema.RoleViewer
	Operator = schema.RoleOperator
	Admin    = schema.RoleAdmin
)

// Errors of the users package. Commands return them wrapped, with the
// name concerned.
var (
	// ErrBadCredentials: a wrong name or password, or a disabled user.
	// Authenticate gives the one error for all three, so that a sign-in
	// page cannot tell which.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrExists: a user of this name exists (enabled or not).
	ErrExists = errors.New("user exists")
	// ErrNotFound: no user of this name.
	ErrNotFound = errors.New("no such user")
	// ErrLastAdmin: the command would leave no enabled admin.
	ErrLastAdmin = errors.New("the last enabled admin")
	// ErrInvalid: a name, role or text the command cannot take.
	ErrInvalid = errors.New("invalid user command")
)

// User is a console user as the book holds it. It has no password hash:
// nothing outside this package ever sees one.
type User struct {
	Name     string
	Role     Role
	Disabled bool
	// Created and CreatedBy say when and by whom the user was created;
	// Changed and ChangedBy the last command about it.
	Created   time.Time
	CreatedBy string
	Changed   time.Time
	ChangedBy string
}

type entry struct {
	user User
	hash schema.Secret
}

// state is the users stream folded up to rev. It is never changed once
// published: a fold makes a new one.
type state struct {
	rev     int64 // -1: no event
	users   map[string]entry
	applied map[string]uint64 // command ID -> revision of its event
}

func emptyState() *state {
	return &state{rev: -1, users: map[string]entry{}, applied: map[string]uint64{}}
}

func (s *state) revision() (uint64, bool) {
	if s.rev < 0 {
		return 0, false
	}
	return uint64(s.rev), true
}

func (s *state) expected() events.Expected {
	r, ok := s.revision()
	return events.ExactOrNoStream(r, ok)
}

// enabledAdmins counts the enabled admins other than except.
func (s *state) enabledAdmins(except string) int {
	n := 0
	for name, e := range s.users {
		if name != except && e.user.Role == Admin && !e.user.Disabled {
			n++
		}
	}
	return n
}

// fold returns the state after the event at rev. An event already folded
// (a subscription delivers some twice) changes nothing. An event about a
// user the stream does not have is skipped: the Writer never writes one.
func (s *state) fold(rev uint64, p schema.Payload) *state {
	if s.rev >= 0 && rev <= uint64(s.rev) {
		return s
	}
	n := &state{rev: int64(rev), users: maps.Clone(s.users), applied: s.applied}
	var id string
	switch e := schema.Value(p).(type) {
	case schema.UserCreated:
		id = e.CommandID
		if _, dup := n.users[e.Name]; !dup {
			n.users[e.Name] = entry{user: User{Name: e.Name, Role: e.Role, Created: e.At, CreatedBy: e.By, Changed: e.At, ChangedBy: e.By}, hash: e.PasswordHash}
		}
	case schema.UserRoleChanged:
		id = e.CommandID
		n.change(e.Name, e.At, e.By, func(x *entry) { x.user.Role = e.Role })
	case schema.UserPasswordChanged:
		id = e.CommandID
		n.change(e.Name, e.At, e.By, func(x *entry) { x.hash = e.PasswordHash })
	case schema.UserDisabled:
		id = e.CommandID
		n.change(e.Name, e.At, e.By, func(x *entry) { x.user.Disabled = true })
	case schema.UserEnabled:
		id = e.CommandID
		n.change(e.Name, e.At, e.By, func(x *entry) { x.user.Disabled = false })
	}
	if id != "" {
		n.applied = maps.Clone(s.applied)
		n.applied[id] = rev
	}
	return n
}

func (s *state) change(name string, at time.Time, by string, f func(*entry)) {
	e, ok := s.users[name]
	if !ok {
		return
	}
	f(&e)
	e.user.Changed, e.user.ChangedBy = at, by
	s.users[name] = e
}

func (s *state) list() []User {
	out := make([]User, 0, len(s.users))
	for _, e := range s.users {
		out = append(out, e.user)
	}
	slices.SortFunc(out, func(a, b User) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// read folds the whole users stream of store.
func read(ctx context.Context, store events.Store, reg *events.Registry) (*state, error) {
	evs, err := events.ReadWholeStream(ctx, store, schema.UsersStream, 0)
	if err != nil {
		return nil, fmt.Errorf("users: read %s: %w", schema.UsersStream, err)
	}
	s := emptyState()
	for _, ev := range evs {
		p, err := decode(reg, ev)
		if errors.Is(err, events.ErrUnknownType) {
			// A later build's event: keep its revision, fold nothing.
			s = s.fold(ev.Revision, nil)
			continue
		}
		if err != nil {
			return nil, err
		}
		s = s.fold(ev.Revision, p)
	}
	return s, nil
}

func decode(reg *events.Registry, ev events.Event) (schema.Payload, error) {
	v, err := reg.Decode(ev)
	if err != nil {
		return nil, fmt.Errorf("users: decode %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	p, ok := v.(schema.Payload)
	if !ok {
		return nil, fmt.Errorf("users: %s@%d: %w: %T", ev.Stream, ev.Revision, ErrInvalid, v)
	}
	return p, nil
}

// Book is a node's view of the console users: loaded from the users
// stream, then kept current by a subscription to the log, like the range
// rules (actors/rules.Live). Readers never block on the store.
type Book struct {
	s      follow.Stream[state]
	hasher *Hasher
	log    *slog.Logger

	// dummy is a hash of a random password with the hasher's parameters:
	// a sign-in of an unknown or disabled name checks against it, so that
	// it takes as long as one of a real user.
	dummy func() (schema.Secret, error)
}

// NewBook returns an empty Book over store; Start (or Load and Follow)
// fills it. hasher checks the passwords.
func NewBook(store events.Store, hasher *Hasher, log *slog.Logger) *Book {
	if log == nil {
		log = slog.Default()
	}
	reg := schema.NewRegistry()
	b := &Book{hasher: hasher, log: log}
	b.s.Init(store, emptyState(), follow.Config[state]{
		Stream: schema.UsersStream,
		Read: func(ctx context.Context, store events.Store) (*state, error) {
			return read(ctx, store, reg)
		},
		Fold: func(cur *state, ev events.Event) (*state, error) {
			p, err := decode(reg, ev)
			if err != nil && !errors.Is(err, events.ErrUnknownType) {
				return nil, err
			}
			// A later build's event: keep its revision, fold nothing.
			return cur.fold(ev.Revision, p), nil
		},
		Revision: (*state).revision,
		Prefix:   "users",
		Name:     "console users",
		Item:     "console user event",
	}, log)
	b.dummy = sync.OnceValues(func() (schema.Secret, error) {
		pw, err := hasher.random(32)
		if err != nil {
			return "", fmt.Errorf("users: draw a dummy password: %w", err)
		}
		return hasher.Hash(context.Background(), string(pw))
	})
	return b
}

// List returns every user, disabled ones included, by name.
func (b *Book) List() []User { return b.s.Current().list() }

// Len is the number of users, disabled ones included.
func (b *Book) Len() int { return len(b.s.Current().users) }

// Revision is the users stream's revision the book has folded; false
// before its first event.
func (b *Book) Revision() (uint64, bool) { return b.s.Current().revision() }

// User returns the user of name, disabled or not.
func (b *Book) User(name string) (User, bool) {
	e, ok := b.s.Current().users[name]
	return e.user, ok
}

// Account returns the current account of a signed-in name: ok is false
// when the user is gone or disabled, so that a session of a disabled user
// ends at its next request. It reads memory only (ctx is for the
// console's interface).
func (b *Book) Account(_ context.Context, name string) (User, bool) {
	e, ok := b.s.Current().users[name]
	if !ok || e.user.Disabled {
		return User{}, false
	}
	return e.user, true
}

// Authenticate checks name and password. A wrong password, an unknown
// name and a disabled user all give ErrBadCredentials, and all cost one
// argon2id hash, so that neither the answer nor its time tells a name
// that exists. The keys are compared in constant time. Hashes run at most
// a few at once (the Hasher's bound); a ctx that ends while waiting gives
// its error.
func (b *Book) Authenticate(ctx context.Context, name, password string) (User, error) {
	e, ok := b.s.Current().users[name]
	hash := e.hash
	if !ok || e.user.Disabled {
		d, err := b.dummy()
		if err != nil {
			return User{}, err
		}
		hash = d
	}
	if len(password) > MaxPassword {
		// Not a password anyone set; hash a bounded text for the time.
		password, ok = "", false
	}
	match, err := b.hasher.Verify(ctx, hash, password)
	if err != nil {
		if errors.Is(err, ErrPHC) {
			b.log.Error("console user's password hash does not parse", "user", name, "err", err)
			return User{}, ErrBadCredentials
		}
		return User{}, err
	}
	if !ok || e.user.Disabled || !match {
		return User{}, ErrBadCredentials
	}
	// Disabled (or its password changed) while the hash ran: out.
	now, still := b.s.Current().users[name]
	if !still || now.user.Disabled || now.hash != e.hash {
		return User{}, ErrBadCredentials
	}
	return now.user, nil
}

// Load reads the users stream and makes it the book's. It returns the
// log's head as it was before the read: Follow from there misses nothing.
func (b *Book) Load(ctx context.Context) (events.Position, error) { return b.s.Load(ctx) }

// Follow keeps the book current from the log after from until ctx ends,
// resubscribing after a pause when the store fails. Every node follows the
// same stream, so a user disabled on one node is out on all of them
// within the subscription's latency.
func (b *Book) Follow(ctx context.Context, from events.Position) { b.s.Follow(ctx, from) }

// WaitFor returns once the book has folded the users stream up to rev, or
// with ctx's error: a command waits so that its answer means the change is
// in force on this node.
func (b *Book) WaitFor(ctx context.Context, rev uint64) error { return b.s.WaitFor(ctx, rev) }

// Start loads the book and then follows the log until ctx ends, in the
// background. It waits for the first load at most wait: when that fails it
// returns the error and goes on trying in the background (nobody can sign
// in to the console meanwhile).
func (b *Book) Start(ctx context.Context, wait time.Duration) error {
	// The dummy hash now, not at the first unknown name: that sign-in
	// would otherwise take two hashes, and its time would tell.
	go func() { _, _ = b.dummy() }()
	return b.s.Start(ctx, wait)
}
