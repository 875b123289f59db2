package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Command is what every user command carries besides its subject.
type Command struct {
	// ID makes the command idempotent: a command whose ID is already in
	// the stream is not applied again. Empty: a fresh one.
	ID string
	// By is who gives the command (the admin token's holder as the API
	// names them, or the signed-in console admin); required.
	By string
	// Why is optional; when given it follows the rule of every command's
	// free text (schema.CheckCommandText).
	Why string
}

// Applied says where a command's event landed.
type Applied struct {
	// Event is the event type written; empty when nothing was.
	Event    string
	Revision uint64
	// Repeated: nothing was written, because the same command had been
	// applied before or the user already stands so (a role it has, a
	// disable of a disabled user).
	Repeated bool
}

// Writer is the one writer of the users stream, like rules.Writer: a
// command is checked against the stream as it is in the store (not the
// node's book, which may lag), appended with the revision it was checked
// against, and checked again from a fresh read when another node's command
// got in first. It then waits until the node's book has folded it.
type Writer struct {
	Store events.Store
	// Book is the node's book, waited for after an append; nil: no wait.
	Book *Book
	// Hasher hashes new passwords.
	Hasher *Hasher
	Clock  func() time.Time
	// Node names this node in the events' metadata.
	Node string
}

// maxConflicts bounds the read-check-append loop; each conflict means
// another admin's command got in, so it is never reached in practice.
const maxConflicts = 100

// Create creates an enabled user with role and password.
func (w *Writer) Create(ctx context.Context, name string, role Role, password string, c Command) (Applied, error) {
	if err := errors.Join(checkName(name), checkRole(role), checkNewPassword(password), c.check()); err != nil {
		return Applied{}, err
	}
	var hash schema.Secret
	return w.apply(ctx, c, func(s *state, now time.Time) (schema.Payload, error) {
		if e, ok := s.users[name]; ok {
			how := "enabled"
			if e.user.Disabled {
				how = "disabled"
			}
			return nil, fmt.Errorf("%w: %s (%s, %s, created by %s)", ErrExists, name, e.user.Role, how, e.user.CreatedBy)
		}
		if hash == "" { // once, not again after a conflict
			h, err := w.Hasher.Hash(ctx, password)
			if err != nil {
				return nil, err
			}
			hash = h
		}
		return schema.UserCreated{Name: name, Role: role, PasswordHash: hash, At: now, CommandID: c.ID, By: c.By, Why: c.Why}, nil
	})
}

// SetRole gives the user name role. The last enabled admin cannot be
// demoted.
func (w *Writer) SetRole(ctx context.Context, name string, role Role, c Command) (Applied, error) {
	if err := errors.Join(checkName(name), checkRole(role), c.check()); err != nil {
		return Applied{}, err
	}
	return w.apply(ctx, c, func(s *state, now time.Time) (schema.Payload, error) {
		e, err := s.user(name)
		if err != nil {
			return nil, err
		}
		if e.user.Role == role {
			return nil, nil
		}
		if e.user.Role == Admin && !e.user.Disabled && s.enabledAdmins(name) == 0 {
			return nil, fmt.Errorf("%w: %s is the only enabled admin; make another user admin first", ErrLastAdmin, name)
		}
		return schema.UserRoleChanged{Name: name, Role: role, At: now, CommandID: c.ID, By: c.By, Why: c.Why}, nil
	})
}

// SetPassword sets the password of the user name.
func (w *Writer) SetPassword(ctx context.Context, name, password string, c Command) (Applied, error) {
	if err := errors.Join(checkName(name), checkNewPassword(password), c.check()); err != nil {
		return Applied{}, err
	}
	var hash schema.Secret
	return w.apply(ctx, c, func(s *state, now time.Time) (schema.Payload, error) {
		if _, err := s.user(name); err != nil {
			return nil, err
		}
		if hash == "" {
			h, err := w.Hasher.Hash(ctx, password)
			if err != nil {
				return nil, err
			}
			hash = h
		}
		return schema.UserPasswordChanged{Name: name, PasswordHash: hash, At: now, CommandID: c.ID, By: c.By, Why: c.Why}, nil
	})
}

// Disable disables the user name: it cannot sign in, and its sessions end.
// The last enabled admin cannot be disabled.
func (w *Writer) Disable(ctx context.Context, name string, c Command) (Applied, error) {
	if err := errors.Join(checkName(name), c.check()); err != nil {
		return Applied{}, err
	}
	return w.apply(ctx, c, func(s *state, now time.Time) (schema.Payload, error) {
		e, err := s.user(name)
		if err != nil {
			return nil, err
		}
		if e.user.Disabled {
			return nil, nil
		}
		if e.user.Role == Admin && s.enabledAdmins(name) == 0 {
			return nil, fmt.Errorf("%w: %s is the only enabled admin; make another user admin first", ErrLastAdmin, name)
		}
		return schema.UserDisabled{Name: name, At: now, CommandID: c.ID, By: c.By, Why: c.Why}, nil
	})
}

// Enable enables the disabled user name again.
func (w *Writer) Enable(ctx context.Context, name string, c Command) (Applied, error) {
	if err := errors.Join(checkName(name), c.check()); err != nil {
		return Applied{}, err
	}
	return w.apply(ctx, c, func(s *state, now time.Time) (schema.Payload, error) {
		e, err := s.user(name)
		if err != nil {
			return nil, err
		}
		if !e.user.Disabled {
			return nil, nil
		}
		return schema.UserEnabled{Name: name, At: now, CommandID: c.ID, By: c.By, Why: c.Why}, nil
	})
}

func (s *state) user(name string) (entry, error) {
	e, ok := s.users[name]
	if !ok {
		return e, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return e, nil
}

func (w *Writer) apply(ctx context.Context, c Command, check func(*state, time.Time) (schema.Payload, error)) (Applied, error) {
	reg := schema.NewRegistry()
	for range maxConflicts {
		s, err := read(ctx, w.Store, reg)
		if err != nil {
			return Applied{}, err
		}
		if c.ID != "" {
			if rev, ok := s.applied[c.ID]; ok {
				return Applied{Revision: rev, Repeated: true}, nil
			}
		}
		p, err := check(s, w.Clock().UTC())
		if err != nil {
			return Applied{}, err
		}
		if p == nil {
			r, _ := s.revision()
			return Applied{Revision: r, Repeated: true}, nil
		}
		id := uuid.New()
		if c.ID != "" {
			id = schema.UserEventID(c.ID)
		}
		props, err := schema.Proposals([]schema.Record{{ID: id, Payload: p}}, events.Metadata{Node: w.Node, Actor: "admin:" + c.By, CausationID: c.ID})
		if err != nil {
			return Applied{}, err
		}
		res, err := w.Store.Append(ctx, schema.UsersStream, s.expected(), props...)
		var conflict *events.ConflictError
		if errors.As(err, &conflict) {
			continue
		}
		if err != nil {
			return Applied{}, fmt.Errorf("users: append: %w", err)
		}
		if w.Book != nil {
			if err := w.Book.WaitFor(ctx, res.LastRevision); err != nil {
				return Applied{}, err
			}
		}
		return Applied{Event: p.EventType(), Revision: res.LastRevision}, nil
	}
	return Applied{}, fmt.Errorf("users: %d conflicting writers in a row", maxConflicts)
}

// FieldError is an invalid part of a command, named as the API and the
// console name their fields: name, role, password, by, why.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Problem }

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func checkName(name string) error {
	if err := schema.CheckUserName(name); err != nil {
		return &FieldError{"name", fmt.Sprintf("is %q: want 1 to %d of a-z, 0-9, '.', '_' and '-'", clipName(name), schema.MaxUserName)}
	}
	return nil
}

func clipName(s string) string {
	if len(s) > schema.MaxUserName+8 {
		return strings.ToValidUTF8(s[:schema.MaxUserName], "") + "…"
	}
	return s
}

func checkRole(r Role) error {
	if !r.Valid() {
		return &FieldError{"role", fmt.Sprintf("is %q: want viewer, operator or admin", clipName(string(r)))}
	}
	return nil
}

func checkNewPassword(pw string) error {
	if err := CheckPassword(pw); err != nil {
		return &FieldError{"password", strings.TrimPrefix(err.Error(), ErrPassword.Error()+": ")}
	}
	return nil
}

func (c Command) check() error {
	var errs []error
	var te *schema.TextError
	if err := schema.CheckCommandText("by", c.By); errors.As(err, &te) {
		errs = append(errs, &FieldError{te.Field, te.Problem})
	}
	if c.Why != "" {
		if err := schema.CheckCommandText("why", c.Why); errors.As(err, &te) {
			errs = append(errs, &FieldError{te.Field, te.Problem})
		}
	}
	return errors.Join(errs...)
}

// FieldErrors lists the field errors in err (a command's refusal of its
// input), for edges that answer per field.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case *FieldError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
